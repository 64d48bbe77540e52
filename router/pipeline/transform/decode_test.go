package transform

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dop251/goja"
)

var decodeSeeds = []string{
	sampleEvent, string(benchEvent),
	`{}`, `[]`, ` { "a" : [ 1 , 2 ] } `, `"s"`, `1`, `-0`, `0.5`, `1e3`, `-1.5E-3`, `1e400`, `-1e400`, `9007199254740993`,
	`12345678901234567890`, `true`, `false`, `null`, `{"a":1,"a":2,"b":3}`, `{"__proto__":{"x":1}}`,
	`{"esc":"a\"b\\c\/d\n\u00e9\ud83d\ude00\ud800"}`, `{"é":"ü","k\u0041":1}`, "\"\xff\xfe\"", `[[[[[]]]]]`,
	`{"a":1,}`, `[1,]`, `{"a" 1}`, `{a:1}`, `01`, `+1`, `.5`, `1.`, `1e`, `0x10`, `NaN`, `Infinity`, `tru`, `nul`,
	`"\x01"`, `"abc`, `[1 2]`, `{"a":1}x`, ``, ` `, `"\q"`, `"\u12"`, `[`, `{`, `{"a":`,
}

// decodeCheck compares decode with json.Valid (accepts the same texts)
// and with goja's JSON.parse (the same value, as JSON.stringify shows it).
func decodeCheck(t *testing.T, vm *goja.Runtime, parse, stringify goja.Callable, in string) {
	v, err := decode(vm, []byte(in))
	valid := json.Valid([]byte(in))
	if (err == nil) != valid && !(valid && strings.Count(in, "[")+strings.Count(in, "{") > maxDepth) {
		t.Fatalf("%q: decode err %v, json.Valid %v", in, err, valid)
	}
	if err != nil {
		return
	}
	want, err := parse(goja.Undefined(), vm.ToValue(in))
	if err != nil {
		return // goja's JSON.parse refuses 1e400, which is Infinity
	}
	a, err1 := stringify(goja.Undefined(), v)
	b, err2 := stringify(goja.Undefined(), want)
	if err1 != nil || err2 != nil || a.String() != b.String() {
		t.Fatalf("%q: decode gives %v (%v), JSON.parse %v (%v)", in, a, err1, b, err2)
	}
}

func jsonFuncs(vm *goja.Runtime) (parse, stringify goja.Callable) {
	j := vm.Get("JSON").ToObject(vm)
	parse, _ = goja.AssertFunction(j.Get("parse"))
	stringify, _ = goja.AssertFunction(j.Get("stringify"))
	return
}

func TestDecode(t *testing.T) {
	vm := goja.New()
	parse, stringify := jsonFuncs(vm)
	for _, in := range decodeSeeds {
		decodeCheck(t, vm, parse, stringify, in)
	}
	// Over maxShared bytes, strings are copies instead of slices: the
	// same values.
	big := "[" + strings.Repeat(string(benchEvent)+`,{"esc":"a\"b\u00e9","é":"ü"},`, maxShared/len(benchEvent)+1) + "0]"
	if len(big) <= maxShared {
		t.Fatal("big is small")
	}
	decodeCheck(t, vm, parse, stringify, big)
	// What JSON.parse makes, and what a script can tell.
	prog := mustCompile(t, `function transform(e) {
		return {proto: Object.getPrototypeOf(e) === Object.prototype, own: Object.keys(e.x).join(),
			pollution: ({}).polluted === undefined, arr: Array.isArray(e.a), negz: Object.is(e.z, -0), inf: e.i === Infinity}
	}`, Options{})
	out, _, err := prog.Transform(t.Context(), []byte(`{"x":{"__proto__":{"polluted":1}},"a":[1],"z":-0,"i":1e999}`), testCtx)
	if err != nil || string(out) != `{"proto":true,"own":"__proto__","pollution":true,"arr":true,"negz":true,"inf":true}` {
		t.Fatalf("%s %v", out, err)
	}
	// Members are data properties of the event, in order, whatever the
	// script put on Object.prototype (a setter, a read-only property,
	// accessors named like the members): none of it runs or refuses.
	// Objects at every level, in arrays too, have Object.prototype.
	prog = mustCompile(t, `
		var calls = 0;
		Object.defineProperty(Object.prototype, "a", {set(v) { calls++ }, get() { return "proto" }});
		Object.defineProperty(Object.prototype, "b", {value: "ro", writable: false});
		function transform(e) {
			var d = Object.getOwnPropertyDescriptor(e.o, "a");
			return {calls: calls, a: e.o.a, b: e.o.b, keys: Object.keys(e.o).join(),
				data: d.writable && d.enumerable && d.configurable,
				protos: [e, e.o, e.l[0], e.l[0].n].every(function (x) { return Object.getPrototypeOf(x) === Object.prototype }),
				inherits: e.l[0].n.b}
		}`, Options{})
	out, _, err = prog.Transform(t.Context(), []byte(`{"o":{"b":2,"__proto__":null,"a":1},"l":[{"n":{"z":0}}]}`), testCtx)
	if err != nil || string(out) != `{"calls":0,"a":1,"b":2,"keys":"b,__proto__,a","data":true,"protos":true,"inherits":"ro"}` {
		t.Fatalf("%s %v", out, err)
	}
	// Deep nesting is refused, not a stack overflow.
	if _, err := decode(vm, []byte(strings.Repeat("[", maxDepth+1)+strings.Repeat("]", maxDepth+1))); err == nil {
		t.Fatal("too deep")
	}
}

func FuzzDecode(f *testing.F) {
	for _, in := range decodeSeeds {
		f.Add(in)
	}
	f.Add(`{"pad":"` + strings.Repeat("x", maxShared) + `","a":["b",{"c":"d\n"}]}`)
	vm := goja.New()
	parse, stringify := jsonFuncs(vm)
	f.Fuzz(func(t *testing.T, in string) {
		decodeCheck(t, vm, parse, stringify, in)
	})
}

// plainLen agrees with plainByte, byte by byte, wherever the odd byte is.
func TestPlainLen(t *testing.T) {
	for c := 0; c < 256; c++ {
		for n := 0; n < 20; n++ {
			for at := 0; at <= n; at++ {
				b := []byte(strings.Repeat("a", n))
				want := n
				if at < n {
					b[at] = byte(c)
					if !plainByte[c] {
						want = at
					}
				}
				if got := plainLen(string(b)); got != want {
					t.Fatalf("%q: %d, want %d", b, got, want)
				}
			}
		}
	}
	// Several odd bytes, next to each other: borrows in the word test.
	edge := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"', 0x23, 0x5b, '\\', 0x5d, 0x7f, 0x80, 0xef, 0xff, 'a'}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = edge[r.IntN(len(edge))]
		}
		want := 0
		for want < len(b) && plainByte[b[want]] {
			want++
		}
		if got := plainLen(string(b)); got != want {
			t.Fatalf("%q: %d, want %d", b, got, want)
		}
	}
}
