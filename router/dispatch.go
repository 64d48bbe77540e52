package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router/event"
)

// Call invokes a function with an encoded envelope, bounded by the
// function's timeout, and emits the function's system events around the
// call. A sync plugin's refusal on gateway.function.invoking stops the call
// with a Forbidden error.
func (r *Router) Call(ctx context.Context, t *Target, payload []byte) ([]byte, error) {
	return r.call(ctx, t, payload, true)
}

func (r *Router) call(ctx context.Context, t *Target, payload []byte, system bool) ([]byte, error) {
	var snap *Snapshot
	if system {
		snap = r.Snapshot()
		if r.listening(snap, t.Space, SystemFunctionInvoking) {
			err := r.emitSystem(ctx, snap, t.Space, SystemFunctionInvoking, invokingData{Event: payload, FunctionID: t.Function.ID}, errkind.Forbidden)
			if err != nil {
				return nil, err
			}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, t.Timeout)
	began := time.Now()
	out, err := t.Invoker.Invoke(cctx, payload)
	if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) && !errors.Is(err, functions.ErrTimeout) {
		err = fmt.Errorf("%w: %w", functions.ErrTimeout, err)
	}
	cancel()
	if r.observer != nil {
		r.observer.Invoked(t.Space, t.Function.ID, string(t.Function.Provider.Type), time.Since(began), result(err))
	}
	if !system {
		return out, err
	}
	// The function has run: plugins can no longer stop anything, so
	// their answers to these two are only logged.
	if err != nil {
		if r.listening(snap, t.Space, SystemFunctionInvocationFailed) {
			if serr := r.emitSystem(ctx, snap, t.Space, SystemFunctionInvocationFailed, failedData{Event: payload, FunctionID: t.Function.ID, Error: err.Error()}, errkind.Invalid); serr != nil {
				r.log.Warn("plugin refused gateway.function.invocationFailed", "space", t.Space, "functionId", t.Function.ID, "error", serr)
			}
		}
		return out, err
	}
	if r.listening(snap, t.Space, SystemFunctionInvoked) {
		if serr := r.emitSystem(ctx, snap, t.Space, SystemFunctionInvoked, invokedData{Event: payload, FunctionID: t.Function.ID, Result: resultJSON(out)}, errkind.Invalid); serr != nil {
			r.log.Warn("plugin refused gateway.function.invoked", "space", t.Space, "functionId", t.Function.ID, "error", serr)
		}
	}
	return out, nil
}

// result classifies the outcome of a call for the Observer.
func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, functions.ErrTimeout):
		return "timeout"
	default:
		return "failed"
	}
}

// Emit accepts a custom event for asynchronous delivery to every function
// of the space subscribed to it on path, and returns how many there are.
// It returns an Unavailable error, and accepts nothing, when the queue
// cannot take them all.
func (r *Router) Emit(ctx context.Context, space string, ev *event.Event, path string) (int, error) {
	snap := r.Snapshot()
	subs := snap.Space(space).Subscribers(ev.Event, path)
	if len(subs) == 0 {
		return 0, nil
	}
	payload := ev.AppendJSON(make([]byte, 0, 128+len(ev.Data)))
	ds := make([]Delivery, len(subs))
	for i, s := range subs {
		ds[i] = Delivery{Space: space, SubscriptionID: s.SubscriptionID, FunctionID: s.FunctionID, EventID: ev.ID, Event: ev.Event, Payload: payload, Revision: snap.Revision}
	}
	if err := r.queue.Enqueue(ctx, ds); err != nil {
		return 0, err
	}
	return len(ds), nil
}

// ErrSubscriptionGone is returned by Deliver for a delivery whose
// subscription was deleted after the event was accepted: the queue drops
// it (and counts it) rather than retrying.
var ErrSubscriptionGone = errors.New("subscription deleted")

// configWait bounds how long Deliver waits for the configuration to catch
// up before it fails the attempt, leaving it to be retried later.
const configWait = 10 * time.Second

// Deliver makes one asynchronous delivery. The function is looked up at
// delivery time: a subscription deleted since the event was accepted gets
// nothing, and an updated function is called at its new address.
func (r *Router) Deliver(ctx context.Context, d Delivery) error {
	// Right after start-up the configuration may not be read yet, and an
	// event accepted by another instance may need more of it than this
	// one has seen. Both catch up within milliseconds on a healthy
	// cluster: wait here rather than fail the attempt, which would count
	// against the subscription's retries and back off for seconds, or
	// worse, judge the subscription gone from a snapshot that is not
	// there yet.
	snap, ok := r.snapshotAt(ctx, d.Revision, configWait)
	if err := ctx.Err(); err != nil {
		return err
	}
	if !ok {
		if !snap.Loaded {
			return errors.New("configuration not loaded yet")
		}
		return fmt.Errorf("configuration at revision %d, the event needs %d", snap.Revision, d.Revision)
	}
	sp := snap.Space(d.SpaceOrDefault())
	if !sp.HasSubscription(d.SubscriptionID) {
		return ErrSubscriptionGone
	}
	t := sp.Function(d.FunctionID)
	if t == nil {
		return errkind.New(errkind.NotFound, "function %q not found", d.FunctionID)
	}
	_, err := r.call(ctx, t, d.Payload, !d.System)
	return err
}
