package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/internal/plainjson"
	"github.com/event-gateway/event-gateway/libkv"
)

// maxRetries bounds optimistic transactions that lose a race to a
// concurrent writer before the caller is told to try again.
const maxRetries = 16

// Service stores and retrieves functions in one space. Functions it
// returns carry their secrets: show them to clients through Redact.
type Service struct {
	kv        *libkv.Store
	space     string
	providers *Registry
}

// NewService returns a Service for the given space of store kv, accepting
// the provider types of providers.
func NewService(kv *libkv.Store, space string, providers *Registry) *Service {
	return &Service{kv: kv, space: space, providers: providers}
}

// Create registers a new function.
func (s *Service) Create(ctx context.Context, f Function) (Function, error) {
	f, err := s.providers.Validate(f)
	if err != nil {
		return Function{}, err
	}
	val, err := plainjson.Marshal(f)
	if err != nil {
		return Function{}, fmt.Errorf("encode function: %w", err)
	}
	ok, err := s.kv.Create(ctx, FunctionKey(s.space, f.ID), val)
	if err != nil {
		return Function{}, err
	}
	if !ok {
		return Function{}, errkind.New(errkind.Conflict, "function %q already exists", f.ID)
	}
	return f, nil
}

// Get returns one function.
func (s *Service) Get(ctx context.Context, id string) (Function, error) {
	f, _, err := s.get(ctx, id)
	return f, err
}

func (s *Service) get(ctx context.Context, id string) (Function, int64, error) {
	if err := ValidateID("functionId", id); err != nil {
		// An id that could never have been created is simply not there.
		return Function{}, 0, errkind.New(errkind.NotFound, "function not found")
	}
	kv, err := s.kv.Get(ctx, FunctionKey(s.space, id))
	if errors.Is(err, libkv.ErrNotFound) {
		return Function{}, 0, errkind.New(errkind.NotFound, "function %q not found", id)
	}
	if err != nil {
		return Function{}, 0, err
	}
	var f Function
	if err := json.Unmarshal(kv.Value, &f); err != nil {
		return Function{}, 0, fmt.Errorf("decode function %q: %w", id, err)
	}
	return f, kv.ModRevision, nil
}

// List returns every function, ordered by id.
func (s *Service) List(ctx context.Context) ([]Function, error) {
	kvs, _, err := s.kv.List(ctx, FunctionsPrefix(s.space))
	if err != nil {
		return nil, err
	}
	out := make([]Function, 0, len(kvs))
	for _, kv := range kvs {
		f, _, err := decodeFunction(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// decodeFunction reads a stored function, and gives its metadata to
// ListPageOf.
func decodeFunction(kv libkv.KV) (Function, map[string]string, error) {
	var f Function
	if err := json.Unmarshal(kv.Value, &f); err != nil {
		return Function{}, nil, fmt.Errorf("decode function at %s: %w", kv.Key, err)
	}
	return f, f.Metadata, nil
}

// Update replaces the provider and timeout of an existing function, f.ID,
// and its metadata when update has some (nil keeps the stored metadata:
// the first-generation API has none to send). A secret sent as Redacted
// keeps the stored value.
func (s *Service) Update(ctx context.Context, update Function) (Function, error) {
	id := update.ID
	for range maxRetries {
		old, rev, err := s.get(ctx, id)
		if err != nil {
			return Function{}, err
		}
		if update.Metadata == nil {
			update.Metadata = old.Metadata
		}
		f, err := s.providers.Merge(old, update)
		if err != nil {
			return Function{}, err
		}
		val, err := plainjson.Marshal(f)
		if err != nil {
			return Function{}, fmt.Errorf("encode function: %w", err)
		}
		ok, err := s.kv.CompareAndSwap(ctx, FunctionKey(s.space, id), val, rev)
		if err != nil {
			return Function{}, err
		}
		if ok {
			return f, nil
		}
		// Changed or deleted since we read it: read it again.
	}
	return Function{}, errkind.New(errkind.Conflict, "function %q is being changed concurrently, try again", id)
}

// Delete removes a function that no subscription uses.
func (s *Service) Delete(ctx context.Context, id string) error {
	if err := ValidateID("functionId", id); err != nil {
		return errkind.New(errkind.NotFound, "function not found")
	}
	key := FunctionKey(s.space, id)
	ok, _, err := s.kv.Txn(ctx,
		[]libkv.Cond{libkv.Exists(key), libkv.PrefixEmpty(UsesPrefix(s.space, id))},
		[]libkv.Op{libkv.Del(key)})
	if err != nil || ok {
		return err
	}
	// Tell the two failures apart for the caller.
	if _, err := s.kv.Get(ctx, key); errors.Is(err, libkv.ErrNotFound) {
		return errkind.New(errkind.NotFound, "function %q not found", id)
	} else if err != nil {
		return err
	}
	// Say what uses it: a subscription, or an event type whose authorizer
	// it is (those index keys are "eventtype:<name>").
	kvs, _, err := s.kv.List(ctx, UsesPrefix(s.space, id))
	if err == nil {
		for _, kv := range kvs {
			if name, ok := strings.CutPrefix(strings.TrimPrefix(kv.Key, UsesPrefix(s.space, id)), "eventtype:"); ok {
				return errkind.New(errkind.Conflict, "function %q is the authorizer of event type %q: change the event type first", id, name)
			}
		}
	}
	return errkind.New(errkind.Conflict, "function %q is used by a subscription: delete the subscription first", id)
}

// Redact returns f as a client may see it, its secrets replaced by
// Redacted.
func (s *Service) Redact(f Function) Function { return s.providers.Redact(f) }

// ListPage returns a page of the functions whose metadata match filter,
// ordered by id, and the id to continue after ("" at the end).
func (s *Service) ListPage(ctx context.Context, page Page, filter map[string]string) ([]Function, string, error) {
	return ListPageOf(ctx, s.kv, FunctionsPrefix(s.space), page, filter, decodeFunction)
}
