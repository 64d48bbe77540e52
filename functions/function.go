// Package functions holds the Function model, its validation, its etcd key
// layout and the configuration service that stores functions. What a
// provider type means (its fields, secrets and invoker) lives in a
// sub-package per type, registered in a Registry that main builds.
package functions

import (
	"regexp"
	"time"

	"github.com/event-gateway/event-gateway/internal/errkind"
)

// Function is a registered function: an id and where to reach it.
type Function struct {
	// Space is the space of the function, which its key names: it is not
	// stored in its value nor shown by the API. The router sets it before
	// asking for the function's invoker (a provider may look the function
	// up by space and id, as the backend sources do).
	Space    string   `json:"-"`
	ID       string   `json:"functionId"`
	Provider Provider `json:"provider"`
	// Timeout bounds one invocation, as a duration string ("5s", "500ms").
	// Empty means the gateway's default (-function-timeout).
	Timeout string `json:"timeout,omitempty"`
	// MaxInFlight bounds the asynchronous deliveries to the function made
	// at once by one gateway instance (its bulkhead). 0 means the
	// gateway's default (-function-max-in-flight).
	MaxInFlight int `json:"maxInFlight,omitempty"`
	// Metadata is the user's own labels, set through the spaces API.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// MaxMaxInFlight is the largest MaxInFlight a function may set.
const MaxMaxInFlight = 100_000

// MaxInFlightOr returns the function's bound on deliveries in flight, or
// def when it sets none.
func (f *Function) MaxInFlightOr(def int) int {
	if f.MaxInFlight <= 0 {
		return def
	}
	return f.MaxInFlight
}

// MaxTimeout is the longest per-function timeout, as long as AWS Lambda's.
const MaxTimeout = 15 * time.Minute

// TimeoutOr returns the function's timeout, or def when it has none.
// Validate has checked the value, so a parse error cannot happen here.
func (f *Function) TimeoutOr(def time.Duration) time.Duration {
	if f.Timeout == "" {
		return def
	}
	d, err := time.ParseDuration(f.Timeout)
	if err != nil || d <= 0 {
		return def
	}
	return d
}

// maxIDLen bounds ids, which become etcd keys and URL segments.
const maxIDLen = 256

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9.\-_]+$`)

// ValidateID checks a function id (and, by the same rule, an event name,
// a space name, an event type name): 1 to 256 letters, digits, '.', '-'
// and '_', but not "." or "..".
func ValidateID(field, id string) error {
	switch {
	case id == "":
		return errkind.New(errkind.Invalid, "%s is required", field)
	case len(id) > maxIDLen:
		return errkind.New(errkind.Invalid, "%s is longer than %d characters", field, maxIDLen)
	case !idPattern.MatchString(id):
		return errkind.New(errkind.Invalid, "%s %q may contain only letters, digits, '.', '-' and '_'", field, id)
	case id == "." || id == "..":
		// Path segments of their own: in a URL (/v1/functions/..) or a
		// key they name something else.
		return errkind.New(errkind.Invalid, "%s %q is not allowed", field, id)
	}
	return nil
}

// Validate checks the fields of f that do not depend on its provider
// type. Registry.Validate checks the whole function.
func (f *Function) Validate() error {
	if err := ValidateID("functionId", f.ID); err != nil {
		return err
	}
	if err := ValidateMetadata(f.Metadata); err != nil {
		return err
	}
	if f.Timeout != "" {
		d, err := time.ParseDuration(f.Timeout)
		if err != nil || d < time.Millisecond || d > MaxTimeout {
			return errkind.New(errkind.Invalid, "timeout %q must be a duration from 1ms to %v, such as \"5s\" or \"500ms\"", f.Timeout, MaxTimeout)
		}
	}
	if f.MaxInFlight < 0 || f.MaxInFlight > MaxMaxInFlight {
		return errkind.New(errkind.Invalid, "maxInFlight %d must be from 1 to %d (or absent for the gateway's default)", f.MaxInFlight, MaxMaxInFlight)
	}
	return nil
}
