package httpfn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
)

// fleet is a set of real backends on 127.0.0.1, each answering its own
// name, counting the calls it gets, and failing (500) or failing its probe
// (503 on /healthz) when told to.
type fleet struct {
	urls  []string
	calls []*atomic.Int64
	fail  []*atomic.Bool
	sick  []*atomic.Bool
	probe []*atomic.Int64
	hold  []chan struct{} // when not nil, calls wait for it to close
	mu    sync.Mutex
}

func newFleet(t *testing.T, n int) *fleet {
	t.Helper()
	f := &fleet{}
	for range n {
		f.add(t)
	}
	return f
}

// add starts one more backend, named by its index.
func (f *fleet) add(t *testing.T) int {
	t.Helper()
	i := len(f.urls)
	calls, fail, sick, probes := new(atomic.Int64), new(atomic.Bool), new(atomic.Bool), new(atomic.Int64)
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			probes.Add(1)
			if sick.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		calls.Add(1)
		f.mu.Lock()
		hold := f.hold[i]
		f.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%d", i)
	})
	f.urls = append(f.urls, srv.URL+"/fn")
	f.calls = append(f.calls, calls)
	f.fail = append(f.fail, fail)
	f.sick = append(f.sick, sick)
	f.probe = append(f.probe, probes)
	f.mu.Lock()
	f.hold = append(f.hold, nil)
	f.mu.Unlock()
	return i
}

// counts returns the calls each backend got so far.
func (f *fleet) counts() []int64 {
	out := make([]int64, len(f.calls))
	for i, c := range f.calls {
		out[i] = c.Load()
	}
	return out
}

// pool builds the invoker of a function with provider fields cfg (JSON,
// without "type") through a Registry, as the gateway does: validated as
// sent, then built from what is stored.
func poolOf(t *testing.T, p *Provider, cfg string) functions.Invoker {
	t.Helper()
	reg := functions.NewRegistry(p)
	f, err := reg.Validate(functions.Function{ID: "f", Provider: functions.Provider{Type: Type, Config: json.RawMessage(cfg)}})
	if err != nil {
		t.Fatalf("Validate %s: %v", cfg, err)
	}
	inv, err := reg.Invoker(f)
	if err != nil {
		t.Fatalf("Invoker: %v", err)
	}
	if c, ok := inv.(io.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
	return inv
}

// backendsJSON lists urls as backends with the given weights (0: none).
func backendsJSON(urls []string, weights ...int) string {
	var b strings.Builder
	b.WriteString("[")
	for i, u := range urls {
		if i > 0 {
			b.WriteString(",")
		}
		if i < len(weights) && weights[i] > 0 {
			fmt.Fprintf(&b, `{"url":%q,"weight":%d}`, u, weights[i])
		} else {
			fmt.Fprintf(&b, `{"url":%q}`, u)
		}
	}
	b.WriteString("]")
	return b.String()
}

// callN makes n calls and fails the test at the first error.
func callN(t *testing.T, inv functions.Invoker, n int) {
	t.Helper()
	ctx := ctxTimeout(t, time.Minute)
	for i := range n {
		if _, err := inv.Invoke(ctx, []byte(`{}`)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// within fails unless got is within 5 % of want.
func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 0.05*want {
		t.Errorf("%s: got %.0f calls, want %.0f ± 5 %%", what, got, want)
	}
}

func TestWeightsHonoured(t *testing.T) {
	t.Parallel()
	weights := []int{1, 3, 6}
	for _, policy := range []string{BalanceWeighted, BalanceLeastOutstanding} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			fl := newFleet(t, 3)
			cfg := fmt.Sprintf(`{"backends":%s,"balance":%q}`, backendsJSON(fl.urls, weights...), policy)
			inv := poolOf(t, provider(t, Options{}), cfg)
			const n = 10_000
			callN(t, inv, n)
			got := fl.counts()
			for i, w := range weights {
				within(t, fmt.Sprintf("backend %d of weight %d", i, w), float64(got[i]), float64(n*w/10))
			}
		})
	}
}

// Weighted rendezvous hashing gives each backend its weight's share of
// the keys. The share is statistical, and the backends' hashes are those
// of their URLs: fixed URLs and many keys (no call is made) keep the
// test's outcome fixed and far from its bound (5 % is over 15 standard
// deviations at 200,000 keys).
func TestHashWeights(t *testing.T) {
	t.Parallel()
	urls := []string{"http://10.0.0.1/fn", "http://10.0.0.2/fn", "http://10.0.0.3/fn"}
	weights := []int{1, 3, 6}
	var c Config
	if err := json.Unmarshal(fmt.Appendf(nil, `{"backends":%s,"balance":"hash","hashOn":"header:X-User"}`, backendsJSON(urls, weights...)), &c); err != nil {
		t.Fatal(err)
	}
	pl := New(Options{}).newPool("f", &c)
	const n = 200_000
	got := make([]int, 3)
	for i := range n {
		ctx := functions.WithAffinityKey(context.Background(), fmt.Sprintf("user-%d", i))
		key, h, _ := pl.key(ctx, nil)
		b, _ := pl.choose(ctx, pl.current(), key, h, true, 0)
		got[b.idx]++
	}
	for i, w := range weights {
		within(t, fmt.Sprintf("backend %d of weight %d", i, w), float64(got[i]), float64(n*w/10))
	}
}

func TestRoundRobinAndCanary(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 4)
	// Backends 0-2 are v1; backend 3 is v2, the canary, with 10 % of the
	// calls whatever the weights.
	cfg := fmt.Sprintf(`{"backends":[{"url":%q,"version":"v1"},{"url":%q,"version":"v1"},{"url":%q,"version":"v1"},{"url":%q,"version":"v2","weight":50}],
		"balance":"weighted","canary":{"version":"v2","percent":10}}`, fl.urls[0], fl.urls[1], fl.urls[2], fl.urls[3])
	inv := poolOf(t, provider(t, Options{}), cfg)
	callN(t, inv, 10_000)
	got := fl.counts()
	within(t, "canary", float64(got[3]), 1000)
	for i := range 3 {
		within(t, fmt.Sprintf("stable backend %d", i), float64(got[i]), 3000)
	}

	// A keyed call keeps its version: the same user always lands on the
	// same backend, and about 10 % of users on the canary.
	fl2 := newFleet(t, 2)
	cfg = fmt.Sprintf(`{"backends":[{"url":%q,"version":"v1"},{"url":%q,"version":"v2"}],"balance":"hash","hashOn":"param:id","canary":{"version":"v2","percent":10}}`, fl2.urls[0], fl2.urls[1])
	inv = poolOf(t, provider(t, Options{}), cfg)
	ctx := ctxTimeout(t, time.Minute)
	canaryUsers := 0
	for u := range 2000 {
		var first string
		for range 2 {
			out, err := inv.Invoke(functions.WithAffinityKey(ctx, fmt.Sprint(u)), []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if first != "" && string(out) != first {
				t.Fatalf("user %d went to backend %s, then %s", u, first, out)
			}
			first = string(out)
		}
		if first == "1" {
			canaryUsers++
		}
	}
	if canaryUsers < 150 || canaryUsers > 250 {
		t.Errorf("%d of 2000 users on the canary, want about 200", canaryUsers)
	}
}

func TestRoundRobinEven(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 3)
	inv := poolOf(t, provider(t, Options{}), fmt.Sprintf(`{"backends":%s,"balance":"round-robin"}`, backendsJSON(fl.urls)))
	callN(t, inv, 300)
	for i, c := range fl.counts() {
		if c != 100 {
			t.Errorf("backend %d got %d of 300 calls, want 100", i, c)
		}
	}
}

func TestLeastOutstanding(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 2)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the servers close, which wait for handlers
	fl.mu.Lock()
	fl.hold[0] = release
	fl.mu.Unlock()
	inv := poolOf(t, provider(t, Options{}), fmt.Sprintf(`{"backends":%s,"balance":"least-outstanding"}`, backendsJSON(fl.urls)))
	ctx := ctxTimeout(t, time.Minute)
	// Calls until one is held by backend 0; the others answer at once.
	var held sync.WaitGroup
	for fl.calls[0].Load() == 0 {
		c1 := fl.calls[1].Load()
		held.Go(func() { _, _ = inv.Invoke(ctx, []byte(`{}`)) })
		for fl.calls[0].Load() == 0 && fl.calls[1].Load() == c1 {
			time.Sleep(time.Millisecond)
		}
		if fl.calls[0].Load() == 0 {
			held.Wait() // it went to backend 1 and is done
		}
	}
	before := fl.counts()
	callN(t, inv, 100)
	after := fl.counts()
	unblock()
	held.Wait()
	if after[0] != before[0] || after[1]-before[1] != 100 {
		t.Errorf("with backend 0 busy, calls went %d to it and %d to the idle one, want 0 and 100", after[0]-before[0], after[1]-before[1])
	}
}

func TestPassiveEjection(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 2)
	inv := poolOf(t, provider(t, Options{}), fmt.Sprintf(`{"backends":%s,"balance":"round-robin","health":{"passive":{"failures":3,"ejection":"2s"}}}`, backendsJSON(fl.urls)))
	pl := inv.(*pool)
	bad := pl.current().all[1]
	fl.fail[1].Store(true)
	ctx := ctxTimeout(t, time.Minute)
	failed := 0
	for i := 0; bad.until.Load() == 0; i++ {
		if i > 100 {
			t.Fatal("backend failing every call was not ejected after 100 calls")
		}
		if _, err := inv.Invoke(ctx, []byte(`{}`)); err != nil {
			var se *StatusError
			if !errors.Is(err, functions.ErrFunctionFailed) || !errors.As(err, &se) || se.Code != 500 {
				t.Fatalf("failed call: %v, want function failed with status 500", err)
			}
			failed++
		}
	}
	if failed != 3 {
		t.Errorf("ejected after %d failed calls, want 3", failed)
	}
	// Repaired, but still ejected: it gets nothing until its time is
	// up. Only calls made well before that count.
	fl.fail[1].Store(false)
	until := time.Unix(0, bad.until.Load())
	before := fl.counts()
	made := 0
	for ; made < 200 && time.Until(until) > time.Second; made++ {
		callN(t, inv, 1)
	}
	after := fl.counts()
	if made == 0 {
		t.Fatal("no call made while the backend was ejected")
	}
	if after[1] != before[1] || after[0]-before[0] != int64(made) {
		t.Errorf("while ejected the backend got %d calls, the other %d of %d", after[1]-before[1], after[0]-before[0], made)
	}
	// Back once the ejection is over.
	deadline := time.Now().Add(30 * time.Second)
	for fl.calls[1].Load() == before[1] {
		if time.Now().After(deadline) {
			t.Fatal("ejected backend got no call 30s after its ejection of 2s")
		}
		callN(t, inv, 1)
		time.Sleep(10 * time.Millisecond)
	}

	// Failing again at once: ejected again, for twice as long.
	fl.fail[1].Store(true)
	for i := 0; bad.ejections.Load() < 2; i++ {
		if i > 100 {
			t.Fatal("backend failing again was not ejected again")
		}
		_, _ = inv.Invoke(ctx, []byte(`{}`))
	}
	if got := pl.ejectionFor(bad.ejections.Load()); got != 4*time.Second {
		t.Errorf("second ejection lasts %v, want 4s", got)
	}
}

func TestNotEjectedFor4xx(t *testing.T) {
	t.Parallel()
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadRequest) })
	inv := poolOf(t, provider(t, Options{}), fmt.Sprintf(`{"backends":[{"url":%q}],"health":{"passive":{"failures":1}}}`, srv.URL))
	ctx := ctxTimeout(t, time.Minute)
	for range 5 {
		if _, err := inv.Invoke(ctx, []byte(`{}`)); !errors.Is(err, functions.ErrFunctionFailed) {
			t.Fatalf("call: %v, want function failed (400), not ejected", err)
		}
	}
}

func TestAllEjected(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 2)
	fl.fail[0].Store(true)
	fl.fail[1].Store(true)
	inv := poolOf(t, provider(t, Options{}), fmt.Sprintf(`{"backends":%s,"health":{"passive":{"failures":1,"ejection":"1h"}}}`, backendsJSON(fl.urls)))
	ctx := ctxTimeout(t, time.Minute)
	for range 2 {
		if _, err := inv.Invoke(ctx, []byte(`{}`)); !errors.Is(err, functions.ErrFunctionFailed) {
			t.Fatalf("call: %v, want function failed", err)
		}
	}
	before := fl.counts()
	_, err := inv.Invoke(ctx, []byte(`{}`))
	if !errors.Is(err, functions.ErrNoBackend) {
		t.Fatalf("call with every backend ejected: %v, want ErrNoBackend", err)
	}
	if after := fl.counts(); after[0] != before[0] || after[1] != before[1] {
		t.Error("a backend was called while all were ejected")
	}
}

func TestActiveProbe(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 2)
	inv := poolOf(t, provider(t, Options{}), fmt.Sprintf(`{"backends":%s,"balance":"round-robin","health":{"active":{"path":"/healthz","interval":"50ms","failures":2,"passes":2}}}`, backendsJSON(fl.urls)))
	pl := inv.(*pool)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("probes of both backends", func() bool { return fl.probe[0].Load() > 0 && fl.probe[1].Load() > 0 })

	fl.sick[1].Store(true)
	waitFor("backend 1 marked down", pl.current().all[1].down.Load)
	before := fl.counts()
	callN(t, inv, 100)
	after := fl.counts()
	if after[1] != before[1] || after[0]-before[0] != 100 {
		t.Errorf("backend marked down got %d of 100 calls", after[1]-before[1])
	}

	fl.sick[1].Store(false)
	waitFor("backend 1 marked up", func() bool { return !pl.current().all[1].down.Load() })
	before = fl.counts()
	callN(t, inv, 100)
	if after := fl.counts(); after[1]-before[1] != 50 {
		t.Errorf("backend back up got %d of 100 round-robin calls, want 50", after[1]-before[1])
	}

	// Every backend down: no call is made.
	fl.sick[0].Store(true)
	fl.sick[1].Store(true)
	waitFor("both marked down", func() bool { return pl.current().all[0].down.Load() && pl.current().all[1].down.Load() })
	if _, err := inv.Invoke(ctxTimeout(t, time.Minute), []byte(`{}`)); !errors.Is(err, functions.ErrNoBackend) {
		t.Fatalf("call with every backend down: %v, want ErrNoBackend", err)
	}

	// Close stops the prober: no probe starts once it has returned.
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	n0, n1 := fl.probe[0].Load(), fl.probe[1].Load()
	time.Sleep(200 * time.Millisecond) // four intervals
	if fl.probe[0].Load() != n0 || fl.probe[1].Load() != n1 {
		t.Error("probes went on after Close")
	}
}

func TestStickyHashKeepsMappingWhenBackendAdded(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 3)
	p := provider(t, Options{})
	cfg := func() string {
		return fmt.Sprintf(`{"backends":%s,"balance":"hash","hashOn":"header:X-User"}`, backendsJSON(fl.urls))
	}
	const users = 3000
	route := func(inv functions.Invoker) []string {
		ctx := ctxTimeout(t, time.Minute)
		out := make([]string, users)
		for u := range users {
			b, err := inv.Invoke(functions.WithAffinityKey(ctx, fmt.Sprintf("user-%d", u)), []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			out[u] = string(b)
		}
		return out
	}
	before := route(poolOf(t, p, cfg()))
	again := route(poolOf(t, p, cfg()))
	for u := range users {
		if before[u] != again[u] {
			t.Fatalf("user %d mapped to backend %s, then %s by the same configuration", u, before[u], again[u])
		}
	}
	added := fl.add(t)
	after := route(poolOf(t, p, cfg()))
	kept, moved := 0, 0
	for u := range users {
		switch after[u] {
		case before[u]:
			kept++
		case fmt.Sprint(added):
			moved++
		default:
			t.Fatalf("user %d moved from backend %s to %s, not to the new backend", u, before[u], after[u])
		}
	}
	// With n = 4 backends, the new one takes about 1/n of the keys.
	if min := users * 3 / 4 * 95 / 100; kept < min {
		t.Errorf("%d of %d users kept their backend, want at least %d", kept, users, min)
	}
	t.Logf("%d of %d users kept their backend, %d moved to the new one", kept, users, moved)
}

func TestAffinityKeyFromPayload(t *testing.T) {
	t.Parallel()
	legacy := `{"event":"http","eventID":"x","data":{"path":"/u/7","headers":{"X-User":"alice"},"params":{"id":"7"},"body":null}}`
	ce := `{"specversion":"1.0","type":"http.request","data":{"headers":{"X-User":"bob"},"params":{"id":"8"}}}`
	for _, tc := range []struct {
		payload, header, param, want string
		ok                           bool
	}{
		{legacy, "X-User", "", "alice", true},
		{legacy, "X-Other", "", "", false},
		{legacy, "", "id", "7", true},
		{ce, "X-User", "", "bob", true},
		{ce, "", "id", "8", true},
		{`{"event":"user.created","data":"not an object"}`, "X-User", "", "", false},
		{`not json`, "X-User", "", "", false},
	} {
		got, ok := keyFromPayload([]byte(tc.payload), tc.header, tc.param)
		if got != tc.want || ok != tc.ok {
			t.Errorf("keyFromPayload(%s, %q, %q) = %q, %v; want %q, %v", tc.payload, tc.header, tc.param, got, ok, tc.want, tc.ok)
		}
	}
	// A call without a key in its context takes it from the payload.
	fl := newFleet(t, 3)
	inv := poolOf(t, provider(t, Options{}), fmt.Sprintf(`{"backends":%s,"balance":"hash","hashOn":"header:x-user"}`, backendsJSON(fl.urls)))
	ctx := ctxTimeout(t, time.Minute)
	for u := range 50 {
		key := fmt.Sprintf("user-%d", u)
		byCtx, err := inv.Invoke(functions.WithAffinityKey(ctx, key), []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		byPayload, err := inv.Invoke(ctx, fmt.Appendf(nil, `{"event":"http","data":{"headers":{"X-User":%q}}}`, key))
		if err != nil {
			t.Fatal(err)
		}
		if string(byCtx) != string(byPayload) {
			t.Fatalf("user %s: backend %s by context, %s by payload", key, byCtx, byPayload)
		}
	}
}

func TestBackendsValidation(t *testing.T) {
	t.Parallel()
	reg := functions.NewRegistry(New(Options{}))
	const u1, u2 = "http://10.0.0.1/fn", "http://10.0.0.2/fn"
	for _, tc := range []struct{ cfg, want string }{
		{fmt.Sprintf(`{"url":%q,"backends":[{"url":%q}]}`, u1, u2), "provider.url and provider.backends exclude each other"},
		{`{"backends":[]}`, "provider.backends must list at least one backend"},
		{`{"backends":[{"weight":2}]}`, "provider.backends[0].url is required"},
		{fmt.Sprintf(`{"backends":[{"url":%q},{"url":"/rel"}]}`, u1), `provider.backends[1].url "/rel" must be an absolute http or https URL`},
		{`{"backends":[{"url":"http://u:p@h/"}]}`, "provider.backends[0].url must not carry credentials"},
		{fmt.Sprintf(`{"backends":[{"url":%q},{"url":%q}]}`, u1, u1), "provider.backends[1].url"},
		{fmt.Sprintf(`{"backends":[{"url":%q,"weight":0}]}`, u1), "provider.backends[0].weight 0 must be from 1 to 10000"},
		{fmt.Sprintf(`{"backends":[{"url":%q,"weight":-1}]}`, u1), "provider.backends[0].weight -1"},
		{fmt.Sprintf(`{"backends":[{"url":%q,"weight":"3"}]}`, u1), "must be a JSON number"},
		{fmt.Sprintf(`{"backends":[{"url":%q,"port":3}]}`, u1), `unknown field "provider.backends[0].port"`},
		{fmt.Sprintf(`{"backends":[{"url":%q,"weight":2}],"balance":"round-robin"}`, u1), `provider.backends[0].weight is ignored by provider.balance "round-robin"`},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"balance":"random"}`, u1), `provider.balance "random" is not supported`},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"balance":"hash"}`, u1), "provider.hashOn is required"},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"balance":"hash","hashOn":"cookie:x"}`, u1), `provider.hashOn "cookie:x" must be`},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"balance":"hash","hashOn":"header:a b"}`, u1), `provider.hashOn "header:a b" must be`},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"hashOn":"header:X"}`, u1), "provider.hashOn is only for provider.balance"},
		{fmt.Sprintf(`{"backends":[{"url":%q,"version":"v1"},{"url":%q,"version":"v2"}],"canary":{"version":"v3","percent":5}}`, u1, u2), `provider.canary.version "v3" is the version of no backend`},
		{fmt.Sprintf(`{"backends":[{"url":%q,"version":"v2"},{"url":%q,"version":"v2"}],"canary":{"version":"v2","percent":5}}`, u1, u2), "is the version of every backend"},
		{fmt.Sprintf(`{"backends":[{"url":%q,"version":"v1"},{"url":%q,"version":"v2"}],"canary":{"version":"v2","percent":101}}`, u1, u2), "provider.canary.percent 101 must be from 0 to 100"},
		{fmt.Sprintf(`{"backends":[{"url":%q,"version":"v/1"}]}`, u1), "provider.backends[0].version"},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"health":{"passive":{"ejection":"soon"}}}`, u1), `provider.health.passive.ejection "soon" must be a duration`},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"health":{"passive":{"ejection":"1m","maxEjection":"10s"}}}`, u1), "provider.health.passive.maxEjection 10s is shorter than"},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"health":{"passive":{"failures":-1}}}`, u1), "provider.health.passive.failures -1"},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"health":{"active":{}}}`, u1), "provider.health.active.path is required unless every backend has a probeUrl"},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"health":{"active":{"path":"healthz"}}}`, u1), `provider.health.active.path "healthz" must be a URL path`},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"health":{"active":{"path":"/h","interval":"1ms"}}}`, u1), "provider.health.active.interval"},
		{fmt.Sprintf(`{"backends":[{"url":%q}],"health":{"active":{"path":"/h","interval":"1s","timeout":"2s"}}}`, u1), "provider.health.active.timeout 2s is longer than provider.health.active.interval 1s"},
		{fmt.Sprintf(`{"backends":[{"url":%q,"probeUrl":"http://h/health"}]}`, u1), "provider.backends[0].probeUrl needs provider.health.active"},
		{fmt.Sprintf(`{"url":%q,"balance":"weighted"}`, u1), "provider.balance needs provider.backends"},
		{fmt.Sprintf(`{"url":%q,"health":{}}`, u1), "provider.health needs provider.backends"},
		{`{}`, "provider.url is required for type http"},
	} {
		_, err := reg.Validate(functions.Function{ID: "f", Provider: functions.Provider{Type: Type, Config: json.RawMessage(tc.cfg)}})
		if err == nil || !strings.Contains(err.Error(), tc.want) || errkind.Of(err) != errkind.Invalid {
			t.Errorf("%s: error %v, want Invalid containing %q", tc.cfg, err, tc.want)
		}
	}

	// A valid configuration is stored as sent; a one-url function as it
	// always was.
	for _, cfg := range []string{
		fmt.Sprintf(`{"url":%q}`, u1),
		fmt.Sprintf(`{"backends":[{"url":%q,"weight":3,"version":"v1"},{"url":%q,"version":"v2","probeUrl":"http://10.0.0.2:9/ok"}],"balance":"hash","hashOn":"header:X-User","canary":{"version":"v2","percent":10},"health":{"passive":{"failures":3,"ejection":"5s","maxEjection":"1m"},"active":{"path":"/healthz","interval":"5s","timeout":"1s","failures":2,"passes":1}}}`, u1, u2),
	} {
		f, err := reg.Validate(functions.Function{ID: "f", Provider: functions.Provider{Type: Type, Config: json.RawMessage(cfg)}})
		if err != nil {
			t.Fatalf("%s: %v", cfg, err)
		}
		got, _ := json.Marshal(f.Provider)
		if want := `{"type":"http",` + cfg[1:]; string(got) != want {
			t.Errorf("stored as %s, want %s", got, want)
		}
		inv, err := reg.Invoker(f)
		if err != nil {
			t.Fatal(err)
		}
		_, isPool := inv.(*pool)
		if isPool != strings.Contains(cfg, "backends") {
			t.Errorf("%s: invoker %T", cfg, inv)
		}
		if c, ok := inv.(io.Closer); ok {
			c.Close()
		}
	}
}

// A call cancelled by its caller says nothing of the backend.
func TestCancelledCallNotCounted(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(block) })
	inv := poolOf(t, provider(t, Options{}), fmt.Sprintf(`{"backends":[{"url":%q}],"health":{"passive":{"failures":1}}}`, srv.URL))
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(20 * time.Millisecond); cancel() }()
		if _, err := inv.Invoke(ctx, []byte(`{}`)); err == nil {
			t.Fatal("cancelled call succeeded")
		}
	}
	if b := inv.(*pool).current().all[0]; b.until.Load() != 0 {
		t.Error("backend ejected for calls its callers cancelled")
	}
}

// A backend that refuses connections received nothing: the call goes to
// another, so no call fails, and the refusals eject it.
func TestRefusedConnectionTriesAnother(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 1)
	deadSrv, _ := server(t, echo)
	dead := deadSrv.URL + "/fn"
	deadSrv.Close() // its port now refuses connections
	inv := poolOf(t, provider(t, Options{}), fmt.Sprintf(`{"backends":[{"url":%q},{"url":%q}],"balance":"hash","hashOn":"header:X-User","health":{"passive":{"failures":3,"ejection":"1h"}}}`, dead, fl.urls[0]))
	ctx := ctxTimeout(t, time.Minute)
	for u := range 100 {
		out, err := inv.Invoke(functions.WithAffinityKey(ctx, fmt.Sprint(u)), []byte(`{}`))
		if err != nil || string(out) != "0" {
			t.Fatalf("user %d: %q, %v; want the live backend's answer", u, out, err)
		}
	}
	if inv.(*pool).current().all[0].until.Load() == 0 {
		t.Error("a backend refusing every connection was not ejected")
	}

	// With every backend refusing, the call fails as unreachable, and
	// once they are ejected, with ErrNoBackend.
	inv = poolOf(t, provider(t, Options{}), fmt.Sprintf(`{"backends":[{"url":%q},{"url":%q}],"health":{"passive":{"failures":1,"ejection":"1h"}}}`, dead, dead+"2"))
	_, err := inv.Invoke(ctx, []byte(`{}`))
	if err == nil || errors.Is(err, functions.ErrNoBackend) || !notConnected(err) {
		t.Fatalf("every backend refusing: %v, want the refusal", err)
	}
	if _, err := inv.Invoke(ctx, []byte(`{}`)); !errors.Is(err, functions.ErrNoBackend) {
		t.Fatalf("every backend ejected: %v, want ErrNoBackend", err)
	}
}
