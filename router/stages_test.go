package router_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/plugin"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/pipeline"
)

// stage is a modifier's request stage whose answer the test sets.
type stage struct {
	err  error
	seen []pipeline.Context
}

func (s *stage) Request(_ context.Context, ev []byte, c pipeline.Context) ([]byte, bool, error) {
	s.seen = append(s.seen, c)
	return ev, false, s.err
}

// TestModifierStageInDeliver: a modifier's request stage runs at each
// delivery; while its plugin is being restarted the delivery waits
// without spending an attempt and without calling the function; its
// refusal and its failure on the event are the delivery's error.
func TestModifierStageInDeliver(t *testing.T) {
	fn := &scripted{do: func(context.Context) error { return nil }}
	st := &stage{}
	e := newEnv(t, nil, func(o *router.Options) {
		o.Modifiers = &pipeline.Stages{Request: []pipeline.RequestStage{st}}
		o.Invokers = func(functions.Function) (functions.Invoker, error) { return fn, nil }
	})
	e.fnWith(t, functions.Function{ID: "fn"})
	d := e.subscribed(t, "fn")
	d.Attempt = 3
	if err := e.r.Deliver(e.ctx, d); err != nil || fn.calls.Load() != 1 {
		t.Fatalf("Deliver: %v, %d calls", err, fn.calls.Load())
	}
	if len(st.seen) != 1 || st.seen[0].Attempt != 3 || st.seen[0].FunctionID != "fn" || st.seen[0].Sync {
		t.Fatalf("the stage was told %+v", st.seen)
	}

	st.err = errkind.Wrap(errkind.Unavailable, fmt.Errorf("plugin m: %w", plugin.ErrNotRunning), "a plugin could not modify the call")
	if err := e.r.Deliver(e.ctx, d); !deferred(err) {
		t.Fatalf("modifier down: %v, want a DeferredError", err)
	}
	st.err = errkind.Wrap(errkind.Unavailable, fmt.Errorf("plugin m: %w", plugin.ErrUnavailable), "a plugin could not modify the call")
	if err := e.r.Deliver(e.ctx, d); deferred(err) || errkind.Of(err) != errkind.Unavailable {
		t.Fatalf("modifier failed on the event: %v, want its error, not deferred", err)
	}
	st.err = errkind.Wrap(errkind.Forbidden, errors.New("no"), "no")
	if err := e.r.Deliver(e.ctx, d); errkind.Of(err) != errkind.Forbidden {
		t.Fatalf("modifier refused: %v", err)
	}
	if fn.calls.Load() != 1 {
		t.Fatalf("function called %d times, want 1", fn.calls.Load())
	}
}

// TestInvokerPluginDownDefers: an invoker whose selector or backend-source
// plugin is being restarted called nothing: the delivery waits without
// spending an attempt.
func TestInvokerPluginDownDefers(t *testing.T) {
	down := true
	fn := &scripted{do: func(context.Context) error {
		if down {
			return errkind.Wrap(errkind.Unavailable, fmt.Errorf("plugin s: %w", plugin.ErrNotRunning), "a plugin could not choose a backend")
		}
		return errors.New("connection refused")
	}}
	e := isolationEnv(t, router.IsolationOptions{}, nil, map[string]*scripted{"fn": fn})
	e.fnWith(t, functions.Function{ID: "fn"})
	d := e.subscribed(t, "fn")
	if err := e.r.Deliver(e.ctx, d); !deferred(err) {
		t.Fatalf("selector down: %v, want a DeferredError", err)
	}
	down = false
	if err := e.r.Deliver(e.ctx, d); err == nil || deferred(err) {
		t.Fatalf("a failed call: %v, want its error", err)
	}
}
