package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/libkv"
)

// maxRetries bounds optimistic transactions that lose a race to a
// concurrent writer before the caller is told to try again.
const maxRetries = 16

// Service stores and retrieves subscriptions in one space.
type Service struct {
	kv    *libkv.Store
	space libkv.Space
}

// NewService returns a Service for the given space of store kv.
func NewService(kv *libkv.Store, space libkv.Space) *Service {
	return &Service{kv: kv, space: space}
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

	for range maxRetries {
		conds := []libkv.Cond{libkv.Exists(fnKey), libkv.Absent(key)}
		if sub.Event == EventHTTP {
			// Path conflicts depend on every other http subscription: check
			// them against a snapshot, and commit only if no subscription
			// was added or changed since.
			all, rev, err := s.list(ctx)
			if err != nil {
				return Subscription{}, err
			}
			if err := checkConflicts(sub, segs, all); err != nil {
				return Subscription{}, err
			}
			conds = append(conds, libkv.PrefixUnchangedSince(s.space.Subscriptions(), rev))
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
		// Another subscription was written meanwhile: check again.
	}
	return Subscription{}, errkind.New(errkind.Conflict, "subscriptions are being changed concurrently, try again")
}

func duplicate(sub Subscription) error {
	if sub.Event == EventHTTP {
		return errkind.New(errkind.Conflict, "an http subscription for %s %s already exists", sub.Method, sub.Path)
	}
	return errkind.New(errkind.Conflict, "function %q is already subscribed to %q on %s", sub.FunctionID, sub.Event, sub.Path)
}

func checkConflicts(sub Subscription, segs []Segment, all []Subscription) error {
	for _, other := range all {
		if other.Event != EventHTTP || other.Method != sub.Method {
			continue
		}
		if other.Path == sub.Path {
			return duplicate(sub)
		}
		_, osegs, err := ParsePath(other.Path)
		if err != nil {
			continue // stored paths were validated; never block on one
		}
		if Conflict(segs, osegs) {
			return errkind.New(errkind.Conflict, "path %s conflicts with %s of subscription %s on %s", sub.Path, other.Path, other.ID, sub.Method)
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
	subs, _, err := s.list(ctx)
	return subs, err
}

func (s *Service) list(ctx context.Context) ([]Subscription, int64, error) {
	kvs, rev, err := s.kv.List(ctx, s.space.Subscriptions())
	if err != nil {
		return nil, 0, err
	}
	out := make([]Subscription, 0, len(kvs))
	for _, kv := range kvs {
		var sub Subscription
		if err := json.Unmarshal(kv.Value, &sub); err != nil {
			return nil, 0, fmt.Errorf("decode subscription at %s: %w", kv.Key, err)
		}
		out = append(out, sub)
	}
	return out, rev, nil
}

// Delete removes a subscription and its function-use index key.
func (s *Service) Delete(ctx context.Context, id string) error {
	for range maxRetries {
		sub, rev, err := s.get(ctx, id)
		if err != nil {
			return err
		}
		key := s.space.Subscription(id)
		ok, _, err := s.kv.Txn(ctx,
			[]libkv.Cond{libkv.ModRevisionIs(key, rev)},
			[]libkv.Op{libkv.Del(key), libkv.Del(s.space.Use(sub.FunctionID, id))})
		if err != nil || ok {
			return err
		}
	}
	return errkind.New(errkind.Conflict, "subscription %q is being changed concurrently, try again", id)
}
