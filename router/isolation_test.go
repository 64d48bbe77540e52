package router_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/plugin"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// scripted is an invoker whose calls do what its test says.
type scripted struct {
	calls atomic.Int64
	do    func(ctx context.Context) error
}

func (s *scripted) Invoke(ctx context.Context, _ []byte) ([]byte, error) {
	s.calls.Add(1)
	if err := s.do(ctx); err != nil {
		return nil, err
	}
	return []byte(`{}`), nil
}

// isolationEnv is a router whose functions are scripted invokers, by id.
func isolationEnv(t *testing.T, iso router.IsolationOptions, plugins router.Reacters, invs map[string]*scripted) *env {
	t.Helper()
	return newEnv(t, nil, func(o *router.Options) {
		o.Isolation = iso
		o.Plugins = plugins
		o.Invokers = func(f functions.Function) (functions.Invoker, error) {
			if inv, ok := invs[f.ID]; ok {
				return inv, nil
			}
			return nil, fmt.Errorf("no invoker for %s", f.ID)
		}
	})
}

func (e *env) fnWith(t *testing.T, f functions.Function) {
	t.Helper()
	f.Provider = httpfn.Config{URL: "http://127.0.0.1:1/" + f.ID}.Provider()
	if _, err := e.fns.Create(e.ctx, f); err != nil {
		t.Fatal(err)
	}
}

func (e *env) subscribed(t *testing.T, fn string) router.Delivery {
	t.Helper()
	id := e.sub(t, subscriptions.Subscription{Event: "ev." + fn, FunctionID: fn, Path: "/"})
	e.until(t, "subscriber of "+fn, func(s *router.Space) bool { return s.HasSubscription(id) && s.Function(fn) != nil })
	return router.Delivery{SubscriptionID: id, FunctionID: fn, Payload: []byte(`{}`)}
}

func deferred(err error) bool {
	var de *router.DeferredError
	return errors.As(err, &de) && de.After > 0
}

// TestBulkhead: a function that hangs holds at most its maxInFlight
// deliveries; one more is deferred after a short wait (it would otherwise
// hold a worker), and other functions are called as usual.
func TestBulkhead(t *testing.T) {
	release := make(chan struct{})
	hung := &scripted{do: func(ctx context.Context) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	ok := &scripted{do: func(context.Context) error { return nil }}
	e := isolationEnv(t, router.IsolationOptions{MaxInFlight: 100}, nil, map[string]*scripted{"hung": hung, "ok": ok})
	e.fnWith(t, functions.Function{ID: "hung", MaxInFlight: 3, Timeout: "1m"})
	e.fnWith(t, functions.Function{ID: "ok"})
	dh, dok := e.subscribed(t, "hung"), e.subscribed(t, "ok")

	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- e.r.Deliver(e.ctx, dh) }()
	}
	waitUntil(t, "3 calls in flight", func() bool { return hung.calls.Load() == 3 })
	began := time.Now()
	err := e.r.Deliver(e.ctx, dh)
	if !deferred(err) || time.Since(began) > 2*time.Second {
		t.Fatalf("a 4th delivery to a full bulkhead: %v after %v, want a DeferredError after a short wait", err, time.Since(began))
	}
	if hung.calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", hung.calls.Load())
	}
	for range 10 {
		if err := e.r.Deliver(e.ctx, dok); err != nil {
			t.Fatalf("another function: %v", err)
		}
	}
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := e.r.Deliver(e.ctx, dh); err != nil {
		t.Fatalf("once calls ended: %v", err)
	}
}

// TestBulkheadWaitsForASlot: a delivery that finds the bulkhead full of
// calls about to end waits for a slot and is made, instead of going back
// to the store: a busy, healthy function is not throttled.
func TestBulkheadWaitsForASlot(t *testing.T) {
	fast := &scripted{do: func(context.Context) error {
		time.Sleep(2 * time.Millisecond)
		return nil
	}}
	e := isolationEnv(t, router.IsolationOptions{MaxInFlight: 100}, nil, map[string]*scripted{"fast": fast})
	e.fnWith(t, functions.Function{ID: "fast", MaxInFlight: 1})
	d := e.subscribed(t, "fast")
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- e.r.Deliver(e.ctx, d) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("a delivery behind a bulkhead of 1, each call 2ms: %v, want it made", err)
		}
	}
	if n := fast.calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

// TestCircuitBreaker: consecutive timeouts open a function's breaker, and
// deliveries wait (deferred) without a call until it lets a probe through;
// failed answers never open it.
func TestCircuitBreaker(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	slow := &scripted{do: func(context.Context) error {
		if broken.Load() {
			return fmt.Errorf("%w: no answer", functions.ErrTimeout)
		}
		return nil
	}}
	failing := &scripted{do: func(context.Context) error { return fmt.Errorf("%w: http status 500", functions.ErrFunctionFailed) }}
	e := isolationEnv(t, router.IsolationOptions{BreakerFailures: 3, BreakerOpen: 300 * time.Millisecond}, nil, map[string]*scripted{"slow": slow, "failing": failing})
	e.fnWith(t, functions.Function{ID: "slow"})
	e.fnWith(t, functions.Function{ID: "failing"})
	ds, df := e.subscribed(t, "slow"), e.subscribed(t, "failing")

	for range 3 {
		if err := e.r.Deliver(e.ctx, ds); !errors.Is(err, functions.ErrTimeout) {
			t.Fatalf("err = %v, want a timeout", err)
		}
	}
	err := e.r.Deliver(e.ctx, ds)
	var de *router.DeferredError
	if !errors.As(err, &de) || de.After < 100*time.Millisecond {
		t.Fatalf("after 3 timeouts: %v, want a DeferredError for about the open time", err)
	}
	if slow.calls.Load() != 3 {
		t.Fatalf("%d calls with the breaker open, want 3", slow.calls.Load())
	}
	broken.Store(false)
	waitUntil(t, "the breaker to let a probe through", func() bool { return e.r.Deliver(e.ctx, ds) == nil })
	if err := e.r.Deliver(e.ctx, ds); err != nil {
		t.Fatalf("breaker closed again: %v", err)
	}

	for range 10 {
		if err := e.r.Deliver(e.ctx, df); !errors.Is(err, functions.ErrFunctionFailed) {
			t.Fatalf("a failing function: %v, want its failure (its breaker stays closed)", err)
		}
	}
}

// downPlugin is a sync plugin of gateway.function.invoking that cannot be
// asked (crashed, restarting).
type downPlugin struct{}

func (downPlugin) Wants(t string) bool { return t == router.SystemFunctionInvoking }
func (downPlugin) React(context.Context, string, []byte) error {
	return fmt.Errorf("plugin p: %w", plugin.ErrNotRunning)
}

// TestPluginUnavailableDefers: a delivery whose invoking plugin cannot be
// asked waits for it (no attempt spent) rather than failing, and the
// function is not called; a synchronous call still fails at once.
func TestPluginUnavailableDefers(t *testing.T) {
	fn := &scripted{do: func(context.Context) error { return nil }}
	e := isolationEnv(t, router.IsolationOptions{}, downPlugin{}, map[string]*scripted{"fn": fn})
	e.fnWith(t, functions.Function{ID: "fn"})
	d := e.subscribed(t, "fn")
	if err := e.r.Deliver(e.ctx, d); !deferred(err) {
		t.Fatalf("Deliver: %v, want a DeferredError", err)
	}
	if _, err := e.r.Call(e.ctx, e.r.Snapshot().Space(functions.DefaultSpace).Function("fn"), []byte(`{}`)); err == nil || deferred(err) {
		t.Fatalf("Call: %v, want the plugin's failure", err)
	}
	if fn.calls.Load() != 0 {
		t.Fatalf("function called %d times", fn.calls.Load())
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestNoBackendDefers: a delivery to a function whose backends are all
// left out is deferred (no attempt spent), and does not count against the
// function's breaker: it opens only on calls that reach the function.
func TestNoBackendDefers(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	fn := &scripted{do: func(context.Context) error {
		if down.Load() {
			return fmt.Errorf("%w: its 2 backends are ejected or unhealthy", functions.ErrNoBackend)
		}
		return nil
	}}
	e := isolationEnv(t, router.IsolationOptions{BreakerFailures: 2}, nil, map[string]*scripted{"pool": fn})
	e.fnWith(t, functions.Function{ID: "pool"})
	d := e.subscribed(t, "pool")
	for range 5 {
		err := e.r.Deliver(e.ctx, d)
		var de *router.DeferredError
		if !errors.As(err, &de) || !errors.Is(err, functions.ErrNoBackend) || de.After < 100*time.Millisecond {
			t.Fatalf("Deliver with no backend: %v, want a DeferredError of about a second wrapping ErrNoBackend", err)
		}
	}
	// Five no-backend outcomes did not open a breaker of 2 failures:
	// the next delivery reaches the invoker.
	down.Store(false)
	if err := e.r.Deliver(e.ctx, d); err != nil {
		t.Fatalf("Deliver once a backend is back: %v", err)
	}
	if n := fn.calls.Load(); n != 6 {
		t.Fatalf("invoker asked %d times, want 6", n)
	}
}
