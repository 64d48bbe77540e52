// Package router is each instance's view of the configuration and the
// dispatch of events to functions. It keeps an immutable routing snapshot,
// built from a list of the store at revision R and a watch from R+1, and
// swaps in a new one on every change, so request handling never takes a
// lock or waits on etcd.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// Store is what the router needs of the configuration store.
type Store interface {
	Scan(ctx context.Context, prefix string, rev, pageSize int64, fn func(libkv.KV) error) (int64, error)
	Watch(ctx context.Context, prefix string, rev int64) <-chan libkv.WatchResponse
}

// Observer is told of every function call, for metrics.
type Observer interface {
	Invoked(functionID, provider string, d time.Duration, err error)
}

// InvokerFactory makes the invoker of a function. It is called once per
// version of a function, never on the request path.
type InvokerFactory func(functions.Function) (functions.Invoker, error)

// Options configures a Router.
type Options struct {
	Store    Store
	Space    libkv.Space
	Invokers InvokerFactory
	// Queue takes asynchronous deliveries of custom events.
	Queue Queue
	// Plugins react to system events; nil when there are none.
	Plugins Reacters
	// Observer is told of every function call; nil when nobody watches.
	Observer Observer
	// DefaultTimeout bounds a call to a function that sets no timeout.
	DefaultTimeout time.Duration
	Logger         *slog.Logger
}

// Router routes events to functions.
type Router struct {
	store    Store
	space    libkv.Space
	invokers InvokerFactory
	queue    Queue
	plugins  Reacters
	observer Observer
	timeout  time.Duration
	log      *slog.Logger

	snap atomic.Pointer[Snapshot]
	// ready is closed the first time a snapshot is built from the store.
	ready     chan struct{}
	readyOnce atomic.Bool

	// changed is closed and replaced each time a snapshot is installed,
	// to wake deliveries waiting for the configuration to catch up.
	changedMu sync.Mutex
	changed   chan struct{}
}

// New returns a Router with an empty snapshot. Run fills it.
func New(o Options) *Router {
	r := &Router{
		store:    o.Store,
		space:    o.Space,
		invokers: o.Invokers,
		queue:    o.Queue,
		plugins:  o.Plugins,
		observer: o.Observer,
		timeout:  o.DefaultTimeout,
		log:      o.Logger,
		ready:    make(chan struct{}),
		changed:  make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.timeout <= 0 {
		r.timeout = 5 * time.Second
	}
	r.snap.Store(build(0, nil, nil, r.log))
	return r
}

// Snapshot returns the current routing snapshot.
func (r *Router) Snapshot() *Snapshot { return r.snap.Load() }

// Ready is closed once the first full snapshot is in place.
func (r *Router) Ready() <-chan struct{} { return r.ready }

// Run keeps the snapshot in sync with the store until ctx ends. When the
// watch fails (etcd away too long, revision compacted) it lists again and
// replaces the snapshot whole, so nothing is duplicated and no delete is
// missed.
func (r *Router) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		c, rev, err := r.resync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("cannot load configuration, retrying", "retryIn", backoff, "error", err)
			sleep(ctx, backoff+rand.N(backoff/2))
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		err = r.follow(ctx, c, rev)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("configuration watch ended, reloading", "error", err)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// cache is the configuration as last seen, from which snapshots are built.
type cache struct {
	fns  map[string]*Target
	subs map[string]*subEntry
}

// scanPage is the page size of a full read of the configuration: large
// enough that a big configuration takes few round trips, small enough that
// a page of decoded keys stays a few megabytes.
const scanPage = 10_000

// resync lists the whole space and installs a snapshot of it.
func (r *Router) resync(ctx context.Context) (*cache, int64, error) {
	c := &cache{fns: make(map[string]*Target), subs: make(map[string]*subEntry)}
	apply := func(kv libkv.KV) error {
		r.apply(c, libkv.Event{Key: kv.Key, Value: kv.Value, ModRevision: kv.ModRevision})
		return nil
	}
	// Functions, then subscriptions as of the same revision. Not the whole
	// space: its index keys would double the work, and etcd counts the
	// rest of the range for every page, so smaller ranges page faster.
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rev, err := r.store.Scan(lctx, r.space.Functions(), 0, scanPage, apply)
	if err != nil {
		return nil, 0, err
	}
	if _, err := r.store.Scan(lctx, r.space.Subscriptions(), rev, scanPage, apply); err != nil {
		return nil, 0, err
	}
	r.install(c, rev)
	if len(c.subs) >= 10_000 {
		// Reading a large configuration leaves a lot of garbage (pages of
		// etcd responses, JSON decoding) that the runtime would give back
		// to the system only slowly: give it back now.
		debug.FreeOSMemory()
	}
	if r.readyOnce.CompareAndSwap(false, true) {
		close(r.ready)
	}
	r.log.Info("configuration loaded", "revision", rev, "functions", len(c.fns), "subscriptions", len(c.subs))
	return c, rev, nil
}

func (r *Router) install(c *cache, rev int64) {
	r.snap.Store(build(rev, c.fns, c.subs, r.log))
	r.changedMu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.changedMu.Unlock()
}

// snapshotAt returns a loaded snapshot at revision rev or later, waiting
// at most wait for the configuration to catch up. It returns the current
// snapshot, and false, if it did not.
func (r *Router) snapshotAt(ctx context.Context, rev int64, wait time.Duration) (*Snapshot, bool) {
	var timeout <-chan time.Time
	for {
		r.changedMu.Lock()
		changed := r.changed
		r.changedMu.Unlock()
		snap := r.Snapshot()
		if snap.Loaded && snap.Revision >= rev {
			return snap, true
		}
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			return snap, false
		case <-ctx.Done():
			return snap, false
		}
	}
}

// follow applies watch events from rev+1 on until the watch fails. Batches
// that arrive together are applied together, and the snapshot is rebuilt
// once for all of them.
func (r *Router) follow(ctx context.Context, c *cache, rev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := r.store.Watch(wctx, r.space.Root(), rev+1)
	for {
		var wr libkv.WatchResponse
		var ok bool
		select {
		case wr, ok = <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		changed := false
		for {
			if !ok {
				return errors.New("watch channel closed")
			}
			if wr.Err != nil {
				if changed {
					r.install(c, rev)
				}
				return wr.Err
			}
			for _, ev := range wr.Events {
				changed = r.apply(c, ev) || changed
			}
			rev = max(rev, wr.Revision)
			// Take whatever else is already waiting before rebuilding.
			select {
			case wr, ok = <-ch:
				continue
			default:
			}
			break
		}
		if changed {
			r.install(c, rev)
		}
	}
}

// apply records one change in the cache and reports whether it matters
// for routing.
func (r *Router) apply(c *cache, ev libkv.Event) bool {
	switch {
	case strings.HasPrefix(ev.Key, r.space.Functions()):
		id := strings.TrimPrefix(ev.Key, r.space.Functions())
		if ev.Deleted {
			delete(c.fns, id)
			return true
		}
		var f functions.Function
		if err := json.Unmarshal(ev.Value, &f); err != nil {
			r.log.Error("skipping undecodable function", "key", ev.Key, "error", err)
			return false
		}
		inv, err := r.invokers(f)
		if err != nil {
			r.log.Error("function cannot be invoked", "functionId", f.ID, "error", err)
			delete(c.fns, id)
			return true
		}
		c.fns[id] = &Target{Function: f, Invoker: inv, Timeout: f.TimeoutOr(r.timeout)}
		return true
	case strings.HasPrefix(ev.Key, r.space.Subscriptions()):
		id := strings.TrimPrefix(ev.Key, r.space.Subscriptions())
		if ev.Deleted {
			delete(c.subs, id)
			return true
		}
		var sub subscriptions.Subscription
		if err := json.Unmarshal(ev.Value, &sub); err != nil {
			r.log.Error("skipping undecodable subscription", "key", ev.Key, "error", err)
			return false
		}
		e, err := newSubEntry(sub)
		if err != nil {
			r.log.Error("skipping invalid subscription", "key", ev.Key, "error", err)
			return false
		}
		c.subs[id] = e
		return true
	}
	return false
}

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
		if r.listening(snap, SystemFunctionInvoking) {
			err := r.emitSystem(ctx, snap, SystemFunctionInvoking, invokingData{Event: payload, FunctionID: t.Function.ID}, errkind.Forbidden)
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
		r.observer.Invoked(t.Function.ID, string(t.Function.Provider.Type), time.Since(began), err)
	}
	if !system {
		return out, err
	}
	// The function has run: plugins can no longer stop anything, so
	// their answers to these two are only logged.
	if err != nil {
		if r.listening(snap, SystemFunctionInvocationFailed) {
			if serr := r.emitSystem(ctx, snap, SystemFunctionInvocationFailed, failedData{Event: payload, FunctionID: t.Function.ID, Error: err.Error()}, errkind.Invalid); serr != nil {
				r.log.Warn("plugin refused gateway.function.invocationFailed", "functionId", t.Function.ID, "error", serr)
			}
		}
		return out, err
	}
	if r.listening(snap, SystemFunctionInvoked) {
		if serr := r.emitSystem(ctx, snap, SystemFunctionInvoked, invokedData{Event: payload, FunctionID: t.Function.ID, Result: resultJSON(out)}, errkind.Invalid); serr != nil {
			r.log.Warn("plugin refused gateway.function.invoked", "functionId", t.Function.ID, "error", serr)
		}
	}
	return out, nil
}

// Emit accepts a custom event for asynchronous delivery to every function
// subscribed to it on path, and returns how many there are. It returns an
// Unavailable error, and accepts nothing, when the queue cannot take them
// all.
func (r *Router) Emit(ctx context.Context, ev *event.Event, path string) (int, error) {
	snap := r.Snapshot()
	subs := snap.Subscribers(ev.Event, path)
	if len(subs) == 0 {
		return 0, nil
	}
	payload := ev.AppendJSON(make([]byte, 0, 128+len(ev.Data)))
	ds := make([]Delivery, len(subs))
	for i, s := range subs {
		ds[i] = Delivery{SubscriptionID: s.SubscriptionID, FunctionID: s.FunctionID, EventID: ev.ID, Event: ev.Event, Payload: payload, Revision: snap.Revision}
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
	if !snap.HasSubscription(d.SubscriptionID) {
		return ErrSubscriptionGone
	}
	t := snap.Function(d.FunctionID)
	if t == nil {
		return errkind.New(errkind.NotFound, "function %q not found", d.FunctionID)
	}
	_, err := r.call(ctx, t, d.Payload, !d.System)
	return err
}
