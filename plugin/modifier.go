package plugin

import (
	"net/rpc"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/event-gateway/event-gateway/router/event"
)

// Call says which call a modifier is asked about.
type Call struct {
	Space          string
	SubscriptionID string
	FunctionID     string
	// Attempt counts the attempts of an asynchronous delivery, from 1; a
	// synchronous call is attempt 1.
	Attempt int
	// Sync is true for a synchronous call, whose response a client waits
	// for.
	Sync bool
}

// Response is a synchronous call's response object.
type Response = event.HTTPResponse

// CallError is a failed call, as an ErrorModifier sees it.
type CallError struct {
	// Message is the provider's error.
	Message string
	// Timeout is true when the function did not answer in time.
	Timeout bool
}

// RequestModifier changes the event before a function is called, for
// synchronous calls and at each attempt of an asynchronous delivery.
type RequestModifier interface {
	// ModifyRequest returns the envelope to send instead of ev (ev itself
	// to leave it). An error stops the call: a synchronous caller gets
	// 403 with its message; an asynchronous delivery is dropped, as for a
	// veto on gateway.function.invoking.
	ModifyRequest(c Call, ev []byte) ([]byte, error)
}

// ResponseModifier changes the response of a synchronous call.
type ResponseModifier interface {
	// ModifyResponse returns the response to send instead of r. An error
	// answers the client 403 with its message.
	ModifyResponse(c Call, r Response) (Response, error)
}

// ErrorModifier may turn a failed synchronous call into a response.
type ErrorModifier interface {
	// ModifyError returns the response to send instead of the error, or
	// nil to leave the error as it is.
	ModifyError(c Call, e CallError) (*Response, error)
}

// Stages says which of the modifier interfaces a modifier implements,
// asked once when the plugin starts so that the gateway calls it only at
// those points.
type Stages struct {
	Request, Response, Error bool
}

func modifierStages(impl any) Stages {
	_, req := impl.(RequestModifier)
	_, resp := impl.(ResponseModifier)
	_, e := impl.(ErrorModifier)
	return Stages{Request: req, Response: resp, Error: e}
}

type modifierPlugin struct{ impl any }

func (p *modifierPlugin) Server(*goplugin.MuxBroker) (any, error) {
	return &modifierServer{impl: p.impl}, nil
}

func (p *modifierPlugin) Client(_ *goplugin.MuxBroker, c *rpc.Client) (any, error) {
	return &modifierClient{c: c}, nil
}

// The RPC messages of a modifier. A refusal is an answer, carried in the
// reply as Veto, not an RPC error.
type (
	ModifyRequestArgs struct {
		Call  Call
		Event []byte
	}
	ModifyRequestReply struct {
		Event []byte
		Veto  string
	}
	ModifyResponseArgs struct {
		Call     Call
		Response Response
	}
	ModifyResponseReply struct {
		Response Response
		Veto     string
	}
	ModifyErrorArgs struct {
		Call  Call
		Error CallError
	}
	ModifyErrorReply struct {
		Response *Response
		Veto     string
	}
)

type modifierServer struct{ impl any }

func (s *modifierServer) Stages(_ struct{}, out *Stages) error {
	*out = modifierStages(s.impl)
	return nil
}

func vetoOf(err error) string {
	if err == nil {
		return ""
	}
	if msg := err.Error(); msg != "" {
		return msg
	}
	return "rejected by plugin"
}

func (s *modifierServer) Request(a ModifyRequestArgs, out *ModifyRequestReply) error {
	m, ok := s.impl.(RequestModifier)
	if !ok {
		out.Event = a.Event
		return nil
	}
	ev, err := m.ModifyRequest(a.Call, a.Event)
	out.Event, out.Veto = ev, vetoOf(err)
	return nil
}

func (s *modifierServer) Response(a ModifyResponseArgs, out *ModifyResponseReply) error {
	m, ok := s.impl.(ResponseModifier)
	if !ok {
		out.Response = a.Response
		return nil
	}
	r, err := m.ModifyResponse(a.Call, a.Response)
	out.Response, out.Veto = r, vetoOf(err)
	return nil
}

func (s *modifierServer) Error(a ModifyErrorArgs, out *ModifyErrorReply) error {
	m, ok := s.impl.(ErrorModifier)
	if !ok {
		return nil
	}
	r, err := m.ModifyError(a.Call, a.Error)
	out.Response, out.Veto = r, vetoOf(err)
	return nil
}

type modifierClient struct{ c *rpc.Client }

func (c *modifierClient) stages() (Stages, error) {
	var out Stages
	err := c.c.Call("Plugin.Stages", struct{}{}, &out)
	return out, err
}

func (c *modifierClient) request(a ModifyRequestArgs) ([]byte, error) {
	var out ModifyRequestReply
	if err := c.c.Call("Plugin.Request", a, &out); err != nil {
		return nil, err
	}
	if out.Veto != "" {
		return nil, &VetoError{Msg: out.Veto}
	}
	return out.Event, nil
}

func (c *modifierClient) response(a ModifyResponseArgs) (Response, error) {
	var out ModifyResponseReply
	if err := c.c.Call("Plugin.Response", a, &out); err != nil {
		return Response{}, err
	}
	if out.Veto != "" {
		return Response{}, &VetoError{Msg: out.Veto}
	}
	return out.Response, nil
}

func (c *modifierClient) error(a ModifyErrorArgs) (*Response, error) {
	var out ModifyErrorReply
	if err := c.c.Call("Plugin.Error", a, &out); err != nil {
		return nil, err
	}
	if out.Veto != "" {
		return nil, &VetoError{Msg: out.Veto}
	}
	return out.Response, nil
}
