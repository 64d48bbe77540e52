package router

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/event-gateway/event-gateway/internal/errkind"
)

// Delivery is one accepted event on its way to one subscriber.
type Delivery struct {
	SubscriptionID string
	FunctionID     string
	EventID        string
	Event          string
	// Payload is the encoded envelope; deliveries of one event share it.
	Payload []byte
	// System marks the delivery of a system event: its invocation emits no
	// system events, so they can never feed themselves.
	System bool
}

// Queue holds accepted deliveries until a worker makes them.
type Queue interface {
	// Enqueue accepts all of ds or none of them. When it cannot take them
	// all it returns an error of kind Unavailable, so the emitter is told
	// to retry instead of getting a 202 for an event that would be lost.
	Enqueue(ctx context.Context, ds []Delivery) error
}

// DeliverFunc makes one delivery.
type DeliverFunc func(context.Context, Delivery) error

// MemoryQueue is a bounded in-memory queue with a fixed pool of workers.
// A failed delivery is retried a few times, with backoff, by the worker
// that made it. What the queue holds is lost if the process dies.
type MemoryQueue struct {
	ch       chan Delivery
	capacity int64
	attempts int
	backoff  time.Duration
	// reserved counts the deliveries accepted and not yet taken by a
	// worker. Enqueue reserves room for a whole event before sending, so a
	// send never blocks and an event is never half accepted.
	reserved atomic.Int64
	workers  int
	log      *slog.Logger

	mu     sync.RWMutex // guards closed against concurrent Enqueue
	closed bool
	wg     sync.WaitGroup
}

// MemoryQueueOptions configures a MemoryQueue.
type MemoryQueueOptions struct {
	// Workers is the number of deliveries made at once.
	Workers int
	// Backlog is the number of deliveries that may wait.
	Backlog int
	// Attempts is how many times a delivery is tried before it is given
	// up. Default 3.
	Attempts int
	// Backoff is the pause before the first retry; it doubles for each
	// further one, with jitter. Default 200ms.
	Backoff time.Duration
	Logger  *slog.Logger
}

// NewMemoryQueue returns a queue. Start the workers with Start.
func NewMemoryQueue(o MemoryQueueOptions) *MemoryQueue {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = 200 * time.Millisecond
	}
	return &MemoryQueue{
		ch:       make(chan Delivery, max(o.Backlog, 1)),
		capacity: int64(max(o.Backlog, 1)),
		attempts: o.Attempts,
		backoff:  o.Backoff,
		workers:  max(o.Workers, 1),
		log:      o.Logger,
	}
}

// ErrQueueFull is returned by Enqueue when the backlog is full.
var ErrQueueFull = &errkind.Error{Kind: errkind.Unavailable, Msg: "too many events waiting for delivery, retry later"}

// errQueueClosed is returned by Enqueue once shutdown has begun.
var errQueueClosed = &errkind.Error{Kind: errkind.Unavailable, Msg: "gateway is shutting down, retry later"}

// Enqueue implements Queue.
func (q *MemoryQueue) Enqueue(ctx context.Context, ds []Delivery) error {
	n := int64(len(ds))
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return errQueueClosed
	}
	if n > q.capacity {
		// Waiting would not help: the event can never fit.
		q.log.Error("event has more subscribers than the delivery queue holds: raise -workers-backlog", "subscribers", n, "backlog", q.capacity)
		return errkind.New(errkind.Unavailable, "event has %d subscribers, more than the delivery queue holds", n)
	}
	for {
		cur := q.reserved.Load()
		if cur+n > q.capacity {
			return ErrQueueFull
		}
		if q.reserved.CompareAndSwap(cur, cur+n) {
			break
		}
	}
	for _, d := range ds {
		q.ch <- d // cannot block: room was reserved
	}
	return nil
}

// Len is the number of deliveries waiting.
func (q *MemoryQueue) Len() int { return int(q.reserved.Load()) }

// Start runs the workers. Each delivery gets ctx, which should outlive
// Close's draining.
func (q *MemoryQueue) Start(ctx context.Context, deliver DeliverFunc) {
	for range q.workers {
		q.wg.Go(func() {
			for d := range q.ch {
				q.reserved.Add(-1)
				q.deliver(ctx, deliver, d)
			}
		})
	}
}

// deliver makes one delivery, retrying failures that another try could
// mend (the function failed, timed out, was unreachable).
func (q *MemoryQueue) deliver(ctx context.Context, deliver DeliverFunc, d Delivery) {
	backoff := q.backoff
	for attempt := 1; ; attempt++ {
		err := deliver(ctx, d)
		if err == nil {
			return
		}
		switch errkind.Of(err) {
		case errkind.Forbidden, errkind.NotFound, errkind.Invalid:
			attempt = q.attempts // refused or gone: trying again cannot help
		}
		if attempt >= q.attempts || ctx.Err() != nil {
			q.log.Warn("delivery failed", "eventId", d.EventID, "event", d.Event, "functionId", d.FunctionID, "subscriptionId", d.SubscriptionID, "attempts", attempt, "error", err)
			return
		}
		t := time.NewTimer(backoff + rand.N(backoff/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff *= 2
	}
}

// Close stops accepting deliveries and waits until the workers have made
// the ones already accepted, or ctx ends. It returns the number of
// deliveries left undone.
func (q *MemoryQueue) Close(ctx context.Context) int {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	done := make(chan struct{})
	go func() {
		q.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return 0
	case <-ctx.Done():
		return q.Len()
	}
}
