package router

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

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
// What it holds is lost if the process dies.
type MemoryQueue struct {
	ch       chan Delivery
	capacity int64
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

// NewMemoryQueue returns a queue of backlog deliveries served by workers
// goroutines. Start the workers with Start.
func NewMemoryQueue(workers, backlog int, log *slog.Logger) *MemoryQueue {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &MemoryQueue{
		ch:       make(chan Delivery, backlog),
		capacity: int64(backlog),
		workers:  max(workers, 1),
		log:      log,
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
				if err := deliver(ctx, d); err != nil {
					q.log.Warn("delivery failed", "eventId", d.EventID, "event", d.Event, "functionId", d.FunctionID, "subscriptionId", d.SubscriptionID, "error", err)
				}
			}
		})
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
