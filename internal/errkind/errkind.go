// Package errkind classifies errors by what a caller can do about them, so the
// HTTP layer can map any error from the services to a status code without
// knowing where it came from.
package errkind

import (
	"errors"
	"fmt"
	"reflect"
)

// Kind is the class of an error.
type Kind int

// The kinds an API client can tell apart.
const (
	Internal    Kind = iota // a bug or an unexpected failure: details are not shown to clients
	Invalid                 // the request is malformed or fails validation
	NotFound                // the thing the request names does not exist
	Conflict                // the request contradicts the current state
	Unavailable             // a dependency (the store) cannot be reached: try again later
	TooLarge                // the request is larger than allowed
	Forbidden               // a policy (a plugin) refused the request
)

// Error is an error with a kind and a message safe to show to API clients.
type Error struct {
	Kind Kind
	// Msg is shown to API clients as it is: it must not carry internal details.
	Msg string
	// Err is the underlying cause, for logs; it may be nil.
	Err error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	// A cause that is its own client-safe message (a plugin's veto, a
	// decoder's error) is wrapped with that message: say it once.
	cause := e.Err.Error()
	if cause == e.Msg {
		return e.Msg
	}
	return e.Msg + ": " + cause
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k with a formatted client-safe message.
func New(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k with a client-safe message and cause err.
func Wrap(k Kind, err error, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...), Err: err}
}

// Of returns the kind of the outermost *Error in err's chain, or Internal.
func Of(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Message returns the client-safe message of the outermost *Error in err's
// chain, or "" when there is none.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return ""
}

// JSONType names a Go kind as the JSON type a client should send, for the
// messages of decoding errors.
func JSONType(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "object"
	default:
		return "number"
	}
}
