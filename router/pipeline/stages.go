package pipeline

import (
	"context"

	"github.com/event-gateway/event-gateway/router/event"
)

// The stage interfaces. A subscription's compiled *Pipeline is one of
// each (its transform, its transformResponse, and no error stage), and so
// is a modifier plugin (package plugin): both run at the same fixed points
// through a Chain.

// RequestStage changes the event just before the function is called.
type RequestStage interface {
	// Request returns the envelope to send, or drop true to send nothing
	// (the subscription does not take the event). An error stops the
	// call; its errkind says how it is answered.
	Request(ctx context.Context, ev []byte, c Context) (out []byte, drop bool, err error)
}

// ResponseStage changes the response object of a synchronous call.
type ResponseStage interface {
	Response(ctx context.Context, resp event.HTTPResponse, c Context) (event.HTTPResponse, error)
}

// ErrorStage may turn a failed synchronous call into a response.
type ErrorStage interface {
	// Error returns the response to send instead of callErr, with
	// handled true, or handled false to leave the error as it is.
	Error(ctx context.Context, callErr error, c Context) (resp event.HTTPResponse, handled bool, err error)
}

// Stages are the global stages, those of the modifier plugins, run around
// every subscription's own. A nil *Stages has none.
type Stages struct {
	Request  []RequestStage
	Response []ResponseStage
	Error    []ErrorStage
}

// Empty reports whether s has no stage.
func (s *Stages) Empty() bool {
	return s == nil || len(s.Request) == 0 && len(s.Response) == 0 && len(s.Error) == 0
}

// Wrap returns the chain of the global stages around a subscription's
// pipeline p. It allocates nothing.
func (s *Stages) Wrap(p *Pipeline) Chain {
	return Chain{global: s, sub: p}
}

// Chain is the order in which stages run: the global stages wrap the
// subscription's, like the layers of an onion.
//
//   - Request: the global stages in order, then the subscription's
//     transform. A modifier plugin thus sees the event as the gateway
//     made it, the same for every subscription, and the function gets
//     what the subscription's transform made of the modified event.
//   - Response: the subscription's transformResponse, then the global
//     stages in reverse order, so the first plugin has the last word.
//   - Error: the global stages in reverse order, the first that handles
//     the error answers; a subscription has no error stage.
//
// A stage that drops or fails ends the chain.
type Chain struct {
	global *Stages
	sub    *Pipeline
}

// HasRequest reports whether any stage changes the event.
func (c Chain) HasRequest() bool {
	return c.sub.HasRequest() || (c.global != nil && len(c.global.Request) > 0)
}

// HasResponse reports whether any stage changes the response.
func (c Chain) HasResponse() bool {
	return c.sub.HasResponse() || (c.global != nil && len(c.global.Response) > 0)
}

// HasError reports whether any stage may turn an error into a response.
func (c Chain) HasError() bool {
	return c.global != nil && len(c.global.Error) > 0
}

// Request runs the request stages on ev.
func (c Chain) Request(ctx context.Context, ev []byte, pc Context) (out []byte, drop bool, err error) {
	if c.global != nil {
		for _, s := range c.global.Request {
			if ev, drop, err = s.Request(ctx, ev, pc); err != nil || drop {
				return nil, drop, err
			}
		}
	}
	return c.sub.Request(ctx, ev, pc)
}

// Response runs the response stages on resp.
func (c Chain) Response(ctx context.Context, resp event.HTTPResponse, pc Context) (event.HTTPResponse, error) {
	resp, err := c.sub.Response(ctx, resp, pc)
	if err != nil || c.global == nil {
		return resp, err
	}
	for i := len(c.global.Response) - 1; i >= 0; i-- {
		if resp, err = c.global.Response[i].Response(ctx, resp, pc); err != nil {
			return resp, err
		}
	}
	return resp, nil
}

// Error runs the error stages on a failed call.
func (c Chain) Error(ctx context.Context, callErr error, pc Context) (event.HTTPResponse, bool, error) {
	if c.global == nil {
		return event.HTTPResponse{}, false, nil
	}
	for i := len(c.global.Error) - 1; i >= 0; i-- {
		resp, handled, err := c.global.Error[i].Error(ctx, callErr, pc)
		if err != nil || handled {
			return resp, handled, err
		}
	}
	return event.HTTPResponse{}, false, nil
}

// The subscription's pipeline is a request and a response stage.
var (
	_ RequestStage  = (*Pipeline)(nil)
	_ ResponseStage = (*Pipeline)(nil)
)
