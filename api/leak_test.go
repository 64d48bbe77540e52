package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/api"
	"github.com/event-gateway/event-gateway/functions"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/internal/openapitest"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/subscriptions"
)

type nopQueue struct{}

func (nopQueue) Enqueue(context.Context, []router.Delivery) error { return nil }

// TestHostileInputLeaksNoGoroutine sends malformed requests to both APIs,
// in process, and checks that every goroutine they started has ended.
func TestHostileInputLeaksNoGoroutine(t *testing.T) {
	st := etcd.Store(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt := router.New(router.Options{Store: st, Queue: nopQueue{},
		Invokers: func(functions.Function) (functions.Invoker, error) { return nil, nil }})
	go rt.Run(ctx)
	<-rt.Ready()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := api.AccessLog(log, api.NewConfig(api.ConfigOptions{
		Functions:     functions.NewService(st, functions.DefaultSpace, functions.NewRegistry(httpfn.New(httpfn.Options{}))),
		Subscriptions: subscriptions.NewService(st).In(functions.DefaultSpace),
	}))
	ev := api.NewEvents(api.EventsOptions{Router: rt, MaxBody: 1024})
	cfgSrv, evSrv := httptest.NewServer(cfg), httptest.NewServer(ev)
	validator.Register(t, cfgSrv.URL, openapitest.ConfigAPI)
	validator.Register(t, evSrv.URL, openapitest.EventsAPI)
	client := validator.Client(&http.Client{Timeout: 10 * time.Second})

	hostile := []struct{ method, path, body, event string }{
		{"POST", "/v1/functions", `{"functionId":`, ""},
		{"POST", "/v1/functions", strings.Repeat("[", 20000), ""},
		{"POST", "/v1/subscriptions", "{\"event\":\"\xff\"}", ""},
		{"GET", "/v1/functions/..%2f..", "", ""},
		{"POST", "/v1/functions", `{"functionId":"f","x":1}`, ""},
		{"POST", "/", strings.Repeat("x", 4096), "big"},
		{"POST", "/", `{oops`, "e"},
		{"GET", "/nowhere", "", ""},
	}
	send := func() {
		for _, h := range hostile {
			base := cfgSrv.URL
			if !strings.HasPrefix(h.path, "/v1") {
				base = evSrv.URL
			}
			req, _ := http.NewRequest(h.method, base+h.path, strings.NewReader(h.body))
			if h.event != "" {
				req.Header.Set("Event", h.event)
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("%s %s: %d, want a 4xx", h.method, h.path, resp.StatusCode)
			}
		}
	}
	send() // warm up: connection pools, etcd client streams
	client.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	for range 20 {
		send()
	}
	client.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	cfgSrv.Close()
	evSrv.Close()
	if !strings.Contains(logs.String(), "msg=request") || !strings.Contains(logs.String(), "status=400") {
		t.Fatalf("access log: %s", logs.String())
	}
}
