package transform

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dop251/goja"
)

// benchEvent is a seed envelope of about 1 KB.
var benchEvent = []byte(`{"event":"user.created","id":"6c5a4c2e-3d5e-4d8b-9a39-0f1e2d3c4b5a","receivedAt":1714564800000,` +
	`"dataType":"application/json","data":{"userId":"u-12345","name":"Max Mustermann","email":"max@example.com",` +
	`"password":"hunter2","plan":"pro","seats":12,"active":true,"tags":["beta","eu","annual"],` +
	`"address":{"street":"Hauptstrasse 1","city":"Berlin","zip":"10115","country":"DE"},` +
	`"preferences":{"newsletter":false,"language":"de","timezone":"Europe/Berlin","theme":"dark"},` +
	`"devices":[{"id":"d-1","kind":"phone","os":"ios","lastSeen":"2024-05-01T11:59:00Z"},` +
	`{"id":"d-2","kind":"laptop","os":"linux","lastSeen":"2024-04-30T08:12:00Z"}],` +
	`"metadata":{"source":"signup-form","campaign":"spring-2024","referrer":"https://example.com/pricing",` +
	`"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",` +
	`"ip":"203.0.113.7","experiment":"checkout-v2","variant":"B"}}}`)

const benchScript = `
function transform(event, context) {
	event.data.fullName = event.data.name;  // rename
	delete event.data.name;
	delete event.data.password;             // drop
	event.data.space = context.space;       // add
	return event;
}`

func BenchmarkTransform(b *testing.B) {
	p := mustCompile(b, benchScript, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		out, drop, err := p.Transform(ctx, benchEvent, testCtx)
		if err != nil || drop || len(out) == 0 {
			b.Fatal(err)
		}
	}
}

func BenchmarkTransformParallel(b *testing.B) {
	p := mustCompile(b, benchScript, Options{})
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := p.Transform(context.Background(), benchEvent, testCtx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// With a context that can be canceled: the cost of watching it.
func BenchmarkTransformCancelable(b *testing.B) {
	p := mustCompile(b, benchScript, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := p.Transform(ctx, benchEvent, testCtx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDrop(b *testing.B) {
	p := mustCompile(b, `function transform(e) { return e.data.plan === "free" ? e : null }`, Options{})
	b.ReportAllocs()
	for b.Loop() {
		if _, drop, err := p.Transform(context.Background(), benchEvent, testCtx); err != nil || !drop {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		mustCompile(b, benchScript, Options{})
	}
}

func TestBenchEventSize(t *testing.T) {
	if n := len(benchEvent); n < 900 || n > 1200 || !strings.HasPrefix(string(benchEvent), "{") {
		t.Fatalf("bench event is %d bytes", n)
	}
}

// BenchmarkInput compares ways of handing the 1 KB event to a script.
//   - JSONParse: goja's JSON.parse in the VM (encoding/json's tokens);
//   - Decoder: this package's decoder, native objects built from Go;
//   - GoMap: encoding/json into map[string]any, then goja's ToValue,
//     which wraps the Go map instead of copying it (not used: the script
//     would see Go maps, whose key order is random, so the event's
//     members would come out shuffled).
func BenchmarkInput(b *testing.B) {
	vm := goja.New()
	parse, _ := jsonFuncs(vm)
	b.Run("JSONParse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parse(goja.Undefined(), vm.ToValue(string(benchEvent))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decode(vm, benchEvent); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GoMap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]any
			if err := json.Unmarshal(benchEvent, &m); err != nil {
				b.Fatal(err)
			}
			_ = vm.ToValue(m)
		}
	})
}

// BenchmarkOutput is JSON.stringify of the parsed 1 KB event.
func BenchmarkOutput(b *testing.B) {
	vm := goja.New()
	_, stringify := jsonFuncs(vm)
	v, _ := decode(vm, benchEvent)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := stringify(goja.Undefined(), v); err != nil {
			b.Fatal(err)
		}
	}
}
