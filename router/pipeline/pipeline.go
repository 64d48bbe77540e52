// Package pipeline is what a subscription does to an event on its way to
// the function and to the function's answer on its way back: a filter (an
// event pattern, package filter) and transformations (JavaScript, package
// transform). A subscription's pipeline is compiled once per
// configuration version, when the router reads the subscription, and run
// for each event from then on.
//
// The stages run at fixed points:
//
//   - Match, where the event is routed: an event the filter does not
//     match is not queued for the subscriber (asynchronous) or not sent to
//     its function (synchronous), and costs it nothing more;
//   - Request, just before the function is called (for asynchronous
//     deliveries, at each attempt, so that context.attempt counts);
//   - Response, on the function's response object, for synchronous
//     subscriptions.
//
// A subscription without a filter or transformation has a nil *Pipeline,
// whose methods do nothing, so it costs what it cost before pipelines.
package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/router/pipeline/filter"
	"github.com/event-gateway/event-gateway/router/pipeline/transform"
)

// Spec is a subscription's pipeline as the user writes it: the fields
// filter, transform and transformResponse.
type Spec struct {
	// Filter is an event pattern (a JSON object), or empty.
	Filter json.RawMessage
	// Transform is JavaScript defining transform(event, context).
	Transform string
	// TransformResponse is JavaScript defining
	// transformResponse(response, context).
	TransformResponse string
}

// Empty reports whether the spec asks for nothing.
func (s Spec) Empty() bool {
	return len(bytes.TrimSpace(s.Filter)) == 0 && s.Transform == "" && s.TransformResponse == ""
}

// Options configure the compilation of pipelines.
type Options struct {
	// Timeout bounds one call of a script; transform.DefaultTimeout if
	// zero.
	Timeout time.Duration
	// Log receives the scripts' console messages; nil drops them.
	Log func(c transform.Context, level, msg string)
}

// Context is what a script is told about the call.
type Context = transform.Context

// Pipeline is a compiled Spec. A nil *Pipeline is the empty one: it
// matches everything and changes nothing.
type Pipeline struct {
	filter   *filter.Filter
	request  *transform.Program
	response *transform.Program
}

// Error is a compilation error: the field at fault and what is wrong,
// with the place in it (Path and Offset for a filter, Line and Column
// for a script) when known.
type Error struct {
	// Field is "filter", "transform" or "transformResponse".
	Field string
	// Path is the place in the pattern, as filter.PatternError.Path.
	Path string
	// Offset is the byte offset in the pattern; -1 for a script.
	Offset int
	// Line and Column are the place in the script, from 1; 0 if unknown.
	Line, Column int
	// Reason says what is wrong.
	Reason string
	// Err is the error of package filter or transform.
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.Offset >= 0 && e.Path != "":
		return fmt.Sprintf("%s: at %s: %s (offset %d)", e.Field, e.Path, e.Reason, e.Offset)
	case e.Offset >= 0:
		return fmt.Sprintf("%s: %s (offset %d)", e.Field, e.Reason, e.Offset)
	case e.Line > 0:
		return fmt.Sprintf("%s: line %d, column %d: %s", e.Field, e.Line, e.Column, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// Compile checks and compiles a spec. It returns nil for an empty one.
// Every error is an *Error.
func Compile(s Spec, o Options) (*Pipeline, error) {
	if s.Empty() {
		return nil, nil
	}
	p := &Pipeline{}
	if f := bytes.TrimSpace(s.Filter); len(f) > 0 && !bytes.Equal(f, []byte("null")) {
		var err error
		if p.filter, err = filter.Compile(f); err != nil {
			var pe *filter.PatternError
			if errors.As(err, &pe) {
				return nil, &Error{Field: "filter", Path: pe.Path, Offset: pe.Offset, Reason: pe.Reason, Err: err}
			}
			return nil, &Error{Field: "filter", Offset: -1, Reason: err.Error(), Err: err}
		}
	}
	var err error
	if p.request, err = compileScript("transform", s.Transform, o, (*transform.Program).HasTransform, "transformResponse"); err != nil {
		return nil, err
	}
	if p.response, err = compileScript("transformResponse", s.TransformResponse, o, (*transform.Program).HasTransformResponse, "transform"); err != nil {
		return nil, err
	}
	if p.filter == nil && p.request == nil && p.response == nil {
		return nil, nil // a null filter and nothing else
	}
	return p, nil
}

// compileScript compiles the script of one field, which must define the
// function named as the field (has tells) and not the other one, which
// belongs in the other field: a script defining both would have one of
// them silently ignored.
func compileScript(field, src string, o Options, has func(*transform.Program) bool, other string) (*transform.Program, error) {
	if src == "" {
		return nil, nil
	}
	prog, err := transform.Compile(src, transform.Options{Name: field + ".js", Timeout: o.Timeout, Log: o.Log})
	var se *transform.ScriptError
	switch {
	case errors.Is(err, transform.ErrNoFunction):
		return nil, &Error{Field: field, Offset: -1, Reason: fmt.Sprintf("the script must define function %s", field), Err: err}
	case errors.As(err, &se):
		// The kind without the package's prefix: the field says where.
		reason := strings.TrimPrefix(se.Err.Error(), "transform: ")
		if se.Message != "" {
			reason += ": " + se.Message
		}
		return nil, &Error{Field: field, Offset: -1, Line: se.Line, Column: se.Column, Reason: reason, Err: err}
	case err != nil:
		return nil, &Error{Field: field, Offset: -1, Reason: strings.TrimPrefix(err.Error(), "transform: "), Err: err}
	}
	if !has(prog) {
		return nil, &Error{Field: field, Offset: -1, Reason: fmt.Sprintf("the script must define function %s", field), Err: transform.ErrNoFunction}
	}
	if field == "transform" && prog.HasTransformResponse() || field == "transformResponse" && prog.HasTransform() {
		return nil, &Error{Field: field, Offset: -1, Reason: fmt.Sprintf("the script defines %s too: put it in the field %q", other, other), Err: transform.ErrNoFunction}
	}
	return prog, nil
}

// HasFilter reports whether the pipeline filters events.
func (p *Pipeline) HasFilter() bool { return p != nil && p.filter != nil }

// HasRequest reports whether the pipeline transforms events.
func (p *Pipeline) HasRequest() bool { return p != nil && p.request != nil }

// HasResponse reports whether the pipeline transforms responses.
func (p *Pipeline) HasResponse() bool { return p != nil && p.response != nil }

// Match reports whether the filter matches doc, the event as the
// subscriber would receive it (for http events, its data). Without a
// filter everything matches.
func (p *Pipeline) Match(doc []byte) bool {
	return p == nil || p.filter == nil || p.filter.Match(doc)
}

// Request runs the transform on ev, the envelope the function would get,
// and returns the one to send, or drop true when the script returned
// null. Without a transform it returns ev.
func (p *Pipeline) Request(ctx context.Context, ev []byte, c Context) (out []byte, drop bool, err error) {
	if p == nil || p.request == nil {
		return ev, false, nil
	}
	return p.request.Transform(ctx, ev, c)
}

// Response runs transformResponse on a function's response object.
// Without one it returns resp.
func (p *Pipeline) Response(ctx context.Context, resp event.HTTPResponse, c Context) (event.HTTPResponse, error) {
	if p == nil || p.response == nil {
		return resp, nil
	}
	return p.response.TransformResponse(ctx, resp, c)
}
