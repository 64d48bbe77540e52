package transform

import (
	"errors"
	"fmt"
)

// Kinds of failure. Every error of this package wraps one of them (or,
// for a call cut short by its context, context.Canceled or
// context.DeadlineExceeded), so callers test with errors.Is; errors.As
// with *ScriptError gives the position in the script.
var (
	// ErrSourceTooLarge: the source is longer than MaxSourceSize.
	ErrSourceTooLarge = errors.New("transform: source too large")
	// ErrSyntax: the source does not parse or compile.
	ErrSyntax = errors.New("transform: syntax error")
	// ErrNoFunction: the source defines neither transform nor
	// transformResponse as a function, or defines one of them as
	// something other than a function.
	ErrNoFunction = errors.New("transform: no transform function")
	// ErrThrown: the script threw (or the call stack overflowed).
	ErrThrown = errors.New("transform: script threw")
	// ErrTimeout: the call ran longer than Options.Timeout and was
	// interrupted.
	ErrTimeout = errors.New("transform: timed out")
	// ErrResult: the script returned something this package does not
	// deliver (a number, a string, an array, a value JSON cannot
	// represent).
	ErrResult = errors.New("transform: invalid result")
	// ErrOutputTooLarge: the result serialized to more than
	// Options.MaxOutput bytes.
	ErrOutputTooLarge = errors.New("transform: output too large")
	// ErrInput: the value handed in cannot be given to the script (an
	// event that is not JSON, a response body that is not UTF-8 text).
	ErrInput = errors.New("transform: invalid input")
	// ErrInternal: goja panicked; the runtime it happened in is dropped.
	ErrInternal = errors.New("transform: internal error")
)

// ScriptError is an error of one script: where it happened (Line and
// Column, from 1; 0 when unknown) and what (Message, as the script would
// print it, e.g. "TypeError: Cannot read property 'x' of undefined").
// Err is the kind: one of the Err* values above, or the context's error.
type ScriptError struct {
	Err     error
	Line    int
	Column  int
	Message string
}

func (e *ScriptError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Err.Error()
	} else {
		msg = e.Err.Error() + ": " + msg
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d, column %d)", msg, e.Line, e.Column)
	}
	return msg
}

func (e *ScriptError) Unwrap() error { return e.Err }
