package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions/eventtypes"
)

// maxRetries bounds optimistic transactions that lose a race to a
// concurrent writer before the caller is told to try again.
const maxRetries = 32

// Service stores and retrieves the subscriptions of every space; In gives
// the view of one.
type Service struct {
	kv *libkv.Store
	// routeLocks serialize this instance's creations of http routes of
	// one space and method (striped by a hash of the two). Correctness
	// comes from the etcd transaction; the locks only keep writers in one
	// process from failing each other's transactions over and over when
	// many routes are created at once.
	routeLocks [64]sync.Mutex
}

// NewService returns a Service on store kv.
func NewService(kv *libkv.Store) *Service { return &Service{kv: kv} }

// In returns the subscriptions of one space. The space name must be valid
// (functions.ValidateSpace).
func (s *Service) In(space string) *Space { return &Space{svc: s, space: space} }

// Space stores and retrieves the subscriptions of one space.
type Space struct {
	svc   *Service
	space string
}

// routeLock returns the lock of the creations of routes under one route
// index prefix (a space's method, or event type and method).
func (s *Service) routeLock(routes string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(routes))
	return &s.routeLocks[h.Sum32()%uint32(len(s.routeLocks))]
}

// Create validates and stores a new subscription. The function must exist;
// an http subscription must not conflict with another on the same method.
// The checks and the write are one etcd transaction: of two gateways
// racing, exactly one wins.
func (s *Space) Create(ctx context.Context, sub Subscription) (Subscription, error) {
	segs, err := sub.Normalize(s.space)
	if err != nil {
		return Subscription{}, err
	}
	val, err := json.Marshal(sub)
	if err != nil {
		return Subscription{}, fmt.Errorf("encode subscription: %w", err)
	}
	key := Key(s.space, sub.ID)
	fnKey := functions.FunctionKey(s.space, sub.FunctionID)
	ops := []libkv.Op{libkv.Put(key, val), libkv.Put(functions.UseKey(s.space, sub.FunctionID, sub.ID), nil)}
	baseConds := []libkv.Cond{libkv.Exists(fnKey), libkv.Absent(key)}
	var typeKey string
	if sub.NeedsEventType() {
		// The event type must be registered, and cannot be deleted while
		// the subscription uses it.
		typeKey = eventtypes.Key(s.space, sub.Event)
		baseConds = append(baseConds, libkv.Exists(typeKey))
		ops = append(ops, libkv.Put(eventtypes.UseKey(s.space, sub.Event, sub.ID), nil))
	}
	routes := routesPrefix(s.space, &sub)
	if routes != "" {
		ops = append(ops, libkv.Put(routes+sub.ID, []byte(sub.Path)))
		lock := s.svc.routeLock(routes)
		lock.Lock()
		defer lock.Unlock()
	}

	backoff := time.Millisecond
	for range maxRetries {
		conds := baseConds
		if routes != "" {
			// Path conflicts depend on the other routes of the method:
			// check them against a snapshot, and commit only if no route
			// of the method was added or changed since.
			kvs, rev, err := s.svc.kv.List(ctx, routes)
			if err != nil {
				return Subscription{}, err
			}
			if err := checkConflicts(sub, segs, routes, kvs); err != nil {
				return Subscription{}, err
			}
			conds = append(conds[:len(conds):len(conds)], libkv.PrefixUnchangedSince(routes, rev))
		}
		ok, _, err := s.svc.kv.Txn(ctx, conds, ops)
		if err != nil {
			return Subscription{}, err
		}
		if ok {
			return sub, nil
		}
		// Find out which condition failed.
		if _, err := s.svc.kv.Get(ctx, fnKey); errors.Is(err, libkv.ErrNotFound) {
			return Subscription{}, errkind.New(errkind.Invalid, "function %q does not exist", sub.FunctionID)
		} else if err != nil {
			return Subscription{}, err
		}
		if typeKey != "" {
			if _, err := s.svc.kv.Get(ctx, typeKey); errors.Is(err, libkv.ErrNotFound) {
				return Subscription{}, errkind.New(errkind.Invalid, "event type %q is not registered in space %q: create it first", sub.Event, s.space)
			} else if err != nil {
				return Subscription{}, err
			}
		}
		if _, err := s.svc.kv.Get(ctx, key); err == nil {
			return Subscription{}, duplicate(sub)
		} else if !errors.Is(err, libkv.ErrNotFound) {
			return Subscription{}, err
		}
		// Another gateway added a route meanwhile: check again, after a
		// jittered pause so racing writers spread out.
		select {
		case <-time.After(backoff + rand.N(backoff)):
		case <-ctx.Done():
			return Subscription{}, fmt.Errorf("create subscription: %w", libkv.ErrUnavailable)
		}
		backoff = min(backoff*2, 50*time.Millisecond)
	}
	return Subscription{}, errkind.New(errkind.Unavailable, "too many concurrent changes to %s routes, retry later", sub.Method)
}

// UpdateMetadata replaces the metadata of a subscription, the one thing of
// it that can change: everything else makes it what it is.
func (s *Space) UpdateMetadata(ctx context.Context, id string, metadata map[string]string) (Subscription, error) {
	if err := functions.ValidateMetadata(metadata); err != nil {
		return Subscription{}, err
	}
	for range maxRetries {
		sub, rev, err := s.get(ctx, id)
		if err != nil {
			return Subscription{}, err
		}
		sub.Metadata = metadata
		val, err := json.Marshal(sub)
		if err != nil {
			return Subscription{}, fmt.Errorf("encode subscription: %w", err)
		}
		ok, err := s.svc.kv.CompareAndSwap(ctx, Key(s.space, id), val, rev)
		if err != nil {
			return Subscription{}, err
		}
		if ok {
			return sub, nil
		}
	}
	return Subscription{}, errkind.New(errkind.Conflict, "subscription %q is being changed concurrently, try again", id)
}

func duplicate(sub Subscription) error {
	switch {
	case sub.Event == EventHTTP && sub.IsSync():
		return errkind.New(errkind.Conflict, "an http subscription for %s %s already exists", sub.Method, sub.Path)
	case sub.Event != EventInvoke && sub.IsSync():
		return errkind.New(errkind.Conflict, "a synchronous subscription to %q on %s %s already exists", sub.Event, sub.Method, sub.Path)
	case sub.Event == EventHTTP:
		return errkind.New(errkind.Conflict, "function %q is already subscribed to http requests %s %s", sub.FunctionID, sub.Method, sub.Path)
	}
	return errkind.New(errkind.Conflict, "function %q is already subscribed to %q on %s", sub.FunctionID, sub.Event, sub.Path)
}

// checkConflicts checks sub's path against the routes of its method, read
// from the route index under prefix.
func checkConflicts(sub Subscription, segs []Segment, prefix string, routes []libkv.KV) error {
	for _, kv := range routes {
		path := string(kv.Value)
		if path == sub.Path {
			return duplicate(sub)
		}
		_, osegs, err := ParsePath(path)
		if err != nil {
			continue // stored paths were validated; never block on one
		}
		if Conflict(segs, osegs) {
			id := strings.TrimPrefix(kv.Key, prefix)
			return errkind.New(errkind.Conflict, "path %s conflicts with %s of subscription %s on %s", sub.Path, path, id, sub.Method)
		}
	}
	return nil
}

// Get returns one subscription.
func (s *Space) Get(ctx context.Context, id string) (Subscription, error) {
	sub, _, err := s.get(ctx, id)
	return sub, err
}

func (s *Space) get(ctx context.Context, id string) (Subscription, int64, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Subscription{}, 0, errkind.New(errkind.NotFound, "subscription not found")
	}
	kv, err := s.svc.kv.Get(ctx, Key(s.space, id))
	if errors.Is(err, libkv.ErrNotFound) {
		return Subscription{}, 0, errkind.New(errkind.NotFound, "subscription %q not found", id)
	}
	if err != nil {
		return Subscription{}, 0, err
	}
	var sub Subscription
	if err := json.Unmarshal(kv.Value, &sub); err != nil {
		return Subscription{}, 0, fmt.Errorf("decode subscription %q: %w", id, err)
	}
	return sub, kv.ModRevision, nil
}

// List returns every subscription, ordered by id.
func (s *Space) List(ctx context.Context) ([]Subscription, error) {
	kvs, _, err := s.svc.kv.List(ctx, Prefix(s.space))
	if err != nil {
		return nil, err
	}
	out := make([]Subscription, 0, len(kvs))
	for _, kv := range kvs {
		var sub Subscription
		if err := json.Unmarshal(kv.Value, &sub); err != nil {
			return nil, fmt.Errorf("decode subscription at %s: %w", kv.Key, err)
		}
		out = append(out, sub)
	}
	return out, nil
}

// Delete removes a subscription and its function-use index key.
func (s *Space) Delete(ctx context.Context, id string) error {
	for range maxRetries {
		sub, rev, err := s.get(ctx, id)
		if err != nil {
			return err
		}
		key := Key(s.space, id)
		ops := []libkv.Op{libkv.Del(key), libkv.Del(functions.UseKey(s.space, sub.FunctionID, id))}
		if routes := routesPrefix(s.space, &sub); routes != "" {
			ops = append(ops, libkv.Del(routes+id))
		}
		if sub.NeedsEventType() {
			ops = append(ops, libkv.Del(eventtypes.UseKey(s.space, sub.Event, id)))
		}
		ok, _, err := s.svc.kv.Txn(ctx, []libkv.Cond{libkv.ModRevisionIs(key, rev)}, ops)
		if err != nil || ok {
			return err
		}
	}
	return errkind.New(errkind.Conflict, "subscription %q is being changed concurrently, try again", id)
}
