package functions

import "context"

// HopsHeader counts the calls a request has come through: the gateway
// sends it with every call it makes to a function (the http provider as
// a header; the Lambda provider in the client context), one more than
// the request that caused the call carried, and reads it on every request
// to the Events API. A function that calls the gateway back, or whose URL
// is a route of the gateway itself, thus makes the count grow by one per
// round; past the gateway's bound (-max-hops) the request is answered
// 508 Loop Detected instead of calling on. A function that calls the
// gateway while handling an event should forward the header it received.
const HopsHeader = "Event-Gateway-Hops"

type hopsKey struct{}

// WithHops returns ctx carrying the hop count of the request it serves:
// the calls that led to it (0 for a client's own request).
func WithHops(ctx context.Context, hops int) context.Context {
	return context.WithValue(ctx, hopsKey{}, hops)
}

// Hops returns the hop count WithHops gave ctx, or 0. A call made in ctx
// carries Hops(ctx)+1.
func Hops(ctx context.Context) int {
	n, _ := ctx.Value(hopsKey{}).(int)
	return n
}
