package upstream

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// Overrides is the table of backends pushed by the sources, read without
// a lock. Several sources may push; each entry remembers the source that
// set it, so that a source that starts over (a plugin restarted) replaces
// its own entries and no one else's. The zero value is ready to use.
type Overrides struct {
	// table is replaced whole on each change: changes are rare, reads
	// are per invoker.
	table atomic.Pointer[map[key]entry]

	mu       sync.Mutex // serialises writers and the watchers' list
	watchers map[int]watcher
	nextID   int
}

type key struct{ space, functionID string }

type watcher struct {
	ctx context.Context
	f   func(Update)
}

type entry struct {
	source   string
	backends []Backend
}

// Get returns the backends pushed for a function, if any.
func (o *Overrides) Get(space, functionID string) ([]Backend, bool) {
	m := o.table.Load()
	if m == nil {
		return nil, false
	}
	e, ok := (*m)[key{space, functionID}]
	return e.backends, ok
}

// Len is the number of functions with pushed backends.
func (o *Overrides) Len() int {
	if m := o.table.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// Apply records the updates pushed by source. With full true they are
// the source's whole state: its entries not among them are removed.
// Watchers are told of each actual change, in order, before Apply returns.
func (o *Overrides) Apply(source string, updates []Update, full bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	old := map[key]entry{}
	if m := o.table.Load(); m != nil {
		old = *m
	}
	next := make(map[key]entry, len(old)+len(updates))
	for k, e := range old {
		if full && e.source == source {
			continue // kept only if pushed again below
		}
		next[k] = e
	}
	var changes []Update
	for _, u := range updates {
		k := key{u.Space, u.FunctionID}
		if !u.Found {
			if e, ok := next[k]; ok && e.source == source {
				delete(next, k)
			}
			continue
		}
		if e, ok := next[k]; ok && e.source != source {
			continue // first come: another source owns this function
		}
		next[k] = entry{source: source, backends: slices.Clone(u.Backends)}
	}
	for k, e := range next {
		if was, ok := old[k]; !ok || !slices.Equal(was.backends, e.backends) {
			changes = append(changes, Update{Space: k.space, FunctionID: k.functionID, Backends: e.backends, Found: true})
		}
	}
	for k := range old {
		if _, ok := next[k]; !ok {
			changes = append(changes, Update{Space: k.space, FunctionID: k.functionID})
		}
	}
	o.table.Store(&next)
	for _, u := range changes {
		for _, w := range o.watchers {
			if w.ctx.Err() == nil {
				w.f(u)
			}
		}
	}
}

// Watch calls f with every change from now on, until ctx ends. f runs in
// the goroutine of Apply, under its lock: it must be quick and must not
// call Apply.
func (o *Overrides) Watch(ctx context.Context, f func(Update)) {
	o.mu.Lock()
	if o.watchers == nil {
		o.watchers = map[int]watcher{}
	}
	id := o.nextID
	o.nextID++
	o.watchers[id] = watcher{ctx, f}
	o.mu.Unlock()
	// Apply skips a watcher whose ctx has ended; this forgets it.
	context.AfterFunc(ctx, func() {
		o.mu.Lock()
		delete(o.watchers, id)
		o.mu.Unlock()
	})
}
