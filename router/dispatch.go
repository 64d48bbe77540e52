package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/event-gateway/event-gateway/internal/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/plugin"
	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/router/pipeline"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// Call invokes a function with an encoded envelope, bounded by the
// function's timeout, and emits the function's system events around the
// call. A sync plugin's refusal on gateway.function.invoking stops the call
// with a Forbidden error.
func (r *Router) Call(ctx context.Context, t *Target, payload []byte) ([]byte, error) {
	return r.call(ctx, t, payload, true, nil)
}

// CallEvent is Call for the synchronous subscription subscriptionID of an
// event accepted with Enqueue: with the trail on, the call's outcome is
// recorded beside the event's asynchronous deliveries.
func (r *Router) CallEvent(ctx context.Context, t *Target, payload []byte, space string, in *Incoming, subscriptionID string) ([]byte, error) {
	if r.trail == nil {
		return r.call(ctx, t, payload, true, nil)
	}
	began := time.Now()
	out, err := r.call(ctx, t, payload, true, nil)
	r.trail.Called(space, in.ID(), in.Type(), subscriptionID, t.Function.ID, began, time.Since(began), err)
	return out, err
}

// call is Call, and with system false the call of a system event's
// delivery, which emits none. invoked, when not nil, is set once the
// function is called: an error before is that of a plugin.
func (r *Router) call(ctx context.Context, t *Target, payload []byte, system bool, invoked *bool) ([]byte, error) {
	var snap *Snapshot
	if system {
		snap = r.Snapshot()
		if r.listening(snap, t.Space, SystemFunctionInvoking) {
			err := r.emitSystem(ctx, snap, t.Space, SystemFunctionInvoking, invokingData{Space: t.Space, Event: payload, FunctionID: t.Function.ID}, errkind.Forbidden)
			if err != nil {
				return nil, err
			}
		}
	}
	// Per call, so built only when debug is on: serverless run shows
	// these two (docs/serverless.md).
	debug := r.log.Enabled(ctx, slog.LevelDebug)
	if debug {
		r.log.LogAttrs(ctx, slog.LevelDebug, "Function triggered.", slog.String("space", t.Space),
			slog.String("functionId", t.Function.ID), slog.String("event", string(payload)))
	}
	if invoked != nil {
		*invoked = true
	}
	var span *tracing.Span
	if r.tracer != nil {
		ctx, span = r.tracer.Start(ctx, "call "+t.Function.ID, trace.SpanKindClient,
			attribute.String("eventgateway.space", t.Space), attribute.String("eventgateway.function_id", t.Function.ID),
			attribute.String("eventgateway.provider", string(t.Function.Provider.Type)))
	}
	cctx, cancel := context.WithTimeout(ctx, t.Timeout)
	began := time.Now()
	out, err := t.Invoker.Invoke(cctx, payload)
	span.End(err)
	if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) && !errors.Is(err, functions.ErrTimeout) {
		err = fmt.Errorf("%w: %w", functions.ErrTimeout, err)
	}
	cancel()
	if debug && err == nil {
		r.log.LogAttrs(ctx, slog.LevelDebug, "Function finished.", slog.String("space", t.Space),
			slog.String("functionId", t.Function.ID), slog.String("response", logJSON(out)))
	}
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
			if serr := r.emitSystem(ctx, snap, t.Space, SystemFunctionInvocationFailed, failedData{Space: t.Space, Event: payload, FunctionID: t.Function.ID, Error: err.Error()}, errkind.Invalid); serr != nil {
				r.log.Warn("plugin refused gateway.function.invocationFailed", "space", t.Space, "functionId", t.Function.ID, "error", serr)
			}
		}
		return out, err
	}
	if r.listening(snap, t.Space, SystemFunctionInvoked) {
		if serr := r.emitSystem(ctx, snap, t.Space, SystemFunctionInvoked, invokedData{Space: t.Space, Event: payload, FunctionID: t.Function.ID, Result: resultJSON(out)}, errkind.Invalid); serr != nil {
			r.log.Warn("plugin refused gateway.function.invoked", "space", t.Space, "functionId", t.Function.ID, "error", serr)
		}
	}
	return out, nil
}

// logJSON is a function's response as a JSON text for a log line: JSON as
// it is, other bytes as a JSON string, nothing as null.
func logJSON(out []byte) string {
	if len(bytes.TrimSpace(out)) == 0 {
		return "null"
	}
	if json.Valid(out) {
		return string(out)
	}
	b, _ := json.Marshal(string(out)) // invalid UTF-8 becomes U+FFFD
	return string(b)
}

// result classifies the outcome of a call for the Observer.
func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, functions.ErrTimeout):
		return "timeout"
	case errors.Is(err, functions.ErrNoBackend):
		return "no_backend" // not called: every backend left out
	default:
		return "failed"
	}
}

// Emit accepts a custom event received in the seed's form for
// asynchronous delivery to every function of the space subscribed to it
// on path, and returns how many there are. It returns an Unavailable
// error, and accepts nothing, when the queue cannot take them all.
func (r *Router) Emit(ctx context.Context, space string, ev *event.Event, path string) (int, error) {
	subs := r.Snapshot().Space(space).Subscribers(ev.Event, path)
	if len(subs) == 0 {
		return 0, nil
	}
	return r.Enqueue(ctx, space, NewIncoming(ev, nil, time.UnixMilli(ev.ReceivedAt)), subs)
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
func (r *Router) Deliver(ctx context.Context, d Delivery) (err error) {
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
	if r.tracer != nil {
		// The attempt continues the trace of the request that brought
		// the event, whenever and wherever it is made.
		var span *tracing.Span
		ctx, span = r.tracer.Start(r.tracer.Resume(ctx, d.Trace), "deliver "+d.Event, trace.SpanKindConsumer,
			attribute.String("eventgateway.space", d.SpaceOrDefault()), attribute.String("eventgateway.subscription_id", d.SubscriptionID),
			attribute.String("eventgateway.function_id", d.FunctionID), attribute.String("eventgateway.event_id", d.EventID),
			attribute.Int("eventgateway.attempt", d.Attempt))
		defer func() { span.End(err) }()
	}
	t := sp.Function(d.FunctionID)
	if t == nil {
		return errkind.New(errkind.NotFound, "function %q not found", d.FunctionID)
	}
	// The function's bulkhead and breaker (isolation.go): when it has no
	// room, the delivery waits in the queue, holding no worker and
	// spending no attempt.
	g := r.guards.get(d.SpaceOrDefault(), d.FunctionID)
	done, err := g.enter(ctx, t, t.Function.MaxInFlightOr(r.guards.o.MaxInFlight))
	if err != nil {
		return err
	}
	if d.Hops > 0 {
		ctx = functions.WithHops(ctx, d.Hops)
	}
	payload := d.Payload
	if p := r.Stages(sp.Pipeline(d.SubscriptionID)); p.HasRequest() {
		var drop bool
		_, span := r.tracer.Start(ctx, "transform", trace.SpanKindInternal)
		payload, drop, err = p.Request(ctx, payload, pipeline.Context{Space: d.SpaceOrDefault(), SubscriptionID: d.SubscriptionID, FunctionID: d.FunctionID, Attempt: d.Attempt})
		if span != nil {
			span.SetAttributes(attribute.Bool("eventgateway.dropped", drop))
			span.End(err)
		}
		if err != nil || drop {
			// Not a call of the function: its breaker learns nothing.
			done(errNotCalled)
			switch {
			case err == nil:
				return nil // the script dropped the event for this subscriber
			case errors.Is(err, plugin.ErrNotRunning) && ctx.Err() == nil:
				// A modifier plugin being restarted: as for a reacter
				// below, the delivery waits without spending an attempt.
				return &DeferredError{After: jitter(pluginRetry), Reason: "a plugin could not modify the call", Err: err}
			case errkind.Of(err) == errkind.Forbidden || errkind.Of(err) == errkind.Unavailable:
				return err // a modifier plugin's refusal or failure
			}
			return fmt.Errorf("transform of subscription %s: %w", d.SubscriptionID, err)
		}
	}
	invoked := false
	_, err = r.call(functions.WithResponsePrefix(ctx, MaxAsyncResult), t, payload, !d.System, &invoked)
	if !invoked {
		done(errNotCalled)
		if errors.Is(err, plugin.ErrNotRunning) && ctx.Err() == nil {
			// A plugin that must see the call is being restarted: that
			// says nothing of the delivery, which waits for the plugin.
			// (A plugin that failed while judging this very event may
			// have failed because of it: that attempt counts, so an
			// event that crashes a plugin every time ends in the dead
			// letters rather than crash it forever.)
			return &DeferredError{After: jitter(pluginRetry), Reason: "a plugin could not check the call", Err: err}
		}
		return err
	}
	if errors.Is(err, functions.ErrNoBackend) {
		// Every backend of the function is ejected or unhealthy: no
		// call was made, so the delivery waits for one to come back,
		// spending no attempt, and the breaker counts nothing.
		done(errNotCalled)
		return &DeferredError{After: jitter(noBackendRetry), Reason: fmt.Sprintf("function %q has no backend available", t.Function.ID), Err: err}
	}
	if errors.Is(err, plugin.ErrNotRunning) && ctx.Err() == nil {
		// A selector or backend-source plugin being restarted, asked by
		// the invoker before it called anything.
		done(errNotCalled)
		return &DeferredError{After: jitter(pluginRetry), Reason: "a plugin could not choose the backend", Err: err}
	}
	done(err)
	if errors.Is(err, functions.ErrLoopDetected) {
		// Trying again makes the same loop: to the dead letters at once.
		return errkind.Wrap(errkind.Invalid, err, "loop detected")
	}
	return err
}

// MaxAsyncResult is how much of a function's response an asynchronous
// delivery reads: the result shown in gateway.function.invoked. The rest
// is discarded unread, and a response of any size is a success.
const MaxAsyncResult = 64 << 10

// pluginRetry is about how long a delivery waits for a plugin that could
// not be asked: about its first restart.
const pluginRetry = time.Second

// noBackendRetry is about how long a delivery waits for a backend of its
// function to come back: ejections last seconds, probes run every few.
const noBackendRetry = time.Second

// Incoming is an accepted event, ready to be written in each envelope a
// subscriber may ask for: each is encoded at most once, however many
// subscribers share it, and none that no subscriber asks for.
type Incoming struct {
	// Legacy is the event as received in the seed's form (the Event
	// header, or the http event), written as it is to the subscribers of
	// the seed's envelope; nil for a CloudEvent.
	Legacy *event.Event
	// LegacyPayload is Legacy's encoding when the caller has it already.
	LegacyPayload []byte
	// ReceivedAt is when the gateway received the event.
	ReceivedAt time.Time

	// ce is the event in its common form; made from Legacy on first use
	// when ceMade is false.
	ce       event.CloudEvent
	ceMade   bool
	v01, v10 []byte
}

// NewIncoming wraps an event received in the seed's form.
func NewIncoming(ev *event.Event, payload []byte, receivedAt time.Time) *Incoming {
	return &Incoming{Legacy: ev, LegacyPayload: payload, ReceivedAt: receivedAt}
}

// NewCloudIncoming wraps an event received as a CloudEvent.
func NewCloudIncoming(ce event.CloudEvent, receivedAt time.Time) *Incoming {
	return &Incoming{ce: ce, ceMade: true, ReceivedAt: receivedAt}
}

// CloudEvent returns the event in its common form. A change to it (an
// authorizer's extensions) shows in the envelopes encoded after it.
func (in *Incoming) CloudEvent() *event.CloudEvent {
	if !in.ceMade {
		if in.Legacy.Event == subscriptions.EventHTTP {
			in.ce = event.FromHTTPEvent(in.Legacy)
		} else {
			in.ce = event.FromEvent(in.Legacy)
		}
		in.ceMade = true
	}
	return &in.ce
}

// ID returns the event's id.
func (in *Incoming) ID() string {
	if in.Legacy != nil {
		return in.Legacy.ID
	}
	return in.ce.ID
}

// Type returns the event's type: the event type of a CloudEvent, the name
// of a legacy event ("http" for the http event).
func (in *Incoming) Type() string {
	if in.Legacy != nil {
		return in.Legacy.Event
	}
	return in.ce.Type
}

// Payload returns the event in an envelope (subscriptions.Envelope*).
func (in *Incoming) Payload(envelope string) []byte {
	switch envelope {
	case subscriptions.EnvelopeCloudEvents01:
		if in.v01 == nil {
			ce := in.CloudEvent()
			in.v01 = ce.AppendV01JSON(make([]byte, 0, 256+len(ce.Data)))
		}
		return in.v01
	case subscriptions.EnvelopeCloudEvents10:
		if in.v10 == nil {
			ce := in.CloudEvent()
			in.v10 = ce.AppendJSON(make([]byte, 0, 256+len(ce.Data)))
		}
		return in.v10
	}
	if in.LegacyPayload == nil {
		if in.Legacy != nil {
			in.LegacyPayload = in.Legacy.AppendJSON(make([]byte, 0, in.Legacy.JSONSize()))
		} else {
			in.LegacyPayload = in.ce.AppendSeedJSON(make([]byte, 0, 128+len(in.ce.Data)), in.ReceivedAt)
		}
	}
	return in.LegacyPayload
}

// FilterDoc returns what a filter of a subscriber in an envelope is
// matched against: the envelope, but for an http event its data, the
// request {method, path, headers, query, params, body}, whatever the
// envelope.
func (in *Incoming) FilterDoc(envelope string) []byte {
	if in.Legacy != nil && in.Legacy.Event == subscriptions.EventHTTP {
		return in.Legacy.Data
	}
	return in.Payload(envelope)
}

// Enqueue accepts an event for asynchronous delivery to subscribers of a
// space, each in its envelope, and returns how many there are. It returns
// an Unavailable error, and accepts nothing, when the queue cannot take
// them all.
func (r *Router) Enqueue(ctx context.Context, space string, in *Incoming, subs []Subscriber) (int, error) {
	if len(subs) == 0 {
		if r.trail != nil {
			// Where did my event go? Nowhere: that is worth a record.
			r.trail.Accepted(space, in.ID(), in.Type(), in.ReceivedAt, nil)
		}
		return 0, nil
	}
	rev := r.Snapshot().Revision
	hops := functions.Hops(ctx)
	var span *tracing.Span
	if r.tracer != nil {
		ctx, span = r.tracer.Start(ctx, "enqueue "+in.Type(), trace.SpanKindProducer,
			attribute.String("eventgateway.space", space), attribute.String("eventgateway.event_id", in.ID()), attribute.Int("eventgateway.subscribers", len(subs)))
	}
	carrier := r.tracer.CarrierOf(ctx)
	ds := make([]Delivery, 0, len(subs))
	for _, s := range subs {
		if s.Pipeline.HasFilter() {
			var fspan *tracing.Span
			if r.tracer != nil {
				_, fspan = r.tracer.Start(ctx, "filter", trace.SpanKindInternal, attribute.String("eventgateway.subscription_id", s.SubscriptionID))
			}
			matched := s.Pipeline.Match(in.FilterDoc(s.Envelope))
			if fspan != nil {
				fspan.SetAttributes(attribute.Bool("eventgateway.matched", matched))
				fspan.End(nil)
			}
			if !matched {
				if r.trail != nil {
					r.trail.Skipped(space, in.ID(), in.Type(), s.SubscriptionID, s.FunctionID, "filter")
				}
				continue
			}
		}
		ds = append(ds, Delivery{Space: space, SubscriptionID: s.SubscriptionID, FunctionID: s.FunctionID, EventID: in.ID(), Event: in.Type(), Payload: in.Payload(s.Envelope), Revision: rev, Hops: hops, Trace: carrier})
	}
	if len(ds) == 0 {
		span.End(nil)
		if r.trail != nil {
			r.trail.Accepted(space, in.ID(), in.Type(), in.ReceivedAt, nil)
		}
		return 0, nil
	}
	err := r.queue.Enqueue(ctx, ds)
	span.End(err)
	if err != nil {
		return 0, err
	}
	if r.trail != nil {
		if len(ds) < len(subs) {
			// Some were skipped by their filter: the trail lists the
			// subscribers the event was queued for, ds's in order.
			kept := make([]Subscriber, 0, len(ds))
			j := 0
			for _, s := range subs {
				if j < len(ds) && ds[j].SubscriptionID == s.SubscriptionID {
					kept = append(kept, s)
					j++
				}
			}
			subs = kept
		}
		r.trail.Accepted(space, in.ID(), in.Type(), in.ReceivedAt, subs)
	}
	return len(ds), nil
}
