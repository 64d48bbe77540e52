package trail

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router"
	egjs "github.com/event-gateway/event-gateway/router/jetstream"
)

func connect(t testing.TB) *nats.Conn {
	t.Helper()
	return connectWith(t, egjs.EmbedOptions{})
}

// connectWith starts an embedded NATS server with o, on a free port and
// a data directory of the test, and connects to it.
func connectWith(t testing.TB, o egjs.EmbedOptions) *nats.Conn {
	t.Helper()
	o.DataDir, o.Port = t.TempDir(), -1
	e, err := egjs.StartEmbedded(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func newRecorder(t testing.TB, nc *nats.Conn, o Options) *Recorder {
	t.Helper()
	o.Conn = nc
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func attempt(r *Recorder, space, eventID, sub string, n int, err error, outcome string) {
	d := &router.Delivery{Space: space, EventID: eventID, Event: "order", SubscriptionID: sub, FunctionID: "fn-" + sub}
	a := &egjs.Attempt{Delivery: d, Number: n, Began: time.Now(), Took: 3 * time.Millisecond, Err: err, Outcome: outcome}
	if outcome == egjs.OutcomeRetrying {
		a.Next = time.Now().Add(time.Second)
	}
	r.Attempted(a)
}

func until(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settled waits until the stream holds every message r sent: the server
// takes a message before the stream stores it, and a flush waits only for
// the server.
func settled(t *testing.T, r *Recorder) {
	t.Helper()
	// The stream's sequence counts the messages of every recorder on it:
	// call this while r is the only one that sent any.
	ctx := context.Background()
	until(t, "the stream to store what was sent", func() bool {
		info, err := r.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq >= r.Stats().Messages
	})
}

// listAll returns the ids of the events r lists in space with f, page
// after page.
func listAll(t *testing.T, r *Recorder, space string, f ListFilter) []string {
	t.Helper()
	var got []string
	for range 200 {
		items, next, err := r.List(context.Background(), space, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range items {
			got = append(got, ev.EventID)
		}
		if next == "" {
			return got
		}
		f.Before = next
	}
	t.Fatal("more than 200 pages")
	return nil
}

// The records of an event that arrive within one flush are one message,
// and read back as the event's trail.
func TestRecordAndRead(t *testing.T) {
	nc := connect(t)
	r := newRecorder(t, nc, Options{FlushEvery: time.Hour})
	ctx := context.Background()
	subs := []router.Subscriber{{SubscriptionID: "a", FunctionID: "fn-a"}, {SubscriptionID: "b", FunctionID: "fn-b"}}
	r.Accepted("", "e1", "order", time.Now(), subs)
	attempt(r, "", "e1", "a", 1, nil, egjs.OutcomeDelivered)
	attempt(r, "", "e1", "b", 1, errors.New("boom"), egjs.OutcomeRetrying)
	r.Skipped("default", "e1", "order", "c", "fn-c", "filter: amount < 10")
	r.Called("default", "e1", "order", "s", "fn-s", time.Now(), 2*time.Millisecond, errors.New("function failed: http status 502"))
	if _, err := r.Event(ctx, "", "e1"); errkind.Of(err) != errkind.NotFound {
		t.Fatalf("before a flush: %v, want NotFound", err)
	}
	// Close stores what waits; a second recorder on the stream reads it.
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	settled(t, r)
	info, err := r.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%d messages for one event's records of one flush, want 1", info.State.Msgs)
	}
	r2 := newRecorder(t, nc, Options{FlushEvery: 20 * time.Millisecond})
	ev, err := r2.Event(ctx, "default", "e1")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "order" || ev.AcceptedAt == nil || ev.Outcome != OutcomeInFlight || len(ev.Subscribers) != 4 {
		t.Fatalf("trail %+v", ev)
	}
	a, b, c := ev.Subscribers[0], ev.Subscribers[1], ev.Subscribers[2]
	if a.Outcome != OutcomeDelivered || len(a.Attempts) != 1 || a.Attempts[0].Result != "ok" || a.Attempts[0].DurationMs != 3 {
		t.Fatalf("subscriber a: %+v", a)
	}
	if b.Outcome != OutcomeRetrying || b.Attempts[0].Error != "boom" || b.Attempts[0].NextAttemptAt == nil || b.Attempts[0].Result != "failed" {
		t.Fatalf("subscriber b: %+v", b)
	}
	if c.Outcome != OutcomeSkipped || c.Reason != "filter: amount < 10" || c.FunctionID != "fn-c" {
		t.Fatalf("subscriber c: %+v", c)
	}
	if s := ev.Subscribers[3]; !s.Sync || s.Outcome != OutcomeFailed || len(s.Attempts) != 1 || s.Attempts[0].Result != "failed" || s.Attempts[0].DurationMs != 2 {
		t.Fatalf("sync subscriber: %+v", s)
	}

	// Later records of the event are further messages of it.
	attempt(r2, "default", "e1", "b", 2, errors.New("boom"), egjs.OutcomeDeadLetter)
	until(t, "the dead letter", func() bool {
		ev, err = r2.Event(ctx, "default", "e1")
		return err == nil && ev.Outcome == OutcomeDeadLetter
	})
	if got := ev.Subscribers[1]; len(got.Attempts) != 2 || got.Outcome != OutcomeDeadLetter {
		t.Fatalf("subscriber b after the dead letter: %+v", got)
	}
	// Records given after Close are dropped and counted.
	dropped := r.Stats().Dropped
	r.Accepted("", "e2", "order", time.Now(), nil)
	if r.Stats().Dropped != dropped+1 {
		t.Fatal("a record given after Close was not counted as dropped")
	}
}

// A full buffer drops records rather than block the caller, and counts
// them.
func TestFullBufferDrops(t *testing.T) {
	nc := connect(t)
	r := newRecorder(t, nc, Options{FlushEvery: time.Hour, Buffer: 4})
	const n = 100
	for i := range n {
		r.Accepted("", fmt.Sprint("e", i), "order", time.Now(), nil)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := r.Stats()
	if s.Dropped == 0 || s.Stored+s.Dropped != n || s.Failed != 0 {
		t.Fatalf("stats %+v: want some dropped, stored + dropped = %d", s, n)
	}
}

// Lists go newest first over pages, by type, subscription and outcome,
// also when the events of a space are sparse in the stream.
func TestList(t *testing.T) {
	nc := connect(t)
	r := newRecorder(t, nc, Options{FlushEvery: 5 * time.Millisecond})
	ctx := context.Background()
	var want []string // of space "s", newest first
	const n = 700
	for i := range n {
		id := fmt.Sprintf("e%03d", i)
		typ := "order"
		if i%2 == 1 {
			typ = "refund"
		}
		// Other spaces' events, many, between those of "s".
		for j := range 3 {
			r.Accepted("other", fmt.Sprintf("%s-%d", id, j), typ, time.Now(), nil)
		}
		r.Accepted("s", id, typ, time.Now(), []router.Subscriber{{SubscriptionID: "sub", FunctionID: "fn"}})
		if i%7 == 0 {
			d := &router.Delivery{Space: "s", EventID: id, Event: typ, SubscriptionID: "sub", FunctionID: "fn"}
			r.Attempted(&egjs.Attempt{Delivery: d, Number: 1, Began: time.Now(), Err: errors.New("no"), Outcome: egjs.OutcomeDeadLetter})
		}
		want = append(want, id)
		// One flush per event, so that each is a message of its own.
		until(t, "stored", func() bool { return r.Stats().Stored == uint64(4*(i+1)+(i/7+1)) })
	}
	settled(t, r)
	slices.Reverse(want)
	all := func(f ListFilter) []string { return listAll(t, r, "s", f) }
	if got := all(ListFilter{Limit: 33}); !slices.Equal(got, want) {
		t.Fatalf("all events: %d, want %d: %v", len(got), len(want), got)
	}
	var orders, dead []string
	for _, id := range want {
		var i int
		fmt.Sscanf(id, "e%d", &i)
		if i%2 == 0 {
			orders = append(orders, id)
		}
		if i%7 == 0 {
			dead = append(dead, id)
		}
	}
	if got := all(ListFilter{Type: "order", Limit: 50}); !slices.Equal(got, orders) {
		t.Fatalf("orders: %v", got)
	}
	if got := all(ListFilter{Outcome: OutcomeDeadLetter, SubscriptionID: "sub"}); !slices.Equal(got, dead) {
		t.Fatalf("dead letters: %v, want %v", got, dead)
	}
	if got := all(ListFilter{SubscriptionID: "nobody"}); len(got) != 0 {
		t.Fatalf("another subscription: %v", got)
	}
	if _, _, err := r.List(ctx, "s", ListFilter{Outcome: "lost"}); errkind.Of(err) != errkind.Invalid {
		t.Fatalf("unknown outcome: %v", err)
	}
	if _, _, err := r.List(ctx, "s", ListFilter{Before: "x"}); errkind.Of(err) != errkind.Invalid {
		t.Fatalf("bad cursor: %v", err)
	}
}

// Ids and types as long as a CloudEvent's attributes may be make
// subjects NATS takes, and read back.
func TestLongIDs(t *testing.T) {
	nc := connect(t)
	r := newRecorder(t, nc, Options{FlushEvery: time.Hour})
	ctx := context.Background()
	id := strings.Repeat("id.with.dots ", 315) // 4095 bytes
	typ := strings.Repeat("com.example.", 340)
	r.Accepted("s", id, typ, time.Now(), []router.Subscriber{{SubscriptionID: "sub", FunctionID: "fn"}})
	r.Accepted("s", id+"x", typ, time.Now(), nil)
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Stored != 2 || s.Failed != 0 || !nc.IsConnected() {
		t.Fatalf("stats %+v, connected %v", s, nc.IsConnected())
	}
	settled(t, r)
	r2 := newRecorder(t, nc, Options{})
	ev, err := r2.Event(ctx, "s", id)
	if err != nil {
		t.Fatal(err)
	}
	if ev.EventID != id || ev.Type != typ || len(ev.Subscribers) != 1 {
		t.Fatalf("trail of a long id: %d subscribers, type %d bytes", len(ev.Subscribers), len(ev.Type))
	}
	items, _, err := r2.List(ctx, "s", ListFilter{Type: typ})
	if err != nil || len(items) != 2 {
		t.Fatalf("list by a long type: %d items, %v", len(items), err)
	}
}

// A UUID (whose subject token is short) and the same UUID in capitals
// (another id, whose token is not) are two trails, each read back.
func TestUUIDs(t *testing.T) {
	nc := connect(t)
	r := newRecorder(t, nc, Options{FlushEvery: time.Hour})
	ctx := context.Background()
	id := "5f92bc12-cd2c-44eb-9f95-3fee48b71f7c"
	r.Accepted("s", id, "order.placed", time.Now(), []router.Subscriber{{SubscriptionID: "lower", FunctionID: "fn"}})
	r.Accepted("s", strings.ToUpper(id), "order.placed", time.Now(), []router.Subscriber{{SubscriptionID: "upper", FunctionID: "fn"}})
	attempt(r, "s", id, "lower", 1, nil, egjs.OutcomeDelivered)
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	settled(t, r)
	r2 := newRecorder(t, nc, Options{})
	for _, c := range []struct{ id, sub, outcome string }{{id, "lower", OutcomeDelivered}, {strings.ToUpper(id), "upper", OutcomeInFlight}} {
		ev, err := r2.Event(ctx, "s", c.id)
		if err != nil {
			t.Fatal(err)
		}
		if ev.EventID != c.id || ev.Type != "order.placed" || len(ev.Subscribers) != 1 || ev.Subscribers[0].SubscriptionID != c.sub || ev.Outcome != c.outcome {
			t.Fatalf("trail of %s: %+v", c.id, ev)
		}
	}
	items, _, err := r2.List(ctx, "s", ListFilter{Type: "order.placed"})
	if err != nil || len(items) != 2 || items[0].EventID != strings.ToUpper(id) || items[1].EventID != id {
		t.Fatalf("list: %+v, %v", items, err)
	}
}

// The records of an event too many for one message are stored in several.
func TestManySubscribers(t *testing.T) {
	nc := connect(t)
	r := newRecorder(t, nc, Options{FlushEvery: time.Hour})
	r.maxMsg = 64 << 10
	ctx := context.Background()
	subs := make([]router.Subscriber, 2000)
	for i := range subs {
		subs[i] = router.Subscriber{SubscriptionID: fmt.Sprintf("sub-%04d", i), FunctionID: "fn"}
	}
	r.Accepted("s", "e", "order", time.Now(), subs)
	for i := range subs {
		attempt(r, "s", "e", subs[i].SubscriptionID, 1, errors.New(strings.Repeat("x", 100)), egjs.OutcomeDeadLetter)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	settled(t, r)
	info, err := r.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Stored != 2001 || s.Failed != 0 || info.State.Msgs < 4 || info.State.Bytes > 4*2001*512 {
		t.Fatalf("stats %+v, %d messages of %d bytes", s, info.State.Msgs, info.State.Bytes)
	}
	r2 := newRecorder(t, nc, Options{})
	ev, err := r2.Event(ctx, "s", "e")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Outcome != OutcomeDeadLetter || len(ev.Subscribers) != 2000 || ev.AcceptedAt == nil {
		t.Fatalf("trail: %s, %d subscribers", ev.Outcome, len(ev.Subscribers))
	}
	for _, s := range ev.Subscribers {
		if len(s.Attempts) != 1 {
			t.Fatalf("subscriber %s: %d attempts", s.SubscriptionID, len(s.Attempts))
		}
	}
}

// v7 is a version 7 UUID of the Unix milliseconds ms, n in its random bits.
func v7(ms uint64, n int) string {
	var u uuid.UUID
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	u[6] = 0x70
	u[8] = 0x80
	u[14], u[15] = byte(n>>8), byte(n)
	return u.String()
}

// Events whose ids carry their time (UUID v7) share their messages by
// window, several windows and many events a flush, and still read back
// one by one and in lists, with cursors that stop within a message.
func TestWindows(t *testing.T) {
	nc := connect(t)
	r := newRecorder(t, nc, Options{FlushEvery: time.Hour})
	r.maxMsg = 8 << 10 // windows split across messages
	ctx := context.Background()
	const n = 300
	base := uint64(time.Now().UnixMilli()) / windowMillis * windowMillis
	var ids, orders, dead []string // in the order accepted
	subs := []router.Subscriber{{SubscriptionID: "sub", FunctionID: "fn"}}
	for i := range n {
		id := v7(base+uint64(i/50*windowMillis), i) // six windows
		typ := "refund"
		if i%3 == 0 {
			typ = "order"
			orders = append(orders, id)
		}
		ids = append(ids, id)
		r.Accepted("s", id, typ, time.Now(), subs)
		outcome := egjs.OutcomeDelivered
		if i%5 == 0 {
			outcome = egjs.OutcomeDeadLetter
			dead = append(dead, id)
		}
		d := &router.Delivery{Space: "s", EventID: id, Event: typ, SubscriptionID: "sub", FunctionID: "fn"}
		r.Attempted(&egjs.Attempt{Delivery: d, Number: 1, Began: time.Now(), Outcome: outcome})
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	settled(t, r)
	if s := r.Stats(); s.Stored != 2*n || s.Failed != 0 || s.Messages < 6 || s.Messages > n/10 {
		t.Fatalf("stats %+v: want %d records in 6 to %d messages", s, 2*n, n/10)
	}

	r2 := newRecorder(t, nc, Options{FlushEvery: 5 * time.Millisecond})
	for i, id := range ids {
		ev, err := r2.Event(ctx, "s", id)
		if err != nil {
			t.Fatal(err)
		}
		want := OutcomeDelivered
		if i%5 == 0 {
			want = OutcomeDeadLetter
		}
		if ev.EventID != id || ev.AcceptedAt == nil || ev.Outcome != want || len(ev.Subscribers) != 1 || len(ev.Subscribers[0].Attempts) != 1 || ev.Subscribers[0].Attempts[0].Instance == "" {
			t.Fatalf("trail of event %d: %+v", i, ev)
		}
	}
	if _, err := r2.Event(ctx, "s", v7(base, n+1)); errkind.Of(err) != errkind.NotFound {
		t.Fatalf("an id of a stored window never accepted: %v", err)
	}
	// A later event of an id without time, and a later attempt of a
	// windowed one, stored on their own.
	r2.Accepted("s", "plain", "order", time.Now(), subs)
	d := &router.Delivery{Space: "s", EventID: ids[1], Event: "refund", SubscriptionID: "sub", FunctionID: "fn"}
	r2.Attempted(&egjs.Attempt{Delivery: d, Number: 2, Began: time.Now(), Outcome: egjs.OutcomeDelivered})
	until(t, "stored", func() bool { return r2.Stats().Stored == 2 })
	until(t, "the later attempt", func() bool {
		ev, err := r2.Event(ctx, "s", ids[1])
		return err == nil && len(ev.Subscribers[0].Attempts) == 2
	})

	all := func(f ListFilter) []string { return listAll(t, r2, "s", f) }
	newestFirst := func(s []string) []string { s = slices.Clone(s); slices.Reverse(s); return s }
	if got, want := all(ListFilter{Limit: 7}), append([]string{"plain"}, newestFirst(ids)...); !slices.Equal(got, want) {
		t.Fatalf("all events: %d, want %d\n%v", len(got), len(want), got)
	}
	if got, want := all(ListFilter{Type: "order", Limit: 5}), append([]string{"plain"}, newestFirst(orders)...); !slices.Equal(got, want) {
		t.Fatalf("orders: %v", got)
	}
	if got, want := all(ListFilter{Outcome: OutcomeDeadLetter, Limit: 4}), newestFirst(dead); !slices.Equal(got, want) {
		t.Fatalf("dead letters: %v, want %v", got, want)
	}
}

// Only a lowercase UUID of version 7 and the RFC's variant carries a
// window; its window is its milliseconds over windowMillis.
func TestWindowOf(t *testing.T) {
	id := v7(1764547200123, 1)
	if w, ok := window(id); !ok || w != 1764547200123/windowMillis {
		t.Fatalf("window(%s) = %d, %v", id, w, ok)
	}
	for _, other := range []string{strings.ToUpper(id), id[:14] + "4" + id[15:], id[:19] + "c" + id[20:], "5f92bc12-cd2c-44eb-9f95-3fee48b71f7c", "e1"} {
		if _, ok := window(other); ok {
			t.Fatalf("window(%s): carries one", other)
		}
	}
}

// The records of a windowed event given long after its id's time (its
// retries) are stored on its own subject, not its window's: a window's
// messages stay few however long its events are retried, and the event
// still reads back whole. An id whose time is far from the clock (a
// client's) is stored on its own from the start.
func TestWindowKeepsFew(t *testing.T) {
	nc := connect(t)
	ctx := context.Background()
	now := uint64(time.Now().UnixMilli())
	target := v7(now, 0)
	subs := []router.Subscriber{{SubscriptionID: "sub", FunctionID: "fn"}}
	r := newRecorder(t, nc, Options{FlushEvery: time.Hour})
	for i := range 50 {
		r.Accepted("s", v7(now, i), "order", time.Now(), subs)
	}
	far := v7(now+uint64(time.Hour.Milliseconds()), 1)
	r.Accepted("s", far, "order", time.Now(), subs)
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Retries a minute on, many of them, each flush of its own.
	later := newRecorder(t, nc, Options{FlushEvery: time.Millisecond})
	later.skew = time.Minute
	const retries = 300
	for i := range retries {
		attempt(later, "s", v7(now, 1+i%49), "sub", 2+i/49, errors.New("boom"), egjs.OutcomeRetrying)
		until(t, "flush", func() bool { return later.Stats().Messages == uint64(i+1) })
	}
	attempt(later, "s", target, "sub", 2, nil, egjs.OutcomeDelivered)
	until(t, "flush", func() bool { return later.Stats().Messages == retries+1 })
	if err := later.Close(ctx); err != nil {
		t.Fatal(err)
	}

	w, _ := window(target)
	until(t, "stored", func() bool {
		ev, err := later.Event(ctx, "s", target)
		return err == nil && ev.Outcome == OutcomeDelivered
	})
	ms, _, err := later.messages(ctx, windowSubject("s", w)+".>", nil)
	if err != nil || len(ms) != 1 {
		t.Fatalf("the window holds %d messages (%v), want the one of its acceptances", len(ms), err)
	}
	if ms, _, err := later.messages(ctx, eventSubject("s", far)+".>", nil); err != nil || len(ms) != 1 {
		t.Fatalf("an id an hour off: %d messages of its own (%v), want 1", len(ms), err)
	}
	ev, err := later.Event(ctx, "s", v7(now, 1))
	if err != nil || len(ev.Subscribers) != 1 || len(ev.Subscribers[0].Attempts) != (retries+48)/49 {
		t.Fatalf("an event retried %d times: %+v, %v", (retries+48)/49, ev, err)
	}
}

// A record larger than NATS takes is dropped and counted; the other
// events of its flush, in its window or not, are stored.
func TestOversizedRecord(t *testing.T) {
	nc := connectWith(t, egjs.EmbedOptions{MaxPayload: 1 << 20})
	r := newRecorder(t, nc, Options{FlushEvery: time.Hour})
	ctx := context.Background()
	now := uint64(time.Now().UnixMilli())
	huge := make([]router.Subscriber, 20000)
	for i := range huge {
		huge[i] = router.Subscriber{SubscriptionID: fmt.Sprintf("%036d", i), FunctionID: "fn"}
	}
	small := []router.Subscriber{{SubscriptionID: "a", FunctionID: "b"}}
	r.Accepted("s", "big", "order", time.Now(), huge)
	r.Accepted("s", "plain", "order", time.Now(), small)
	r.Accepted("s", v7(now, 1), "order", time.Now(), huge)
	r.Accepted("s", v7(now, 2), "order", time.Now(), small)
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Stored != 2 || s.Failed != 2 || !nc.IsConnected() {
		t.Fatalf("stats %+v, connected %v: want the two small stored, the two huge failed", s, nc.IsConnected())
	}
	settled(t, r)
	for _, id := range []string{"plain", v7(now, 2)} {
		if _, err := r.Event(ctx, "s", id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
}
