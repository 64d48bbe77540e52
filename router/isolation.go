package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/event-gateway/event-gateway/functions"
)

// Isolation of functions from one another on the asynchronous delivery
// path. Every function of every space has a bulkhead, a bound on the
// deliveries to it this instance makes at once, and a circuit breaker,
// which stops calling it for a while after a run of timeouts or failures
// to reach it. A delivery that finds either closed is not made: Deliver
// returns a *DeferredError at once, so it holds no worker, and the queue
// hands it back for later without counting an attempt. A function that
// hangs can thus hold at most its bulkhead's worth of workers, and none
// once its breaker is open, whatever its backlog.

// Defaults of IsolationOptions, also those of the gateway's flags.
const (
	DefaultMaxInFlight     = 50
	DefaultBreakerFailures = 5
	DefaultBreakerOpen     = 10 * time.Second
)

// IsolationOptions configures the bulkheads and circuit breakers.
type IsolationOptions struct {
	// MaxInFlight bounds the deliveries in flight to a function that sets
	// no maxInFlight of its own. Default DefaultMaxInFlight.
	MaxInFlight int
	// BreakerFailures is the number of consecutive calls of a function
	// that timed out or could not reach it after which its breaker opens.
	// Answers, even failed ones, do not count: they cost no more than a
	// success. Default DefaultBreakerFailures; less than 0: no breaker.
	BreakerFailures int
	// BreakerOpen is how long an open breaker stays open before one call
	// probes the function again. Default DefaultBreakerOpen.
	BreakerOpen time.Duration
}

func (o *IsolationOptions) normalize() {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = DefaultBreakerFailures
	}
	if o.BreakerOpen <= 0 {
		o.BreakerOpen = DefaultBreakerOpen
	}
}

// busyRetry is about how long a delivery that found its function's
// bulkhead full, or its half-open breaker probing, waits before it is
// tried again.
const busyRetry = 500 * time.Millisecond

// bulkheadWait is how long a delivery that finds its function's bulkhead
// full waits for a slot before it is given back. A healthy function frees
// one within milliseconds (a batch record hands its deliveries out at
// once, and may hold more than the bulkhead); a hung one does not, and
// then the wait costs a worker this long per deferral.
const bulkheadWait = 20 * time.Millisecond

// errNotCalled tells a breaker that the function was not called: the
// delivery stopped before (a plugin's refusal, a plugin that could not be
// asked), so it says nothing of the function's health.
var errNotCalled = errors.New("function not called")

// guard is the bulkhead and the breaker of one function.
type guard struct {
	// slots is the bulkhead: a slot taken per delivery in flight. It is
	// replaced when the function's limit changes; a delivery gives its
	// slot back to the bulkhead it took it from.
	slots atomic.Pointer[bulkhead]
	cb    *gobreaker.TwoStepCircuitBreaker[struct{}] // nil: no breaker
	// openUntil is when the breaker, last opened, lets a probe through
	// (Unix nanoseconds).
	openUntil atomic.Int64
	openFor   time.Duration
}

// guards holds the guards of the functions, by space and function id.
type guards struct {
	o   IsolationOptions
	log interface {
		Warn(msg string, args ...any)
		Info(msg string, args ...any)
	}
	m sync.Map // guardKey → *guard
}

type guardKey struct{ space, function string }

func (gs *guards) get(space, functionID string) *guard {
	k := guardKey{space, functionID}
	if g, ok := gs.m.Load(k); ok {
		return g.(*guard)
	}
	g := &guard{openFor: gs.o.BreakerOpen}
	if gs.o.BreakerFailures > 0 {
		failures := uint32(gs.o.BreakerFailures)
		g.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        space + "/" + functionID,
			MaxRequests: 1,
			Timeout:     gs.o.BreakerOpen,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
			IsSuccessful: func(err error) bool {
				// The function answered: it is reachable and not hung.
				return err == nil || errors.Is(err, functions.ErrFunctionFailed) || errors.Is(err, functions.ErrResponseTooLarge)
			},
			IsExcluded: func(err error) bool {
				// Not called, or cut short by a shutdown.
				return errors.Is(err, errNotCalled) || errors.Is(err, context.Canceled)
			},
			OnStateChange: func(name string, from, to gobreaker.State) {
				switch to {
				case gobreaker.StateOpen:
					g.openUntil.Store(time.Now().Add(gs.o.BreakerOpen).UnixNano())
					if from == gobreaker.StateClosed {
						gs.log.Warn("circuit breaker open: deliveries to the function wait", "space", space, "functionId", functionID, "openFor", gs.o.BreakerOpen)
					}
				case gobreaker.StateClosed:
					gs.log.Info("circuit breaker closed: deliveries to the function resume", "space", space, "functionId", functionID)
				}
			},
		})
	}
	actual, _ := gs.m.LoadOrStore(k, g)
	return actual.(*guard)
}

// bulkhead bounds the deliveries in flight to one function.
type bulkhead struct {
	limit int
	slots chan struct{}
}

// bulkhead returns the function's bulkhead for limit.
func (g *guard) bulkhead(limit int) *bulkhead {
	for {
		b := g.slots.Load()
		if b != nil && b.limit == limit {
			return b
		}
		nb := &bulkhead{limit: limit, slots: make(chan struct{}, limit)}
		if g.slots.CompareAndSwap(b, nb) {
			return nb
		}
	}
}

// take takes a slot of the bulkhead, waiting at most bulkheadWait.
func (b *bulkhead) take(ctx context.Context) (bool, error) {
	select {
	case b.slots <- struct{}{}:
		return true, nil
	default:
	}
	t := time.NewTimer(bulkheadWait)
	defer t.Stop()
	select {
	case b.slots <- struct{}{}:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (b *bulkhead) release() { <-b.slots }

// enter admits a delivery to the function t under a bulkhead of limit,
// or returns a *DeferredError. done must be called with the outcome of an
// admitted delivery: errNotCalled (wrapped or not) when the function was
// not called.
func (g *guard) enter(ctx context.Context, t *Target, limit int) (done func(error), err error) {
	b := g.bulkhead(limit)
	ok, err := b.take(ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &DeferredError{After: jitter(busyRetry), Reason: fmt.Sprintf("function %q has %d deliveries in flight, its maxInFlight", t.Function.ID, limit)}
	}
	if g.cb == nil {
		return func(error) { b.release() }, nil
	}
	cbDone, err := g.cb.Allow()
	if err != nil {
		b.release()
		// Open: until the breaker lets a probe through. Half-open, with
		// its probe in progress: the probe may take the function's
		// timeout, so about as long again as the breaker was open.
		after := max(time.Until(time.Unix(0, g.openUntil.Load())), busyRetry)
		if errors.Is(err, gobreaker.ErrTooManyRequests) {
			after = max(g.openFor/2, busyRetry)
		}
		return nil, &DeferredError{After: jitter(after), Reason: fmt.Sprintf("circuit breaker of function %q", t.Function.ID), Err: err}
	}
	return func(err error) {
		cbDone(err)
		b.release()
	}, nil
}

// jitter spreads d over [d/2, 3d/2), so deliveries deferred together do
// not all come back at once.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}
