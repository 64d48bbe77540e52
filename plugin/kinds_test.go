package plugin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/functions/upstream"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/plugin"
	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/router/pipeline"
)

// kindsPlugin builds plugin/testdata/kinds as name ("modifier",
// "selector+metrics", ...), which picks its kinds.
func kindsPlugin(tb testing.TB, name string) string {
	tb.Helper()
	bin := build(tb, "./plugin/testdata/kinds", "kinds")
	// The same program under another name: a link, not another build.
	p := filepath.Join(filepath.Dir(bin), name)
	if err := os.Link(bin, p); err != nil && !os.IsExist(err) {
		tb.Fatal(err)
	}
	return p
}

// startHost runs plugins with a short timeout; they record into the
// returned directory.
func startHost(tb testing.TB, o plugin.HostOptions) (*plugin.Host, string) {
	tb.Helper()
	dir := tb.TempDir()
	tb.Setenv("PLUGIN_DIR", dir)
	if o.Timeout == 0 {
		o.Timeout = 500 * time.Millisecond
	}
	h, err := plugin.StartHost(context.Background(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	return h, dir
}

// lines reads what a plugin recorded.
func lines(t *testing.T, dir, name string) []map[string]json.RawMessage {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, name+".log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]json.RawMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]json.RawMessage
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var pc = pipeline.Context{Space: "acme", SubscriptionID: "sub-1", FunctionID: "fn", Attempt: 2}

// TestOldSDKPluginIsObserver: plugin/example, written before there were
// kinds (plugin.Serve), is an observer and nothing else.
func TestOldSDKPluginIsObserver(t *testing.T) {
	h, _ := startHost(t, plugin.HostOptions{Paths: []string{build(t, "./plugin/example", "example")}})
	if !h.Wants(plugin.EventReceived) || !h.Wants(plugin.FunctionInvoked) {
		t.Fatal("the example's subscriptions were not read")
	}
	if err := h.React(t.Context(), plugin.EventReceived, []byte(`{"event":"gateway.event.received","id":"1","data":{}}`)); err != nil {
		t.Fatal(err)
	}
	if h.Stages() != nil || h.BackendSource() != nil || h.Selector() != nil || h.HasMetricSinks() {
		t.Fatal("an observer-only plugin was taken for another kind")
	}
}

// TestMultiKindPlugin: one process serves every kind, and the host finds
// each.
func TestMultiKindPlugin(t *testing.T) {
	h, _ := startHost(t, plugin.HostOptions{Paths: []string{kindsPlugin(t, "observer+modifier+backends+selector+metrics")}})
	if !h.Wants(plugin.EventReceived) || h.Stages() == nil || h.BackendSource() == nil || h.Selector() == nil || !h.HasMetricSinks() {
		t.Fatal("a kind of a multi-kind plugin is missing")
	}
	s := h.Stages()
	if len(s.Request) != 1 || len(s.Response) != 1 || len(s.Error) != 1 {
		t.Fatalf("stages %+v", s)
	}
}

// TestTwoSelectors: a call has one policy.
func TestTwoSelectors(t *testing.T) {
	t.Setenv("PLUGIN_DIR", t.TempDir())
	_, err := plugin.StartHost(t.Context(), plugin.HostOptions{Paths: []string{kindsPlugin(t, "selector"), kindsPlugin(t, "selector+metrics")}})
	if err == nil || !strings.Contains(err.Error(), "second selector") {
		t.Fatalf("two selectors: %v", err)
	}
}

func TestModifier(t *testing.T) {
	h, dir := startHost(t, plugin.HostOptions{Paths: []string{kindsPlugin(t, "modifier")}})
	st := h.Stages()
	if st == nil {
		t.Fatal("no stages")
	}
	chain := st.Wrap(nil)
	out, drop, err := chain.Request(t.Context(), []byte(`{"event":"e","data":{"n":1}}`), pc)
	if err != nil || drop {
		t.Fatal(drop, err)
	}
	var env map[string]json.RawMessage
	if json.Unmarshal(out, &env) != nil || string(env["event"]) != `"e"` || string(env["data"]) != `{"modified":true,"n":1}` {
		t.Fatalf("modified event %s", out)
	}
	var call plugin.Call
	json.Unmarshal(lines(t, dir, "modifier")[0]["call"], &call)
	if call != (plugin.Call{Space: "acme", SubscriptionID: "sub-1", FunctionID: "fn", Attempt: 2}) {
		t.Fatalf("the plugin was told %+v", call)
	}

	resp, err := chain.Response(t.Context(), event.HTTPResponse{StatusCode: 201, Headers: map[string]string{"A": "b"}, Body: []byte("ok")}, pc)
	if err != nil || resp.StatusCode != 201 || resp.Headers["X-Modified"] != "yes" || resp.Headers["A"] != "b" || string(resp.Body) != "ok" {
		t.Fatalf("modified response %+v, %v", resp, err)
	}

	resp, handled, err := chain.Error(t.Context(), functions.ErrTimeout, pc)
	if err != nil || !handled || resp.StatusCode != 299 || string(resp.Body) != "rescued: fn" {
		t.Fatalf("rescued error %+v %v %v", resp, handled, err)
	}
	rs := lines(t, dir, "modifier")
	var ce plugin.CallError
	json.Unmarshal(rs[len(rs)-1]["error"], &ce)
	if !ce.Timeout {
		t.Fatalf("the plugin was not told of a timeout: %+v", ce)
	}
	unrescued := pc
	unrescued.FunctionID = "unrescued"
	if _, handled, err := chain.Error(t.Context(), errors.New("boom"), unrescued); handled || err != nil {
		t.Fatal("a modifier that leaves the error handled it", handled, err)
	}

	_, _, err = chain.Request(t.Context(), []byte(`{"refuse":true}`), pc)
	if errkind.Of(err) != errkind.Forbidden || errkind.Message(err) != "refused by the modifier" {
		t.Fatalf("a refusal: %v (kind %v)", err, errkind.Of(err))
	}
}

// TestModifierFailure: a modifier that crashes or hangs stops the call
// (Unavailable) while it is restarted, failing closed; the calls while it
// is down fail with ErrNotRunning, so a delivery can wait; it comes back.
// Failing open, calls pass unmodified.
func TestModifierFailure(t *testing.T) {
	for _, open := range []bool{false, true} {
		t.Run(map[bool]string{false: "closed", true: "open"}[open], func(t *testing.T) {
			h, _ := startHost(t, plugin.HostOptions{Paths: []string{kindsPlugin(t, "modifier")}, Timeout: 300 * time.Millisecond, FailOpen: open})
			chain := h.Stages().Wrap(nil)
			for _, trouble := range []string{"crash", "hang"} {
				ev := []byte(`{"data":"` + trouble + `"}`)
				out, _, err := chain.Request(t.Context(), ev, pc)
				if open {
					if err != nil || string(out) != string(ev) {
						t.Fatalf("%s, fail open: %s %v", trouble, out, err)
					}
				} else if errkind.Of(err) != errkind.Unavailable || !errors.Is(err, plugin.ErrUnavailable) || errors.Is(err, plugin.ErrNotRunning) {
					t.Fatalf("%s, fail closed: %v", trouble, err)
				}
				// Down now: the next call is not its fault.
				_, _, err = chain.Request(t.Context(), []byte(`{}`), pc)
				if !open && !errors.Is(err, plugin.ErrNotRunning) {
					t.Fatalf("while restarting: %v", err)
				}
				_, err = chain.Response(t.Context(), event.HTTPResponse{StatusCode: 200}, pc)
				if !open && !errors.Is(err, plugin.ErrNotRunning) {
					t.Fatalf("response while restarting: %v", err)
				}
				eventually(t, "the modifier back after "+trouble, func() bool {
					out, _, err := chain.Request(t.Context(), []byte(`{}`), pc)
					return err == nil && strings.Contains(string(out), "modified")
				})
			}
		})
	}
}

func TestBackendSource(t *testing.T) {
	h, dir := startHost(t, plugin.HostOptions{Paths: []string{kindsPlugin(t, "backends")}, Timeout: 300 * time.Millisecond})
	src := h.BackendSource()
	bs, found, err := src.Backends(t.Context(), "acme", "known")
	if err != nil || !found || len(bs) != 2 || bs[0] != (upstream.Backend{URL: "http://acme.known:1", Weight: 2}) {
		t.Fatalf("pull: %+v %v %v", bs, found, err)
	}
	if _, found, err := src.Backends(t.Context(), "acme", "unknown"); found || err != nil {
		t.Fatalf("pull of an unknown function: %v %v", found, err)
	}
	if _, _, err := src.Backends(t.Context(), "acme", "broken"); errkind.Of(err) != errkind.Unavailable {
		t.Fatalf("pull of a function the source fails on, failing closed: %v", err)
	}

	// Push.
	updates := make(chan upstream.Update, 10)
	src.Watch(t.Context(), func(u upstream.Update) { updates <- u })
	push := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "push.json.tmp"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Rename(filepath.Join(dir, "push.json.tmp"), filepath.Join(dir, "push.json"))
	}
	push(`{"acme/pushed":[{"url":"http://a:1"}],"acme/known":[{"url":"http://override:1"}]}`)
	got := map[string]upstream.Update{}
	for len(got) < 2 {
		select {
		case u := <-updates:
			got[u.FunctionID] = u
		case <-time.After(10 * time.Second):
			t.Fatalf("pushed backends not seen: %+v", got)
		}
	}
	if u := got["pushed"]; !u.Found || len(u.Backends) != 1 || u.Backends[0].URL != "http://a:1" || u.Space != "acme" {
		t.Fatalf("update %+v", u)
	}
	if bs, found, _ := src.Backends(t.Context(), "acme", "known"); !found || bs[0].URL != "http://override:1" {
		t.Fatalf("pushed backends do not win over a pull: %+v", bs)
	}
	push(`{"acme/pushed":null,"acme/known":[{"url":"http://override:1"}]}`)
	select {
	case u := <-updates:
		if u.FunctionID != "pushed" || u.Found {
			t.Fatalf("removal seen as %+v", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("removal not pushed")
	}

	// A crash on a pull: closed, then back, and what it pushes is pushed
	// again by the new run.
	if _, _, err := src.Backends(t.Context(), "acme", "crash"); !errors.Is(err, plugin.ErrUnavailable) {
		t.Fatalf("pull that crashes the source: %v", err)
	}
	eventually(t, "the source back", func() bool {
		_, found, err := src.Backends(t.Context(), "acme", "known")
		return err == nil && found
	})
	if bs, _, _ := src.Backends(t.Context(), "acme", "known"); bs[0].URL != "http://override:1" {
		t.Fatalf("after a restart, pushed %+v", bs)
	}
	// Hang on a pull: the same.
	if _, _, err := src.Backends(t.Context(), "acme", "hang"); !errors.Is(err, plugin.ErrUnavailable) {
		t.Fatalf("pull that hangs the source: %v", err)
	}
	if _, _, err := src.Backends(t.Context(), "acme", "other"); !errors.Is(err, plugin.ErrNotRunning) {
		t.Fatalf("pull while restarting: %v", err)
	}
}

func TestBackendSourceFailOpen(t *testing.T) {
	h, _ := startHost(t, plugin.HostOptions{Paths: []string{kindsPlugin(t, "backends")}, Timeout: 300 * time.Millisecond, FailOpen: true})
	src := h.BackendSource()
	for _, fn := range []string{"broken", "crash", "other"} {
		if _, found, err := src.Backends(t.Context(), "acme", fn); found || err != nil {
			t.Fatalf("fail open, %s: %v %v", fn, found, err)
		}
	}
}

func stats(outstanding ...int) []upstream.BackendStat {
	var out []upstream.BackendStat
	for i, o := range outstanding {
		out = append(out, upstream.BackendStat{Backend: upstream.Backend{URL: "http://b/" + string(rune('a'+i))}, Healthy: true, Outstanding: o, Latency: time.Duration(i) * time.Millisecond})
	}
	return out
}

func TestSelector(t *testing.T) {
	h, dir := startHost(t, plugin.HostOptions{Paths: []string{kindsPlugin(t, "selector")}, Timeout: 300 * time.Millisecond})
	sel := h.Selector()
	if i, err := sel.Select(t.Context(), "k", stats(3, 1, 2)); i != 1 || err != nil {
		t.Fatalf("chose %d, %v", i, err)
	}
	var seen struct {
		Key      string
		Backends []upstream.BackendStat
	}
	b, _ := json.Marshal(lines(t, dir, "selector")[0])
	json.Unmarshal(b, &seen)
	if seen.Key != "k" || len(seen.Backends) != 3 || seen.Backends[2].Latency != 2*time.Millisecond || seen.Backends[1].URL != "http://b/b" {
		t.Fatalf("the selector saw %+v", seen)
	}
	if i, err := sel.Select(t.Context(), "none", stats(1)); i != -1 || err != nil {
		t.Fatalf("no opinion: %d %v", i, err)
	}
	for _, key := range []string{"bad", "error"} {
		if _, err := sel.Select(t.Context(), key, stats(1, 2)); errkind.Of(err) != errkind.Unavailable {
			t.Fatalf("%s, failing closed: %v", key, err)
		}
	}
	// A bad answer is not a crash: the plugin is still up.
	if i, err := sel.Select(t.Context(), "k", stats(0)); i != 0 || err != nil {
		t.Fatalf("after a bad answer: %d %v", i, err)
	}
	for _, trouble := range []string{"crash", "hang"} {
		if _, err := sel.Select(t.Context(), trouble, stats(1)); !errors.Is(err, plugin.ErrUnavailable) || errors.Is(err, plugin.ErrNotRunning) {
			t.Fatalf("%s: %v", trouble, err)
		}
		if _, err := sel.Select(t.Context(), "k", stats(1)); !errors.Is(err, plugin.ErrNotRunning) {
			t.Fatalf("after %s: %v", trouble, err)
		}
		eventually(t, "the selector back", func() bool {
			i, err := sel.Select(t.Context(), "k", stats(1))
			return i == 0 && err == nil
		})
	}
}

func TestSelectorFailOpen(t *testing.T) {
	h, _ := startHost(t, plugin.HostOptions{Paths: []string{kindsPlugin(t, "selector")}, Timeout: 300 * time.Millisecond, FailOpen: true})
	for _, key := range []string{"bad", "error", "crash", "k"} {
		if i, err := h.Selector().Select(t.Context(), key, stats(1, 2)); i != -1 || err != nil {
			t.Fatalf("%s, failing open: %d %v", key, i, err)
		}
	}
}

// sunk counts the measurements a sink recorded, per function, and the
// largest batch.
func sunk(t *testing.T, dir, name string) (map[string]int, int) {
	n, largest := map[string]int{}, 0
	for _, l := range lines(t, dir, name) {
		var batch []plugin.Measurement
		json.Unmarshal(l["batch"], &batch)
		largest = max(largest, len(batch))
		for _, m := range batch {
			n[m.FunctionID]++
		}
	}
	return n, largest
}

func TestMetricSink(t *testing.T) {
	h, dir := startHost(t, plugin.HostOptions{Paths: []string{kindsPlugin(t, "metrics")}, Timeout: 300 * time.Millisecond, MetricBatch: 10, MetricFlush: 20 * time.Millisecond})
	for range 95 {
		h.Invoked("acme", "fn", "http", 3*time.Millisecond, "ok")
	}
	eventually(t, "95 measurements", func() bool { n, _ := sunk(t, dir, "metrics"); return n["fn"] == 95 })
	if _, largest := sunk(t, dir, "metrics"); largest > 10 || largest < 2 {
		t.Fatalf("largest batch %d, want 2 to 10", largest)
	}
	var first []plugin.Measurement
	json.Unmarshal(lines(t, dir, "metrics")[0]["batch"], &first)
	if m := first[0]; m.Kind != plugin.MeasureFunctionCall || m.Space != "acme" || m.Provider != "http" || m.Duration != 3*time.Millisecond || m.Result != "ok" || m.Time.IsZero() {
		t.Fatalf("measurement %+v", m)
	}
	// A batch that crashes the sink is dropped and counted; the sink is
	// restarted and gets the next ones.
	h.Invoked("acme", "crash", "http", time.Millisecond, "failed")
	eventually(t, "the crashing batch dropped", func() bool { return h.MeasurementsDropped() >= 1 })
	for range 5 {
		h.Invoked("acme", "after", "http", time.Millisecond, "ok")
	}
	eventually(t, "measurements after the restart", func() bool { n, _ := sunk(t, dir, "metrics"); return n["after"] == 5 })
}

// TestMetricSinkNeverBlocks: a sink that hangs neither blocks Invoked nor
// holds more than its buffer: the rest is dropped and counted.
func TestMetricSinkNeverBlocks(t *testing.T) {
	h, _ := startHost(t, plugin.HostOptions{Paths: []string{kindsPlugin(t, "metrics")}, Timeout: time.Hour, Buffer: 20, MetricBatch: 5, MetricFlush: time.Millisecond})
	h.Invoked("acme", "hang", "http", time.Millisecond, "ok")
	for range 1000 {
		h.Invoked("acme", "fn", "http", time.Millisecond, "ok")
	}
	if d := h.MeasurementsDropped(); d < 1000-20-5-1 {
		t.Fatalf("%d dropped of 1001 with a hung sink, a buffer of 20 and batches of 5", d)
	}
	// Close is bounded by its context, the hung sink notwithstanding.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	h.Shutdown(ctx)
}

// TestExamples runs the examples under plugin/examples that a gateway does
// not exercise by itself in tests/ (the backend source and the selector
// are for providers to call) and the observer.
func TestExamples(t *testing.T) {
	t.Run("observer", func(t *testing.T) {
		h, _ := startHost(t, plugin.HostOptions{Paths: []string{build(t, "./plugin/examples/observer", "example-observer")}})
		err := h.React(t.Context(), plugin.EventReceived, []byte(`{"event":"gateway.event.received","id":"1","data":{"headers":{"X-Deny":"1"}}}`))
		var v *plugin.VetoError
		if !errors.As(err, &v) || v.Msg != "denied by the observer plugin" {
			t.Fatalf("veto: %v", err)
		}
		if err := h.React(t.Context(), plugin.EventReceived, []byte(`{"event":"gateway.event.received","id":"2","data":{"headers":{}}}`)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("backends", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "backends.json")
		os.WriteFile(file, []byte(`{"acme/fn":[{"url":"http://a:1","weight":3},{"url":"http://b:1"}]}`), 0o644)
		t.Setenv("BACKENDS_FILE", file)
		h, _ := startHost(t, plugin.HostOptions{Paths: []string{build(t, "./plugin/examples/backends", "example-backends")}})
		src := h.BackendSource()
		updates := make(chan upstream.Update, 10)
		src.Watch(t.Context(), func(u upstream.Update) { updates <- u })
		eventually(t, "the file's backends pushed", func() bool {
			bs, found, err := src.Backends(t.Context(), "acme", "fn")
			return err == nil && found && len(bs) == 2 && bs[0].Weight == 3
		})
		if _, found, _ := src.Backends(t.Context(), "acme", "other"); found {
			t.Fatal("a function not in the file was found")
		}
		os.WriteFile(file+".tmp", []byte(`{"acme/fn":[{"url":"http://c:1"}]}`), 0o644)
		os.Rename(file+".tmp", file)
		eventually(t, "the change pushed", func() bool {
			bs, _, _ := src.Backends(t.Context(), "acme", "fn")
			return len(bs) == 1 && bs[0].URL == "http://c:1"
		})
		for seen := false; !seen; {
			select {
			case u := <-updates:
				seen = u.FunctionID == "fn" && len(u.Backends) == 1 && u.Backends[0].URL == "http://c:1"
			case <-time.After(10 * time.Second):
				t.Fatal("the watcher was not told")
			}
		}
	})
	t.Run("selector", func(t *testing.T) {
		h, _ := startHost(t, plugin.HostOptions{Paths: []string{build(t, "./plugin/examples/selector", "example-selector")}})
		bs := []upstream.BackendStat{
			{Healthy: true, Calls: 5, Latency: 30 * time.Millisecond},
			{Healthy: true, Calls: 5, Latency: 10 * time.Millisecond},
			{Healthy: false, Calls: 0},
			{Healthy: true, Calls: 5, Latency: 20 * time.Millisecond},
		}
		if i, err := h.Selector().Select(t.Context(), "", bs); i != 1 || err != nil {
			t.Fatalf("chose %d, %v; want the fastest, 1", i, err)
		}
		bs = append(bs, upstream.BackendStat{Healthy: true})
		if i, _ := h.Selector().Select(t.Context(), "", bs); i != 4 {
			t.Fatalf("chose %d; want the untried one, 4", i)
		}
		if i, _ := h.Selector().Select(t.Context(), "", bs[2:3]); i != -1 {
			t.Fatalf("chose %d among unhealthy ones; want -1", i)
		}
	})
}
