package transform

import (
	"testing"

	"github.com/dop251/goja"
)

// encodeAgainstStringify checks that the encoder writes what
// JSON.stringify writes, whenever it does not give up, and reports
// whether it gave up.
func encodeAgainstStringify(t testing.TB, vm *goja.Runtime, v goja.Value) (gaveUp bool) {
	t.Helper()
	stringify, _ := goja.AssertFunction(vm.Get("JSON").ToObject(vm).Get("stringify"))
	e := encoder{vm: vm, max: 1 << 20}
	ok, skip := e.value(v, 0, false)
	if !ok {
		return true
	}
	want, err := stringify(goja.Undefined(), v)
	if err != nil {
		t.Fatalf("%v: the encoder wrote %s where JSON.stringify threw %v", v, e.buf, err)
	}
	if skip {
		if !goja.IsUndefined(want) {
			t.Fatalf("%v: the encoder skipped what JSON.stringify writes as %v", v, want)
		}
		return false
	}
	if string(e.buf) != want.String() {
		t.Fatalf("encoder wrote\n  %s\nJSON.stringify\n  %s", e.buf, want)
	}
	return false
}

func TestEncoderMatchesStringify(t *testing.T) {
	vm := goja.New()
	for _, c := range []struct {
		src    string
		gaveUp bool
	}{
		{`({})`, false},
		{`({a: 1, b: "x", c: true, d: null, e: [1, "2", false, null]})`, false},
		{`({n: 1.5, big: 1e21, small: 1e-7, neg: -0, nan: NaN, inf: -Infinity, i: 9007199254740993})`, false},
		{`({s: "quote \" back \\ nl \n tab \t cr \r bs \b ff \f nul \u0000 us \u001f del \u007f"})`, false},
		{`({u: "é ü 日本 😀 \u2028 \u2029 <>&"})`, false},
		{`({f: function () {}, u: undefined, s: Symbol("x"), keep: 1})`, false},
		{`({a: [function () {}, undefined, Symbol("x")]})`, false},
		{`(function () { var a = [1, 2]; a[5] = 6; a.extra = 1; return {a: a} })()`, false},
		{`({2: "two", 1: "one", b: "b", a: "a"})`, false},
		{`(function () { var o = {x: 1}; Object.defineProperty(o, "hidden", {value: 2, enumerable: false}); return o })()`, false},
		{`({get g() { return 42 }})`, false},
		{`(function () { function P() { this.own = 1 } P.prototype.inherited = 2; return new P() })()`, false},
		{`Object.create(null)`, false},
		{`({nested: {deeper: {deepest: [{k: [1, [2, [3]]]}]}}})`, false},
		{`({d: new Date(0)})`, true},
		{`({t: {toJSON: function () { return "T" }}})`, true},
		{`({m: new Map([[1, 2]])})`, false}, // {} as JSON.stringify writes it: no own enumerable keys
		{`({b: new String("boxed")})`, true},
		{`({r: /x/})`, true},
		{`({lone: "\ud800"})`, true},
		{`({"\ud800": 1})`, true},
		{`({"\ufffd": "\ufffd"})`, true},
		{`({big: 10n})`, true},
		{`(function () { var o = {}; o.self = o; return o })()`, true},
	} {
		v, err := vm.RunString(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if got := encodeAgainstStringify(t, vm, v); got != c.gaveUp {
			t.Errorf("%s: gave up %v, want %v", c.src, got, c.gaveUp)
		}
	}
}

// FuzzEncoder: any JSON document, parsed into the runtime as a script
// gets its event, encodes as JSON.stringify writes it.
func FuzzEncoder(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2.5,"x",null,true,{"b":"\u00e9\n"}]}`, `{"n":1e300,"m":-0.0,"k":12345678901234567890}`, string(benchEvent)} {
		f.Add(s)
	}
	vm := goja.New()
	f.Fuzz(func(t *testing.T, doc string) {
		v, err := decode(vm, []byte(doc))
		if err != nil {
			return
		}
		encodeAgainstStringify(t, vm, v)
	})
}
