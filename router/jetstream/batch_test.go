package jetstream

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/router"
)

func TestBatchEncoding(t *testing.T) {
	shared := []byte(`{"event":"a","data":{"n":1}}`)
	ds := []router.Delivery{
		{SubscriptionID: "s1", FunctionID: "f.1", EventID: "e1", Event: "a", Revision: 7, Payload: shared},
		{SubscriptionID: "s2", FunctionID: "f2", EventID: "e1", Event: "a", Revision: 7, Payload: shared},
		{SubscriptionID: "s3", FunctionID: "f3", EventID: "e2", Event: "gateway.function.invoked", System: true, Payload: []byte(`{}`)},
		{SubscriptionID: "s4", FunctionID: "f4", EventID: "e3", Event: "b", Payload: nil},
	}
	data := appendBatch(nil, ds, nil)
	if len(data) > encodedSize(ds) {
		t.Fatalf("encoded %d bytes, more than encodedSize's %d", len(data), encodedSize(ds))
	}
	if bytes.Count(data, shared) != 1 {
		t.Errorf("a payload shared by two deliveries is stored %d times", bytes.Count(data, shared))
	}
	got, err := decodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ds) {
		t.Fatalf("decoded %d deliveries, want %d", len(got), len(ds))
	}
	for i := range ds {
		w, g := ds[i], got[i]
		if g.SubscriptionID != w.SubscriptionID || g.FunctionID != w.FunctionID || g.EventID != w.EventID || g.Event != w.Event ||
			g.Revision != w.Revision || g.System != w.System || !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("delivery %d: got %+v, want %+v", i, g, w)
		}
	}
	// Every truncation is an error, never a panic or a wrong delivery.
	for n := range len(data) {
		if ds, err := decodeBatch(data[:n]); err == nil && len(ds) == len(got) {
			t.Fatalf("truncated to %d bytes: decoded all %d deliveries", n, len(ds))
		}
	}
	if _, err := decodeBatch([]byte{flagSamePayload, 0, 1, 'x', 0, 0, 0}); err == nil {
		t.Error("a first delivery that refers to a payload before it decoded")
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(appendBatch(nil, []router.Delivery{{SubscriptionID: "s", FunctionID: "f", EventID: "e", Event: "x", Payload: []byte("{}")}}, nil))
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := decodeBatch(data)
		if err != nil {
			return
		}
		// What decodes encodes back to what decodes the same.
		again, err := decodeBatch(appendBatch(nil, ds, nil))
		if err != nil || len(again) != len(ds) {
			t.Fatalf("re-encoded: %v, %d deliveries, want %d", err, len(again), len(ds))
		}
	})
}

// TestGroupCommit: events accepted concurrently are all stored (each
// Enqueue returns only once its own are) and each is delivered once, in
// fewer records than events.
func TestGroupCommit(t *testing.T) {
	_, _, q := fixture(t, Options{Workers: 16})
	subs := map[string]string{"sub-a": "fa", "sub-b": "fb"}
	const emitters, each = 32, 40
	var wg sync.WaitGroup
	var failed atomic.Value
	for g := range emitters {
		ds := deliveries(each, string(rune('A'+g)), subs)
		wg.Go(func() {
			for i := 0; i < len(ds); i += len(subs) {
				if err := q.Enqueue(context.Background(), ds[i:i+len(subs)]); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	total := emitters * each * len(subs)
	if n := storedDeliveries(t, q); n != total {
		t.Fatalf("stored %d deliveries, want %d", n, total)
	}
	if n := streamMsgs(t, q); n > uint64(emitters*each) {
		t.Errorf("%d records for %d events: events were not stored together", n, emitters*each)
	}
	if s := q.Stats(); s.Enqueued != uint64(total) {
		t.Errorf("Enqueued %d, want %d", s.Enqueued, total)
	}
	rec := newRecorder()
	if err := q.Start(context.Background(), func(_ context.Context, d router.Delivery) error { return rec.call(d, nil) }, nil); err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 20*time.Second, "every delivery", func() bool { return rec.okCount() == total })
	waitFor(t, 10*time.Second, "an empty stream", func() bool { return streamMsgs(t, q) == 0 })
	for k, n := range rec.calls {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
}

// TestBatchFailureRetriesAlone: in a record shared by two subscribers, the
// one that fails is retried on its own, with its attempts counted; the one
// that worked is not called again.
func TestBatchFailureRetriesAlone(t *testing.T) {
	_, _, q := fixture(t, Options{})
	ds := deliveries(1, "ev", map[string]string{"good": "fg", "flaky": "ff"})
	enqueueAll(t, q, ds)
	if n := streamMsgs(t, q); n != 1 {
		t.Fatalf("%d records for one event, want 1", n)
	}
	rec := newRecorder()
	var attempts []int
	var mu sync.Mutex
	err := q.Start(context.Background(), func(ctx context.Context, d router.Delivery) error {
		if d.SubscriptionID == "flaky" {
			mu.Lock()
			attempts = append(attempts, len(attempts)+1)
			n := len(attempts)
			mu.Unlock()
			if n < 3 {
				return rec.call(d, errors.New("503 from the function"))
			}
		}
		return rec.call(d, nil)
	}, func(string) RetryPolicy {
		return RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	})
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, q)
	waitFor(t, 10*time.Second, "both delivered", func() bool { return rec.okCount() == 2 })
	waitFor(t, 10*time.Second, "an empty stream", func() bool { return streamMsgs(t, q) == 0 })
	if n := rec.callsOf(key(ds[0])) + rec.callsOf(key(ds[1])); n != 4 {
		t.Errorf("%d calls in all, want 4 (one for the good one, three for the flaky one)", n)
	}
	for _, d := range ds {
		if d.SubscriptionID == "good" && rec.callsOf(key(d)) != 1 {
			t.Errorf("the good subscriber was called %d times", rec.callsOf(key(d)))
		}
	}
	if s := q.Stats(); s.Delivered != 2 || s.Retried != 2 || s.DeadLettered != 0 {
		t.Errorf("stats %+v", s)
	}
}
