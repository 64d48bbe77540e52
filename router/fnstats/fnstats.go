// Package fnstats keeps, in memory, per-minute figures of the calls of
// each function over the last hour: calls, errors and a latency histogram,
// for the dashboard's charts. It is fed by the router's Observer. Each
// instance counts the calls it makes.
package fnstats

import (
	"math"
	"sync"
	"time"
)

// Minutes is how many minutes of figures are kept.
const Minutes = 60

// bounds are the upper bounds of the latency buckets, in seconds: powers
// of two from half a millisecond; the last bucket holds everything above.
var bounds = func() [buckets - 1]float64 {
	var b [buckets - 1]float64
	for i := range b {
		b[i] = 0.0005 * math.Pow(2, float64(i))
	}
	return b
}()

const buckets = 24

// minute is the figures of one function in one minute.
type minute struct {
	start  int64 // Unix minute
	calls  uint32
	errors uint32
	hist   [buckets]uint32
}

// ring is the last hour of one function, a minute per slot.
type ring struct {
	mu   sync.Mutex
	last int64 // Unix minute of the latest call
	m    [Minutes]minute
}

type key struct{ space, function string }

// Stats counts the calls of every function. The zero value is not
// usable: call New.
type Stats struct {
	now func() time.Time
	mu  sync.RWMutex
	fns map[key]*ring
}

// New returns an empty Stats.
func New() *Stats {
	return &Stats{now: time.Now, fns: make(map[key]*ring)}
}

// Invoked records one call (router.Observer). result is "ok", "timeout"
// or "failed": the last two are errors.
func (s *Stats) Invoked(space, functionID, _ string, d time.Duration, result string) {
	k := key{space, functionID}
	s.mu.RLock()
	r := s.fns[k]
	s.mu.RUnlock()
	if r == nil {
		r = s.add(k)
	}
	m := s.now().Unix() / 60
	r.mu.Lock()
	slot := &r.m[m%Minutes]
	if slot.start != m {
		*slot = minute{start: m}
	}
	slot.calls++
	if result != "ok" {
		slot.errors++
	}
	slot.hist[bucket(d.Seconds())]++
	r.last = m
	r.mu.Unlock()
}

func bucket(sec float64) int {
	for i, b := range bounds {
		if sec <= b {
			return i
		}
	}
	return buckets - 1
}

// add makes the ring of a function, and drops those of functions not
// called for an hour (deleted ones among them), so memory is bounded by
// the functions called in the last hour.
func (s *Stats) add(k key) *ring {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.fns[k]; r != nil {
		return r
	}
	stale := s.now().Unix()/60 - Minutes
	for k2, r := range s.fns {
		r.mu.Lock()
		old := r.last <= stale
		r.mu.Unlock()
		if old {
			delete(s.fns, k2)
		}
	}
	r := &ring{}
	s.fns[k] = r
	return r
}

// Point is one minute of a function's figures.
type Point struct {
	// Time is the start of the minute, Unix milliseconds.
	Time   int64 `json:"time"`
	Calls  int   `json:"calls"`
	Errors int   `json:"errors"`
	// P50 and P99 are latencies in milliseconds: the upper bound of the
	// histogram bucket the percentile falls in (buckets double from half
	// a millisecond), 0 without calls.
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// Hour returns the last hour of a function's figures, a point per minute,
// oldest first, the current minute last.
func (s *Stats) Hour(space, functionID string) []Point {
	now := s.now().Unix() / 60
	out := make([]Point, Minutes)
	for i := range out {
		out[i].Time = (now - Minutes + 1 + int64(i)) * 60_000
	}
	s.mu.RLock()
	r := s.fns[key{space, functionID}]
	s.mu.RUnlock()
	if r == nil {
		return out
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range out {
		m := now - Minutes + 1 + int64(i)
		slot := &r.m[m%Minutes]
		if slot.start != m || slot.calls == 0 {
			continue
		}
		out[i].Calls, out[i].Errors = int(slot.calls), int(slot.errors)
		out[i].P50 = quantile(&slot.hist, slot.calls, 0.50)
		out[i].P99 = quantile(&slot.hist, slot.calls, 0.99)
	}
	return out
}

// quantile returns the upper bound, in milliseconds, of the bucket the
// q-quantile of the histogram falls in.
func quantile(h *[buckets]uint32, n uint32, q float64) float64 {
	rank := uint32(math.Ceil(q * float64(n)))
	var seen uint32
	for i, c := range h {
		seen += c
		if seen >= rank {
			if i == buckets-1 {
				return bounds[buckets-2] * 2 * 1000
			}
			return bounds[i] * 1000
		}
	}
	return 0
}
