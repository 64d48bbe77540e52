package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is one endpoint of a function with several: it answers an http
// event with its name, counts the events it gets by name, and fails its
// health probe while sick.
type backend struct {
	name string
	srv  *httptest.Server
	sick atomic.Bool
	mu   sync.Mutex
	got  map[string]int // events received, by event name
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name, got: map[string]int{}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if b.sick.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		body, _ := io.ReadAll(r.Body)
		var ev envelope
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("backend %s received invalid JSON %q", name, body)
		}
		b.mu.Lock()
		b.got[ev.Event]++
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"statusCode":200,"body":%q}`, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) count(event string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got[event]
}

// TestFunctionWithBackends drives a function with several backends
// through a gateway: calls are spread by weight, a path parameter keeps
// its backend, an active probe takes a backend out, and with every
// backend down a synchronous call answers 503 while an asynchronous
// delivery waits, spending no attempt, and is made once a backend is back.
func TestFunctionWithBackends(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	gw := startDev(t, "")
	provider := fmt.Sprintf(`{"type":"http","backends":[{"url":%q,"weight":1},{"url":%q,"weight":3}],"balance":"hash","hashOn":"param:id","health":{"active":{"path":"/healthz","interval":"100ms","failures":1,"passes":1}}}`, a.srv.URL+"/fn", b.srv.URL+"/fn")
	register(t, gw, "pool", `{"functionId":"pool","provider":`+provider+`}`)
	// The configuration is shown as sent.
	r := call(t, "GET", gw.ConfigURL+"/v1/functions/pool", "")
	expect(t, r, 200, "")
	var shown struct{ Provider json.RawMessage }
	decode(t, r, &shown)
	if string(shown.Provider) != provider {
		t.Errorf("provider shown as %s, want %s", shown.Provider, provider)
	}
	subscribe(t, gw, `{"functionId":"pool","event":"http","method":"GET","path":"/users/:id"}`)
	subscribe(t, gw, `{"functionId":"pool","event":"job","retry":{"maxAttempts":2,"initialBackoff":"10ms","maxBackoff":"10ms"}}`)
	routable(t, "GET", gw.EventsURL+"/users/0")

	// Sticky: each user always reaches the same backend, and the users
	// spread by weight, 1:3.
	const users = 400
	perBackend := map[string]int{}
	for u := range users {
		var first string
		for range 3 {
			r := call(t, "GET", fmt.Sprintf("%s/users/%d", gw.EventsURL, u), "")
			expect(t, r, 200, "")
			if first != "" && r.body != first {
				t.Fatalf("user %d reached backend %s, then %s", u, first, r.body)
			}
			first = r.body
		}
		perBackend[first]++
	}
	// The share of hashed users is statistical (the backends' ports
	// seed it): ±10 points is over 4 standard deviations at 400 users.
	if got := float64(perBackend["b"]) / users; math.Abs(got-0.75) > 0.10 {
		t.Errorf("backend of weight 3 of 4 got %.0f %% of the users (%v), want 75 %%", got*100, perBackend)
	}

	// Sticky on a header too, for a route with the CloudEvents envelope.
	register(t, gw, "byheader", fmt.Sprintf(`{"functionId":"byheader","provider":{"type":"http","backends":[{"url":%q},{"url":%q}],"balance":"hash","hashOn":"header:X-User"}}`, a.srv.URL+"/fn", b.srv.URL+"/fn"))
	subscribe(t, gw, `{"functionId":"byheader","event":"http","method":"POST","path":"/orders","envelope":"cloudevents-1.0"}`)
	routable(t, "POST", gw.EventsURL+"/orders")
	seen := map[string]bool{}
	for u := range 40 {
		var first string
		for range 3 {
			r := call(t, "POST", gw.EventsURL+"/orders", `{}`, "X-User", fmt.Sprint("user-", u), "Content-Type", "application/json")
			expect(t, r, 200, "")
			if first != "" && r.body != first {
				t.Fatalf("user %d reached backend %s, then %s", u, first, r.body)
			}
			first = r.body
		}
		seen[first] = true
	}
	if len(seen) != 2 {
		t.Errorf("40 users all reached backend %v", seen)
	}

	// b's probe fails: every user now reaches a.
	b.sick.Store(true)
	eventually(t, "b taken out by its probe", func() bool {
		for u := range 20 {
			if call(t, "GET", fmt.Sprintf("%s/users/%d", gw.EventsURL, u), "").body != "a" {
				return false
			}
		}
		return true
	})

	// Both down: 503 with a JSON error, and an event waits.
	a.sick.Store(true)
	eventually(t, "every backend down", func() bool {
		return call(t, "GET", gw.EventsURL+"/users/1", "").status == http.StatusServiceUnavailable
	})
	r = call(t, "GET", gw.EventsURL+"/users/1", "")
	expect(t, r, http.StatusServiceUnavailable, `function "pool" has no backend available`)
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"n":1}`, "Event", "job", "Content-Type", "application/json"), 202, "")
	// Two attempts 10 ms apart would have ended in the dead letters long
	// before this; deferred deliveries spend none.
	time.Sleep(3 * time.Second)
	if n := a.count("job") + b.count("job"); n != 0 {
		t.Fatalf("a backend got %d jobs while down", n)
	}
	var list struct {
		DeadLetters []deadLetter `json:"deadletters"`
	}
	decode(t, call(t, "GET", gw.ConfigURL+"/v1/deadletters", ""), &list)
	if len(list.DeadLetters) != 0 {
		t.Fatalf("dead letters while the backends were down: %+v", list.DeadLetters)
	}

	// a comes back: the job is delivered, once.
	a.sick.Store(false)
	eventually(t, "job delivered once a backend is back", func() bool { return a.count("job") > 0 })
	expect(t, call(t, "GET", gw.EventsURL+"/users/1", ""), 200, "")
	time.Sleep(500 * time.Millisecond) // time for a duplicate, if any
	if n := a.count("job") + b.count("job"); n != 1 {
		t.Errorf("job delivered %d times, want once", n)
	}
	decode(t, call(t, "GET", gw.ConfigURL+"/v1/deadletters", ""), &list)
	if len(list.DeadLetters) != 0 {
		t.Errorf("dead letters: %+v", list.DeadLetters)
	}
}

// TestBackendsValidatedByAPI: a bad backends configuration is refused with
// a JSON error naming the field.
func TestBackendsValidatedByAPI(t *testing.T) {
	gw := startDev(t, "")
	for _, tc := range []struct{ provider, msg string }{
		{`{"type":"http","backends":[{"url":"http://h/1","weight":0}]}`, "provider.backends[0].weight 0 must be from 1 to 10000"},
		{`{"type":"http","url":"http://h/1","backends":[{"url":"http://h/2"}]}`, "provider.url and provider.backends exclude each other"},
		{`{"type":"http","backends":[{"url":"http://h/1"}],"balance":"hash"}`, "provider.hashOn is required"},
		{`{"type":"http","backends":[{"url":"http://h/1","colour":"red"}]}`, `unknown field "provider.backends[0].colour"`},
	} {
		r := call(t, "POST", gw.ConfigURL+"/v1/functions", `{"functionId":"f","provider":`+tc.provider+`}`)
		expect(t, r, http.StatusBadRequest, tc.msg)
	}
}
