package router

import (
	"context"
	"time"

	"github.com/event-gateway/event-gateway/internal/tracing"

	"github.com/event-gateway/event-gateway/functions"
)

// Delivery is one accepted event on its way to one subscriber.
type Delivery struct {
	// Space is the space of the subscription and its function. Queues
	// keep it with the delivery (in their subjects, records and dead
	// letters) and look retry policies up by it. "" is the space
	// "default", that of the first-generation API (/v1/...); a queue
	// stores it as "default".
	Space          string
	SubscriptionID string
	FunctionID     string
	EventID        string
	Event          string
	// Payload is the encoded envelope; deliveries of one event share it.
	Payload []byte
	// System marks the delivery of a system event: its invocation emits no
	// system events, so they can never feed themselves.
	System bool
	// Revision is the configuration revision the event was accepted at.
	// An instance whose snapshot is older waits for it rather than take a
	// subscription it has not seen yet for a deleted one.
	Revision int64
	// Hops is the hop count of the request that brought the event
	// (functions.HopsHeader): the delivery's call carries one more, so a
	// function that emits the events it gets stops at the gateway's bound.
	Hops int
	// Trace is the trace context of the request that brought the event,
	// stored with the delivery so that its attempts continue the trace;
	// empty when tracing is off.
	Trace tracing.Carrier
	// Attempt counts the attempts of this delivery, this one included,
	// from 1; set by the queue that hands it out, not stored.
	Attempt int
}

// SpaceOrDefault returns the delivery's space.
func (d *Delivery) SpaceOrDefault() string {
	if d.Space == "" {
		return functions.DefaultSpace
	}
	return d.Space
}

// Queue holds accepted deliveries until a worker makes them. The gateway's
// queue is durable: router/jetstream.
type Queue interface {
	// Enqueue persists ds and returns only once they are stored. When it
	// cannot it returns an error of kind Unavailable, so the emitter is
	// told to retry instead of getting a 202 for an event that would be
	// lost.
	Enqueue(ctx context.Context, ds []Delivery) error
}

// DeliverFunc makes one delivery.
type DeliverFunc func(context.Context, Delivery) error

// DeferredError is what a DeliverFunc returns for a delivery it did not
// make for want of room rather than for a failure of the function: the
// function's bulkhead is full, its circuit breaker is open, or a plugin
// that must see the call could not be asked. The queue hands such a
// delivery back to be tried again after After, and the attempt does not
// count against the subscription's retries.
type DeferredError struct {
	After  time.Duration
	Reason string
	Err    error // the cause, if any
}

func (e *DeferredError) Error() string {
	if e.Err != nil {
		return "delivery deferred: " + e.Reason + ": " + e.Err.Error()
	}
	return "delivery deferred: " + e.Reason
}

func (e *DeferredError) Unwrap() error { return e.Err }
