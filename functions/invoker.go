package functions

import (
	"context"
	"errors"
)

// Invoker calls one function. Implementations live in the provider
// sub-packages and must be safe for concurrent use.
//
// An Invoker may also implement io.Closer, when it holds something on
// behalf of its function (the Lambda provider's cached client). Whoever
// made it through Registry.Invoker closes it once no new call will pick it,
// e.g. when the function's configuration is replaced. Close must be
// idempotent and must not cut short calls in flight; an Invoker may even
// serve calls after Close, which a caller that loaded it just before the
// replacement may still make.
type Invoker interface {
	// Invoke sends payload to the function and returns its raw response.
	// It returns an error wrapping ErrFunctionFailed when the function ran
	// and reported a failure, ErrTimeout when ctx's deadline passed first,
	// and another error when the function could not be reached.
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// Errors that Invokers wrap, so callers can map them to statuses.
var (
	// ErrFunctionFailed: the function answered with an error.
	ErrFunctionFailed = errors.New("function failed")
	// ErrTimeout: the function did not answer before the deadline.
	ErrTimeout = errors.New("function timed out")
	// ErrResponseTooLarge: the function's response exceeded the limit.
	ErrResponseTooLarge = errors.New("function response too large")
	// ErrLoopDetected: the function's URL is a gateway, which answered
	// 508 Loop Detected: the request went round more than its bound.
	ErrLoopDetected = errors.New("loop detected")
)

type prefixKey struct{}

// WithResponsePrefix tells the Invoker called with the returned context
// that its caller needs at most n bytes of the response (an asynchronous
// delivery, which only shows the response to the subscribers of
// gateway.function.invoked). A longer response is then not an error, as
// it is past the provider's response limit: the Invoker returns its first
// n bytes (at most the limit) and discards the rest unread.
func WithResponsePrefix(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, prefixKey{}, n)
}

// ResponsePrefix returns the bound set by WithResponsePrefix, if any.
func ResponsePrefix(ctx context.Context) (n int64, ok bool) {
	n, ok = ctx.Value(prefixKey{}).(int64)
	return n, ok
}

// ErrNoBackend: every backend of the function is ejected or unhealthy, so
// the call was not made. It says nothing of the event: a synchronous call
// is answered 503, an asynchronous delivery waits without spending an
// attempt.
var ErrNoBackend = errors.New("no backend of the function is available")

type affinityKey struct{}

// Affine is implemented by an Invoker that sends calls with the same
// affinity key to the same backend. It names what the key is taken from:
// a request header, or a path parameter of the http route (one of the two
// is set). A caller serving a request sets the key with WithAffinityKey.
type Affine interface {
	AffinityOn() (header, param string)
}

// WithAffinityKey returns ctx carrying the affinity key of the call made
// in it: the value of the header or path parameter its Invoker's
// AffinityOn names, taken from the request the call serves. An empty key
// says the request has none: the Invoker then need not look for one in
// the payload, and shares the call as it does calls without a key.
func WithAffinityKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, affinityKey{}, key)
}

// AffinityKey returns the key WithAffinityKey gave ctx, if any.
func AffinityKey(ctx context.Context) (key string, ok bool) {
	key, ok = ctx.Value(affinityKey{}).(string)
	return key, ok
}
