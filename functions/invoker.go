package functions

import (
	"context"
	"errors"
)

// Invoker calls one function. Implementations live in the provider
// sub-packages and must be safe for concurrent use.
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
)
