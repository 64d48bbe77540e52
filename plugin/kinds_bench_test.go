package plugin_test

import (
	"context"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions/upstream"
	"github.com/event-gateway/event-gateway/plugin"
	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/router/pipeline"
)

func benchHost(b *testing.B, name string, o plugin.HostOptions) *plugin.Host {
	b.Helper()
	b.Setenv("PLUGIN_DIR", b.TempDir())
	o.Paths = []string{kindsPlugin(b, name)}
	h, err := plugin.StartHost(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	return h
}

// BenchmarkModifier is the cost of a modifier plugin at each of its
// stages: one round trip each. "none" is the cost of the stages when no
// modifier is loaded: what every call pays.
func BenchmarkModifier(b *testing.B) {
	ev := []byte(`{"event":"job","id":"1","receivedAt":1,"data":{"n":1},"dataType":"application/json"}`)
	c := pipeline.Context{Space: "default", SubscriptionID: "s", FunctionID: "fn", Attempt: 1, Sync: true}
	b.Run("none", func(b *testing.B) {
		var none *pipeline.Stages
		b.ReportAllocs()
		for b.Loop() {
			if ch := none.Wrap(nil); ch.HasRequest() || ch.HasResponse() || ch.HasError() {
				b.Fatal("stages")
			}
		}
	})
	h := benchHost(b, "modifier", plugin.HostOptions{})
	ch := h.Stages().Wrap(nil)
	b.Run("request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := ch.Request(context.Background(), ev, c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("response", func(b *testing.B) {
		resp := event.HTTPResponse{StatusCode: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{"ok":true}`)}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ch.Response(context.Background(), resp, c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSelector is the cost of asking a selector plugin to choose
// among three backends: one round trip.
func BenchmarkSelector(b *testing.B) {
	h := benchHost(b, "selector", plugin.HostOptions{})
	bs := stats(2, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		if i, err := h.Selector().Select(context.Background(), "k", bs); i != 1 || err != nil {
			b.Fatal(i, err)
		}
	}
}

// BenchmarkBackendSource: a pull (a round trip, made when an invoker is
// built) and a read of pushed backends (a map lookup).
func BenchmarkBackendSource(b *testing.B) {
	h := benchHost(b, "backends", plugin.HostOptions{})
	src := h.BackendSource()
	b.Run("pull", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, found, err := src.Backends(context.Background(), "acme", "known"); !found || err != nil {
				b.Fatal(found, err)
			}
		}
	})
	b.Run("pushed", func(b *testing.B) {
		var o upstream.Overrides
		o.Apply("p", []upstream.Update{{Space: "acme", FunctionID: "fn", Backends: []upstream.Backend{{URL: "http://a"}}, Found: true}}, true)
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := o.Get("acme", "fn"); !ok {
				b.Fatal("not found")
			}
		}
	})
}

// BenchmarkMetricSink is what a function call pays for a metric sink:
// a measurement put in its buffer. The sink's batches go in the
// background; the buffer is large enough for none to be dropped here.
func BenchmarkMetricSink(b *testing.B) {
	h := benchHost(b, "metrics", plugin.HostOptions{Buffer: 1 << 22, MetricBatch: 1024, MetricFlush: 10 * time.Millisecond})
	b.ReportAllocs()
	for b.Loop() {
		h.Invoked("acme", "fn", "http", time.Millisecond, "ok")
	}
	b.StopTimer()
	b.ReportMetric(float64(h.MeasurementsDropped()), "dropped")
}
