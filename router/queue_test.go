package router

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/errkind"
)

func deliveries(n int) []Delivery {
	ds := make([]Delivery, n)
	for i := range ds {
		ds[i] = Delivery{SubscriptionID: "s", FunctionID: "f", EventID: "e"}
	}
	return ds
}

func TestQueueAllOrNothing(t *testing.T) {
	q := NewMemoryQueue(MemoryQueueOptions{Workers: 1, Backlog: 5})
	// No workers started: everything stays queued.
	if err := q.Enqueue(context.Background(), deliveries(3)); err != nil {
		t.Fatal(err)
	}
	err := q.Enqueue(context.Background(), deliveries(3))
	if !errors.Is(err, ErrQueueFull) || errkind.Of(err) != errkind.Unavailable {
		t.Fatalf("over capacity: %v, want ErrQueueFull", err)
	}
	if q.Len() != 3 {
		t.Fatalf("a refused event was partly queued: len %d, want 3", q.Len())
	}
	if err := q.Enqueue(context.Background(), deliveries(2)); err != nil {
		t.Fatalf("exactly filling the queue: %v", err)
	}
}

func TestQueueDeliversAndDrains(t *testing.T) {
	q := NewMemoryQueue(MemoryQueueOptions{Workers: 4, Backlog: 1000})
	var n atomic.Int64
	q.Start(context.Background(), func(ctx context.Context, d Delivery) error {
		time.Sleep(time.Millisecond)
		n.Add(1)
		return nil
	})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 10 {
				if err := q.Enqueue(context.Background(), deliveries(5)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if left := q.Close(ctx); left != 0 {
		t.Fatalf("%d deliveries left after drain", left)
	}
	if n.Load() != 500 {
		t.Fatalf("delivered %d, want 500", n.Load())
	}
	if err := q.Enqueue(context.Background(), deliveries(1)); errkind.Of(err) != errkind.Unavailable {
		t.Fatalf("enqueue after close: %v, want unavailable", err)
	}
}

func TestQueueCloseTimeout(t *testing.T) {
	q := NewMemoryQueue(MemoryQueueOptions{Workers: 1, Backlog: 10})
	release, busy := make(chan struct{}), make(chan struct{}, 10)
	q.Start(context.Background(), func(ctx context.Context, d Delivery) error {
		busy <- struct{}{}
		<-release
		return nil
	})
	q.Enqueue(context.Background(), deliveries(4))
	<-busy
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// One is held by the worker, three wait.
	if left := q.Close(ctx); left != 3 {
		t.Fatalf("Close reported %d undone, want 3", left)
	}
	close(release)
}

func TestQueueRetriesFailures(t *testing.T) {
	q := NewMemoryQueue(MemoryQueueOptions{Workers: 1, Backlog: 10, Attempts: 3, Backoff: time.Millisecond})
	var calls sync.Map // event id -> *atomic.Int64
	q.Start(context.Background(), func(ctx context.Context, d Delivery) error {
		n, _ := calls.LoadOrStore(d.EventID, new(atomic.Int64))
		c := n.(*atomic.Int64).Add(1)
		switch d.EventID {
		case "flaky": // fails once, then works
			if c == 1 {
				return errors.New("connection refused")
			}
		case "broken":
			return errors.New("function failed")
		case "vetoed":
			return errkind.New(errkind.Forbidden, "no")
		}
		return nil
	})
	for _, id := range []string{"flaky", "broken", "vetoed"} {
		q.Enqueue(context.Background(), []Delivery{{EventID: id}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q.Close(ctx)
	for id, want := range map[string]int64{"flaky": 2, "broken": 3, "vetoed": 1} {
		n, _ := calls.Load(id)
		if got := n.(*atomic.Int64).Load(); got != want {
			t.Errorf("%s: %d attempts, want %d", id, got, want)
		}
	}
}

func TestQueueRefusesOversizedEvent(t *testing.T) {
	q := NewMemoryQueue(MemoryQueueOptions{Workers: 1, Backlog: 2})
	err := q.Enqueue(context.Background(), deliveries(3))
	if errkind.Of(err) != errkind.Unavailable || !strings.Contains(err.Error(), "more than the delivery queue holds") {
		t.Fatalf("oversized event: %v", err)
	}
}
