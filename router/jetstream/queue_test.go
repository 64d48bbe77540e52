package jetstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router"
)

// testLogger shows the queue's log with -v when EG_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("EG_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func startServer(t testing.TB, dir string, sync bool) *Embedded {
	t.Helper()
	e, err := StartEmbedded(EmbedOptions{DataDir: dir, Port: -1, SyncAlways: sync})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func connect(t testing.TB, e *Embedded) *nats.Conn {
	t.Helper()
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func newQueue(t testing.TB, nc *nats.Conn, o Options) *Queue {
	t.Helper()
	o.Conn = nc
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// fixture is a server, a connection and a queue, closed at the end of the
// test.
func fixture(t *testing.T, o Options) (*Embedded, *nats.Conn, *Queue) {
	t.Helper()
	e := startServer(t, t.TempDir(), false)
	t.Cleanup(e.Close)
	nc := connect(t, e)
	t.Cleanup(nc.Close)
	q := newQueue(t, nc, o)
	return e, nc, q
}

func stopAtEnd(t *testing.T, q *Queue) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// deliveries returns n events, each for every one of subs (subscription
// id → function id).
func deliveries(n int, prefix string, subs map[string]string) []router.Delivery {
	var ds []router.Delivery
	for i := range n {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		payload := fmt.Appendf(nil, `{"id":%q,"data":{"n":%d}}`, id, i)
		for sub, fn := range subs {
			ds = append(ds, router.Delivery{SubscriptionID: sub, FunctionID: fn, EventID: id, Event: "user.created", Payload: payload})
		}
	}
	return ds
}

// enqueueAll enqueues ds one event (run of one event id) at a time.
func enqueueAll(t testing.TB, q *Queue, ds []router.Delivery) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < len(ds); {
		j := i + 1
		for j < len(ds) && ds[j].EventID == ds[i].EventID {
			j++
		}
		if err := q.Enqueue(ctx, ds[i:j]); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		i = j
	}
}

func key(d router.Delivery) string { return d.EventID + "/" + d.SubscriptionID }

// recorder counts the calls of each delivery.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	ok    map[string]int
	order []string // successful deliveries, in order
}

func newRecorder() *recorder {
	return &recorder{calls: map[string]int{}, ok: map[string]int{}}
}

func (r *recorder) call(d router.Delivery, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[key(d)]++
	if err == nil {
		r.ok[key(d)]++
		r.order = append(r.order, key(d))
	}
	return err
}

func (r *recorder) okCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ok)
}

func (r *recorder) callsOf(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[k]
}

// storedDeliveries counts the deliveries the stream holds, in batch
// records and in records of their own.
func storedDeliveries(t testing.TB, q *Queue) int {
	t.Helper()
	ctx := context.Background()
	info, err := q.deliveries.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := q.deliveries.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != batchSubject {
			n++
			continue
		}
		ds, err := decodeBatch(m.Data)
		if err != nil {
			t.Fatalf("record %d: %v", seq, err)
		}
		n += len(ds)
	}
	return n
}

func streamMsgs(t testing.TB, q *Queue) uint64 {
	t.Helper()
	info, err := q.deliveries.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestDeliverOnce(t *testing.T) {
	_, _, q := fixture(t, Options{Workers: 8})
	subs := map[string]string{
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8": "hello",
		"6ba7b811-9dad-11d1-80b4-00c04fd430c8": "fn.with.dots",
		"6ba7b812-9dad-11d1-80b4-00c04fd430c8": "fn-3",
	}
	ds := deliveries(200, "ev", subs)
	ds[0].System = true
	enqueueAll(t, q, ds)
	if n := storedDeliveries(t, q); n != len(ds) {
		t.Fatalf("stream holds %d deliveries, want %d", n, len(ds))
	}

	want := map[string]router.Delivery{}
	for _, d := range ds {
		want[key(d)] = d
	}
	rec := newRecorder()
	var mismatch atomic.Value
	err := q.Start(context.Background(), func(_ context.Context, d router.Delivery) error {
		w := want[key(d)]
		if w.FunctionID != d.FunctionID || w.Event != d.Event || w.System != d.System || !bytes.Equal(w.Payload, d.Payload) {
			mismatch.Store(fmt.Sprintf("got %+v, want %+v", d, w))
		}
		return rec.call(d, nil)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 20*time.Second, "every delivery", func() bool { return rec.okCount() == len(ds) })
	waitFor(t, 10*time.Second, "an empty stream", func() bool { return streamMsgs(t, q) == 0 })
	if m := mismatch.Load(); m != nil {
		t.Fatal(m)
	}
	for k, n := range rec.calls {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
	s := q.Stats()
	if s.Enqueued != uint64(len(ds)) || s.Delivered != uint64(len(ds)) || s.Retried != 0 || s.DeadLettered != 0 || s.Pending != 0 || s.DeadLetters != 0 {
		t.Errorf("stats %+v", s)
	}
	if err := q.Start(context.Background(), func(context.Context, router.Delivery) error { return nil }, nil); err == nil {
		t.Error("second Start: no error")
	}
}

func TestRandomFailuresAllDelivered(t *testing.T) {
	_, _, q := fixture(t, Options{Workers: 16})
	ds := deliveries(1000, "ev", map[string]string{"sub-a": "fn-a", "sub-b": "fn-b"})
	enqueueAll(t, q, ds)
	rec := newRecorder()
	policy := func(string, string) RetryPolicy {
		return RetryPolicy{MaxAttempts: 20, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	}
	err := q.Start(context.Background(), func(_ context.Context, d router.Delivery) error {
		if rand.N(10) < 3 {
			return rec.call(d, errors.New("function returned 500"))
		}
		return rec.call(d, nil)
	}, policy)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 40*time.Second, "every delivery", func() bool { return rec.okCount() == len(ds) })
	waitFor(t, 10*time.Second, "an empty stream", func() bool { return streamMsgs(t, q) == 0 })
	s := q.Stats()
	if s.DeadLettered != 0 || s.DeadLetters != 0 {
		t.Errorf("dead-lettered: %+v", s)
	}
	if s.Retried == 0 {
		t.Errorf("no retries: %+v", s)
	}
	for k, n := range rec.ok {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
	t.Logf("stats %+v", s)
}

func TestDeadLetters(t *testing.T) {
	_, _, q := fixture(t, Options{Workers: 8})
	const (
		subFail    = "sub-fail"
		fnFail     = "fn.fail"
		subRefused = "sub-refused"
		fnRefused  = "fn-refused"
		subGone    = "sub-gone"
		fnGone     = "fn-gone"
		subOK      = "sub-ok"
	)
	var fixed atomic.Bool
	rec := newRecorder()
	deliver := func(_ context.Context, d router.Delivery) error {
		switch {
		case d.SubscriptionID == subFail && !fixed.Load():
			return rec.call(d, fmt.Errorf("calling %s: 502 bad gateway\nline two", d.FunctionID))
		case d.SubscriptionID == subRefused && !fixed.Load():
			return rec.call(d, errkind.New(errkind.Forbidden, "refused by a plugin"))
		case d.SubscriptionID == subGone && !fixed.Load():
			return rec.call(d, errkind.New(errkind.NotFound, "function %q not found", d.FunctionID))
		}
		return rec.call(d, nil)
	}
	policy := func(_, sub string) RetryPolicy {
		if sub == subFail {
			return RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
		}
		return RetryPolicy{} // the default: no retry happens in this test
	}
	ds := deliveries(5, "ev", map[string]string{subFail: fnFail, subRefused: fnRefused, subGone: fnGone, subOK: "fn-ok"})
	enqueueAll(t, q, ds)
	start := time.Now()
	if err := q.Start(context.Background(), deliver, policy); err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 20*time.Second, "15 dead letters", func() bool { return q.Stats().DeadLetters == 15 })
	waitFor(t, 10*time.Second, "an empty stream", func() bool { return streamMsgs(t, q) == 0 })

	ctx := context.Background()
	for _, d := range ds {
		want := map[string]int{subFail: 3, subRefused: 1, subGone: 1, subOK: 1}[d.SubscriptionID]
		if n := rec.callsOf(key(d)); n != want {
			t.Errorf("%s: %d calls, want %d", key(d), n, want)
		}
	}

	// Filter by subscription.
	items, next, err := q.DeadLetters(ctx, DeadLetterFilter{SubscriptionID: subFail})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 5 || next != "" {
		t.Fatalf("by subscription: %d items, next %q", len(items), next)
	}
	events := map[string]bool{}
	for i, dl := range items {
		events[dl.EventID] = true
		if !strings.HasPrefix(dl.EventID, "ev-0000") || dl.SubscriptionID != subFail || dl.FunctionID != fnFail || dl.Event != "user.created" ||
			dl.Attempts != 3 || dl.LastError != "calling fn.fail: 502 bad gateway line two" ||
			dl.FailedAt.Before(start) || time.Since(dl.FailedAt) > time.Minute ||
			!strings.Contains(string(dl.Payload), dl.EventID) {
			t.Errorf("dead letter %d: %+v", i, dl)
		}
		if i > 0 && idLess(dl.ID, items[i-1].ID) {
			t.Errorf("ids not increasing: %s after %s", dl.ID, items[i-1].ID)
		}
	}
	if len(events) != 5 {
		t.Errorf("dead letters of %d events, want 5", len(events))
	}
	// Filter by function: the dotted id does not match another.
	byFn, _, err := q.DeadLetters(ctx, DeadLetterFilter{FunctionID: fnRefused})
	if err != nil {
		t.Fatal(err)
	}
	if len(byFn) != 5 {
		t.Fatalf("by function: %d items", len(byFn))
	}
	for _, dl := range byFn {
		if dl.SubscriptionID != subRefused || dl.Attempts != 1 || dl.LastError != "refused by a plugin" {
			t.Errorf("by function: %+v", dl)
		}
	}
	if got, _, _ := q.DeadLetters(ctx, DeadLetterFilter{FunctionID: "fn"}); len(got) != 0 {
		t.Errorf("function fn: %d items", len(got))
	}
	if got, _, _ := q.DeadLetters(ctx, DeadLetterFilter{FunctionID: fnGone, SubscriptionID: subGone}); len(got) != 5 {
		t.Errorf("function and subscription: %d items", len(got))
	}
	if got, _, _ := q.DeadLetters(ctx, DeadLetterFilter{FunctionID: fnGone, SubscriptionID: subFail}); len(got) != 0 {
		t.Errorf("mismatched function and subscription: %d items", len(got))
	}
	// Paging over all 15.
	var all []DeadLetter
	after := ""
	pages := 0
	for {
		page, next, err := q.DeadLetters(ctx, DeadLetterFilter{After: after, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, page...)
		if next == "" {
			break
		}
		if next != page[len(page)-1].ID {
			t.Fatalf("next %q, last of page %q", next, page[len(page)-1].ID)
		}
		after = next
	}
	if len(all) != 15 || pages != 4 {
		t.Fatalf("paging: %d items in %d pages", len(all), pages)
	}
	seen := map[string]bool{}
	for _, dl := range all {
		if seen[dl.ID] {
			t.Errorf("id %s twice", dl.ID)
		}
		seen[dl.ID] = true
	}
	if _, _, err := q.DeadLetters(ctx, DeadLetterFilter{After: "x"}); errkind.Of(err) != errkind.Invalid {
		t.Errorf("bad cursor: %v", err)
	}

	// Fix the functions; replay one, then the rest of the subscription.
	fixed.Store(true)
	if err := q.Replay(ctx, items[0].ID); err != nil {
		t.Fatal(err)
	}
	k0 := items[0].EventID + "/" + subFail
	waitFor(t, 10*time.Second, "the replayed delivery", func() bool { return rec.callsOf(k0) == 4 })
	if err := q.Replay(ctx, items[0].ID); errkind.Of(err) != errkind.NotFound {
		t.Errorf("replay again: %v", err)
	}
	n, err := q.ReplayAll(ctx, subFail)
	if err != nil || n != 4 {
		t.Fatalf("ReplayAll: %d, %v", n, err)
	}
	waitFor(t, 10*time.Second, "the replayed deliveries", func() bool {
		for _, dl := range items {
			if rec.callsOf(dl.EventID+"/"+subFail) != 4 {
				return false
			}
		}
		return true
	})
	if got, _, _ := q.DeadLetters(ctx, DeadLetterFilter{SubscriptionID: subFail}); len(got) != 0 {
		t.Errorf("after replay: %d dead letters left", len(got))
	}
	if n, err := q.ReplayAll(ctx, subFail); n != 0 || err != nil {
		t.Errorf("ReplayAll of none: %d, %v", n, err)
	}
	if _, err := q.ReplayAll(ctx, ""); errkind.Of(err) != errkind.Invalid {
		t.Errorf("ReplayAll without subscription: %v", err)
	}

	// Delete.
	for _, dl := range byFn {
		if err := q.DeleteDeadLetter(ctx, dl.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{byFn[0].ID, "999999", "abc", "0", ""} {
		if err := q.DeleteDeadLetter(ctx, id); errkind.Of(err) != errkind.NotFound {
			t.Errorf("delete %q: %v", id, err)
		}
		if err := q.Replay(ctx, id); errkind.Of(err) != errkind.NotFound {
			t.Errorf("replay %q: %v", id, err)
		}
	}
	rest, _, err := q.DeadLetters(ctx, DeadLetterFilter{})
	if err != nil || len(rest) != 5 {
		t.Fatalf("left: %d, %v", len(rest), err)
	}
	for _, dl := range rest {
		if dl.SubscriptionID != subGone {
			t.Errorf("left: %+v", dl)
		}
	}
	s := q.Stats()
	if s.DeadLettered != 15 || s.Replayed != 5 || s.DeadLetters != 5 || s.Retried != 10 {
		t.Errorf("stats %+v", s)
	}
}

// A subscriber that always fails, with a long backoff, holds no worker:
// the deliveries of another subscriber queued after all of its own are
// made while it waits for its retries.
func TestFailingSubscriberDoesNotDelayOthers(t *testing.T) {
	_, _, q := fixture(t, Options{Workers: 2})
	const n = 100
	bad := deliveries(n, "a", map[string]string{"sub-a": "fn-a"})
	good := deliveries(n, "b", map[string]string{"sub-b": "fn-b"})
	enqueueAll(t, q, bad) // all of A's first, in the stream's order
	enqueueAll(t, q, good)
	rec := newRecorder()
	var aCalls, bDone atomic.Int64
	var aCallsWhenBDone atomic.Int64
	policy := func(_, sub string) RetryPolicy {
		if sub == "sub-a" {
			return RetryPolicy{MaxAttempts: 100, InitialBackoff: time.Hour, MaxBackoff: time.Hour}
		}
		return RetryPolicy{}
	}
	err := q.Start(context.Background(), func(_ context.Context, d router.Delivery) error {
		if d.SubscriptionID == "sub-a" {
			aCalls.Add(1)
			return rec.call(d, errors.New("always failing"))
		}
		if bDone.Add(1) == n {
			aCallsWhenBDone.Store(aCalls.Load())
		}
		return rec.call(d, nil)
	}, policy)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 20*time.Second, "B's deliveries", func() bool { return bDone.Load() == n })
	// Every one of A's deliveries was tried once and is waiting: none was
	// retried (so no worker waited for A) and none dead-lettered.
	if got := aCallsWhenBDone.Load(); got != n {
		t.Errorf("A called %d times when B was done, want %d", got, n)
	}
	// Acks are asynchronous: wait until the server has them.
	var s Stats
	waitFor(t, 10*time.Second, "A's deliveries alone pending", func() bool {
		s = q.Stats()
		return s.Pending == n && s.Retried == n
	})
	if s.DeadLettered != 0 || s.Delivered != n || aCalls.Load() != n {
		t.Errorf("stats %+v, A called %d times", s, aCalls.Load())
	}
}

func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, false)
	nc := connect(t, e)
	q := newQueue(t, nc, Options{})
	ds := deliveries(500, "ev", map[string]string{"sub-1": "fn-1", "sub-2": "fn-2"})
	enqueueAll(t, q, ds)
	nc.Close()
	e.Close()

	e = startServer(t, dir, false)
	t.Cleanup(e.Close)
	nc = connect(t, e)
	t.Cleanup(nc.Close)
	q = newQueue(t, nc, Options{Workers: 16})
	if n := storedDeliveries(t, q); n != len(ds) {
		t.Fatalf("after restart the stream holds %d deliveries, want %d", n, len(ds))
	}
	rec := newRecorder()
	if err := q.Start(context.Background(), func(_ context.Context, d router.Delivery) error { return rec.call(d, nil) }, nil); err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 20*time.Second, "every delivery", func() bool { return rec.okCount() == len(ds) })
	for _, d := range ds {
		if rec.callsOf(key(d)) != 1 {
			t.Errorf("%s: %d calls", key(d), rec.callsOf(key(d)))
		}
	}
}

func TestStoreFull(t *testing.T) {
	_, _, q := fixture(t, Options{MaxBytes: 64 << 10, Workers: 4})
	ctx := context.Background()
	payload := bytes.Repeat([]byte("x"), 1000)
	var accepted []router.Delivery
	var fullErr error
	// Events of one delivery until the stream is full.
	for i := range 1000 {
		d := router.Delivery{SubscriptionID: "sub-1", FunctionID: "fn", EventID: fmt.Sprintf("one-%d", i), Event: "e", Payload: payload}
		if err := q.Enqueue(ctx, []router.Delivery{d}); err != nil {
			fullErr = err
			break
		}
		accepted = append(accepted, d)
	}
	if fullErr == nil {
		t.Fatal("the stream never filled")
	}
	if errkind.Of(fullErr) != errkind.Unavailable || errkind.Message(fullErr) != ErrFull.Msg || !errors.Is(fullErr, ErrFull) {
		t.Fatalf("full: %v (kind %v)", fullErr, errkind.Of(fullErr))
	}
	if len(accepted) < 10 {
		t.Fatalf("only %d accepted", len(accepted))
	}
	// An event of ten deliveries, with the same envelope as the one
	// refused (so a record larger than that one), finds no room either.
	many := deliveries(1, "many", map[string]string{"s1": "f", "s2": "f", "s3": "f", "s4": "f", "s5": "f", "s6": "f", "s7": "f", "s8": "f", "s9": "f", "s10": "f"})
	for i := range many {
		many[i].Payload = payload
	}
	if err := q.Enqueue(ctx, many); !errors.Is(err, ErrFull) || errkind.Of(err) != errkind.Unavailable {
		t.Fatalf("event of ten: %v", err)
	}

	rec := newRecorder()
	if err := q.Start(ctx, func(_ context.Context, d router.Delivery) error { return rec.call(d, nil) }, nil); err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 20*time.Second, "the accepted deliveries", func() bool {
		for _, d := range accepted {
			if rec.callsOf(key(d)) == 0 {
				return false
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, "an empty stream", func() bool { return streamMsgs(t, q) == 0 })
	// Room again.
	if err := q.Enqueue(ctx, many); err != nil {
		t.Fatalf("after draining: %v", err)
	}
	waitFor(t, 10*time.Second, "the event of ten", func() bool {
		for _, d := range many {
			if rec.callsOf(key(d)) == 0 {
				return false
			}
		}
		return true
	})
}

// TestDeletedSubscriptionDropped: the deliveries of a deleted
// subscription, in retry records of their own and in batch records shared
// with other subscriptions, are dropped and counted when their turn comes.
func TestDeletedSubscriptionDropped(t *testing.T) {
	_, _, q := fixture(t, Options{})
	ctx := context.Background()
	var retries []*nats.Msg
	for _, d := range deliveries(10, "x", map[string]string{"sub-x": "f"}) {
		retries = append(retries, retryRecord(&d, 1, time.Now()))
	}
	if err := q.store(ctx, retries...); err != nil {
		t.Fatal(err)
	}
	enqueueAll(t, q, deliveries(5, "y", map[string]string{"sub-y": "f"}))
	enqueueAll(t, q, deliveries(3, "z", map[string]string{"sub-x": "f", "sub-y": "f"}))
	rec := newRecorder()
	if err := q.Start(ctx, func(_ context.Context, d router.Delivery) error {
		if d.SubscriptionID == "sub-x" {
			return router.ErrSubscriptionGone
		}
		return rec.call(d, nil)
	}, nil); err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 10*time.Second, "an empty stream", func() bool { return streamMsgs(t, q) == 0 })
	if got := rec.okCount(); got != 8 {
		t.Errorf("%d delivered, want 8", got)
	}
	var s Stats
	waitFor(t, 5*time.Second, "13 dropped and 8 delivered", func() bool {
		s = q.Stats()
		return s.Dropped == 13 && s.Delivered == 8
	})
	if s.DeadLettered != 0 || s.Retried != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A delivery that panics fails its attempt; the process goes on.
func TestPanicIsAFailedAttempt(t *testing.T) {
	_, _, q := fixture(t, Options{})
	enqueueAll(t, q, deliveries(1, "ev", map[string]string{"s": "f"}))
	var calls atomic.Int64
	policy := func(string, string) RetryPolicy { return RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond} }
	if err := q.Start(context.Background(), func(context.Context, router.Delivery) error {
		calls.Add(1)
		panic("boom")
	}, policy); err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 10*time.Second, "a dead letter", func() bool { return q.Stats().DeadLetters == 1 })
	items, _, err := q.DeadLetters(context.Background(), DeadLetterFilter{})
	if err != nil || len(items) != 1 || items[0].LastError != "delivery panicked: boom" || calls.Load() != 2 {
		t.Fatalf("%+v, %v, %d calls", items, err, calls.Load())
	}
}

func TestEnqueueTooLarge(t *testing.T) {
	_, nc, q := fixture(t, Options{})
	d := router.Delivery{SubscriptionID: "s", FunctionID: "f", EventID: "e", Event: "e", Payload: make([]byte, nc.MaxPayload())}
	if err := q.Enqueue(context.Background(), []router.Delivery{d}); errkind.Of(err) != errkind.TooLarge {
		t.Fatalf("got %v", err)
	}
}

func TestEnqueueNATSDown(t *testing.T) {
	e, nc, q := fixture(t, Options{PublishTimeout: 500 * time.Millisecond})
	e.Close()
	_ = nc
	ds := deliveries(1, "ev", map[string]string{"s": "f"})
	if err := q.Enqueue(context.Background(), ds); errkind.Of(err) != errkind.Unavailable {
		t.Fatalf("got %v", err)
	}
}

// Stop waits for the calls in progress; messages buffered and not begun go
// back to the stream and are made by the next instance.
func TestStopWaitsForInflight(t *testing.T) {
	e, _, q := fixture(t, Options{Workers: 4, AckWait: time.Second})
	ds := deliveries(20, "ev", map[string]string{"s": "f"})
	enqueueAll(t, q, ds)
	rec := newRecorder()
	var inflight atomic.Int64
	release := make(chan struct{})
	err := q.Start(context.Background(), func(_ context.Context, d router.Delivery) error {
		inflight.Add(1)
		<-release
		time.Sleep(50 * time.Millisecond)
		return rec.call(d, nil)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "4 calls in progress", func() bool { return inflight.Load() == 4 })
	stopped := make(chan error, 1)
	go func() { stopped <- q.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned before the calls ended: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if got := rec.okCount(); got != 4 {
		t.Fatalf("%d deliveries made before Stop returned, want 4", got)
	}
	if inflight.Load() != 4 {
		t.Fatalf("%d calls begun", inflight.Load())
	}
	waitFor(t, 10*time.Second, "16 messages left", func() bool { return streamMsgs(t, q) == 16 })

	// Another instance makes the rest, at once (not after AckWait).
	nc2 := connect(t, e)
	t.Cleanup(nc2.Close)
	q2 := newQueue(t, nc2, Options{Workers: 4, AckWait: time.Minute})
	if err := q2.Start(context.Background(), func(_ context.Context, d router.Delivery) error { return rec.call(d, nil) }, nil); err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q2)
	waitFor(t, 10*time.Second, "every delivery", func() bool { return rec.okCount() == len(ds) })
	for _, d := range ds {
		if n := rec.callsOf(key(d)); n != 1 {
			t.Errorf("%s: %d calls", key(d), n)
		}
	}
}

// When Stop gives up waiting and the process goes, the calls it left are
// made again after AckWait.
func TestStopTimeoutRedelivers(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir, false)
	nc := connect(t, e)
	q := newQueue(t, nc, Options{Workers: 4, AckWait: time.Second})
	ds := deliveries(10, "ev", map[string]string{"s": "f"})
	enqueueAll(t, q, ds)
	rec := newRecorder()
	var inflight atomic.Int64
	release := make(chan struct{})
	err := q.Start(context.Background(), func(_ context.Context, d router.Delivery) error {
		inflight.Add(1)
		<-release
		return rec.call(d, nil)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "4 calls in progress", func() bool { return inflight.Load() == 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := q.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v", err)
	}
	// The process dies: its acks never arrive.
	nc.Close()
	close(release)
	e.Close()

	e = startServer(t, dir, false)
	t.Cleanup(e.Close)
	nc = connect(t, e)
	t.Cleanup(nc.Close)
	q = newQueue(t, nc, Options{Workers: 4, AckWait: time.Second})
	rec2 := newRecorder()
	if err := q.Start(context.Background(), func(_ context.Context, d router.Delivery) error { return rec2.call(d, nil) }, nil); err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 20*time.Second, "every delivery", func() bool { return rec2.okCount() == len(ds) })
	waitFor(t, 10*time.Second, "an empty stream", func() bool { return streamMsgs(t, q) == 0 })
	// The four cut short were called twice in all; the rest once.
	twice := 0
	for _, d := range ds {
		n := rec.callsOf(key(d)) + rec2.callsOf(key(d))
		switch n {
		case 1:
		case 2:
			twice++
		default:
			t.Errorf("%s: %d calls", key(d), n)
		}
	}
	if twice != 4 {
		t.Errorf("%d deliveries made twice, want 4", twice)
	}
}

// A call longer than AckWait is not handed to another worker meanwhile.
func TestLongCallNotRedelivered(t *testing.T) {
	_, _, q := fixture(t, Options{Workers: 4, AckWait: 400 * time.Millisecond})
	ds := deliveries(2, "ev", map[string]string{"s": "f"})
	enqueueAll(t, q, ds)
	rec := newRecorder()
	err := q.Start(context.Background(), func(_ context.Context, d router.Delivery) error {
		time.Sleep(1500 * time.Millisecond)
		return rec.call(d, nil)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 10*time.Second, "both deliveries", func() bool { return rec.okCount() == 2 })
	time.Sleep(500 * time.Millisecond)
	for _, d := range ds {
		if n := rec.callsOf(key(d)); n != 1 {
			t.Errorf("%s: %d calls", key(d), n)
		}
	}
}

// Two instances on one NATS share the consumer: both deliver, and each
// delivery is made.
func TestTwoInstancesShareTheWork(t *testing.T) {
	e := startServer(t, t.TempDir(), false)
	t.Cleanup(e.Close)
	var qs [2]*Queue
	for i := range qs {
		nc := connect(t, e)
		t.Cleanup(nc.Close)
		qs[i] = newQueue(t, nc, Options{Workers: 4})
	}
	rec := newRecorder()
	var made [2]atomic.Int64
	for i, q := range qs {
		err := q.Start(context.Background(), func(_ context.Context, d router.Delivery) error {
			made[i].Add(1)
			time.Sleep(time.Millisecond)
			return rec.call(d, nil)
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		stopAtEnd(t, q)
	}
	ds := deliveries(1000, "ev", map[string]string{"s1": "f1", "s2": "f2"})
	half := len(ds) / 2
	enqueueAll(t, qs[0], ds[:half])
	enqueueAll(t, qs[1], ds[half:])
	waitFor(t, 30*time.Second, "every delivery", func() bool { return rec.okCount() == len(ds) })
	if made[0].Load() == 0 || made[1].Load() == 0 {
		t.Errorf("deliveries per instance: %d and %d", made[0].Load(), made[1].Load())
	}
	t.Logf("deliveries per instance: %d and %d", made[0].Load(), made[1].Load())
}

func idLess(a, b string) bool { return len(a) < len(b) || len(a) == len(b) && a < b }

func TestBackoff(t *testing.T) {
	p := DefaultRetryPolicy()
	var total time.Duration
	for a := 1; a < p.MaxAttempts; a++ {
		d := p.Backoff(a)
		base := min(p.InitialBackoff<<(a-1), p.MaxBackoff)
		if d < base*4/5 || d > base*6/5 {
			t.Errorf("attempt %d: %v, base %v", a, d, base)
		}
		total += base
	}
	if total < 50*time.Minute || total > 70*time.Minute {
		t.Errorf("default policy spans %v", total)
	}
	if d := (RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}).Backoff(100); d > 12*time.Millisecond {
		t.Errorf("capped backoff %v", d)
	}
	if got := (RetryPolicy{}).normalized(); got != DefaultRetryPolicy() {
		t.Errorf("zero policy %+v", got)
	}
}

func TestToken(t *testing.T) {
	for in, want := range map[string]string{
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
		"fn.with.dots":                         "fn%2Ewith%2Edots",
		"a*b>c d%":                             "a%2Ab%3Ec%20d%25",
		"":                                     "%",
	} {
		if got := token(in); got != want {
			t.Errorf("token(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHeaderSafe(t *testing.T) {
	if got := headerSafe("a\r\nb\tc"); got != "a  b c" {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("é", maxErrorLen)
	got := headerSafe(long)
	if len(got) > maxErrorLen || !strings.HasPrefix(long, got) || len(got) < maxErrorLen-1 {
		t.Errorf("truncated to %d bytes", len(got))
	}
}

func TestEmbeddedListensOnLoopback(t *testing.T) {
	e, err := StartEmbedded(EmbedOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	url := e.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("ClientURL %q", url)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	q := newQueue(t, nc, Options{})
	if err := q.Enqueue(context.Background(), deliveries(1, "ev", map[string]string{"s": "f"})); err != nil {
		t.Fatal(err)
	}

	in := startServer(t, t.TempDir(), false)
	defer in.Close()
	if u := in.ClientURL(); u != "" {
		t.Errorf("in-process only, ClientURL %q", u)
	}
}

// TestSpaces: a delivery's space is kept in records of one delivery and
// in batch records, handed to deliver and to the retry policy, and kept
// by its dead letter, which can be listed by space. An empty space is the
// default one.
func TestSpaces(t *testing.T) {
	_, _, q := fixture(t, Options{Workers: 8})
	ctx := context.Background()
	// More deliveries than a batch record holds: records of their own.
	var many []router.Delivery
	for i := range maxBatchDeliveries + 1 {
		many = append(many, router.Delivery{Space: "acme", SubscriptionID: fmt.Sprintf("sub-%d", i), FunctionID: "f", EventID: "big", Event: "e", Payload: []byte(`{}`)})
	}
	if err := q.Enqueue(ctx, many); err != nil {
		t.Fatal(err)
	}
	info, err := q.deliveries.Info(ctx, jetstream.WithSubjectFilter("eg.deliveries.acme.*"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(info.State.Subjects); n != len(many) {
		t.Fatalf("%d subjects eg.deliveries.acme.*, want %d", n, len(many))
	}
	// A batch record of two spaces.
	shared := []byte(`{"n":1}`)
	if err := q.Enqueue(ctx, []router.Delivery{
		{SubscriptionID: "s-def", FunctionID: "f.1", EventID: "ev", Event: "e", Payload: shared},
		{Space: "acme", SubscriptionID: "s-acme", FunctionID: "f.1", EventID: "ev", Event: "e", Payload: shared},
	}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	spaces := map[string]string{}       // subscription → space delivered
	policySpaces := map[string]string{} // subscription → space of the policy asked
	err = q.Start(ctx, func(_ context.Context, d router.Delivery) error {
		mu.Lock()
		spaces[d.SubscriptionID] = d.Space
		mu.Unlock()
		if d.EventID == "ev" {
			return errkind.New(errkind.Forbidden, "refused")
		}
		return nil
	}, func(space, sub string) RetryPolicy {
		mu.Lock()
		policySpaces[sub] = space
		mu.Unlock()
		return RetryPolicy{}
	})
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 10*time.Second, "2 dead letters", func() bool { return q.Stats().DeadLetters == 2 })
	waitFor(t, 10*time.Second, "an empty stream", func() bool { return streamMsgs(t, q) == 0 })
	mu.Lock()
	for _, d := range many {
		if spaces[d.SubscriptionID] != "acme" {
			t.Errorf("%s delivered in space %q", d.SubscriptionID, spaces[d.SubscriptionID])
		}
	}
	if spaces["s-def"] != "default" || spaces["s-acme"] != "acme" {
		t.Errorf("batch deliveries in spaces %q and %q", spaces["s-def"], spaces["s-acme"])
	}
	if len(policySpaces) != 2 || policySpaces["s-def"] != "default" || policySpaces["s-acme"] != "acme" {
		t.Errorf("policies asked for %v", policySpaces)
	}
	mu.Unlock()

	for space, sub := range map[string]string{"acme": "s-acme", "default": "s-def"} {
		items, _, err := q.DeadLetters(ctx, DeadLetterFilter{Space: space})
		if err != nil || len(items) != 1 || items[0].Space != space || items[0].SubscriptionID != sub || items[0].FunctionID != "f.1" {
			t.Errorf("dead letters of space %s: %+v, %v", space, items, err)
		}
	}
	if items, _, _ := q.DeadLetters(ctx, DeadLetterFilter{Space: "other"}); len(items) != 0 {
		t.Errorf("dead letters of another space: %+v", items)
	}
	if items, _, _ := q.DeadLetters(ctx, DeadLetterFilter{Space: "acme", FunctionID: "f.1", SubscriptionID: "s-acme"}); len(items) != 1 {
		t.Errorf("by space, function and subscription: %+v", items)
	}
	dinfo, err := q.dead.Info(ctx, jetstream.WithSubjectFilter("eg.deadletters.>"))
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []string{"eg.deadletters.acme.f%2E1.s-acme", "eg.deadletters.default.f%2E1.s-def"} {
		if dinfo.State.Subjects[subj] != 1 {
			t.Errorf("no dead letter on %s: %v", subj, dinfo.State.Subjects)
		}
	}
}

// A delivery deferred by its DeliverFunc (router.DeferredError: a full
// bulkhead, an open breaker, a plugin unavailable) comes back after its
// pause, and the deferrals spend none of its attempts, whether it was in
// a batch record or in a record of its own.
func TestDeferredSpendsNoAttempt(t *testing.T) {
	_, _, q := fixture(t, Options{Workers: 8})
	const deferrals = 4
	rec := newRecorder()
	deliver := func(_ context.Context, d router.Delivery) error {
		if rec.callsOf(key(d)) < deferrals {
			return rec.call(d, &router.DeferredError{After: 10 * time.Millisecond, Reason: "bulkhead full"})
		}
		return rec.call(d, errors.New("502"))
	}
	policy := func(_, _ string) RetryPolicy {
		return RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}
	}
	ds := deliveries(3, "ev", map[string]string{"s1": "f", "s2": "f"})
	enqueueAll(t, q, ds)
	// One delivery too large to share a record: a record of its own.
	big := router.Delivery{SubscriptionID: "s3", FunctionID: "f", EventID: "big", Event: "user.created", Payload: make([]byte, q.batch.maxBytes)}
	enqueueAll(t, q, []router.Delivery{big})
	if err := q.Start(context.Background(), deliver, policy); err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 20*time.Second, "7 dead letters", func() bool { return q.Stats().DeadLetters == 7 })
	dls, _, err := q.DeadLetters(context.Background(), DeadLetterFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, dl := range dls {
		if dl.Attempts != 2 {
			t.Errorf("%s/%s: dead letter after %d attempts, want 2", dl.EventID, dl.SubscriptionID, dl.Attempts)
		}
		if n := rec.callsOf(dl.EventID + "/" + dl.SubscriptionID); n != deferrals+2 {
			t.Errorf("%s/%s: %d calls, want %d", dl.EventID, dl.SubscriptionID, n, deferrals+2)
		}
	}
	if got := q.Stats().Postponed; got != 7*deferrals {
		t.Errorf("Postponed = %d, want %d", got, 7*deferrals)
	}
}

// When Stop runs out of time, Abort ends the calls still in progress and
// hands their records back at once: another instance makes them right
// away, not after AckWait.
func TestAbortHandsBackAtOnce(t *testing.T) {
	e, _, q := fixture(t, Options{Workers: 4, AckWait: time.Minute})
	ds := deliveries(4, "ev", map[string]string{"s": "f"})
	enqueueAll(t, q, ds)
	var inflight atomic.Int64
	err := q.Start(context.Background(), func(ctx context.Context, d router.Delivery) error {
		inflight.Add(1)
		<-ctx.Done() // a call that would outlast any shutdown
		return ctx.Err()
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "calls in progress", func() bool { return inflight.Load() >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := q.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v", err)
	}
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer acancel()
	if left := q.Abort(actx); left != 0 {
		t.Fatalf("Abort left %d records in progress", left)
	}

	nc2 := connect(t, e)
	t.Cleanup(nc2.Close)
	q2 := newQueue(t, nc2, Options{Workers: 4, AckWait: time.Minute})
	rec := newRecorder()
	if err := q2.Start(context.Background(), func(_ context.Context, d router.Delivery) error { return rec.call(d, nil) }, nil); err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q2)
	// Well under AckWait (a minute).
	waitFor(t, 15*time.Second, "every delivery", func() bool { return rec.okCount() == len(ds) })
}
