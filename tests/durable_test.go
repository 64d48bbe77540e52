package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/gwproc"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/router/jetstream"
)

// tally is a subscriber function that records the "n" of each event it
// gets, and fails a share of the calls.
type tally struct {
	mu       sync.Mutex
	seen     map[int]int
	failRate atomic.Uint64 // percent
	calls    atomic.Int64
}

func newTally(t *testing.T) (*tally, *function) {
	tl := &tally{seen: map[int]int{}}
	fn := newFunction(t, func(w http.ResponseWriter, ev envelope) {
		tl.calls.Add(1)
		if rand.N(uint64(100)) < tl.failRate.Load() {
			w.WriteHeader(500)
			return
		}
		var d struct{ N int }
		json.Unmarshal(ev.Data, &d)
		tl.mu.Lock()
		tl.seen[d.N]++
		tl.mu.Unlock()
		w.Write([]byte(`{}`))
	})
	// The recorder's channel would fill up; nobody reads it here.
	go func() {
		for range fn.received {
		}
	}()
	return tl, fn
}

func (tl *tally) count() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.seen)
}

// waitAll waits up to within for the events {"n":0} to {"n":n-1}, and
// returns those still missing.
func (tl *tally) waitAll(n int, within time.Duration) []int {
	deadline := time.Now().Add(within)
	for {
		m := tl.missing(n)
		if len(m) == 0 || time.Now().After(deadline) {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (tl *tally) missing(n int) []int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []int
	for i := range n {
		if tl.seen[i] == 0 {
			out = append(out, i)
		}
	}
	return out
}

// emitAll sends events {"n":0..n-1} with a few concurrent emitters; each is
// retried until the gateway answers 202, through whatever gw() returns at
// the time. after is called once, when half have been accepted.
func emitAll(t *testing.T, n int, gw func() *gwproc.Process, event string, half func()) {
	t.Helper()
	var next, accepted atomic.Int64
	var once sync.Once
	client := validator.Client(&http.Client{Timeout: 10 * time.Second})
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Minute)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				for {
					if time.Now().After(deadline) {
						t.Errorf("event %d never accepted", i)
						return
					}
					req, _ := http.NewRequest("POST", gw().EventsURL+"/", stringsReader(fmt.Sprintf(`{"n":%d}`, i)))
					req.Header.Set("Event", event)
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == 202 {
							break
						}
					}
					time.Sleep(20 * time.Millisecond) // gateway down or busy: try again
				}
				if accepted.Add(1) == int64(n/2) && half != nil {
					once.Do(half)
				}
			}
		})
	}
	wg.Wait()
}

// TestCrashLosesNothing: 10,000 events to a subscriber that fails 30% of
// calls; the gateway is killed (SIGKILL) halfway and started again on the
// same data; every event accepted with 202 reaches the subscriber.
func TestCrashLosesNothing(t *testing.T) {
	const n = 10_000
	dir := t.TempDir()
	args := devArgs(filepath.Join(dir, "etcd"), "-nats-data-dir", filepath.Join(dir, "nats"), "-delivery-ack-wait", "2s")
	var cur atomic.Pointer[gwproc.Process]
	cur.Store(start(t, gwproc.Options{Args: args}))

	tl, fn := newTally(t)
	tl.failRate.Store(30)
	registerHTTP(t, cur.Load(), "flaky", fn)
	subscribe(t, cur.Load(), `{"functionId":"flaky","event":"job","retry":{"maxAttempts":100,"initialBackoff":"10ms","maxBackoff":"200ms"}}`)
	untilLive(t, cur.Load(), "job", `{"n":0}`, func() bool { return tl.count() > 0 })

	emitAll(t, n, cur.Load, "job", func() {
		old := cur.Load()
		old.Kill()
		t.Logf("killed the gateway (pid %d) with SIGKILL after %d accepted events", old.PID(), n/2)
		cur.Store(start(t, gwproc.Options{Args: args}))
	})
	if m := tl.waitAll(n, 2*time.Minute); len(m) > 0 {
		t.Fatalf("%d accepted events never delivered, e.g. %v", len(m), m[:min(10, len(m))])
	}
	t.Logf("all %d events delivered; %d calls in all (failures and redeliveries included)", n, tl.calls.Load())
}

type deadLetter struct {
	ID             string          `json:"id"`
	SubscriptionID string          `json:"subscriptionId"`
	FunctionID     string          `json:"functionId"`
	Attempts       int             `json:"attempts"`
	LastError      string          `json:"lastError"`
	Payload        json.RawMessage `json:"payload"`
}

// TestDeadLettersAndReplay: a subscriber that always fails ends in the
// dead-letter list after its attempts; replay delivers once it is fixed.
func TestDeadLettersAndReplay(t *testing.T) {
	gw := startDev(t, "")
	tl, fn := newTally(t)
	tl.failRate.Store(100)
	registerHTTP(t, gw, "broken", fn)
	sub := subscribe(t, gw, `{"functionId":"broken","event":"order","retry":{"maxAttempts":3,"initialBackoff":"10ms","maxBackoff":"20ms"}}`)
	untilLive(t, gw, "order", `{"n":1}`, func() bool { return tl.calls.Load() > 0 })
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"n":2}`, "Event", "order", "Content-Type", "application/json"), 202, "")

	var list struct {
		DeadLetters []deadLetter `json:"deadletters"`
	}
	eventually(t, "two dead letters", func() bool {
		r := call(t, "GET", gw.ConfigURL+"/v1/deadletters?subscriptionId="+sub, "")
		expect(t, r, 200, "")
		decode(t, r, &list)
		return len(list.DeadLetters) >= 2
	})
	for _, d := range list.DeadLetters {
		if d.Attempts != 3 || d.FunctionID != "broken" || d.SubscriptionID != sub || d.LastError == "" || !json.Valid(d.Payload) {
			t.Fatalf("dead letter %+v", d)
		}
	}
	r := call(t, "GET", gw.ConfigURL+"/v1/deadletters?functionId=other", "")
	decode(t, r, &list)
	if len(list.DeadLetters) != 0 {
		t.Fatalf("filter by another function: %+v", list)
	}
	decode(t, call(t, "GET", gw.ConfigURL+"/v1/deadletters?limit=1", ""), &list)
	if len(list.DeadLetters) != 1 {
		t.Fatalf("limit=1 gave %d", len(list.DeadLetters))
	}
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/deadletters?limit=0", ""), 400, "limit")

	// Fixed: replay one, then all of the subscription's.
	tl.failRate.Store(0)
	first := list.DeadLetters[0]
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/deadletters/"+first.ID+"/replay", ""), 200, "")
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/deadletters/"+first.ID+"/replay", ""), 404, "")
	eventually(t, "replayed delivery", func() bool { return tl.count() == 1 })
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/subscriptions/"+sub+"/deadletters/replay", ""), 200, "")
	eventually(t, "all replayed", func() bool { return tl.count() == 2 })
	decode(t, call(t, "GET", gw.ConfigURL+"/v1/deadletters", ""), &list)
	if len(list.DeadLetters) != 0 {
		t.Fatalf("dead letters left after replay: %+v", list.DeadLetters)
	}
	if tl.seen[1] != 1 || tl.seen[2] != 1 {
		t.Fatalf("deliveries after replay: %v, want each once", tl.seen)
	}

	// Delete.
	tl.failRate.Store(100)
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"n":3}`, "Event", "order", "Content-Type", "application/json"), 202, "")
	eventually(t, "third dead letter", func() bool {
		decode(t, call(t, "GET", gw.ConfigURL+"/v1/deadletters", ""), &list)
		return len(list.DeadLetters) == 1
	})
	expect(t, call(t, "DELETE", gw.ConfigURL+"/v1/deadletters/"+list.DeadLetters[0].ID, ""), 204, "")
	expect(t, call(t, "DELETE", gw.ConfigURL+"/v1/deadletters/"+list.DeadLetters[0].ID, ""), 404, "")
}

// TestDeletedSubscriptionGetsNothing: deliveries queued for a subscription
// are dropped once it is deleted.
func TestDeletedSubscriptionGetsNothing(t *testing.T) {
	gw := startDev(t, "")
	tl, fn := newTally(t)
	tl.failRate.Store(100)
	registerHTTP(t, gw, "later", fn)
	sub := subscribe(t, gw, `{"functionId":"later","event":"news","retry":{"maxAttempts":50,"initialBackoff":"200ms","maxBackoff":"200ms"}}`)
	untilLive(t, gw, "news", `{"n":1}`, func() bool { return tl.calls.Load() > 0 })
	expect(t, call(t, "DELETE", gw.ConfigURL+"/v1/subscriptions/"+sub, ""), 204, "")
	tl.failRate.Store(0) // the function works now, but must get nothing
	time.Sleep(time.Second)
	if tl.count() != 0 {
		t.Fatalf("a deleted subscription's queued event was delivered: %v", tl.seen)
	}
}

// TestExternalNATS: two gateways share an external NATS server (and an
// etcd); one is killed with events still queued; the other delivers them.
// With NATS stopped, emitters get 503; what was accepted is delivered once
// it is back.
func TestExternalNATS(t *testing.T) {
	dir := t.TempDir()
	natsDir := filepath.Join(dir, "nats")
	ns, err := jetstream.StartEmbedded(jetstream.EmbedOptions{DataDir: natsDir, Port: freePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	url := ns.ClientURL()
	t.Cleanup(func() { ns.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	etcdSrv, err := libkv.StartEmbedded(ctx, libkv.EmbedConfig{DataDir: filepath.Join(dir, "etcd"), ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcdSrv.Close)
	args := []string{"-db-hosts", etcdSrv.Endpoints()[0], "-nats-url", url, "-delivery-ack-wait", "2s"}
	a := start(t, gwproc.Options{Args: args})
	b := start(t, gwproc.Options{Args: args})

	tl, fn := newTally(t)
	registerHTTP(t, a, "shared", fn)
	subscribe(t, a, `{"functionId":"shared","event":"tick","retry":{"maxAttempts":100,"initialBackoff":"50ms","maxBackoff":"100ms"}}`)
	for _, gw := range []*gwproc.Process{a, b} {
		before := tl.count()
		untilLive(t, gw, "tick", fmt.Sprintf(`{"n":%d}`, 1000+before), func() bool { return tl.count() > before })
	}

	// The subscriber is down while a accepts 200 events; then a dies.
	tl.failRate.Store(100)
	for i := range 200 {
		expect(t, call(t, "POST", a.EventsURL+"/", fmt.Sprintf(`{"n":%d}`, i), "Event", "tick", "Content-Type", "application/json"), 202, "")
	}
	a.Kill()
	tl.failRate.Store(0)
	eventually(t, "b delivers what a accepted", func() bool { return len(tl.missing(200)) == 0 })

	// NATS away: 503, not a 202 for an event that cannot be stored.
	ns.Close()
	r := call(t, "POST", b.EventsURL+"/", `{"n":500}`, "Event", "tick", "Content-Type", "application/json")
	expect(t, r, 503, "")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	ns, err = jetstream.StartEmbedded(jetstream.EmbedOptions{DataDir: natsDir, Port: portOf(t, url)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	eventually(t, "accepted again", func() bool {
		return call(t, "POST", b.EventsURL+"/", `{"n":501}`, "Event", "tick", "Content-Type", "application/json").status == 202
	})
	eventually(t, "delivered after NATS came back", func() bool {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		return tl.seen[501] > 0
	})
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func portOf(t *testing.T, url string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(url, "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return p
}

// untilLive emits body as event through gw until arrived reports that a
// probe reached the subscriber: the subscription has reached the router.
func untilLive(t *testing.T, gw *gwproc.Process, event, body string, arrived func() bool) {
	t.Helper()
	eventually(t, event+" subscription live", func() bool {
		expect(t, call(t, "POST", gw.EventsURL+"/", body, "Event", event, "Content-Type", "application/json"), 202, "")
		time.Sleep(50 * time.Millisecond)
		return arrived()
	})
}
