// Package upstream is the seam between whatever knows where a function's
// backends are (service discovery, through a backend-source plugin) or
// how to choose between them (a selector plugin) and the provider that
// calls them (functions/http). It holds no policy of its own: the types
// both sides share, the two interfaces the provider consumes, and
// Overrides, the table of backends pushed from outside the configuration.
//
// A provider that wants them:
//
//   - asks Source.Backends when it makes the invoker of a function (never
//     per request: a pull may cross a process boundary), and uses the
//     answer instead of the function's configured backends when found is
//     true;
//   - calls Source.Watch once, and replaces the backends of a function's
//     invoker when told of a change;
//   - asks Selector.Select on each call with several healthy backends, and
//     uses its own policy when the answer is -1.
package upstream

import (
	"context"
	"time"
)

// Backend is one endpoint of a function.
type Backend struct {
	// URL is where the backend is called.
	URL string `json:"url"`
	// Weight is its share of the traffic relative to the others'; 0 is
	// taken as 1.
	Weight int `json:"weight,omitempty"`
}

// BackendStat is a backend with what the caller measured of it, as a
// selector sees it.
type BackendStat struct {
	Backend
	// Healthy is false for a backend ejected or failing its probe.
	Healthy bool
	// Outstanding is the number of calls to it in progress.
	Outstanding int
	// Latency is a moving average of its recent calls' durations; 0 when
	// it has not been called yet.
	Latency time.Duration
	// Calls and Failures count its calls since the invoker was made.
	Calls, Failures uint64
}

// Update is a change of one function's backends. Found false means the
// source no longer knows the function: the configured backends apply
// again.
type Update struct {
	Space      string
	FunctionID string
	Backends   []Backend
	Found      bool
}

// Source gives the backends of functions from outside the configuration.
type Source interface {
	// Backends returns the backends of a function, or found false when
	// the source does not know it (the configured ones apply). It may
	// cross a process boundary: not for the request path.
	Backends(ctx context.Context, space, functionID string) (backends []Backend, found bool, err error)
	// Watch calls f with every change pushed by the source from now on,
	// one at a time, until ctx ends. It returns at once.
	Watch(ctx context.Context, f func(Update))
}

// Selector is a load-balancing policy.
type Selector interface {
	// Select returns the index in backends of the one to call, or -1 when
	// it has no opinion (the provider's own policy applies). key is what
	// a sticky policy hashes (a header or path parameter), "" if none.
	Select(ctx context.Context, key string, backends []BackendStat) (int, error)
}
