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
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
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
	return ValidateMetadata(e.Metadata)
}

// Bounds of the metadata of a resource (event types, CORS configurations).
const (
	MaxMetadataKeys     = 64
	MaxMetadataKeyLen   = 256  // bytes
	MaxMetadataValueLen = 1024 // bytes
)

// ValidateMetadata checks the arbitrary metadata of a resource against
// the bounds above. Keys are non-empty.
func ValidateMetadata(m map[string]string) error {
	if len(m) > MaxMetadataKeys {
		return errkind.New(errkind.Invalid, "metadata has %d keys, more than %d", len(m), MaxMetadataKeys)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the same key every time
	for _, k := range keys {
		v := m[k]
		switch {
		case k == "":
			return errkind.New(errkind.Invalid, "metadata has an empty key")
		case len(k) > MaxMetadataKeyLen:
			return errkind.New(errkind.Invalid, "metadata key %.32q... is longer than %d bytes", k, MaxMetadataKeyLen)
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			return errkind.New(errkind.Invalid, "metadata %q is not valid UTF-8", k)
		case len(v) > MaxMetadataValueLen:
			return errkind.New(errkind.Invalid, "metadata.%s is longer than %d bytes", k, MaxMetadataValueLen)
		}
	}
	return nil
}

// MatchMetadata reports whether metadata m has every key of filter with
// the same value. An empty filter matches everything.
func MatchMetadata(m, filter map[string]string) bool {
	for k, want := range filter {
		if got, ok := m[k]; !ok || got != want {
			return false
		}
	}
	return true
}

// FilterPrefix starts the query parameters that filter lists on metadata,
// as in ?metadata.service=users.
const FilterPrefix = "metadata."

// ParseFilter turns the query of a list request into a metadata filter:
// metadata.<key>=<value> requires metadata key <key> to be <value>. Any
// other parameter, or one given twice, is refused: a filter that is
// silently ignored would list what the client did not ask for.
func ParseFilter(q url.Values) (map[string]string, error) {
	if len(q) == 0 {
		return nil, nil
	}
	filter := make(map[string]string, len(q))
	for name, vals := range q {
		key, ok := strings.CutPrefix(name, FilterPrefix)
		if !ok || key == "" {
			return nil, errkind.New(errkind.Invalid, "query parameter %q is not a filter: filters have the form metadata.<key>=<value>", name)
		}
		if len(vals) != 1 {
			return nil, errkind.New(errkind.Invalid, "filter %q is given %d times", name, len(vals))
		}
		filter[key] = vals[0]
	}
	return filter, nil
}
