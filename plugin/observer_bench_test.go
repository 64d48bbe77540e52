package plugin_test

// This file uses only what the plugin package had before there were
// kinds, so that it can be copied into a checkout of that version and
// its benchmarks compared with these, in the same run (docs/plugins.md,
// Cost).

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/gwproc"
	"github.com/event-gateway/event-gateway/plugin"
)

// bins builds each test plugin once per test binary.
type bins struct {
	mu  sync.Mutex
	dir string
	m   map[string]string
}

var built = &bins{m: map[string]string{}}

// build compiles pkg under name and returns the binary's path.
func build(tb testing.TB, pkg, name string) string {
	tb.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	if p, ok := built.m[name]; ok {
		return p
	}
	if built.dir == "" {
		d, err := os.MkdirTemp("", "plugin-kinds-")
		if err != nil {
			tb.Fatal(err)
		}
		built.dir = d // shared by every test of the binary
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := gwproc.BuildPackage(ctx, pkg, filepath.Join(built.dir, name))
	if err != nil {
		tb.Fatal(err)
	}
	built.m[name] = p
	return p
}

// BenchmarkObserver is the cost of handing one system event to an
// observer plugin: sync, a round trip to the "guard" test plugin (from
// tests/testdata/plugin, built against the SDK as it was before kinds);
// async, a hand-off to plugin/example's buffer.
func BenchmarkObserver(b *testing.B) {
	ev := []byte(`{"event":"gateway.event.received","id":"1","receivedAt":1,"data":{"space":"default","path":"/","headers":{"Content-Type":"application/json"}},"dataType":"application/json"}`)
	b.Run("sync", func(b *testing.B) {
		b.Setenv("PLUGIN_DIR", b.TempDir())
		h, err := plugin.StartHost(context.Background(), plugin.HostOptions{Paths: []string{build(b, "./tests/testdata/plugin", "guard")}})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		b.ReportAllocs()
		for b.Loop() {
			if err := h.React(context.Background(), plugin.EventReceived, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("async", func(b *testing.B) {
		h, err := plugin.StartHost(context.Background(), plugin.HostOptions{Paths: []string{build(b, "./plugin/example", "example")}, Buffer: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Shutdown(context.Background())
		b.ReportAllocs()
		for b.Loop() {
			if err := h.React(context.Background(), plugin.EventReceived, ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
