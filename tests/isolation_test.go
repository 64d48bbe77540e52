package tests

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hungFunction answers nothing until released (or its caller gives up),
// and counts the calls it holds at once.
type hungFunction struct {
	srv              *httptest.Server
	release          chan struct{}
	calls, now, peak atomic.Int64
}

func newHungFunction(t *testing.T) *hungFunction {
	h := &hungFunction{release: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h.calls.Add(1)
		n := h.now.Add(1)
		defer h.now.Add(-1)
		for {
			p := h.peak.Load()
			if n <= p || h.peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-h.release:
		case <-r.Context().Done():
		}
	}))
	// Cleanups run last first: release the calls, then close the server
	// (which waits for them), after the gateway is stopped.
	t.Cleanup(h.srv.Close)
	return h
}

// TestHungFunctionIsolated: a function that never answers, with a backlog
// of 250 deliveries, holds no more than its bulkhead of workers, and a
// healthy subscriber's deliveries go on arriving at once.
func TestHungFunctionIsolated(t *testing.T) {
	hung := newHungFunction(t)
	gw := startDev(t, "")
	t.Cleanup(func() { close(hung.release) })
	const bulkhead = 50 // -function-max-in-flight's default

	var mu sync.Mutex
	arrived := map[int]time.Time{}
	gotOne := make(chan int, 1000)
	ok := newFunction(t, func(w http.ResponseWriter, ev envelope) {
		var n int
		fmt.Sscanf(string(ev.Data), `{"n":%d}`, &n)
		mu.Lock()
		arrived[n] = time.Now()
		mu.Unlock()
		gotOne <- n
		w.Write([]byte(`{}`))
	})
	go func() {
		for range ok.received {
		}
	}()
	register(t, gw, "hung", fmt.Sprintf(`{"functionId":"hung","timeout":"2m","provider":{"type":"http","url":%q}}`, hung.srv.URL))
	registerHTTP(t, gw, "ok", ok)
	subscribe(t, gw, `{"functionId":"hung","event":"stuck"}`)
	subscribe(t, gw, `{"functionId":"ok","event":"fine"}`)
	untilLive(t, gw, "fine", `{"n":-1}`, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(arrived) > 0
	})
	untilLive(t, gw, "stuck", `{"n":-1}`, func() bool { return hung.calls.Load() > 0 })

	// The backlog: 250 deliveries to the hung function.
	var wg sync.WaitGroup
	for i := range 250 {
		wg.Go(func() {
			expect(t, call(t, "POST", gw.EventsURL+"/", fmt.Sprintf(`{"n":%d}`, i), "Event", "stuck", "Content-Type", "application/json"), 202, "")
		})
	}
	wg.Wait()
	eventually(t, "the hung function's bulkhead full", func() bool { return hung.now.Load() >= bulkhead })
	time.Sleep(time.Second) // let the backlog take whatever it can

	// 100 events to the healthy subscriber, one at a time, over about
	// three seconds: while the backlog keeps coming back.
	const n = 100
	sent := make([]time.Time, n)
	lat := make([]time.Duration, n)
	for i := range n {
		sent[i] = time.Now()
		expect(t, call(t, "POST", gw.EventsURL+"/", fmt.Sprintf(`{"n":%d}`, i), "Event", "fine", "Content-Type", "application/json"), 202, "")
		timeout := time.After(90 * time.Second)
	wait:
		for {
			select {
			case got := <-gotOne:
				if got == i {
					break wait
				}
			case <-timeout:
				t.Fatalf("event %d to the healthy subscriber did not arrive within 90s", i)
			}
		}
		mu.Lock()
		lat[i] = arrived[i].Sub(sent[i])
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
	}
	slices.Sort(lat)
	p50, p99, worst := lat[n/2], lat[n*99/100-1], lat[n-1]
	t.Logf("healthy subscriber beside a hung function with a backlog of 250: p50 %v, p99 %v, max %v; hung function held %d calls at most", p50, p99, worst, hung.peak.Load())
	if peak := hung.peak.Load(); peak > bulkhead {
		t.Errorf("the hung function held %d calls at once, want at most its bulkhead of %d", peak, bulkhead)
	}
	// The target is under 100ms; the bound leaves room for a loaded machine.
	if p99 > 2*time.Second {
		t.Errorf("healthy subscriber's p99 %v, want well under 2s", p99)
	}
}

// TestLargeAsyncResponseIsSuccess: an asynchronous delivery answered 200
// with a body far over -max-body is made once: the body is not needed,
// so its size is no failure.
func TestLargeAsyncResponseIsSuccess(t *testing.T) {
	gw := startDev(t, "", "-max-body", "4096")
	var calls atomic.Int64
	var mu sync.Mutex
	perEvent := map[string]int{}
	big := make([]byte, 1<<20)
	fn := newFunction(t, func(w http.ResponseWriter, ev envelope) {
		calls.Add(1)
		mu.Lock()
		perEvent[ev.ID]++
		mu.Unlock()
		w.Write(big)
	})
	go drain(fn.received)
	registerHTTP(t, gw, "chatty", fn)
	sub := subscribe(t, gw, `{"functionId":"chatty","event":"report","retry":{"maxAttempts":3,"initialBackoff":"10ms","maxBackoff":"10ms"}}`)
	untilLive(t, gw, "report", `{"n":1}`, func() bool { return calls.Load() > 0 })
	time.Sleep(time.Second) // time for any retry
	mu.Lock()
	for id, n := range perEvent {
		if n != 1 {
			t.Errorf("event %s: %d calls, want one", id, n)
		}
	}
	mu.Unlock()
	var list struct {
		DeadLetters []deadLetter `json:"deadletters"`
	}
	decode(t, call(t, "GET", gw.ConfigURL+"/v1/deadletters?subscriptionId="+sub, ""), &list)
	if len(list.DeadLetters) != 0 {
		t.Fatalf("dead letters: %+v", list.DeadLetters)
	}
}
