package transform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"

	"github.com/event-gateway/event-gateway/router/event"
)

// Limits and defaults.
const (
	// MaxSourceSize bounds the script source; Compile refuses a bigger one.
	MaxSourceSize = 64 << 10
	// DefaultTimeout bounds one call when Options.Timeout is zero.
	DefaultTimeout = 100 * time.Millisecond
	// DefaultMaxOutput bounds the serialized result of one call when
	// Options.MaxOutput is zero.
	DefaultMaxOutput = 6 << 20
	// MaxCallDepth bounds the script's call stack; deeper recursion
	// throws a RangeError-like uncatchable error (ErrThrown).
	MaxCallDepth = 1024
	// MaxLogMessages bounds the console messages of one call passed to
	// Options.Log; later ones are dropped.
	MaxLogMessages = 16
	// MaxLogMessage bounds one console message, in bytes; longer ones are
	// cut.
	MaxLogMessage = 1024
)

// Options configure a Program. The zero value is usable.
type Options struct {
	// Name is the script's name in positions and stacks;
	// "transform.js" if empty.
	Name string
	// Timeout bounds one call of Transform or TransformResponse, and the
	// run of the script's top level when a runtime is made;
	// DefaultTimeout if zero.
	Timeout time.Duration
	// MaxOutput bounds the JSON a call returns, in bytes;
	// DefaultMaxOutput if zero.
	MaxOutput int
	// Log receives the script's console messages (level is "log",
	// "info", "warn", "error" or "debug"), at most MaxLogMessages per
	// call, each cut to MaxLogMessage bytes. It is called synchronously
	// from the call, so it must be quick; nil makes console a no-op.
	Log func(c Context, level, msg string)
}

// Context is what a call tells the script about itself: the second
// argument of transform and transformResponse, a frozen object
// {space, subscriptionId, functionId, attempt}.
type Context struct {
	Space          string
	SubscriptionID string
	FunctionID     string
	Attempt        int
	// Sync is true for a synchronous call. Not shown to scripts; the
	// stages of modifier plugins (package pipeline) are told.
	Sync bool
}

// Program is one compiled script, safe for concurrent use. It keeps a
// pool of runtimes in which the script has run; each call takes one for
// itself.
type Program struct {
	prog      *goja.Program
	name      string
	timeout   time.Duration
	maxOutput int
	log       func(Context, string, string)
	hasT      bool
	hasR      bool
	pool      sync.Pool
}

// Compile parses and compiles source once, runs it in a fresh runtime
// to check that it defines transform or transformResponse (at least one,
// each as a function), and returns the Program. Errors: ErrSourceTooLarge;
// a *ScriptError wrapping ErrSyntax (with the position), ErrThrown or
// ErrTimeout (the top level threw or ran too long), or ErrNoFunction.
func Compile(source string, opts Options) (*Program, error) {
	if len(source) > MaxSourceSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrSourceTooLarge, len(source), MaxSourceSize)
	}
	p := &Program{
		name:      opts.Name,
		timeout:   opts.Timeout,
		maxOutput: opts.MaxOutput,
		log:       opts.Log,
	}
	if p.name == "" {
		p.name = "transform.js"
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.maxOutput <= 0 {
		p.maxOutput = DefaultMaxOutput
	}
	ast, err := parser.ParseFile(nil, p.name, source, 0, parser.WithDisableSourceMaps)
	if err != nil {
		return nil, syntaxError(err)
	}
	prog, err := goja.CompileAST(ast, false)
	if err != nil {
		return nil, syntaxError(err)
	}
	p.prog = prog
	rt, err := p.newRuntime()
	if err != nil {
		return nil, err
	}
	p.hasT, p.hasR = rt.transform != nil, rt.transformResponse != nil
	p.pool.Put(rt)
	return p, nil
}

// syntaxError turns a parser or compiler error into a *ScriptError.
func syntaxError(err error) error {
	se := &ScriptError{Err: ErrSyntax, Message: err.Error()}
	var list parser.ErrorList
	var one *parser.Error
	var cse *goja.CompilerSyntaxError
	var cre *goja.CompilerReferenceError
	switch {
	case errors.As(err, &list) && len(list) > 0:
		se.Line, se.Column, se.Message = list[0].Position.Line, list[0].Position.Column, list[0].Message
	case errors.As(err, &one):
		se.Line, se.Column, se.Message = one.Position.Line, one.Position.Column, one.Message
	case errors.As(err, &cse):
		se.Message = cse.Message
		if cse.File != nil {
			pos := cse.File.Position(cse.Offset)
			se.Line, se.Column = pos.Line, pos.Column
		}
	case errors.As(err, &cre):
		se.Message = "ReferenceError: " + cre.Message
		if cre.File != nil {
			pos := cre.File.Position(cre.Offset)
			se.Line, se.Column = pos.Line, pos.Column
		}
	}
	return se
}

// HasTransform tells whether the script defines transform.
func (p *Program) HasTransform() bool { return p.hasT }

// HasTransformResponse tells whether the script defines
// transformResponse.
func (p *Program) HasTransformResponse() bool { return p.hasR }

// Transform calls the script's transform(event, context) with event, the
// JSON envelope the subscriber would receive, parsed into a JavaScript
// value, and returns the script's result serialized as JSON, or drop
// true when it returned null or undefined. A script without transform
// returns event unchanged. See the package documentation for the rules.
func (p *Program) Transform(ctx context.Context, ev []byte, c Context) (out []byte, drop bool, err error) {
	if !p.hasT {
		return ev, false, nil
	}
	out, null, err := p.call(ctx, false, ev, c)
	if err != nil || null {
		return nil, null, err
	}
	return out, false, nil
}

// responseJSON is the response object handed to transformResponse.
type responseJSON struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// TransformResponse calls the script's transformResponse(response,
// context) with the function's response object {statusCode, headers,
// body} (body a string) and returns the response object it returned,
// read by the rules of a function's response (event.ParseHTTPResponse).
// A script without transformResponse returns resp unchanged. A body that
// is not UTF-8 text is refused (ErrInput): the script would see it
// altered.
func (p *Program) TransformResponse(ctx context.Context, resp event.HTTPResponse, c Context) (event.HTTPResponse, error) {
	if !p.hasR {
		return resp, nil
	}
	if !utf8.Valid(resp.Body) {
		return event.HTTPResponse{}, fmt.Errorf("%w: response body is not UTF-8 text", ErrInput)
	}
	in := responseJSON{StatusCode: resp.StatusCode, Headers: resp.Headers, Body: string(resp.Body)}
	if in.StatusCode == 0 {
		in.StatusCode = 200
	}
	if in.Headers == nil {
		in.Headers = map[string]string{}
	}
	b, err := json.Marshal(in)
	if err != nil {
		return event.HTTPResponse{}, fmt.Errorf("%w: %v", ErrInput, err)
	}
	s, null, err := p.call(ctx, true, b, c)
	if err != nil {
		return event.HTTPResponse{}, err
	}
	if null {
		return event.HTTPResponse{}, &ScriptError{Err: ErrResult, Message: "transformResponse returned nothing; return the response object"}
	}
	out, err := event.ParseHTTPResponse(s)
	if err != nil {
		return event.HTTPResponse{}, &ScriptError{Err: ErrResult, Message: err.Error()}
	}
	return out, nil
}
