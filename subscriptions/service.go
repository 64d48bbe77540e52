package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/libkv"
)

// maxRetries bounds optimistic transactions that lose a race to a
// concurrent writer before the caller is told to try again.
const maxRetries = 32

// Service stores and retrieves subscriptions in one space.
type Service struct {
	kv    *libkv.Store
	space libkv.Space
	// routeLocks serialize this instance's creations of http routes per
	// method. Correctness comes from the etcd transaction; the lock only
	// keeps writers in one process from failing each other's transactions
	// over and over when many routes are created at once.
	routeLocks map[string]*sync.Mutex
}

// NewService returns a Service for the given space of store kv.
func NewService(kv *libkv.Store, space libkv.Space) *Service {
	s := &Service{kv: kv, space: space, routeLocks: make(map[string]*sync.Mutex, len(httpMethods))}
	for m := range httpMethods {
		s.routeLocks[m] = new(sync.Mutex)
	}
	return s
}

// Create validates and stores a new subscription. The function must exist;
// an http subscription must not conflict with another on the same method.
// The checks and the write are one etcd transaction: of two gateways
// racing, exactly one wins.
func (s *Service) Create(ctx context.Context, sub Subscription) (Subscription, error) {
	segs, err := sub.Normalize()
	if err != nil {
		return Subscription{}, err
	}
	val, err := json.Marshal(sub)
	if err != nil {
		return Subscription{}, fmt.Errorf("encode subscription: %w", err)
	}
	key := s.space.Subscription(sub.ID)
	fnKey := s.space.Function(sub.FunctionID)
	ops := []libkv.Op{libkv.Put(key, val), libkv.Put(s.space.Use(sub.FunctionID, sub.ID), nil)}
	if sub.Event == EventHTTP {
		ops = append(ops, libkv.Put(s.space.Route(sub.Method, sub.ID), []byte(sub.Path)))
		lock := s.routeLocks[sub.Method]
		lock.Lock()
		defer lock.Unlock()
	}

	backoff := time.Millisecond
	for range maxRetries {
		conds := []libkv.Cond{libkv.Exists(fnKey), libkv.Absent(key)}
		if sub.Event == EventHTTP {
			// Path conflicts depend on the other routes of the method:
			// check them against a snapshot, and commit only if no route
			// of the method was added or changed since.
			routes := s.space.Routes(sub.Method)
			kvs, rev, err := s.kv.List(ctx, routes)
			if err != nil {
				return Subscription{}, err
			}
			if err := checkConflicts(sub, segs, routes, kvs); err != nil {
				return Subscription{}, err
			}
			conds = append(conds, libkv.PrefixUnchangedSince(routes, rev))
		}
		ok, _, err := s.kv.Txn(ctx, conds, ops)
		if err != nil {
			return Subscription{}, err
		}
		if ok {
			return sub, nil
		}
		// Find out which condition failed.
		if _, err := s.kv.Get(ctx, fnKey); errors.Is(err, libkv.ErrNotFound) {
			return Subscription{}, errkind.New(errkind.Invalid, "function %q does not exist", sub.FunctionID)
		} else if err != nil {
			return Subscription{}, err
		}
		if _, err := s.kv.Get(ctx, key); err == nil {
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

func duplicate(sub Subscription) error {
	if sub.Event == EventHTTP {
		return errkind.New(errkind.Conflict, "an http subscription for %s %s already exists", sub.Method, sub.Path)
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
func (s *Service) Get(ctx context.Context, id string) (Subscription, error) {
	sub, _, err := s.get(ctx, id)
	return sub, err
}

func (s *Service) get(ctx context.Context, id string) (Subscription, int64, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Subscription{}, 0, errkind.New(errkind.NotFound, "subscription not found")
	}
	kv, err := s.kv.Get(ctx, s.space.Subscription(id))
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
func (s *Service) List(ctx context.Context) ([]Subscription, error) {
	kvs, _, err := s.kv.List(ctx, s.space.Subscriptions())
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
func (s *Service) Delete(ctx context.Context, id string) error {
	for range maxRetries {
		sub, rev, err := s.get(ctx, id)
		if err != nil {
			return err
		}
		key := s.space.Subscription(id)
		ops := []libkv.Op{libkv.Del(key), libkv.Del(s.space.Use(sub.FunctionID, id))}
		if sub.Event == EventHTTP {
			ops = append(ops, libkv.Del(s.space.Route(sub.Method, id)))
		}
		ok, _, err := s.kv.Txn(ctx, []libkv.Cond{libkv.ModRevisionIs(key, rev)}, ops)
		if err != nil || ok {
			return err
		}
	}
	return errkind.New(errkind.Conflict, "subscription %q is being changed concurrently, try again", id)
}
