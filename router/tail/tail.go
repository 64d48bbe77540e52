// Package tail streams the events an instance sees to the clients that
// watch them (the dashboard's live tail). It is fed the system events the
// router builds (gateway.event.received wraps every event the Events API
// accepts; the function events follow each call) by acting as one more
// reacter beside the plugins: the router builds a system event only when
// something wants it, so with nobody watching the tail costs one atomic
// load per event.
//
// Each watcher has a bounded buffer. A watcher that does not keep up loses
// items rather than slowing the gateway, and is told how many it lost.
package tail

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/event-gateway/event-gateway/plugin"
)

// The system events the tail shows.
var watched = map[string]bool{
	plugin.EventReceived:            true,
	plugin.FunctionInvoking:         true,
	plugin.FunctionInvoked:          true,
	plugin.FunctionInvocationFailed: true,
}

// Item is one entry of a tail: an event received, or a system event about
// a function call.
type Item struct {
	// Kind is "event" for an event received, "system" for a system event.
	Kind  string `json:"kind"`
	Space string `json:"space"`
	// Type is the event's type (for a system event, the system event's).
	Type string `json:"type"`
	// ID is the event's id; for a system event, the id of the event it
	// is about when there is one.
	ID         string `json:"id,omitempty"`
	FunctionID string `json:"functionId,omitempty"`
	Path       string `json:"path,omitempty"`
	Error      string `json:"error,omitempty"`
	// Time is when the gateway built the item, in Unix milliseconds.
	Time int64 `json:"time"`
	// Event is the event as received (for a system event, the event it
	// is about).
	Event json.RawMessage `json:"event,omitempty"`
}

// Broadcaster hands items to the watchers of each space.
type Broadcaster struct {
	n        atomic.Int64 // watchers: the fast path reads only this
	max      int
	mu       sync.Mutex
	watchers map[*Watcher]struct{}
}

// New returns a Broadcaster with no watchers, which takes at most max of
// them at once (each costs a goroutine and a buffer).
func New(max int) *Broadcaster {
	return &Broadcaster{max: max, watchers: make(map[*Watcher]struct{})}
}

// Watcher receives the items of one space.
type Watcher struct {
	b       *Broadcaster
	space   string
	ch      chan Item
	dropped atomic.Int64
}

// C delivers the watcher's items.
func (w *Watcher) C() <-chan Item { return w.ch }

// Dropped returns, and resets, how many items the watcher lost because
// its buffer was full.
func (w *Watcher) Dropped() int64 { return w.dropped.Swap(0) }

// Close stops the watcher.
func (w *Watcher) Close() {
	b := w.b
	b.mu.Lock()
	if _, ok := b.watchers[w]; ok {
		delete(b.watchers, w)
		b.n.Add(-1)
	}
	b.mu.Unlock()
}

// Watch starts watching the items of space with a buffer of size items.
// It returns false when the broadcaster has its maximum of watchers.
func (b *Broadcaster) Watch(space string, size int) (*Watcher, bool) {
	if size < 1 {
		size = 1
	}
	w := &Watcher{b: b, space: space, ch: make(chan Item, size)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.watchers) >= b.max {
		return nil, false
	}
	b.watchers[w] = struct{}{}
	b.n.Add(1)
	return w, true
}

// Watching reports whether anyone watches.
func (b *Broadcaster) Watching() bool { return b.n.Load() > 0 }

// Wants is the reacter's question: whether the router should build the
// system event. Only while someone watches.
func (b *Broadcaster) Wants(eventType string) bool {
	return b.n.Load() > 0 && watched[eventType]
}

// systemEvent is the part of a system event's envelope the tail reads.
type systemEvent struct {
	ReceivedAt int64 `json:"receivedAt"`
	Data       struct {
		Space      string          `json:"space"`
		Event      json.RawMessage `json:"event"`
		Path       string          `json:"path"`
		FunctionID string          `json:"functionId"`
		Error      string          `json:"error"`
	} `json:"data"`
}

// React turns a system event into an item for the watchers of its space.
// It never blocks and never refuses.
func (b *Broadcaster) React(_ context.Context, eventType string, envelope []byte) error {
	if !b.Wants(eventType) {
		return nil
	}
	var se systemEvent
	if err := json.Unmarshal(envelope, &se); err != nil {
		return nil // not ours to judge: the tail shows what it can read
	}
	it := Item{Kind: "system", Space: se.Data.Space, Type: eventType, FunctionID: se.Data.FunctionID,
		Path: se.Data.Path, Error: se.Data.Error, Time: se.ReceivedAt, Event: se.Data.Event}
	var inner struct {
		// The seed's form and CloudEvents name them differently.
		Event     string `json:"event"`
		EventType string `json:"eventType"`
		Type      string `json:"type"`
		EventID   string `json:"eventID"`
		ID        string `json:"id"`
	}
	if json.Unmarshal(se.Data.Event, &inner) == nil {
		it.ID = firstOf(inner.EventID, inner.ID)
		if eventType == plugin.EventReceived {
			it.Kind = "event"
			it.Type = firstOf(inner.Event, inner.EventType, inner.Type)
		}
	}
	b.Publish(it)
	return nil
}

// Publish hands it to the watchers of its space, dropping it for those
// whose buffer is full.
func (b *Broadcaster) Publish(it Item) {
	if b.n.Load() == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for w := range b.watchers {
		if w.space != it.Space {
			continue
		}
		select {
		case w.ch <- it:
		default:
			w.dropped.Add(1)
		}
	}
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// Reacters is what the router asks of its reacters (router.Reacters).
type Reacters interface {
	Wants(eventType string) bool
	React(ctx context.Context, eventType string, envelope []byte) error
}

// Join returns reacters that hand system events to plugins (which may
// refuse them) and then to the tail. plugins may be nil.
func Join(plugins Reacters, b *Broadcaster) Reacters {
	if plugins == nil {
		return b
	}
	return joined{plugins, b}
}

type joined struct {
	plugins Reacters
	tail    *Broadcaster
}

func (j joined) Wants(eventType string) bool {
	return j.tail.Wants(eventType) || j.plugins.Wants(eventType)
}

func (j joined) React(ctx context.Context, eventType string, envelope []byte) error {
	if err := j.plugins.React(ctx, eventType, envelope); err != nil {
		return err
	}
	return j.tail.React(ctx, eventType, envelope)
}
