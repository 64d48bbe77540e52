// Package router is each instance's view of the configuration and the
// dispatch of events to functions. It keeps an immutable routing snapshot
// of every space, built from a read of the store at revision R and a watch
// from R+1 (sync.go), and swaps in a new one on every change, so request
// handling (dispatch.go) never takes a lock or waits on etcd.
package router

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/event-gateway/event-gateway/internal/tracing"

	"github.com/event-gateway/event-gateway/router/pipeline"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/libkv"
)

// Store is what the router needs of the configuration store.
type Store interface {
	Scan(ctx context.Context, prefix string, rev, pageSize int64, fn func(libkv.KV) error) (int64, error)
	NextKey(ctx context.Context, from, end string, rev int64) (key string, ok bool, readRev int64, err error)
	Watch(ctx context.Context, prefix string, rev int64) <-chan libkv.WatchResponse
}

// Observer is told of every function call, for metrics. Result is "ok",
// "timeout" or "failed".
type Observer interface {
	Invoked(space, functionID, provider string, d time.Duration, result string)
}

// Observers tells each of its observers of every call.
type Observers []Observer

func (os Observers) Invoked(space, functionID, provider string, d time.Duration, result string) {
	for _, o := range os {
		o.Invoked(space, functionID, provider, d, result)
	}
}

// Trail records what becomes of each accepted event (router/trail). Its
// methods are called on the request path: they must not block, and they
// must copy what they keep.
type Trail interface {
	// Accepted records an event accepted for asynchronous delivery and
	// the subscribers it matched (none: nobody gets it).
	Accepted(space, eventID, eventType string, at time.Time, subs []Subscriber)
	// Skipped records a subscriber of the event's type and path that a
	// filter left out, and why.
	Skipped(space, eventID, eventType, subscriptionID, functionID, reason string)
	// Called records the call of an accepted event's synchronous
	// subscription: began, how long it took, and its error.
	Called(space, eventID, eventType, subscriptionID, functionID string, began time.Time, took time.Duration, err error)
}

// InvokerFactory makes the invoker of a function. It is called once per
// version of a function, never on the request path. An invoker that
// implements io.Closer is closed once no new snapshot uses it.
type InvokerFactory func(functions.Function) (functions.Invoker, error)

// DefaultTimeout bounds a call to a function that sets no timeout of its
// own, unless Options says otherwise.
const DefaultTimeout = 5 * time.Second

// Options configures a Router.
type Options struct {
	Store    Store
	Invokers InvokerFactory
	// Queue takes asynchronous deliveries of custom events.
	Queue Queue
	// Plugins react to system events; nil when there are none.
	Plugins Reacters
	// Modifiers are the global pipeline stages (modifier plugins) run
	// around every subscription's own; nil when there are none.
	Modifiers *pipeline.Stages
	// Observer is told of every function call; nil when nobody watches.
	Observer Observer
	// Trail records what becomes of each accepted event; nil when the
	// event trail is off.
	Trail Trail
	// DefaultTimeout bounds a call to a function that sets no timeout.
	// Default DefaultTimeout.
	DefaultTimeout time.Duration
	// Isolation sets the bulkheads and circuit breakers of asynchronous
	// deliveries (isolation.go).
	Isolation IsolationOptions
	// Tracer makes the spans of deliveries and calls; nil when tracing is
	// off.
	Tracer *tracing.Tracer
	// TransformTimeout bounds one call of a subscription's script.
	// Default transform.DefaultTimeout.
	TransformTimeout time.Duration
	Logger           *slog.Logger
}

// Router routes events to functions, in every space.
type Router struct {
	store    Store
	invokers InvokerFactory
	queue    Queue
	plugins  Reacters
	stages   *pipeline.Stages
	observer Observer
	trail    Trail
	timeout  time.Duration
	log      *slog.Logger
	guards   guards
	// pipes compiles the pipelines of subscriptions.
	pipes  pipeline.Options
	tracer *tracing.Tracer

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
		invokers: o.Invokers,
		queue:    o.Queue,
		plugins:  o.Plugins,
		stages:   o.Modifiers,
		observer: o.Observer,
		tracer:   o.Tracer,
		trail:    o.Trail,
		timeout:  o.DefaultTimeout,
		log:      o.Logger,
		ready:    make(chan struct{}),
		changed:  make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	r.guards.o = o.Isolation
	r.guards.o.normalize()
	r.guards.log = r.log
	r.pipes = pipeline.Options{Timeout: o.TransformTimeout, Log: r.scriptLog}
	r.snap.Store(build(0, nil, nil, r.log))
	return r
}

// scriptLog writes the console messages of subscriptions' scripts, at
// debug level: a script may log per event.
func (r *Router) scriptLog(c pipeline.Context, level, msg string) {
	r.log.Debug("script: "+msg, "console", level, "space", c.Space, "subscriptionId", c.SubscriptionID, "functionId", c.FunctionID, "attempt", c.Attempt)
}

// Stages returns the stages to run around a subscription's pipeline p:
// the modifier plugins' and p's own, in the order pipeline.Chain says.
func (r *Router) Stages(p *pipeline.Pipeline) pipeline.Chain { return r.stages.Wrap(p) }

// Snapshot returns the current routing snapshot.
func (r *Router) Snapshot() *Snapshot { return r.snap.Load() }

// Ready is closed once the first full snapshot is in place.
func (r *Router) Ready() <-chan struct{} { return r.ready }
