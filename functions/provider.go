package functions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// ProviderType names the kind of backend a function runs on. Each type is
// served by a Kind that the gateway registers in its Registry.
type ProviderType string

// Provider says how to invoke a function: its type, and the configuration
// that type defines, kept apart as the raw JSON object of the provider's own
// fields. The functions package does not know those fields; the Kind of the
// type decodes them (see Registry). Keeping the two apart lets one function
// be shown both as the first-generation API and etcd store it,
//
//	"provider": {"type": "http", "url": "…"}
//
// and with the type outside the provider's fields, as later APIs do.
type Provider struct {
	Type ProviderType
	// Config is a JSON object of the provider-specific fields, without
	// "type". It is in canonical form (as the Kind's configuration
	// encodes) once it has passed Registry.Validate or Registry.Merge.
	Config json.RawMessage
}

// MarshalJSON writes the provider as one object, "type" first and then the
// configuration's fields in their order: byte for byte what the gateway has
// always stored, so stored data and API answers keep their shape.
func (p Provider) MarshalJSON() ([]byte, error) {
	typ, err := json.Marshal(p.Type)
	if err != nil {
		return nil, err
	}
	cfg := bytes.TrimSpace(p.Config)
	if len(cfg) == 0 || bytes.Equal(cfg, []byte("null")) {
		cfg = []byte("{}")
	}
	if cfg[0] != '{' {
		return nil, fmt.Errorf("provider configuration of type %q is not a JSON object", p.Type)
	}
	b := make([]byte, 0, len(`{"type":,`)+len(typ)+len(cfg))
	b = append(b, `{"type":`...)
	b = append(b, typ...)
	if rest := bytes.TrimSpace(cfg[1:]); len(rest) > 0 && rest[0] != '}' {
		b = append(b, ',')
	}
	return append(b, cfg[1:]...), nil
}

// UnmarshalJSON splits an object into "type" and the rest. It checks no
// field: that is the Kind's job, strictly for what a client sends
// (Registry.Validate) and leniently for what is stored (Registry.Invoker),
// so that a field written by a newer gateway does not stop an older one in
// the same cluster from routing to the function.
func (p *Provider) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		return nil // as encoding/json leaves a struct alone for null
	case len(data) == 0 || data[0] != '{':
		// encoding/json adds the path of the enclosing field:
		// "field provider must be a JSON object".
		return &json.UnmarshalTypeError{Value: jsonValueKind(data), Type: reflect.TypeFor[Provider]()}
	}
	typ, cfg, err := splitType(data)
	if err != nil {
		return err
	}
	*p = Provider{Config: cfg}
	if typ != nil {
		if err := json.Unmarshal(typ, &p.Type); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return &json.UnmarshalTypeError{Value: te.Value, Type: te.Type, Field: "type"}
			}
			return err
		}
	}
	return nil
}

// splitType returns the value of the "type" member of obj and obj without
// it, keeping the other members and their order as they are, so that a
// Kind's strict decoding sees exactly what the client sent. Like
// encoding/json for a struct field, it matches "type" regardless of case
// and takes the last one.
func splitType(obj []byte) (typ, rest json.RawMessage, err error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, nil, err
	}
	rest = []byte{'{'}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, nil, err
		}
		if strings.EqualFold(key, "type") {
			typ = val
			continue
		}
		if len(rest) > 1 {
			rest = append(rest, ',')
		}
		k, _ := json.Marshal(key)
		rest = append(rest, k...)
		rest = append(rest, ':')
		rest = append(rest, val...)
	}
	return typ, append(rest, '}'), nil
}

// jsonValueKind names the JSON type of a value, as json.UnmarshalTypeError
// does.
func jsonValueKind(v []byte) string {
	switch {
	case len(v) == 0:
		return "value"
	case v[0] == '"':
		return "string"
	case v[0] == '[':
		return "array"
	case v[0] == 't' || v[0] == 'f':
		return "bool"
	default:
		return "number"
	}
}
