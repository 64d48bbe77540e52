package cors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// maxRetries bounds optimistic transactions that lose a race to a
// concurrent writer before the caller is told to try again.
const maxRetries = 32

// Service stores and retrieves the CORS configurations of every space; In
// gives the view of one.
type Service struct {
	kv *libkv.Store
}

// NewService returns a Service on store kv.
func NewService(kv *libkv.Store) *Service { return &Service{kv: kv} }

// In returns the CORS configurations of one space. The space name must be
// valid (functions.ValidateSpace).
func (s *Service) In(space string) *Space { return &Space{kv: s.kv, space: space} }

// Space stores and retrieves the CORS configurations of one space.
type Space struct {
	kv    *libkv.Store
	space string
}

// Create validates and stores a new configuration. There is at most one
// per method and path (a Conflict otherwise), and its path must not
// conflict, by the rule of http routes (subscriptions.Conflict), with the
// path of another configuration of the method: a request matches at most
// one. The check and the write are one etcd transaction.
func (s *Space) Create(ctx context.Context, c Config) (Config, error) {
	c.Space = s.space
	segs, err := c.Normalize()
	if err != nil {
		return Config{}, err
	}
	val, err := json.Marshal(c.stored())
	if err != nil {
		return Config{}, fmt.Errorf("encode CORS configuration: %w", err)
	}
	key, prefix := Key(s.space, c.ID), Prefix(s.space)
	backoff := time.Millisecond
	for range maxRetries {
		// Conflicts depend on the other configurations: check them
		// against a snapshot, and commit only if none was added or
		// changed since.
		kvs, rev, err := s.kv.List(ctx, prefix)
		if err != nil {
			return Config{}, err
		}
		if err := checkConflicts(c, segs, kvs); err != nil {
			return Config{}, err
		}
		ok, _, err := s.kv.Txn(ctx,
			[]libkv.Cond{libkv.Absent(key), libkv.PrefixUnchangedSince(prefix, rev)},
			[]libkv.Op{libkv.Put(key, val)})
		if err != nil {
			return Config{}, err
		}
		if ok {
			return c, nil
		}
		if _, err := s.kv.Get(ctx, key); err == nil {
			return Config{}, duplicate(c)
		} else if !errors.Is(err, libkv.ErrNotFound) {
			return Config{}, err
		}
		// Another configuration was written meanwhile: check again, after
		// a jittered pause so racing writers spread out.
		select {
		case <-time.After(backoff + rand.N(backoff)):
		case <-ctx.Done():
			return Config{}, fmt.Errorf("create CORS configuration: %w", libkv.ErrUnavailable)
		}
		backoff = min(backoff*2, 50*time.Millisecond)
	}
	return Config{}, errkind.New(errkind.Unavailable, "too many concurrent changes to CORS configurations, retry later")
}

func duplicate(c Config) error {
	return errkind.New(errkind.Conflict, "a CORS configuration for %s %s already exists (corsId %s)", c.Method, c.Path, c.ID)
}

// checkConflicts checks c's path against the stored configurations of its
// method.
func checkConflicts(c Config, segs []subscriptions.Segment, kvs []libkv.KV) error {
	others := make([]Config, 0, len(kvs))
	for _, kv := range kvs {
		var o stored
		if err := json.Unmarshal(kv.Value, &o); err != nil {
			continue // stored values were validated; never block on one
		}
		others = append(others, o.in(""))
	}
	return CheckConflicts(c, segs, others)
}

// CheckConflicts checks c's path (segs its segments), normalized, against
// other configurations: a duplicate or a conflicting path of the same
// method is an error. A declarative apply checks each configuration of a
// space against the others with it.
func CheckConflicts(c Config, segs []subscriptions.Segment, others []Config) error {
	for _, o := range others {
		if o.Method != c.Method {
			continue
		}
		if o.Path == c.Path {
			return duplicate(c)
		}
		_, osegs, err := subscriptions.ParsePath(o.Path)
		if err != nil {
			continue
		}
		if subscriptions.Conflict(segs, osegs) {
			return errkind.New(errkind.Conflict, "path %s conflicts with %s of CORS configuration %s on %s", c.Path, o.Path, o.ID, c.Method)
		}
	}
	return nil
}

// Get returns one configuration.
func (s *Space) Get(ctx context.Context, id string) (Config, error) {
	c, _, err := s.get(ctx, id)
	return c, err
}

func (s *Space) get(ctx context.Context, id string) (Config, int64, error) {
	if !validID(id) {
		// An id that could never have been derived is simply not there.
		return Config{}, 0, errkind.New(errkind.NotFound, "CORS configuration not found")
	}
	kv, err := s.kv.Get(ctx, Key(s.space, id))
	if errors.Is(err, libkv.ErrNotFound) {
		return Config{}, 0, errkind.New(errkind.NotFound, "CORS configuration %q not found", id)
	}
	if err != nil {
		return Config{}, 0, err
	}
	var st stored
	if err := json.Unmarshal(kv.Value, &st); err != nil {
		return Config{}, 0, fmt.Errorf("decode CORS configuration %q: %w", id, err)
	}
	return st.in(s.space), kv.ModRevision, nil
}

// List returns the configurations whose metadata has every key of filter
// with its value (all of them for an empty filter), ordered by path and
// method.
func (s *Space) List(ctx context.Context, filter map[string]string) ([]Config, error) {
	kvs, _, err := s.kv.List(ctx, Prefix(s.space))
	if err != nil {
		return nil, err
	}
	out := make([]Config, 0, len(kvs))
	for _, kv := range kvs {
		v, md, err := s.decode(kv)
		if err != nil {
			return nil, err
		}
		if functions.MatchMetadata(md, filter) {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out, nil
}

// Update replaces the allowed origins, methods and headers, the
// credentials flag and the metadata of configuration id with those of c;
// lists left out take the defaults, as on creation. Method and path
// cannot change: c may leave them out or repeat them (in any form that
// normalizes to the stored ones), and the same for its corsId.
func (s *Space) Update(ctx context.Context, id string, c Config) (Config, error) {
	if c.ID != "" && c.ID != id {
		return Config{}, errkind.New(errkind.Invalid, "corsId %q in the body is not %q of the URL", c.ID, id)
	}
	for range maxRetries {
		old, rev, err := s.get(ctx, id)
		if err != nil {
			return Config{}, err
		}
		next := c
		next.Space, next.ID = s.space, id
		if next.Method == "" {
			next.Method = old.Method
		}
		if next.Path == "" {
			next.Path = old.Path
		}
		method, path, _, err := normalizeRoute(next.Method, next.Path)
		if err != nil {
			return Config{}, err
		}
		if method != old.Method || path != old.Path {
			return Config{}, errkind.New(errkind.Invalid, "method and path of a CORS configuration cannot be changed (it is for %s %s): create another one", old.Method, old.Path)
		}
		next.Method, next.Path = method, path
		if err := next.normalizeRules(); err != nil {
			return Config{}, err
		}
		val, err := json.Marshal(next.stored())
		if err != nil {
			return Config{}, fmt.Errorf("encode CORS configuration: %w", err)
		}
		ok, err := s.kv.CompareAndSwap(ctx, Key(s.space, id), val, rev)
		if err != nil {
			return Config{}, err
		}
		if ok {
			return next, nil
		}
		// Changed or deleted since we read it: read it again.
	}
	return Config{}, errkind.New(errkind.Conflict, "CORS configuration %q is being changed concurrently, try again", id)
}

// validID reports whether id has the form of the ids NewID derives: a
// UUID in canonical lower-case form.
func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36 && strings.ToLower(id) == id
}

// Delete removes a configuration.
func (s *Space) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return errkind.New(errkind.NotFound, "CORS configuration not found")
	}
	err := s.kv.Delete(ctx, Key(s.space, id))
	if errors.Is(err, libkv.ErrNotFound) {
		return errkind.New(errkind.NotFound, "CORS configuration %q not found", id)
	}
	return err
}

// ListPage returns a page of the CORS configurations whose metadata match filter,
// ordered by the ids of their keys, and the id to continue after ("" at
// the end).
func (s *Space) ListPage(ctx context.Context, page functions.Page, filter map[string]string) ([]Config, string, error) {
	return functions.ListPageOf(ctx, s.kv, Prefix(s.space), page, filter, s.decode)
}

// decode reads a stored CORS configuration and its metadata.
func (s *Space) decode(kv libkv.KV) (Config, map[string]string, error) {
	var st stored
	if err := json.Unmarshal(kv.Value, &st); err != nil {
		return Config{}, nil, fmt.Errorf("decode CORS configuration at %s: %w", kv.Key, err)
	}
	return st.in(s.space), st.Metadata, nil
}

// Encode returns the value the store holds of a normalized configuration.
func (c Config) Encode() ([]byte, error) { return json.Marshal(c.stored()) }
