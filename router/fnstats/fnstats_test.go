package fnstats

import (
	"github.com/event-gateway/event-gateway/api/metrics"
	"github.com/event-gateway/event-gateway/router"

	"fmt"
	"testing"
	"time"
)

func at(s *Stats, t *time.Time) { s.now = func() time.Time { return *t } }

func TestHourPerMinute(t *testing.T) {
	s := New()
	now := time.Date(2026, 1, 1, 12, 0, 30, 0, time.UTC)
	at(s, &now)
	// This minute: 100 calls, 99 at 1ms and one slow failure.
	for range 99 {
		s.Invoked("sp", "f", "http", time.Millisecond, "ok")
	}
	s.Invoked("sp", "f", "http", 3*time.Second, "timeout")
	// Ten minutes ago: one failed call.
	past := now.Add(-10 * time.Minute)
	at(s, &past)
	s.Invoked("sp", "f", "http", 5*time.Millisecond, "failed")
	at(s, &now)

	h := s.Hour("sp", "f")
	if len(h) != Minutes {
		t.Fatalf("%d points, want %d", len(h), Minutes)
	}
	last := h[Minutes-1]
	if last.Time != now.Truncate(time.Minute).UnixMilli() || last.Calls != 100 || last.Errors != 1 {
		t.Fatalf("current minute %+v", last)
	}
	if last.P50 != 1 || last.P99 != 1 {
		t.Fatalf("p50 %v p99 %v, want 1ms (99 of 100 calls took 1ms)", last.P50, last.P99)
	}
	if ten := h[Minutes-11]; ten.Calls != 1 || ten.Errors != 1 || ten.P50 != 8 {
		t.Fatalf("ten minutes ago %+v, want one failed call in the 8ms bucket", ten)
	}
	for i, p := range h[:Minutes-11] {
		if p.Calls != 0 {
			t.Fatalf("minute %d has %d calls", i, p.Calls)
		}
	}
	if other := s.Hour("sp", "g"); other[Minutes-1].Calls != 0 {
		t.Fatal("another function has figures")
	}
}

func TestOldMinutesAreForgotten(t *testing.T) {
	s := New()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at(s, &now)
	s.Invoked("sp", "f", "http", time.Millisecond, "ok")
	// An hour later the slot is reused: the old minute must not show.
	later := now.Add(time.Hour)
	at(s, &later)
	for _, p := range s.Hour("sp", "f") {
		if p.Calls != 0 {
			t.Fatalf("a call of an hour ago shows at %v", time.UnixMilli(p.Time))
		}
	}
	s.Invoked("sp", "f", "http", time.Millisecond, "ok")
	if h := s.Hour("sp", "f"); h[Minutes-1].Calls != 1 {
		t.Fatalf("current minute %+v", h[Minutes-1])
	}
}

// The memory is bounded by the functions called in the last hour: the
// figures of functions idle for an hour (deleted ones) are dropped.
func TestIdleFunctionsAreDropped(t *testing.T) {
	s := New()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at(s, &now)
	for i := range 100 {
		s.Invoked("sp", fmt.Sprint(i), "http", time.Millisecond, "ok")
	}
	later := now.Add(61 * time.Minute)
	at(s, &later)
	s.Invoked("sp", "new", "http", time.Millisecond, "ok")
	if n := len(s.fns); n != 1 {
		t.Fatalf("%d functions kept, want 1", n)
	}
}

func BenchmarkInvoked(b *testing.B) {
	s := New()
	b.ReportAllocs()
	for b.Loop() {
		s.Invoked("sp", "f", "http", time.Millisecond, "ok")
	}
}

// BenchmarkObserver is the cost per function call of the dashboard's
// figures beside the Prometheus metrics the router already feeds.
func BenchmarkObserver(b *testing.B) {
	b.Run("metrics", func(b *testing.B) {
		var o router.Observer = metrics.New()
		for b.Loop() {
			o.Invoked("sp", "f", "http", time.Millisecond, "ok")
		}
	})
	b.Run("metrics+fnstats", func(b *testing.B) {
		var o router.Observer = router.Observers{metrics.New(), New()}
		for b.Loop() {
			o.Invoked("sp", "f", "http", time.Millisecond, "ok")
		}
	})
}
