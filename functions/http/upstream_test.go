package httpfn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/functions/upstream"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/plugin"
)

// fakeSource is a backend source: what is pushed goes through
// upstream.Overrides, as the plugin host's does; pulls answer from known
// unless failing.
type fakeSource struct {
	upstream.Overrides
	mu    sync.Mutex
	known map[string][]upstream.Backend // "space/id"
	err   error
	pulls int
}

func (s *fakeSource) Backends(_ context.Context, space, id string) ([]upstream.Backend, bool, error) {
	if bs, ok := s.Get(space, id); ok {
		return bs, true, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulls++
	if s.err != nil {
		return nil, false, s.err
	}
	bs, ok := s.known[space+"/"+id]
	return bs, ok, nil
}

func (s *fakeSource) push(space, id string, urls ...string) {
	var bs []upstream.Backend
	for _, u := range urls {
		bs = append(bs, upstream.Backend{URL: u})
	}
	s.Apply("test", []upstream.Update{{Space: space, FunctionID: id, Backends: bs, Found: urls != nil}}, false)
}

// discoveredOf builds the invoker of function id of space s with
// provider fields cfg, as poolOf does.
func discoveredOf(t *testing.T, p *Provider, id, cfg string) *pool {
	t.Helper()
	reg := functions.NewRegistry(p)
	f, err := reg.Validate(functions.Function{ID: id, Provider: functions.Provider{Type: Type, Config: json.RawMessage(cfg)}})
	if err != nil {
		t.Fatalf("Validate %s: %v", cfg, err)
	}
	f.Space = "s"
	inv, err := reg.Invoker(f)
	if err != nil {
		t.Fatalf("Invoker: %v", err)
	}
	t.Cleanup(func() { inv.(io.Closer).Close() })
	return inv.(*pool)
}

// delta is the calls each backend got since before.
func delta(fl *fleet, before []int64) []int64 {
	now := fl.counts()
	for i := range before {
		now[i] -= before[i]
	}
	return now
}

func TestDiscoveryPullAndPush(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 3)
	src := &fakeSource{known: map[string][]upstream.Backend{"s/f": {{URL: fl.urls[0]}}}}
	p := provider(t, Options{Source: src})
	pl := discoveredOf(t, p, "f", fmt.Sprintf(`{"discovery":true,"url":%q,"balance":"round-robin"}`, fl.urls[2]))
	other := poolOf(t, p, fmt.Sprintf(`{"backends":%s}`, backendsJSON(fl.urls[2:])))

	// Pulled when made.
	before := fl.counts()
	callN(t, pl, 10)
	if d := delta(fl, before); !slices.Equal(d, []int64{10, 0, 0}) {
		t.Fatalf("calls %v, want all on the pulled backend 0", d)
	}
	// A push moves the traffic at once.
	src.push("s", "f", fl.urls[0], fl.urls[1])
	before = fl.counts()
	callN(t, pl, 20)
	if d := delta(fl, before); !slices.Equal(d, []int64{10, 10, 0}) {
		t.Fatalf("calls after a push of backends 0 and 1: %v", d)
	}
	// A push for another function changes nothing here.
	src.push("s", "g", fl.urls[2])
	src.push("t", "f", fl.urls[2])
	before = fl.counts()
	callN(t, pl, 4)
	if d := delta(fl, before); d[2] != 0 {
		t.Fatalf("another function's push moved calls: %v", d)
	}
	// The source forgets it: the configured url applies.
	src.push("s", "f")
	before = fl.counts()
	callN(t, pl, 5)
	callN(t, other, 5)
	if d := delta(fl, before); !slices.Equal(d, []int64{0, 0, 10}) {
		t.Fatalf("calls once the source forgot the function: %v", d)
	}
	// Closed: no longer watched.
	pl.Close()
	p.mu.Lock()
	n := len(p.live)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d functions still watched after Close", n)
	}
}

// A push that comes while the pull is under way wins over the pull's
// answer, which may be older.
func TestDiscoveryPushWinsOverPull(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 2)
	p := provider(t, Options{})
	pl := p.newPool("f", &Config{Discovery: true, URL: fl.urls[0]})
	defer pl.Close()
	pl.apply([]upstream.Backend{{URL: fl.urls[1]}}, true, true)
	pl.apply([]upstream.Backend{{URL: fl.urls[0]}}, true, false)
	if all := pl.current().all; len(all) != 1 || all[0].url != fl.urls[1] {
		t.Fatalf("backends %v after a push then an older pull", all)
	}
}

func TestDiscoveryPullFailsThenRetried(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 2)
	src := &fakeSource{known: map[string][]upstream.Backend{"s/f": {{URL: fl.urls[1]}}}, err: errors.New("plugin restarting")}
	pl := discoveredOf(t, provider(t, Options{Source: src}), "f", fmt.Sprintf(`{"discovery":true,"url":%q}`, fl.urls[0]))
	callN(t, pl, 3)
	if c := fl.counts(); c[0] != 3 {
		t.Fatalf("calls %v while the pull failed, want the configured url's", c)
	}
	src.mu.Lock()
	src.err = nil
	src.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for pl.current().all[0].url != fl.urls[1] {
		if time.Now().After(deadline) {
			t.Fatal("the failed pull was not made again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	src.mu.Lock()
	pulls := src.pulls
	src.mu.Unlock()
	// Asked again until it answered, then no more.
	time.Sleep(3 * repullMin)
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.pulls != pulls || pulls < 2 {
		t.Fatalf("%d pulls, then %d: want some, then none once answered", pulls, src.pulls)
	}
}

func TestDiscoveryNoBackend(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 1)
	src := &fakeSource{}
	pl := discoveredOf(t, provider(t, Options{Source: src}), "f", `{"discovery":true}`)
	_, err := pl.Invoke(ctxTimeout(t, time.Minute), []byte(`{}`))
	if !errors.Is(err, functions.ErrNoBackend) {
		t.Fatalf("a function the source does not know, with no backend configured: %v, want ErrNoBackend", err)
	}
	src.push("s", "f", fl.urls[0])
	callN(t, pl, 2)
	// Without a source, a function with discovery calls what it has.
	pl = discoveredOf(t, provider(t, Options{}), "f", fmt.Sprintf(`{"discovery":true,"url":%q}`, fl.urls[0]))
	callN(t, pl, 1)
	if c := fl.counts(); c[0] != 3 {
		t.Fatalf("calls %v", c)
	}
}

// A backend that stays in a pushed list keeps its health: a change of
// the list does not forgive an ejection.
func TestDiscoveryKeepsHealth(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 3)
	src := &fakeSource{known: map[string][]upstream.Backend{"s/f": {{URL: fl.urls[0]}, {URL: fl.urls[1]}}}}
	pl := discoveredOf(t, provider(t, Options{Source: src}), "f", `{"discovery":true,"balance":"round-robin","health":{"passive":{"failures":1,"ejection":"1h"}}}`)
	fl.fail[1].Store(true)
	ctx := ctxTimeout(t, time.Minute)
	for range 4 {
		_, _ = pl.Invoke(ctx, []byte(`{}`))
	}
	src.push("s", "f", fl.urls[2], fl.urls[1], fl.urls[0])
	set := pl.current()
	if len(set.all) != 3 || set.all[1].url != fl.urls[1] || set.all[1].until.Load() == 0 {
		t.Fatalf("backend 1 after the push: %+v, want still ejected", set.all[1])
	}
	before := fl.counts()
	callN(t, pl, 10)
	if d := delta(fl, before); d[1] != 0 || d[0] == 0 || d[2] == 0 || d[0]+d[2] != 10 {
		t.Fatalf("calls %v, want none on the ejected backend", d)
	}
}

// What a source gives is checked as a configured list would be.
func TestDiscoveredBackendsChecked(t *testing.T) {
	t.Parallel()
	pl := New(Options{}).newPool("f", &Config{Discovery: true})
	defer pl.Close()
	bs := []upstream.Backend{{URL: "ftp://x/"}, {URL: "http://a/", Weight: 0}, {URL: "http://a/"}, {URL: "http://u:p@b/"}, {URL: "http://c/", Weight: 1 << 40}}
	for i := range 2 * MaxBackends {
		bs = append(bs, upstream.Backend{URL: fmt.Sprintf("http://h%d/", i)})
	}
	pl.apply(bs, true, true)
	all := pl.current().all
	if len(all) != MaxBackends || all[0].url != "http://a/" || all[0].weight != 1 || all[1].url != "http://c/" || all[1].weight != MaxWeight {
		t.Fatalf("%d backends, first %+v %+v", len(all), all[0], all[1])
	}
}

func TestDiscoveryValidation(t *testing.T) {
	t.Parallel()
	reg := functions.NewRegistry(New(Options{}))
	const u1, u2 = "http://10.0.0.1/fn", "http://10.0.0.2/fn"
	for _, tc := range []struct{ cfg, want string }{
		{fmt.Sprintf(`{"discovery":true,"url":%q,"backends":[{"url":%q}]}`, u1, u2), "provider.url and provider.backends exclude each other"},
		{`{"discovery":true,"url":"/rel"}`, `provider.url "/rel" must be an absolute http or https URL`},
		{fmt.Sprintf(`{"discovery":true,"backends":[{"url":%q,"version":"v1"},{"url":%q,"version":"v2"}],"canary":{"version":"v2","percent":5}}`, u1, u2), "provider.canary is not available with provider.discovery"},
		{`{"discovery":true,"health":{"active":{}}}`, "provider.health.active.path is required with provider.discovery"},
		{`{"discovery":true,"balance":"random"}`, `provider.balance "random" is not supported`},
		{`{"discovery":"yes"}`, "JSON boolean"},
	} {
		_, err := reg.Validate(functions.Function{ID: "f", Provider: functions.Provider{Type: Type, Config: json.RawMessage(tc.cfg)}})
		if err == nil || !strings.Contains(err.Error(), tc.want) || errkind.Of(err) != errkind.Invalid {
			t.Errorf("%s: error %v, want Invalid containing %q", tc.cfg, err, tc.want)
		}
	}
	for _, cfg := range []string{
		`{"discovery":true}`,
		fmt.Sprintf(`{"discovery":true,"url":%q}`, u1),
		fmt.Sprintf(`{"discovery":true,"backends":[{"url":%q,"weight":3}],"balance":"hash","hashOn":"header:X-User","health":{"active":{"path":"/h"},"passive":{}}}`, u1),
		`{"discovery":true,"backends":[]}`,
	} {
		f, err := reg.Validate(functions.Function{ID: "f", Provider: functions.Provider{Type: Type, Config: json.RawMessage(cfg)}})
		if err != nil {
			t.Errorf("%s: %v", cfg, err)
			continue
		}
		if !strings.Contains(string(f.Provider.Config), `"discovery":true`) {
			t.Errorf("%s stored as %s", cfg, f.Provider.Config)
		}
	}
}

// fakeSelector records what it is shown and answers with choose.
type fakeSelector struct {
	mu     sync.Mutex
	seen   [][]upstream.BackendStat
	keys   []string
	choose func(backends []upstream.BackendStat) (int, error)
}

func (s *fakeSelector) Select(_ context.Context, key string, backends []upstream.BackendStat) (int, error) {
	s.mu.Lock()
	s.seen = append(s.seen, slices.Clone(backends))
	s.keys = append(s.keys, key)
	s.mu.Unlock()
	return s.choose(backends)
}

// byURL chooses the backend at url, if shown.
func byURL(url string) func([]upstream.BackendStat) (int, error) {
	return func(bs []upstream.BackendStat) (int, error) {
		return slices.IndexFunc(bs, func(b upstream.BackendStat) bool { return b.URL == url }), nil
	}
}

func TestSelectorChooses(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 3)
	sel := &fakeSelector{}
	sel.choose = byURL(fl.urls[2])
	inv := poolOf(t, provider(t, Options{Selector: sel}), fmt.Sprintf(`{"backends":%s,"balance":"hash","hashOn":"header:X-User"}`, backendsJSON(fl.urls, 1, 5, 1)))
	ctx := functions.WithAffinityKey(ctxTimeout(t, time.Minute), "user-7")
	for range 10 {
		if _, err := inv.Invoke(ctx, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if c := fl.counts(); !slices.Equal(c, []int64{0, 0, 10}) {
		t.Fatalf("calls %v, want all on the selector's choice", c)
	}
	sel.mu.Lock()
	defer sel.mu.Unlock()
	if len(sel.seen) != 10 || sel.keys[0] != "user-7" {
		t.Fatalf("asked %d times, key %q", len(sel.seen), sel.keys[0])
	}
	last := sel.seen[9]
	if len(last) != 3 || last[1].Weight != 5 || !last[2].Healthy || last[2].Calls != 9 || last[2].Latency <= 0 || last[0].Calls != 0 || last[2].Outstanding != 0 {
		t.Fatalf("the selector was shown %+v", last)
	}
}

// -1 leaves the choice to the function's policy; one available backend
// leaves no choice to ask about.
func TestSelectorLeavesChoice(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 2)
	sel := &fakeSelector{choose: func([]upstream.BackendStat) (int, error) { return -1, nil }}
	inv := poolOf(t, provider(t, Options{Selector: sel}), fmt.Sprintf(`{"backends":%s,"balance":"round-robin"}`, backendsJSON(fl.urls)))
	callN(t, inv, 10)
	if c := fl.counts(); !slices.Equal(c, []int64{5, 5}) {
		t.Fatalf("calls %v, want round robin's", c)
	}
	one := poolOf(t, provider(t, Options{Selector: sel}), fmt.Sprintf(`{"backends":%s}`, backendsJSON(fl.urls[:1])))
	callN(t, one, 3)
	sel.mu.Lock()
	defer sel.mu.Unlock()
	if len(sel.seen) != 10 {
		t.Fatalf("asked %d times, want 10 (not for a single backend)", len(sel.seen))
	}
}

// A selector is never shown a backend that is ejected or unhealthy.
func TestSelectorNeverSeesEjected(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 3)
	sel := &fakeSelector{}
	sel.choose = byURL(fl.urls[1])
	inv := poolOf(t, provider(t, Options{Selector: sel}), fmt.Sprintf(`{"backends":%s,"health":{"passive":{"failures":2,"ejection":"1h"}}}`, backendsJSON(fl.urls)))
	fl.fail[1].Store(true)
	ctx := ctxTimeout(t, time.Minute)
	for range 2 {
		if _, err := inv.Invoke(ctx, []byte(`{}`)); !errors.Is(err, functions.ErrFunctionFailed) {
			t.Fatalf("call of the failing backend: %v", err)
		}
	}
	sel.mu.Lock()
	asked := len(sel.seen)
	sel.mu.Unlock()
	callN(t, inv, 20)
	sel.mu.Lock()
	defer sel.mu.Unlock()
	for _, bs := range sel.seen[asked:] {
		for _, b := range bs {
			if b.URL == fl.urls[1] || !b.Healthy {
				t.Fatalf("the selector was shown %+v, ejected", b)
			}
		}
	}
	if c := fl.counts(); c[1] != 2 || c[0]+c[2] != 20 {
		t.Fatalf("calls %v", c)
	}
}

func TestSelectorError(t *testing.T) {
	t.Parallel()
	fl := newFleet(t, 2)
	// As the plugin host answers while the selector restarts: the
	// router postpones a delivery that fails with it (router/dispatch.go).
	broken := fmt.Errorf("plugin s: %w", plugin.ErrNotRunning)
	sel := &fakeSelector{choose: func([]upstream.BackendStat) (int, error) {
		return -1, errkind.Wrap(errkind.Unavailable, broken, "a plugin could not choose a backend, retry later")
	}}
	inv := poolOf(t, provider(t, Options{Selector: sel}), fmt.Sprintf(`{"backends":%s}`, backendsJSON(fl.urls)))
	_, err := inv.Invoke(ctxTimeout(t, time.Minute), []byte(`{}`))
	if !errors.Is(err, plugin.ErrNotRunning) || errkind.Of(err) != errkind.Unavailable || !strings.Contains(err.Error(), "function f: choose a backend") {
		t.Fatalf("err %v, want the selector's, Unavailable", err)
	}
	if c := fl.counts(); c[0]+c[1] != 0 {
		t.Fatalf("calls %v: a backend was called without a choice", c)
	}
}
