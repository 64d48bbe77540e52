package router_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// payloadInvoker keeps the payloads it is called with.
type payloadInvoker struct {
	mu       sync.Mutex
	payloads []string
}

func (p *payloadInvoker) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.payloads = append(p.payloads, string(payload))
	return []byte(`{}`), nil
}

// TestPipelineCompiledOncePerVersion: a subscription's pipeline is
// compiled when the subscription changes, not when anything else of its
// space does (the space's table is rebuilt, the pipeline kept), nor per
// event.
func TestPipelineCompiledOncePerVersion(t *testing.T) {
	e := newEnv(t, nil)
	e.fn(t, "a", "http://127.0.0.1:1/a")
	e.sub(t, subscriptions.Subscription{Event: "http", Method: "GET", FunctionID: "a", Path: "/p",
		Filter: json.RawMessage(`{"method":["GET"]}`), Transform: `function transform(e) { return e }`})
	e.until(t, "route", hasRoute("GET", "/p"))
	before, _ := e.r.Snapshot().Space(functions.DefaultSpace).MatchHTTP("GET", "/p", nil)
	if !before.Pipeline.HasFilter() || !before.Pipeline.HasRequest() {
		t.Fatalf("route without its pipeline: %+v", before.Pipeline)
	}
	e.fn(t, "b", "http://127.0.0.1:1/b")
	e.until(t, "function b", func(s *router.Space) bool { return s.Function("b") != nil })
	after, _ := e.r.Snapshot().Space(functions.DefaultSpace).MatchHTTP("GET", "/p", nil)
	if after == before || after.Pipeline != before.Pipeline {
		t.Fatalf("the space was not rebuilt (%v) or the pipeline was recompiled (%v)", after == before, after.Pipeline != before.Pipeline)
	}
}

// TestEnqueueFiltersAndDeliverTransforms: a subscriber whose filter does
// not match gets nothing queued; the transform runs at delivery, with the
// attempt number, and a null result makes no call.
func TestEnqueueFiltersAndDeliverTransforms(t *testing.T) {
	inv := &payloadInvoker{}
	e := newEnv(t, nil, func(o *router.Options) {
		o.Invokers = func(functions.Function) (functions.Invoker, error) { return inv, nil }
	})
	e.fn(t, "a", "http://127.0.0.1:1/a")
	e.fn(t, "b", "http://127.0.0.1:1/b")
	subA := e.sub(t, subscriptions.Subscription{Event: "ev", FunctionID: "a", Path: "/",
		Filter:    json.RawMessage(`{"data":{"k":[{"numeric":[">",1]}]}}`),
		Transform: `function transform(e, c) { if (e.data.k > 5) return null; e.data.attempt = c.attempt; return e }`})
	e.sub(t, subscriptions.Subscription{Event: "ev", FunctionID: "b", Path: "/"})
	e.until(t, "subscribers", func(s *router.Space) bool { return len(s.Subscribers("ev", "/")) == 2 })

	for _, k := range []string{"1", "2", "9"} {
		ev, _ := event.New("ev", []byte(`{"k":`+k+`}`), "application/json", time.Now())
		n, err := e.r.Emit(e.ctx, functions.DefaultSpace, &ev, "/")
		want := 2
		if k == "1" {
			want = 1 // a's filter: k > 1
		}
		if err != nil || n != want {
			t.Fatalf("Emit k=%s = %d, %v; want %d", k, n, err, want)
		}
	}
	var toA []router.Delivery
	for _, d := range e.queue.ds {
		if d.SubscriptionID == subA {
			toA = append(toA, d)
		}
	}
	if len(toA) != 2 {
		t.Fatalf("%d deliveries queued for a, want 2", len(toA))
	}
	for _, d := range toA {
		d.Attempt = 3
		if err := e.r.Deliver(e.ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if len(inv.payloads) != 1 || !strings.Contains(inv.payloads[0], `"k":2,"attempt":3`) {
		t.Fatalf("calls %q, want one with k 2 at attempt 3 (k 9 dropped by the script)", inv.payloads)
	}
}
