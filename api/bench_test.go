package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/api"
	"github.com/event-gateway/event-gateway/api/metrics"
	"github.com/event-gateway/event-gateway/functions"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/internal/gwproc"
	"github.com/event-gateway/event-gateway/plugin"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/jetstream"
	"github.com/event-gateway/event-gateway/router/tail"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// BenchmarkHTTPEvent measures one http event through the Events API
// handler to a real HTTP function on loopback: with no plugin, and with
// one async reacter (plugin/example, built here) subscribed to every system
// event. Compare the two sub-benchmarks for the cost of a plugin.
func BenchmarkHTTPEvent(b *testing.B) {
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"statusCode":200,"body":"ok"}`)
	}))
	defer fn.Close()

	b.Run("no-plugin", func(b *testing.B) { benchHTTPEvent(b, fn.URL, nil, nil) })
	// The handler as cmd/event-gateway wires it: request id, in-flight
	// limit and metrics around the Events API, with and without the
	// access log.
	b.Run("middleware", func(b *testing.B) {
		benchHTTPEvent(b, fn.URL, nil, func(h http.Handler) http.Handler { return wrap(h, nil) })
	})
	b.Run("middleware-access-log", func(b *testing.B) {
		log := slog.New(api.RequestIDHandler{Handler: slog.NewJSONHandler(io.Discard, nil)})
		benchHTTPEvent(b, fn.URL, nil, func(h http.Handler) http.Handler { return wrap(h, log) })
	})
	// A route with a filter (three fields: an exact value, a prefix, an
	// anything-but) that matches, and with it a small transform of the
	// request and of the response: the cost of the pipeline beside
	// no-plugin.
	filter := func(s *subscriptions.Subscription) {
		s.Filter = []byte(`{"method":["GET"],"path":[{"prefix":"/users/"}],"params":{"id":[{"anything-but":"0"}]}}`)
	}
	b.Run("filter", func(b *testing.B) { benchHTTPEvent(b, fn.URL, nil, nil, filter) })
	b.Run("filter-transforms", func(b *testing.B) {
		benchHTTPEvent(b, fn.URL, nil, nil, filter, func(s *subscriptions.Subscription) {
			s.Transform = `function transform(e) { e.data.userId = e.data.params.id; delete e.data.headers; e.data.seen = true; return e }`
			s.TransformResponse = `function transformResponse(r) { r.headers["X-Transformed"] = "1"; return r }`
		})
	})
	// The dashboard's live tail: nobody watching (the router builds no
	// system event), and one client watching every event of the space.
	b.Run("tail-idle", func(b *testing.B) { benchHTTPEvent(b, fn.URL, tail.New(1), nil) })
	b.Run("tail-watching", func(b *testing.B) {
		tb := tail.New(1)
		w, _ := tb.Watch(functions.DefaultSpace, 1024)
		defer w.Close()
		go func() {
			for range w.C() {
			}
		}()
		benchHTTPEvent(b, fn.URL, tb, nil)
	})
	b.Run("async-plugin", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bin, err := gwproc.BuildPackage(ctx, "./plugin/example", filepath.Join(b.TempDir(), "example"))
		if err != nil {
			b.Fatal(err)
		}
		host, err := plugin.StartHost(ctx, plugin.HostOptions{Paths: []string{bin}, Buffer: 1 << 16})
		if err != nil {
			b.Fatal(err)
		}
		defer host.Close()
		benchHTTPEvent(b, fn.URL, host, nil)
		b.ReportMetric(float64(host.Dropped()), "dropped")
	})
}

// wrap wraps the Events API handler in the middleware of
// cmd/event-gateway, in the same order; log, when not nil, is the access
// log.
func wrap(h http.Handler, log *slog.Logger) http.Handler {
	h = metrics.New().Instrument("events", api.EventKind, h)
	if log != nil {
		h = api.AccessLog(log, h)
	}
	return api.WithRequestID(api.LimitInFlight(1024, h))
}

func benchHTTPEvent(b *testing.B, url string, reacters router.Reacters, wrapper func(http.Handler) http.Handler, pipeline ...func(*subscriptions.Subscription)) {
	st := etcd.Store(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fns := functions.NewService(st, functions.DefaultSpace, functions.NewRegistry(httpfn.New(httpfn.Options{})))
	subs := subscriptions.NewService(st).In(functions.DefaultSpace)
	if _, err := fns.Create(ctx, functions.Function{ID: "f", Provider: httpfn.Config{URL: url}.Provider()}); err != nil {
		b.Fatal(err)
	}
	sub := subscriptions.Subscription{Event: "http", FunctionID: "f", Method: "GET", Path: "/users/:id"}
	for _, f := range pipeline {
		f(&sub)
	}
	if _, err := subs.Create(ctx, sub); err != nil {
		b.Fatal(err)
	}
	provider := httpfn.New(httpfn.Options{})
	defer provider.Close()
	nats, err := jetstream.StartEmbedded(jetstream.EmbedOptions{DataDir: b.TempDir(), Port: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer nats.Close()
	nc, err := nats.Connect()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	q, err := jetstream.New(ctx, jetstream.Options{Conn: nc})
	if err != nil {
		b.Fatal(err)
	}
	r := router.New(router.Options{
		Store: st, Queue: q, Plugins: reacters,
		Invokers: functions.NewRegistry(provider).Invoker,
	})
	go r.Run(ctx)
	if err := q.Start(ctx, r.Deliver, func(string, string) jetstream.RetryPolicy { return jetstream.DefaultRetryPolicy() }); err != nil {
		b.Fatal(err)
	}
	defer q.Stop(context.Background())
	for {
		if _, ok := r.Snapshot().Space(functions.DefaultSpace).MatchHTTP("GET", "/users/1", nil); ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var h http.Handler = api.NewEvents(api.EventsOptions{Router: r})
	if wrapper != nil {
		h = wrapper(h)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/users/42", nil))
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
