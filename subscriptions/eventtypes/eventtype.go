// Package eventtypes holds the EventType model of the spaces
// Configuration API (/v1/spaces/<space>/eventtypes), its validation, its
// key layout and the configuration service that stores event types.
//
// Every event sent to a space has a registered type. An event type may
// name an authorizer: a function of the same space called before the
// subscribers of the event. The type http.request is built in: it exists
// in every space, stored or not.
package eventtypes

import (
	"strings"

	"github.com/event-gateway/event-gateway/functions"
)

// HTTPRequest is the built-in event type of raw HTTP requests. It exists
// in every space without being created; creating or updating it stores a
// version with an authorizer or metadata, which then wins.
const HTTPRequest = "http.request"

// ReservedPrefix starts the names of the gateway's system events. Event
// types with such names cannot be created.
const ReservedPrefix = "gateway."

// EventType is a registered type of event in a space.
type EventType struct {
	// Space is the space of the event type. It is not stored: the service
	// fills it in from the key on every read and ignores it on writes.
	Space string `json:"space"`
	Name  string `json:"name"`
	// AuthorizerID is the id of a function of the same space that
	// authorizes events of this type; empty for none.
	AuthorizerID string            `json:"authorizerId,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

// stored is what the store holds of an event type: all but the space.
type stored struct {
	Name         string            `json:"name"`
	AuthorizerID string            `json:"authorizerId,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

func (e EventType) stored() stored {
	return stored{Name: e.Name, AuthorizerID: e.AuthorizerID, Metadata: e.Metadata}
}

func (s stored) in(space string) EventType {
	return EventType{Space: space, Name: s.Name, AuthorizerID: s.AuthorizerID, Metadata: s.Metadata}
}

// IsBuiltin reports whether name is a built-in event type, which exists in
// every space whether or not it is stored.
func IsBuiltin(name string) bool { return name == HTTPRequest }

// IsReserved reports whether name is reserved for the gateway's system
// events.
func IsReserved(name string) bool { return strings.HasPrefix(name, ReservedPrefix) }

// builtin returns the built-in event type name in space, as it is when not
// stored.
func builtin(space, name string) EventType { return EventType{Space: space, Name: name} }

// ValidateName checks an event type name: the rule of function ids
// (letters, digits, '.', '-', '_'; at most 256 characters).
func ValidateName(name string) error { return functions.ValidateID("name", name) }

// validate checks the fields of an event type that a write stores.
func (e *EventType) validate() error {
	if err := ValidateName(e.Name); err != nil {
		return err
	}
	if e.AuthorizerID != "" {
		if err := functions.ValidateID("authorizerId", e.AuthorizerID); err != nil {
			return err
		}
	}
	if len(e.Metadata) == 0 {
		e.Metadata = nil
	}
	return functions.ValidateMetadata(e.Metadata)
}
