package eventtypes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/libkv"
)

// maxRetries bounds optimistic transactions that lose a race to a
// concurrent writer before the caller is told to try again.
const maxRetries = 16

// Service stores and retrieves the event types of every space; In gives
// the view of one.
type Service struct {
	kv *libkv.Store
}

// NewService returns a Service on store kv.
func NewService(kv *libkv.Store) *Service { return &Service{kv: kv} }

// In returns the event types of one space. The space name must be valid
// (functions.ValidateSpace).
func (s *Service) In(space string) *Space { return &Space{kv: s.kv, space: space} }

// Space stores and retrieves the event types of one space.
type Space struct {
	kv    *libkv.Store
	space string
}

// Create validates and stores a new event type. Its authorizer, when it
// names one, must be a function of the space; while the event type uses
// it, the function cannot be deleted. The checks and the writes are one
// etcd transaction. The built-in http.request may be created (to give it
// an authorizer or metadata) as long as it is not stored yet.
func (s *Space) Create(ctx context.Context, et EventType) (EventType, error) {
	et.Space = s.space
	val, err := Prepare(&et)
	if err != nil {
		return EventType{}, err
	}
	key := Key(s.space, et.Name)
	conds := []libkv.Cond{libkv.Absent(key)}
	ops := PutOps(s.space, nil, &et, val)
	if et.AuthorizerID != "" {
		conds = append(conds, libkv.Exists(functions.FunctionKey(s.space, et.AuthorizerID)))
	}
	for range maxRetries {
		ok, _, err := s.kv.Txn(ctx, conds, ops)
		if err != nil {
			return EventType{}, err
		}
		if ok {
			return et, nil
		}
		// Find out which condition failed.
		if _, err := s.kv.Get(ctx, key); err == nil {
			return EventType{}, errkind.New(errkind.Conflict, "event type %q already exists", et.Name)
		} else if !errors.Is(err, libkv.ErrNotFound) {
			return EventType{}, err
		}
		if err := s.authorizerExists(ctx, et.AuthorizerID); err != nil {
			return EventType{}, err
		}
		// Both changed back meanwhile: try again.
	}
	return EventType{}, errkind.New(errkind.Conflict, "event type %q is being changed concurrently, try again", et.Name)
}

// authorizerExists returns an Invalid error when id names no function of
// the space, and nil when it does or is empty.
func (s *Space) authorizerExists(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	_, err := s.kv.Get(ctx, functions.FunctionKey(s.space, id))
	if errors.Is(err, libkv.ErrNotFound) {
		return errkind.New(errkind.Invalid, "authorizer function %q does not exist", id)
	}
	return err
}

// Get returns one event type. The built-in http.request is returned even
// when it is not stored.
func (s *Space) Get(ctx context.Context, name string) (EventType, error) {
	et, _, err := s.get(ctx, name)
	if errkind.Of(err) == errkind.NotFound && IsBuiltin(name) {
		return builtin(s.space, name), nil
	}
	return et, err
}

// get reads a stored event type and its revision.
func (s *Space) get(ctx context.Context, name string) (EventType, int64, error) {
	if err := ValidateName(name); err != nil {
		// A name that could never have been created is simply not there.
		return EventType{}, 0, errkind.New(errkind.NotFound, "event type not found")
	}
	kv, err := s.kv.Get(ctx, Key(s.space, name))
	if errors.Is(err, libkv.ErrNotFound) {
		return EventType{}, 0, errkind.New(errkind.NotFound, "event type %q not found", name)
	}
	if err != nil {
		return EventType{}, 0, err
	}
	var st stored
	if err := json.Unmarshal(kv.Value, &st); err != nil {
		return EventType{}, 0, fmt.Errorf("decode event type %q: %w", name, err)
	}
	return st.in(s.space), kv.ModRevision, nil
}

// List returns the stored event types whose metadata has every key of
// filter with its value (all of them for an empty filter), ordered by
// name. The built-in http.request is listed once stored (created, or
// updated to name an authorizer), as the 0.9 clients expect: they create
// it, and a list after deleting everything is empty.
func (s *Space) List(ctx context.Context, filter map[string]string) ([]EventType, error) {
	kvs, _, err := s.kv.List(ctx, Prefix(s.space))
	if err != nil {
		return nil, err
	}
	out := make([]EventType, 0, len(kvs))
	for _, kv := range kvs {
		v, md, err := s.decode(kv)
		if err != nil {
			return nil, err
		}
		if functions.MatchMetadata(md, filter) {
			out = append(out, v)
		}
	}
	return out, nil
}

// Update replaces the authorizer and metadata of event type name with
// those of et. The name cannot change: et.Name must be empty or name.
// Updating the built-in http.request stores it if it was not stored.
func (s *Space) Update(ctx context.Context, name string, et EventType) (EventType, error) {
	if et.Name != "" && et.Name != name {
		return EventType{}, errkind.New(errkind.Invalid, "the name of an event type cannot be changed (%q in the body, %q in the URL)", et.Name, name)
	}
	next := EventType{Space: s.space, Name: name, AuthorizerID: et.AuthorizerID, Metadata: et.Metadata}
	if err := ValidateName(name); err != nil {
		return EventType{}, errkind.New(errkind.NotFound, "event type not found")
	}
	if err := next.validate(); err != nil {
		return EventType{}, err
	}
	val, err := json.Marshal(next.stored())
	if err != nil {
		return EventType{}, fmt.Errorf("encode event type: %w", err)
	}
	key := Key(s.space, name)
	for range maxRetries {
		old, rev, err := s.get(ctx, name)
		var unchanged libkv.Cond
		switch {
		case err == nil:
			unchanged = libkv.ModRevisionIs(key, rev)
		case errkind.Of(err) == errkind.NotFound && IsBuiltin(name):
			old, unchanged = builtin(s.space, name), libkv.Absent(key)
		default:
			return EventType{}, err
		}
		conds := []libkv.Cond{unchanged}
		ops := PutOps(s.space, &old, &next, val)
		if next.AuthorizerID != "" {
			conds = append(conds, libkv.Exists(functions.FunctionKey(s.space, next.AuthorizerID)))
		}
		ok, _, err := s.kv.Txn(ctx, conds, ops)
		if err != nil {
			return EventType{}, err
		}
		if ok {
			return next, nil
		}
		if err := s.authorizerExists(ctx, next.AuthorizerID); err != nil {
			return EventType{}, err
		}
		// Changed or deleted since we read it: read it again.
	}
	return EventType{}, errkind.New(errkind.Conflict, "event type %q is being changed concurrently, try again", name)
}

// Delete removes an event type that no subscription uses (an Invalid
// error otherwise, as the 0.9 API answers 400), and its authorizer's use
// key. The built-in http.request cannot be deleted; deleting a stored
// http.request removes its authorizer and metadata, and the built-in one
// remains, so its subscriptions do not hold it back.
func (s *Space) Delete(ctx context.Context, name string) error {
	key := Key(s.space, name)
	for range maxRetries {
		old, rev, err := s.get(ctx, name)
		if errkind.Of(err) == errkind.NotFound && IsBuiltin(name) {
			return errkind.New(errkind.Invalid, "event type %q is built in and cannot be deleted", name)
		}
		if err != nil {
			return err
		}
		conds := []libkv.Cond{libkv.ModRevisionIs(key, rev)}
		if !IsBuiltin(name) {
			conds = append(conds, libkv.PrefixEmpty(UsesPrefix(s.space, name)))
		}
		ok, _, err := s.kv.Txn(ctx, conds, DeleteOps(s.space, &old))
		if err != nil || ok {
			return err
		}
		if !IsBuiltin(name) {
			uses := UsesPrefix(s.space, name)
			if _, used, _, err := s.kv.NextKey(ctx, uses, libkv.PrefixEnd(uses), 0); err != nil {
				return err
			} else if used {
				return errkind.New(errkind.Invalid, "event type %q is used by a subscription: delete its subscriptions first", name)
			}
		}
		// Changed or deleted since we read it: read it again.
	}
	return errkind.New(errkind.Conflict, "event type %q is being changed concurrently, try again", name)
}

// ListPage returns a page of the event types whose metadata match filter,
// ordered by the ids of their keys, and the id to continue after ("" at
// the end).
func (s *Space) ListPage(ctx context.Context, page functions.Page, filter map[string]string) ([]EventType, string, error) {
	return functions.ListPageOf(ctx, s.kv, Prefix(s.space), page, filter, s.decode)
}

// decode reads a stored event type and its metadata.
func (s *Space) decode(kv libkv.KV) (EventType, map[string]string, error) {
	var st stored
	if err := json.Unmarshal(kv.Value, &st); err != nil {
		return EventType{}, nil, fmt.Errorf("decode event type at %s: %w", kv.Key, err)
	}
	return st.in(s.space), st.Metadata, nil
}

// Prepare validates a new event type as Create does and returns the value
// to store.
func Prepare(et *EventType) ([]byte, error) {
	if err := et.validate(); err != nil {
		return nil, err
	}
	if IsReserved(et.Name) {
		return nil, errkind.New(errkind.Invalid, "event type names starting with %q are reserved for system events: %q", ReservedPrefix, et.Name)
	}
	val, err := json.Marshal(et.stored())
	if err != nil {
		return nil, fmt.Errorf("encode event type: %w", err)
	}
	return val, nil
}

// PutOps returns the writes that store next (encoded as val) in place of
// old (nil: none stored), with its authorizer's use key.
func PutOps(space string, old, next *EventType, val []byte) []libkv.Op {
	ops := []libkv.Op{libkv.Put(Key(space, next.Name), val)}
	var oldAuth string
	if old != nil {
		oldAuth = old.AuthorizerID
	}
	if oldAuth != next.AuthorizerID {
		if oldAuth != "" {
			ops = append(ops, libkv.Del(AuthorizerUseKey(space, oldAuth, next.Name)))
		}
		if next.AuthorizerID != "" {
			ops = append(ops, libkv.Put(AuthorizerUseKey(space, next.AuthorizerID, next.Name), nil))
		}
	}
	return ops
}

// DeleteOps returns the writes that delete the stored event type old and
// its authorizer's use key.
func DeleteOps(space string, old *EventType) []libkv.Op {
	ops := []libkv.Op{libkv.Del(Key(space, old.Name))}
	if old.AuthorizerID != "" {
		ops = append(ops, libkv.Del(AuthorizerUseKey(space, old.AuthorizerID, old.Name)))
	}
	return ops
}
