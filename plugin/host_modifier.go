package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/router/pipeline"
)

// Stages returns the modifier plugins as the global stages of every
// subscription's pipeline, in the order they were given to the host (see
// pipeline.Chain for the order in which they run); nil when there are
// none.
func (h *Host) Stages() *pipeline.Stages {
	if h == nil {
		return nil
	}
	var s pipeline.Stages
	for _, p := range h.plugins {
		if !p.kinds.modifier {
			continue
		}
		m := modifierStage{p}
		if p.stages.Request {
			s.Request = append(s.Request, m)
		}
		if p.stages.Response {
			s.Response = append(s.Response, m)
		}
		if p.stages.Error {
			s.Error = append(s.Error, m)
		}
	}
	if s.Empty() {
		return nil
	}
	return &s
}

// modifierStage is a modifier plugin as a pipeline stage of each kind.
type modifierStage struct{ p *proc }

var (
	_ pipeline.RequestStage  = modifierStage{}
	_ pipeline.ResponseStage = modifierStage{}
	_ pipeline.ErrorStage    = modifierStage{}
)

func call(c pipeline.Context) Call {
	return Call{Space: c.Space, SubscriptionID: c.SubscriptionID, FunctionID: c.FunctionID, Attempt: c.Attempt, Sync: c.Sync}
}

// failed says what becomes of a call the modifier refused or could not
// make: pass true to go on unmodified (the plugin could not be asked and
// the host fails open), or the error to stop with: Forbidden for a
// refusal, Unavailable (wrapping ErrNotRunning when the plugin was down
// already, so a delivery waits without spending an attempt) otherwise.
func (m modifierStage) failed(err error) (pass bool, _ error) {
	var v *VetoError
	if errors.As(err, &v) {
		return false, errkind.Wrap(errkind.Forbidden, err, "%s", v.Msg)
	}
	if m.p.failOpen {
		return true, nil
	}
	return false, errkind.Wrap(errkind.Unavailable, fmt.Errorf("plugin %s: %w", m.p.name, err), "a plugin could not modify the call, retry later")
}

func (m modifierStage) Request(ctx context.Context, ev []byte, c pipeline.Context) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	var out []byte
	err := m.p.invoke(func(cn *conn) (err error) {
		out, err = cn.modifier.request(ModifyRequestArgs{Call: call(c), Event: ev})
		return err
	})
	if err != nil {
		if pass, err := m.failed(err); !pass {
			return nil, false, err
		}
		return ev, false, nil
	}
	return out, false, nil
}

func (m modifierStage) Response(ctx context.Context, resp event.HTTPResponse, c pipeline.Context) (event.HTTPResponse, error) {
	if err := ctx.Err(); err != nil {
		return resp, err
	}
	var out Response
	err := m.p.invoke(func(cn *conn) (err error) {
		out, err = cn.modifier.response(ModifyResponseArgs{Call: call(c), Response: resp})
		return err
	})
	if err != nil {
		if pass, err := m.failed(err); !pass {
			return resp, err
		}
		return resp, nil
	}
	if out.StatusCode < 100 || out.StatusCode > 599 {
		// A plugin's bug: the client gets what the function said.
		m.p.log.Warn("modifier returned a response with an invalid status code: ignored", "statusCode", out.StatusCode)
		return resp, nil
	}
	return out, nil
}

func (m modifierStage) Error(ctx context.Context, callErr error, c pipeline.Context) (event.HTTPResponse, bool, error) {
	if err := ctx.Err(); err != nil {
		return event.HTTPResponse{}, false, err
	}
	ce := CallError{Message: callErr.Error(), Timeout: errors.Is(callErr, functions.ErrTimeout)}
	var out *Response
	err := m.p.invoke(func(cn *conn) (err error) {
		out, err = cn.modifier.error(ModifyErrorArgs{Call: call(c), Error: ce})
		return err
	})
	if err != nil {
		if pass, err := m.failed(err); !pass {
			return event.HTTPResponse{}, false, err
		}
		return event.HTTPResponse{}, false, nil
	}
	if out == nil {
		return event.HTTPResponse{}, false, nil
	}
	if out.StatusCode < 100 || out.StatusCode > 599 {
		m.p.log.Warn("modifier turned an error into a response with an invalid status code: ignored", "statusCode", out.StatusCode)
		return event.HTTPResponse{}, false, nil
	}
	return *out, true, nil
}
