package router

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions/eventtypes"
)

// Run keeps the snapshot in sync with the store until ctx ends. When the
// watch fails (etcd away too long, revision compacted) it reads every
// space again and replaces the snapshot whole, so nothing is duplicated
// and no delete is missed.
func (r *Router) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	var prev *cache
	defer func() { prev.close() }()
	// lost is set from the first failure to the next load: the failure is
	// logged once at warn level, the retries in between at debug level.
	lost := false
	for ctx.Err() == nil {
		c, rev, err := r.resync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !lost {
				lost = true
				r.log.Warn("cannot load configuration from etcd, retrying until it answers; routing keeps the configuration last read", "error", err)
			} else {
				r.log.Debug("cannot load configuration, retrying", "retryIn", backoff, "error", err)
			}
			sleep(ctx, backoff+rand.N(backoff/2))
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		if lost {
			lost = false
			r.log.Info("configuration watch is back", "revision", rev)
		}
		// The new snapshot made invokers of its own: release the old ones.
		prev.close()
		prev = c
		backoff = 100 * time.Millisecond
		err = r.follow(ctx, c, rev)
		if ctx.Err() != nil {
			return
		}
		lost = true
		r.log.Warn("lost the configuration watch on etcd, reloading; routing keeps the configuration last read until it is back", "error", err)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// cache is the configuration as last seen, from which snapshots are built.
type cache struct {
	spaces map[string]*spaceCache
	// dirty holds the spaces changed since the last install.
	dirty map[string]bool
	// retired holds the invokers of functions changed or deleted since
	// the last install, to be closed once a snapshot without them is in
	// place.
	retired []functions.Invoker
}

// spaceCache is the cached configuration of one space.
type spaceCache struct {
	fns   map[string]*Target
	subs  map[string]*subEntry
	types map[string]*eventtypes.EventType
	cors  map[string]*corsEntry
	keys  map[string]keyEntry
}

// keyEntry is an access key of a space: its kind and digest, and its id
// and name, which the configuration history records as who made a change.
type keyEntry struct {
	kind     string
	digest   [sha256.Size]byte
	id, name string
}

func newCache() *cache {
	return &cache{spaces: make(map[string]*spaceCache), dirty: make(map[string]bool)}
}

// space returns the cache of a space, making it if create is set.
func (c *cache) space(name string, create bool) *spaceCache {
	sc := c.spaces[name]
	if sc == nil && create {
		sc = &spaceCache{
			fns:   make(map[string]*Target),
			subs:  make(map[string]*subEntry),
			types: make(map[string]*eventtypes.EventType),
			cors:  make(map[string]*corsEntry),
			keys:  make(map[string]keyEntry),
		}
		c.spaces[name] = sc
	}
	return sc
}

// retire schedules an invoker to be closed after the next install.
func (c *cache) retire(inv functions.Invoker) {
	if _, ok := inv.(io.Closer); ok {
		c.retired = append(c.retired, inv)
	}
}

// closeRetired closes the invokers no snapshot installed from now on uses.
// Calls in flight on an older snapshot may still use them: providers
// release only what such calls can do without.
func (c *cache) closeRetired() {
	for _, inv := range c.retired {
		inv.(io.Closer).Close()
	}
	c.retired = nil
}

// close releases every invoker of the cache; it is no longer used.
func (c *cache) close() {
	if c == nil {
		return
	}
	c.closeRetired()
	for _, sc := range c.spaces {
		for _, t := range sc.fns {
			c.retire(t.Invoker)
		}
	}
	c.closeRetired()
}

// count returns the numbers of functions and subscriptions in the cache.
func (c *cache) count() (fns, subs int) {
	for _, sc := range c.spaces {
		fns += len(sc.fns)
		subs += len(sc.subs)
	}
	return fns, subs
}

// scanPage is the page size of a full read of the configuration: large
// enough that a big configuration takes few round trips, small enough that
// a page of decoded keys stays a few megabytes.
const scanPage = 10_000

// resync reads every space and installs a snapshot of them.
func (r *Router) resync(ctx context.Context) (*cache, int64, error) {
	c := newCache()
	apply := func(kv libkv.KV) error {
		r.apply(c, libkv.Event{Key: kv.Key, Value: kv.Value, ModRevision: kv.ModRevision})
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// Each space's resources are read kind by kind, all at one revision,
	// and the keys between them (the spaces' index keys) are jumped over
	// rather than read: they would double the work, and etcd counts the
	// rest of the range for every page, so smaller ranges page faster.
	var rev int64
	from, end := functions.SpacesRoot, libkv.PrefixEnd(functions.SpacesRoot)
	for {
		key, ok, got, err := r.store.NextKey(lctx, from, end, rev)
		if err != nil {
			return nil, 0, err
		}
		rev = got // every later read is at the revision of the first
		if !ok {
			break
		}
		space, ok := spaceOfKey(key)
		if !ok {
			// Not a key of a space: step over it.
			from = key + "\x00"
			continue
		}
		for _, k := range kinds {
			if _, err := r.store.Scan(lctx, functions.SpaceRoot(space)+k.dir, rev, scanPage, apply); err != nil {
				return nil, 0, err
			}
		}
		from = libkv.PrefixEnd(functions.SpaceRoot(space))
	}
	r.install(c, rev)
	if _, subs := c.count(); subs >= 10_000 {
		// Reading a large configuration leaves a lot of garbage (pages of
		// etcd responses, JSON decoding) that the runtime would give back
		// to the system only slowly: give it back now.
		debug.FreeOSMemory()
	}
	if r.readyOnce.CompareAndSwap(false, true) {
		close(r.ready)
	}
	fns, subs := c.count()
	r.log.Info("configuration loaded", "revision", rev, "spaces", len(c.spaces), "functions", fns, "subscriptions", subs)
	return c, rev, nil
}

func (r *Router) install(c *cache, rev int64) {
	r.snap.Store(build(rev, c, r.Snapshot(), r.log))
	c.closeRetired()
	r.changedMu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.changedMu.Unlock()
}

// WaitRevision waits, at most wait, for the snapshot to reflect the store
// at revision rev, and reports whether it does.
func (r *Router) WaitRevision(ctx context.Context, rev int64, wait time.Duration) bool {
	_, ok := r.snapshotAt(ctx, rev, wait)
	return ok
}

// snapshotAt returns a loaded snapshot at revision rev or later, waiting
// at most wait for the configuration to catch up. It returns the current
// snapshot, and false, if it did not.
func (r *Router) snapshotAt(ctx context.Context, rev int64, wait time.Duration) (*Snapshot, bool) {
	var timeout <-chan time.Time
	for {
		r.changedMu.Lock()
		changed := r.changed
		r.changedMu.Unlock()
		snap := r.Snapshot()
		if snap.Loaded && snap.Revision >= rev {
			return snap, true
		}
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			return snap, false
		case <-ctx.Done():
			return snap, false
		}
	}
}

// follow applies watch events from rev+1 on until the watch fails. Batches
// that arrive together are applied together, and the snapshot is rebuilt
// once for all of them.
func (r *Router) follow(ctx context.Context, c *cache, rev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := r.store.Watch(wctx, functions.SpacesRoot, rev+1)
	for {
		var wr libkv.WatchResponse
		var ok bool
		select {
		case wr, ok = <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		changed := false
		for {
			if !ok {
				return errors.New("watch channel closed")
			}
			if wr.Err != nil {
				if changed {
					r.install(c, rev)
				}
				return wr.Err
			}
			for _, ev := range wr.Events {
				changed = r.apply(c, ev) || changed
			}
			rev = max(rev, wr.Revision)
			// Take whatever else is already waiting before rebuilding.
			select {
			case wr, ok = <-ch:
				continue
			default:
			}
			break
		}
		if changed {
			r.install(c, rev)
		}
	}
}
