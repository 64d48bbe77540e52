package jetstream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/router"
)

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
	}, func(string, string) RetryPolicy {
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
