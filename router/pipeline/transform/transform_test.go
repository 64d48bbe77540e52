package transform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/router/event"
)

var testCtx = Context{Space: "acme", SubscriptionID: "sub-1", FunctionID: "fn-1", Attempt: 2}

const sampleEvent = `{"event":"user.created","id":"6c5a4c2e","receivedAt":1700000000,"dataType":"application/json","data":{"name":"Max","email":"max@example.com","password":"x"}}`

func mustCompile(t testing.TB, src string, opts Options) *Program {
	t.Helper()
	p, err := Compile(src, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func run(t *testing.T, p *Program, ev string) (map[string]any, bool, error) {
	t.Helper()
	out, drop, err := p.Transform(context.Background(), []byte(ev), testCtx)
	if err != nil || drop {
		return nil, drop, err
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("output %q is not JSON: %v", out, err)
	}
	return m, false, nil
}

func TestTransformChanges(t *testing.T) {
	p := mustCompile(t, `
function transform(event, context) {
	event.data.fullName = event.data.name;   // rename
	delete event.data.name;
	delete event.data.password;              // drop
	event.data.source = "gateway";           // add
	return event;
}`, Options{})
	if !p.HasTransform() || p.HasTransformResponse() {
		t.Fatal("Has*")
	}
	m, drop, err := run(t, p, sampleEvent)
	if err != nil || drop {
		t.Fatal(err, drop)
	}
	data := m["data"].(map[string]any)
	if data["fullName"] != "Max" || data["source"] != "gateway" || data["name"] != nil || data["password"] != nil {
		t.Fatalf("data = %v", data)
	}
	if m["event"] != "user.created" {
		t.Fatalf("event = %v", m["event"])
	}
}

func TestTransformKeepsKeyOrder(t *testing.T) {
	p := mustCompile(t, `function transform(e) { return e }`, Options{})
	out, _, err := p.Transform(context.Background(), []byte(sampleEvent), testCtx)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != sampleEvent {
		t.Fatalf("identity changed the event:\n%s\n%s", out, sampleEvent)
	}
}

func TestTransformUnicode(t *testing.T) {
	p := mustCompile(t, `function transform(e) { e.data.greeting = "héllo " + e.data.name + " 👋"; return e }`, Options{})
	m, _, err := run(t, p, `{"data":{"name":"Zoë"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if g := m["data"].(map[string]any)["greeting"]; g != "héllo Zoë 👋" {
		t.Fatalf("greeting = %q", g)
	}
}

func TestDrop(t *testing.T) {
	for _, body := range []string{`return null`, `return undefined`, `return`, ``, `if (e.data.name === "Max") return null; return e`} {
		p := mustCompile(t, `function transform(e) { `+body+` }`, Options{})
		_, drop, err := run(t, p, sampleEvent)
		if err != nil || !drop {
			t.Errorf("%q: drop %v err %v", body, drop, err)
		}
	}
}

func TestNonObjectResultsRefused(t *testing.T) {
	for _, ret := range []string{`42`, `"a string"`, `true`, `[1,2]`, `function(){}`, `1n`, `Symbol("s")`, `({toJSON(){return 5}})`, `({toJSON(){return undefined}})`} {
		p := mustCompile(t, `function transform(e) { return `+ret+` }`, Options{})
		_, _, err := run(t, p, sampleEvent)
		if !errors.Is(err, ErrResult) {
			t.Errorf("%s: err = %v, want ErrResult", ret, err)
		}
	}
}

func TestResultNotSerializable(t *testing.T) {
	p := mustCompile(t, `function transform(e) { e.self = e; return e }`, Options{})
	_, _, err := run(t, p, sampleEvent)
	if !errors.Is(err, ErrThrown) || !strings.Contains(err.Error(), "TypeError") {
		t.Fatalf("cyclic: %v", err)
	}
}

func TestThrow(t *testing.T) {
	p := mustCompile(t, "function transform(e) {\n  var x = 1;\n    throw new Error(\"boom\");\n}", Options{})
	_, _, err := run(t, p, sampleEvent)
	var se *ScriptError
	if !errors.As(err, &se) || !errors.Is(err, ErrThrown) {
		t.Fatalf("err = %#v", err)
	}
	if se.Message != "Error: boom" || se.Line != 3 || se.Column != 11 {
		t.Fatalf("got %q at %d:%d; %v", se.Message, se.Line, se.Column, err)
	}
	// A runtime error of the engine, and thrown primitives.
	p = mustCompile(t, "function transform(e) {\n  return e.nope.deeper;\n}", Options{})
	_, _, err = run(t, p, sampleEvent)
	if !errors.As(err, &se) || !strings.HasPrefix(se.Message, "TypeError") || se.Line != 2 {
		t.Fatalf("TypeError: %v", err)
	}
	p = mustCompile(t, "function transform(e) { throw 'plain' }", Options{})
	_, _, err = run(t, p, sampleEvent)
	if !errors.As(err, &se) || se.Message != "plain" || se.Line != 1 {
		t.Fatalf("string: %v", err)
	}
	// An error whose toString throws, or loops.
	p = mustCompile(t, "function transform(e) { throw {toString(){ throw 1 }} }", Options{})
	if _, _, err = run(t, p, sampleEvent); !errors.Is(err, ErrThrown) {
		t.Fatalf("toString throws: %v", err)
	}
	p = mustCompile(t, "function transform(e) { throw {toString(){ for(;;){} }} }", Options{Timeout: 20 * time.Millisecond})
	if _, _, err = run(t, p, sampleEvent); !errors.Is(err, ErrTimeout) {
		t.Fatalf("toString loops: %v", err)
	}
}

func TestInfiniteLoop(t *testing.T) {
	p := mustCompile(t, `
var calls = 0;
function transform(e) {
	calls++;
	if (e.data.loop) { for (;;) {} }
	e.calls = calls;
	return e;
}`, Options{Timeout: 50 * time.Millisecond})
	start := time.Now()
	_, _, err := run(t, p, `{"data":{"loop":true}}`)
	took := time.Since(start)
	var se *ScriptError
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &se) || se.Line != 5 {
		t.Fatalf("err = %v", err)
	}
	if took < 50*time.Millisecond || took > 500*time.Millisecond {
		t.Fatalf("interrupted after %v", took)
	}
	// The interrupted runtime is gone: the next call works, in a runtime
	// that is not the interrupted one (whose calls counter was 1 or 2).
	for i := 0; i < 3; i++ {
		m, _, err := run(t, p, `{"data":{}}`)
		if err != nil {
			t.Fatalf("after the timeout: %v", err)
		}
		_ = m
	}
	// Recursion without end is an error, not a crash.
	p = mustCompile(t, `function f(n) { return f(n+1) + 1 } function transform(e) { return f(0) }`, Options{})
	if _, _, err := run(t, p, sampleEvent); !errors.Is(err, ErrThrown) {
		t.Fatalf("recursion: %v", err)
	}
	if _, _, err := run(t, p, sampleEvent); !errors.Is(err, ErrThrown) {
		t.Fatalf("recursion again: %v", err)
	}
}

func TestInterruptedRuntimeDiscarded(t *testing.T) {
	p := mustCompile(t, `
var poisoned = false;
function transform(e) {
	if (e.loop) { poisoned = true; for (;;) {} }
	e.poisoned = poisoned;
	return e;
}`, Options{Timeout: 20 * time.Millisecond})
	for i := 0; i < 5; i++ {
		if _, _, err := run(t, p, `{"loop":true}`); !errors.Is(err, ErrTimeout) {
			t.Fatal(err)
		}
		m, _, err := run(t, p, `{}`)
		if err != nil {
			t.Fatal(err)
		}
		if m["poisoned"] != false {
			t.Fatal("a runtime that was interrupted served another call")
		}
	}
}

func TestContextCancel(t *testing.T) {
	p := mustCompile(t, `function transform(e) { for (;;) {} }`, Options{Timeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := p.Transform(ctx, []byte(`{}`), testCtx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, _, err := p.Transform(ctx, []byte(`{}`), testCtx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

func TestSandbox(t *testing.T) {
	for _, name := range []string{"require", "fetch", "XMLHttpRequest", "process", "setTimeout", "setInterval", "module", "exports", "Deno", "Bun", "__dirname", "WebSocket", "importScripts"} {
		p := mustCompile(t, `function transform(e) { return {v: `+name+`} }`, Options{})
		_, _, err := run(t, p, sampleEvent)
		var se *ScriptError
		if !errors.As(err, &se) || !strings.HasPrefix(se.Message, "ReferenceError: "+name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// typeof of each is "undefined"; import is a syntax error.
	p := mustCompile(t, `function transform(e) { return {t: [typeof require, typeof fetch, typeof setTimeout, typeof process].join()} }`, Options{})
	m, _, err := run(t, p, sampleEvent)
	if err != nil || m["t"] != "undefined,undefined,undefined,undefined" {
		t.Fatal(m, err)
	}
	if _, err := Compile(`import fs from "fs"; function transform(e) { return e }`, Options{}); !errors.Is(err, ErrSyntax) {
		t.Fatalf("import: %v", err)
	}
	// So is dynamic import (goja has no module loader here).
	if _, err := Compile(`function transform(e) { import("fs"); return e }`, Options{}); !errors.Is(err, ErrSyntax) {
		t.Fatalf("import(): %v", err)
	}
	// Nothing handed in is a Go object: the console's functions and the
	// values are plain JavaScript.
	p = mustCompile(t, `function transform(e, c) {
		return {k: Object.keys(globalThis).sort().join(), ctor: e.constructor === Object && c.constructor === Object}
	}`, Options{})
	m, _, err = run(t, p, sampleEvent)
	if err != nil || m["ctor"] != true {
		t.Fatal(m, err)
	}
	if k := m["k"].(string); k != "console" && k != "console,transform" {
		t.Fatalf("enumerable globals: %q", k)
	}
}

func TestContextFrozen(t *testing.T) {
	p := mustCompile(t, `function transform(e, c) {
		c.space = "evil"; c.extra = 1; delete c.functionId;
		return {space: c.space, sub: c.subscriptionId, fn: c.functionId, attempt: c.attempt, frozen: Object.isFrozen(c), extra: c.extra === undefined}
	}`, Options{})
	m, _, err := run(t, p, sampleEvent)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"space": "acme", "sub": "sub-1", "fn": "fn-1", "attempt": 2.0, "frozen": true, "extra": true}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", m, want)
	}
	p = mustCompile(t, `"use strict"; function transform(e, c) { c.space = "evil"; return e }`, Options{})
	if _, _, err := run(t, p, sampleEvent); !errors.Is(err, ErrThrown) || !strings.Contains(err.Error(), "TypeError") {
		t.Fatalf("strict write: %v", err)
	}
	// Another context in the same runtime is not the cached one.
	p = mustCompile(t, `function transform(e, c) { return {a: c.attempt, s: c.space} }`, Options{})
	for i := 1; i <= 3; i++ {
		out, _, err := p.Transform(context.Background(), []byte(`{}`), Context{Space: fmt.Sprint("s", i), Attempt: i})
		if err != nil || string(out) != fmt.Sprintf(`{"a":%d,"s":"s%d"}`, i, i) {
			t.Fatalf("%s %v", out, err)
		}
	}
}

func TestOutputTooLarge(t *testing.T) {
	p := mustCompile(t, `function transform(e) { e.big = "x".repeat(2000); return e }`, Options{MaxOutput: 1000})
	if _, _, err := run(t, p, sampleEvent); !errors.Is(err, ErrOutputTooLarge) {
		t.Fatalf("err = %v", err)
	}
	p = mustCompile(t, `function transform(e) { e.big = "é".repeat(600); return e }`, Options{MaxOutput: 1000})
	if _, _, err := run(t, p, `{}`); !errors.Is(err, ErrOutputTooLarge) {
		t.Fatalf("utf-8 err = %v", err)
	}
	// The default: 6 MiB (with time to make 7 MiB under -race).
	p = mustCompile(t, `function transform(e) { e.big = "x".repeat(7 << 20); return e }`, Options{Timeout: 10 * time.Second})
	if _, _, err := run(t, p, `{}`); !errors.Is(err, ErrOutputTooLarge) {
		t.Fatalf("default err = %v", err)
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		src       string
		kind      error
		line, col int
	}{
		{"function transform(e) {\n  return e +;\n}", ErrSyntax, 2, 13},
		{"function transform(e) {\n  let a = 1;\n  let a = 2;\n}", ErrSyntax, 3, 7},
		{"function transformX(e) { return e }", ErrNoFunction, 0, 0},
		{"var transform = 5", ErrNoFunction, 0, 0},
		{"", ErrNoFunction, 0, 0},
		{"\nthrow new Error('top')", ErrThrown, 2, 7},
		{"for(;;){}", ErrTimeout, 1, 0},
	}
	for _, c := range cases {
		_, err := Compile(c.src, Options{Timeout: 20 * time.Millisecond})
		var se *ScriptError
		if !errors.Is(err, c.kind) || !errors.As(err, &se) {
			t.Errorf("%q: err = %v, want %v", c.src, err, c.kind)
			continue
		}
		if se.Line != c.line || (c.col != 0 && se.Column != c.col) {
			t.Errorf("%q: at %d:%d, want %d:%d (%v)", c.src, se.Line, se.Column, c.line, c.col, err)
		}
	}
	big := "function transform(e) { return e }\n//" + strings.Repeat("x", MaxSourceSize)
	if _, err := Compile(big, Options{}); !errors.Is(err, ErrSourceTooLarge) {
		t.Fatalf("big: %v", err)
	}
	// let, const and arrow functions count.
	for _, src := range []string{`const transform = (e) => e`, `let transformResponse = function(r) { return r }`} {
		if _, err := Compile(src, Options{}); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

func TestBadInput(t *testing.T) {
	p := mustCompile(t, `function transform(e) { return e }`, Options{})
	if _, _, err := p.Transform(context.Background(), []byte(`{nope`), testCtx); !errors.Is(err, ErrInput) {
		t.Fatalf("err = %v", err)
	}
	// The runtime was not harmed.
	if _, _, err := run(t, p, sampleEvent); err != nil {
		t.Fatal(err)
	}
}

func TestNoTransformPassesThrough(t *testing.T) {
	p := mustCompile(t, `function transformResponse(r) { return r }`, Options{})
	out, drop, err := p.Transform(context.Background(), []byte(sampleEvent), testCtx)
	if err != nil || drop || string(out) != sampleEvent {
		t.Fatal(string(out), drop, err)
	}
	p = mustCompile(t, `function transform(e) { return e }`, Options{})
	r := event.HTTPResponse{StatusCode: 201, Body: []byte("x")}
	got, err := p.TransformResponse(context.Background(), r, testCtx)
	if err != nil || got.StatusCode != 201 || string(got.Body) != "x" {
		t.Fatal(got, err)
	}
}

func TestTransformResponse(t *testing.T) {
	p := mustCompile(t, `
function transformResponse(r, c) {
	var body = JSON.parse(r.body);
	body.space = c.space;
	return {
		statusCode: r.statusCode === 200 ? 201 : r.statusCode,
		headers: {"Content-Type": "application/json", "X-Was": r.headers["X-Orig"] || "none"},
		body: JSON.stringify(body),
	};
}`, Options{})
	if p.HasTransform() || !p.HasTransformResponse() {
		t.Fatal("Has*")
	}
	got, err := p.TransformResponse(context.Background(), event.HTTPResponse{
		StatusCode: 200, Headers: map[string]string{"X-Orig": "yes"}, Body: []byte(`{"ok":true}`),
	}, testCtx)
	if err != nil {
		t.Fatal(err)
	}
	if got.StatusCode != 201 || got.Headers["X-Was"] != "yes" || got.Headers["Content-Type"] != "application/json" || string(got.Body) != `{"ok":true,"space":"acme"}` {
		t.Fatalf("%+v %s", got, got.Body)
	}
	// An empty response: 200, no headers, "" body.
	p = mustCompile(t, `function transformResponse(r) { return {statusCode: r.statusCode, body: typeof r.body + ":" + Object.keys(r.headers).length} }`, Options{})
	got, err = p.TransformResponse(context.Background(), event.HTTPResponse{}, testCtx)
	if err != nil || got.StatusCode != 200 || string(got.Body) != "string:0" {
		t.Fatal(got, err)
	}
	// A body of another JSON type is sent as JSON.
	p = mustCompile(t, `function transformResponse(r) { return {body: {a: 1}} }`, Options{})
	got, err = p.TransformResponse(context.Background(), event.HTTPResponse{StatusCode: 200}, testCtx)
	if err != nil || got.StatusCode != 200 || string(got.Body) != `{"a":1}` || got.Headers["Content-Type"] != "application/json" {
		t.Fatal(got, err)
	}
	// Refused: an out-of-range status, null, a non-object, a binary body.
	for _, ret := range []string{`{statusCode: 99}`, `{statusCode: "x"}`, `null`, `7`, `{headers: {a: 1}}`} {
		p = mustCompile(t, `function transformResponse(r) { return `+ret+` }`, Options{})
		if _, err := p.TransformResponse(context.Background(), event.HTTPResponse{StatusCode: 200}, testCtx); !errors.Is(err, ErrResult) {
			t.Errorf("%s: %v", ret, err)
		}
	}
	if _, err := p.TransformResponse(context.Background(), event.HTTPResponse{Body: []byte{0xff, 0xfe}}, testCtx); !errors.Is(err, ErrInput) {
		t.Errorf("binary: %v", err)
	}
}

func TestConsole(t *testing.T) {
	var mu sync.Mutex
	var got []string
	p := mustCompile(t, `function transform(e, c) {
		console.log("hello", 1, {a: [1]}, null, undefined);
		console.error("é".repeat(2000));
		for (var i = 0; i < 100; i++) console.info(i);
		return e;
	}`, Options{Log: func(c Context, level, msg string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, c.Space+" "+level+" "+msg)
	}})
	if _, _, err := run(t, p, sampleEvent); err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxLogMessages {
		t.Fatalf("%d messages", len(got))
	}
	if got[0] != `acme log hello 1 {"a":[1]} null undefined` {
		t.Fatalf("first: %q", got[0])
	}
	if !strings.HasPrefix(got[1], "acme error é") || len(got[1]) > MaxLogMessage+40 {
		t.Fatalf("second: %d bytes", len(got[1]))
	}
	// Without Log, console is a quiet no-op.
	p = mustCompile(t, `function transform(e) { console.log(e); console.warn("x"); return e }`, Options{})
	if _, _, err := run(t, p, sampleEvent); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrent(t *testing.T) {
	p := mustCompile(t, `
var seen = 0;
function transform(e, c) {
	seen++;
	if (e.n % 7 === 0) return null;
	if (e.n % 11 === 0) throw new Error("eleven");
	if (e.n % 13 === 0) { for (;;) {} }
	return {n: e.n * 2, space: c.space, attempt: c.attempt};
}`, Options{Timeout: 10 * time.Second})
	// The timeout is wall-clock time: on 2 cores, under -race, a call
	// can wait long for the spinning ones. So the loops here are cut by
	// their callers' contexts (20 ms), and the Program's timeout only
	// guards the test.
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				n := g*1000 + i
				c := Context{Space: fmt.Sprint("s", g), Attempt: i}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				if n%13 != 0 {
					ctx, cancel = context.WithCancel(context.Background())
				}
				out, drop, err := p.Transform(ctx, []byte(fmt.Sprintf(`{"n":%d}`, n)), c)
				cancel()
				switch {
				case n%7 == 0:
					if !drop || err != nil {
						t.Errorf("%d: drop %v %v", n, drop, err)
					}
				case n%11 == 0:
					if !errors.Is(err, ErrThrown) {
						t.Errorf("%d: %v", n, err)
					}
				case n%13 == 0:
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("%d: %v", n, err)
					}
				default:
					want := fmt.Sprintf(`{"n":%d,"space":"s%d","attempt":%d}`, 2*n, g, i)
					if err != nil || string(out) != want {
						t.Errorf("%d: %s %v, want %s", n, out, err, want)
					}
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestGoPanicRecovered(t *testing.T) {
	p := mustCompile(t, `function transform(e) { return e }`, Options{})
	rt, err := p.get()
	if err != nil {
		t.Fatal(err)
	}
	// Make the runtime's transform a Go function that panics, as a bug
	// in goja would.
	rt.transform = func(_ goja_Value, _ ...goja_Value) (goja_Value, error) { panic("goja bug") }
	p.pool.Put(rt)
	var internal int
	for i := 0; i < 10; i++ {
		_, _, err := run(t, p, `{}`)
		if errors.Is(err, ErrInternal) {
			internal++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if internal > 1 {
		t.Fatalf("a panicked runtime was reused (%d)", internal)
	}
}
