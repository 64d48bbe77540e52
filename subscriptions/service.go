package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/internal/plainjson"
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

	// indexMu guards indexed: whether this instance has brought the shape
	// index up to date with the route index (see Reindex).
	indexMu sync.Mutex
	indexed bool
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

// Create validates and stores a new subscription. The function must exist;
// an http subscription must not conflict with another on the same method.
// The checks and the write are one etcd transaction: of two gateways
// racing, exactly one wins.
func (s *Space) Create(ctx context.Context, sub Subscription) (Subscription, error) {
	segs, err := sub.Normalize(s.space)
	if err != nil {
		return Subscription{}, err
	}
	val, err := plainjson.Marshal(sub)
	if err != nil {
		return Subscription{}, fmt.Errorf("encode subscription: %w", err)
	}
	key := Key(s.space, sub.ID)
	fnKey := functions.FunctionKey(s.space, sub.FunctionID)
	ops := PutOps(s.space, &sub, segs, val)
	baseConds := []libkv.Cond{libkv.Exists(fnKey), libkv.Absent(key)}
	var typeKey string
	if sub.NeedsEventType() {
		// The event type must be registered, and cannot be deleted while
		// the subscription uses it.
		typeKey = eventtypes.Key(s.space, sub.Event)
		baseConds = append(baseConds, libkv.Exists(typeKey))
	}
	routes := routesPrefix(s.space, &sub)
	var read, guard []libkv.Range
	if routes != "" {
		if err := s.svc.EnsureIndexed(ctx); err != nil {
			return Subscription{}, err
		}
		read, guard = conflictRanges(shapesPrefix(s.space, routes), segs)
	}

	backoff := time.Millisecond
	for range maxRetries {
		conds := baseConds
		if routes != "" {
			// Path conflicts depend on the other routes of the method:
			// read the few key ranges of the shape index that hold the
			// routes that would conflict, and commit only if they are
			// still empty.
			firsts, rev, err := s.svc.kv.FirstInRanges(ctx, read)
			if err != nil {
				return Subscription{}, err
			}
			retry, err := s.checkConflicts(ctx, sub, routes, firsts)
			if err != nil {
				return Subscription{}, err
			}
			if retry {
				continue
			}
			conds = conds[:len(conds):len(conds)]
			for _, r := range guard {
				conds = append(conds, libkv.RangeUnchangedSince(r, rev))
			}
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

// Update changes a subscription in place: change edits a copy of the
// stored one, which is then checked and stored if nothing changed it
// meanwhile. Only what leaves the subscription's identity alone may
// change (its metadata and its pipeline); the caller refuses the rest.
func (s *Space) Update(ctx context.Context, id string, change func(*Subscription)) (Subscription, error) {
	for range maxRetries {
		sub, rev, err := s.get(ctx, id)
		if err != nil {
			return Subscription{}, err
		}
		change(&sub)
		if err := functions.ValidateMetadata(sub.Metadata); err != nil {
			return Subscription{}, err
		}
		if err := sub.normalizePipeline(); err != nil {
			return Subscription{}, err
		}
		val, err := plainjson.Marshal(sub)
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

// checkConflicts reports a conflict if any of firsts, the first keys of
// the shape index ranges that hold the routes conflicting with sub, is
// set. A shape key whose route index key is gone was left behind by an
// earlier release, which deleted routes without the shape index: it is
// removed, and the caller told to read again.
func (s *Space) checkConflicts(ctx context.Context, sub Subscription, routes string, firsts []libkv.KV) (retry bool, err error) {
	for _, kv := range firsts {
		if kv.Key == "" {
			continue
		}
		id := shapeID(kv.Key)
		if _, err := s.svc.kv.Get(ctx, routes+id); errors.Is(err, libkv.ErrNotFound) {
			if _, _, err := s.svc.kv.Txn(ctx, []libkv.Cond{libkv.Absent(routes + id)}, []libkv.Op{libkv.Del(kv.Key)}); err != nil {
				return false, err
			}
			return true, nil
		} else if err != nil {
			return false, err
		}
		path := string(kv.Value)
		if path == sub.Path {
			return false, duplicate(sub)
		}
		return false, errkind.New(errkind.Conflict, "path %s conflicts with %s of subscription %s on %s", sub.Path, path, id, sub.Method)
	}
	return false, nil
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
		sub, _, err := decode(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, sub)
	}
	return out, nil
}

// decode reads a stored subscription, and gives its metadata to
// functions.ListPageOf.
func decode(kv libkv.KV) (Subscription, map[string]string, error) {
	var sub Subscription
	if err := json.Unmarshal(kv.Value, &sub); err != nil {
		return Subscription{}, nil, fmt.Errorf("decode subscription at %s: %w", kv.Key, err)
	}
	return sub, sub.Metadata, nil
}

// Delete removes a subscription and its function-use index key.
func (s *Space) Delete(ctx context.Context, id string) error {
	for range maxRetries {
		sub, rev, err := s.get(ctx, id)
		if err != nil {
			return err
		}
		key := Key(s.space, id)
		ok, _, err := s.svc.kv.Txn(ctx, []libkv.Cond{libkv.ModRevisionIs(key, rev)}, DeleteOps(s.space, &sub))
		if err != nil || ok {
			return err
		}
	}
	return errkind.New(errkind.Conflict, "subscription %q is being changed concurrently, try again", id)
}

// ListPage returns a page of the subscriptions whose metadata match
// filter, ordered by id, and the id to continue after ("" at the end).
func (s *Space) ListPage(ctx context.Context, page functions.Page, filter map[string]string) ([]Subscription, string, error) {
	return functions.ListPageOf(ctx, s.svc.kv, Prefix(s.space), page, filter, decode)
}

// PutOps returns the writes that store sub, normalized (segs are its
// path's segments, val its encoding), with its index keys: the function
// use, the event type use, the route and its shape. Create commits them
// guarded by its checks; a declarative apply composes them with other
// changes into one transaction, having checked the whole space.
func PutOps(space string, sub *Subscription, segs []Segment, val []byte) []libkv.Op {
	ops := []libkv.Op{libkv.Put(Key(space, sub.ID), val), libkv.Put(functions.UseKey(space, sub.FunctionID, sub.ID), nil)}
	if sub.NeedsEventType() {
		ops = append(ops, libkv.Put(eventtypes.UseKey(space, sub.Event, sub.ID), nil))
	}
	if routes := routesPrefix(space, sub); routes != "" {
		ops = append(ops, libkv.Put(routes+sub.ID, []byte(sub.Path)), libkv.Put(shapeKey(shapesPrefix(space, routes), segs, sub.ID), []byte(sub.Path)))
	}
	return ops
}

// DeleteOps returns the writes that delete the stored subscription sub
// and its index keys.
func DeleteOps(space string, sub *Subscription) []libkv.Op {
	ops := []libkv.Op{libkv.Del(Key(space, sub.ID)), libkv.Del(functions.UseKey(space, sub.FunctionID, sub.ID))}
	if routes := routesPrefix(space, sub); routes != "" {
		ops = append(ops, libkv.Del(routes+sub.ID))
		if _, segs, err := ParsePath(sub.Path); err == nil {
			ops = append(ops, libkv.Del(shapeKey(shapesPrefix(space, routes), segs, sub.ID)))
		}
	}
	if sub.NeedsEventType() {
		ops = append(ops, libkv.Del(eventtypes.UseKey(space, sub.Event, sub.ID)))
	}
	return ops
}

// CheckRoutes checks a whole set of normalized subscriptions of a space
// (segs[i] the segments of subs[i]'s path) against each other by the
// rules Create checks a new one against the stored ones: one subscription
// per id, and no two routes of one route index that conflict. It is what
// a declarative apply checks the space it would write with.
func CheckRoutes(space string, subs []Subscription, segs [][]Segment) error {
	seen := make(map[string]int, len(subs))
	byRoutes := make(map[string][]int)
	for i := range subs {
		if _, dup := seen[subs[i].ID]; dup {
			return duplicate(subs[i])
		}
		seen[subs[i].ID] = i
		if routes := routesPrefix(space, &subs[i]); routes != "" {
			byRoutes[routes] = append(byRoutes[routes], i)
		}
	}
	for _, idx := range byRoutes {
		for n, i := range idx {
			for _, j := range idx[:n] {
				if Conflict(segs[i], segs[j]) {
					return errkind.New(errkind.Conflict, "path %s conflicts with %s of subscription %s on %s", subs[i].Path, subs[j].Path, subs[j].ID, subs[i].Method)
				}
			}
		}
	}
	return nil
}
