package functions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/internal/plainjson"
)

// Kind is one provider type. A provider package implements it (see
// functions/http and functions/awslambda); the gateway registers the kinds
// it runs with in a Registry. A Kind that holds resources (a connection
// pool) may implement io.Closer: Registry.Close closes it.
type Kind interface {
	// Type is the value of "type" that this Kind serves.
	Type() ProviderType
	// NewConfig returns a pointer to an empty configuration, which the
	// Registry decodes a function's provider fields into with encoding/json
	// (struct tags name the fields) and encodes to store it.
	NewConfig() Config
	// Invoker returns the invoker of function f, whose provider
	// configuration, decoded from what was stored, is c (from NewConfig).
	// It is called once per version of a function, not per call.
	Invoker(f Function, c Config) (Invoker, error)
}

// Config is the decoded configuration of one function's provider. The
// Registry decodes a fresh Config for every use, so its methods may change
// it in place.
type Config interface {
	// Validate checks a configuration a client sent. Its errors are
	// errkind.Invalid and name fields as the API shows them:
	// "provider.url is required for type http".
	Validate() error
	// Redact replaces each secret that is set by Redacted, so that the
	// configuration can be shown to a client.
	Redact()
	// KeepSecrets replaces each secret sent as Redacted by the stored one.
	// stored is the configuration being replaced, of the same Kind, with
	// the secret possibly empty; it is nil when nothing of this type is
	// stored (a new function, or a change of provider type). A secret sent
	// as Redacted must then be refused: storing the marker as a credential
	// would fail every call with a puzzling authentication error.
	KeepSecrets(stored Config) error
}

// Redacted is what API responses show in place of a secret. Sending it back
// in an update keeps the stored secret, so a client can GET, edit and PUT.
const Redacted = "*****"

// Registry knows the provider types a gateway runs with. Build one with
// NewRegistry in main and pass it to what needs it; it is safe for
// concurrent use and never changes after NewRegistry.
type Registry struct {
	kinds map[ProviderType]Kind
	order []Kind // as registered: for error messages and Close
}

// NewRegistry returns a Registry of kinds. Two kinds of one type, or a
// kind without a type, are programming errors and panic, as
// http.ServeMux.Handle does for a pattern registered twice.
func NewRegistry(kinds ...Kind) *Registry {
	r := &Registry{kinds: make(map[ProviderType]Kind, len(kinds))}
	for _, k := range kinds {
		t := k.Type()
		if t == "" {
			panic(fmt.Sprintf("functions: provider kind %T has no type", k))
		}
		if _, dup := r.kinds[t]; dup {
			panic(fmt.Sprintf("functions: provider type %q registered twice", t))
		}
		r.kinds[t] = k
		r.order = append(r.order, k)
	}
	return r
}

// Validate checks f as a client sent it for a new function: its id, its
// timeout and its provider, strictly (an unknown field is an error). It
// returns f with the provider configuration in canonical form, as it is
// to be stored.
func (r *Registry) Validate(f Function) (Function, error) {
	return r.check(f, nil)
}

// Merge checks update, sent by a client to replace the stored function
// old, as Validate does, after taking the value of each secret sent as
// Redacted from old. A change of provider type keeps no secret.
func (r *Registry) Merge(old, update Function) (Function, error) {
	return r.check(update, &old)
}

func (r *Registry) check(f Function, old *Function) (Function, error) {
	if err := f.Validate(); err != nil {
		return Function{}, err
	}
	k, err := r.kind(f.Provider.Type)
	if err != nil {
		return Function{}, err
	}
	c := k.NewConfig()
	if err := decodeStrict(f.Provider, c); err != nil {
		return Function{}, err
	}
	var stored Config
	if old != nil && old.Provider.Type == f.Provider.Type {
		stored = k.NewConfig()
		if err := json.Unmarshal(configOrEmpty(old.Provider.Config), stored); err != nil {
			return Function{}, fmt.Errorf("decode stored provider of function %q: %w", old.ID, err)
		}
	}
	if err := c.KeepSecrets(stored); err != nil {
		return Function{}, err
	}
	if err := c.Validate(); err != nil {
		return Function{}, err
	}
	if f.Provider.Config, err = plainjson.Marshal(c); err != nil {
		return Function{}, fmt.Errorf("encode provider of function %q: %w", f.ID, err)
	}
	return f, nil
}

// Redact returns f as a client may see it: every secret replaced by
// Redacted. A provider whose type or configuration the Registry cannot
// read is shown by its type alone, since its secrets cannot be told apart.
func (r *Registry) Redact(f Function) Function {
	k, ok := r.kinds[f.Provider.Type]
	c := Config(nil)
	if ok {
		c = k.NewConfig()
		if json.Unmarshal(configOrEmpty(f.Provider.Config), c) != nil {
			c = nil
		}
	}
	f.Provider.Config = nil
	if c == nil {
		return f
	}
	c.Redact()
	if b, err := plainjson.Marshal(c); err == nil {
		f.Provider.Config = b
	}
	return f
}

// Invoker returns the invoker of a stored function. Its signature is the
// router's InvokerFactory. The configuration is read leniently: a field
// this gateway does not know (written by a newer one) is ignored.
func (r *Registry) Invoker(f Function) (Invoker, error) {
	k, ok := r.kinds[f.Provider.Type]
	if !ok {
		return nil, fmt.Errorf("function %q: provider type %q is not supported", f.ID, f.Provider.Type)
	}
	c := k.NewConfig()
	if err := json.Unmarshal(configOrEmpty(f.Provider.Config), c); err != nil {
		return nil, fmt.Errorf("function %q: decode provider: %w", f.ID, err)
	}
	inv, err := k.Invoker(f, c)
	if err != nil {
		return nil, fmt.Errorf("function %q: %w", f.ID, err)
	}
	return inv, nil
}

// Close closes every registered kind that implements io.Closer, in the
// reverse order of registration, and returns their errors joined.
func (r *Registry) Close() error {
	var errs []error
	for i := len(r.order) - 1; i >= 0; i-- {
		if c, ok := r.order[i].(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close provider %q: %w", r.order[i].Type(), err))
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Registry) kind(t ProviderType) (Kind, error) {
	if t == "" {
		return nil, errkind.New(errkind.Invalid, "provider.type is required")
	}
	if k, ok := r.kinds[t]; ok {
		return k, nil
	}
	return nil, errkind.New(errkind.Invalid, "provider.type %q is not supported (use %s)", t, r.typeList())
}

// typeList is `"http" or "awslambda"`, in the order of registration.
func (r *Registry) typeList() string {
	var b strings.Builder
	for i, k := range r.order {
		switch {
		case i == 0:
		case i == len(r.order)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", k.Type())
	}
	return b.String()
}

func configOrEmpty(c json.RawMessage) []byte {
	if len(bytes.TrimSpace(c)) == 0 {
		return []byte("{}")
	}
	return c
}

// decodeStrict decodes p's configuration into c, refusing unknown fields,
// with the messages the Configuration API gives for the rest of a request
// (api.decodeError): the provider's fields are decoded here, not there,
// because only the Kind knows them.
func decodeStrict(p Provider, c Config) error {
	dec := json.NewDecoder(bytes.NewReader(configOrEmpty(p.Config)))
	dec.DisallowUnknownFields()
	err := dec.Decode(c)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return errkind.New(errkind.Invalid, "field provider.%s must be a JSON %s", te.Field, errkind.JSONType(te.Type.Kind()))
	case errors.As(err, &te):
		return errkind.New(errkind.Invalid, "field provider must be a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		// encoding/json names the field without its path: find it, so
		// that a field of a nested object is not reported as the
		// provider's own.
		var v any
		if path, ok := fieldPath(json.Unmarshal(configOrEmpty(p.Config), &v), v, name); ok && path != name {
			return errkind.New(errkind.Invalid, "unknown field %q: provider of type %s does not take %s there", "provider."+path, p.Type, name)
		}
		return errkind.New(errkind.Invalid, "unknown field %q: provider of type %s does not take %s", "provider."+name, p.Type, name)
	default:
		return errkind.Wrap(errkind.Invalid, err, "provider could not be read")
	}
}

// fieldPath returns the path of the first member named name in v, a
// decoded JSON value ("backends[1].port"), breadth first so that a
// top-level member wins. err is that of decoding v: nothing is found then.
func fieldPath(err error, v any, name string) (string, bool) {
	if err != nil {
		return "", false
	}
	type node struct {
		path string
		v    any
	}
	queue := []node{{"", v}}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		switch x := n.v.(type) {
		case map[string]any:
			if _, ok := x[name]; ok {
				if n.path == "" {
					return name, true
				}
				return n.path + "." + name, true
			}
			for k, c := range x {
				p := k
				if n.path != "" {
					p = n.path + "." + k
				}
				queue = append(queue, node{p, c})
			}
		case []any:
			for i, c := range x {
				queue = append(queue, node{fmt.Sprintf("%s[%d]", n.path, i), c})
			}
		}
	}
	return "", false
}
