package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/gwproc"
)

var (
	pluginsMu  sync.Mutex
	pluginBins = map[string]string{}
)

// testPlugin builds tests/testdata/plugin under the name mode (which picks
// its behaviour) once per test binary, and returns its path.
func testPlugin(t *testing.T, mode string) string {
	t.Helper()
	return buildPlugin(t, "./tests/testdata/plugin", mode)
}

func buildPlugin(t *testing.T, pkg, name string) string {
	t.Helper()
	pluginsMu.Lock()
	defer pluginsMu.Unlock()
	if p, ok := pluginBins[name]; ok {
		return p
	}
	binary(t) // makes buildDir
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := gwproc.BuildPackage(ctx, pkg, filepath.Join(buildDir, "plugins", name))
	if err != nil {
		t.Fatal(err)
	}
	pluginBins[name] = p
	return p
}

// startWithPlugins runs a -dev gateway with the plugins built by build
// (testPlugin, kindsPlugin) under names, and the flags extra; the plugins
// write their records into the returned directory (PLUGIN_DIR).
func startWithPlugins(t *testing.T, build func(*testing.T, string) string, extra []string, names ...string) (*gwproc.Process, string) {
	t.Helper()
	dir := t.TempDir()
	args := devArgs(filepath.Join(dir, "etcd"), extra...)
	for _, n := range names {
		args = append(args, "-plugin", build(t, n))
	}
	gw := start(t, gwproc.Options{Args: args, Env: []string{"PLUGIN_DIR=" + dir}})
	return gw, dir
}

type recorded struct {
	Event string          `json:"event"`
	ID    string          `json:"id"`
	Data  json.RawMessage `json:"data"`
}

// records reads what a plugin has recorded so far.
func records(t *testing.T, dir, mode string) []recorded {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, mode+".log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []recorded
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r recorded
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // a line being written
		}
		out = append(out, r)
	}
	return out
}

func countType(rs []recorded, typ string) int {
	n := 0
	for _, r := range rs {
		if r.Event == typ {
			n++
		}
	}
	return n
}

// crashableJobs subscribes a tally to "job", with two attempts and short
// backoffs, and to "boom", whose {"crash":true} crashes the test plugins
// (tests/testdata/plugin, plugin/testdata/kinds); it returns the tally,
// the "job" subscription and a func that sends such a "boom".
func crashableJobs(t *testing.T, gw *gwproc.Process) (*tally, string, func()) {
	t.Helper()
	tl, worker := newTally(t)
	registerHTTP(t, gw, "worker", worker)
	healthy := subscribe(t, gw, `{"functionId":"worker","event":"job","retry":{"maxAttempts":2,"initialBackoff":"10ms","maxBackoff":"20ms"}}`)
	subscribe(t, gw, `{"functionId":"worker","event":"boom","retry":{"maxAttempts":1}}`)
	untilLive(t, gw, "job", `{"n":-1}`, func() bool { return tl.count() > 0 })
	boom := func() {
		expect(t, call(t, "POST", gw.EventsURL+"/", `{"crash":true}`, "Event", "boom", "Content-Type", "application/json"), 202, "")
	}
	return tl, healthy, boom
}

// jobsWhileCrashing emits the "job" events {"n":0} to {"n":n-1} through
// gw, calling crash after the 10th and every every-th after it, and
// waits for tl to get them all. Deliveries wait for a plugin that is
// being restarted without spending attempts: t fails if one is missing
// or was dead-lettered for the subscription healthy.
func jobsWhileCrashing(t *testing.T, gw *gwproc.Process, tl *tally, healthy string, n, every int, crash func()) {
	t.Helper()
	for i := range n {
		expect(t, call(t, "POST", gw.EventsURL+"/", fmt.Sprintf(`{"n":%d}`, i), "Event", "job", "Content-Type", "application/json"), 202, "")
		if i%every == 10 {
			crash()
		}
		time.Sleep(5 * time.Millisecond)
	}
	missing := tl.waitAll(n, 60*time.Second)
	var list struct {
		DeadLetters []deadLetter `json:"deadletters"`
	}
	decode(t, call(t, "GET", gw.ConfigURL+"/v1/deadletters?subscriptionId="+healthy, ""), &list)
	if len(list.DeadLetters) > 0 || len(missing) > 0 {
		t.Fatalf("%d healthy events dead-lettered (first: %+v), %d missing", len(list.DeadLetters), list.DeadLetters, len(missing))
	}
}

// pluginRestarts counts the plugin restarts gw has logged.
func pluginRestarts(gw *gwproc.Process) int {
	return strings.Count(gw.Logs(), `"msg":"plugin restarted"`)
}

// TestPluginSubscriptionsHonoured: a plugin gets the system events it
// subscribed to, for each kind of event, and nothing else.
func TestPluginSubscriptionsHonoured(t *testing.T) {
	gw, dir := startWithPlugins(t, testPlugin, nil, "recorder", "gatekeeper")
	ok := newFunction(t, respondJSON(`{"body":"fine"}`))
	bad := newFunction(t, func(w http.ResponseWriter, _ envelope) { w.WriteHeader(500) })
	registerHTTP(t, gw, "ok", ok)
	registerHTTP(t, gw, "bad", bad)
	subscribe(t, gw, `{"functionId":"ok","event":"http","method":"GET","path":"/ok"}`)
	subscribe(t, gw, `{"functionId":"bad","event":"http","method":"GET","path":"/bad"}`)
	subscribe(t, gw, `{"functionId":"ok","event":"invoke"}`)
	subscribe(t, gw, `{"functionId":"ok","event":"thing.happened"}`)
	routable(t, "GET", gw.EventsURL+"/ok")
	routable(t, "GET", gw.EventsURL+"/bad")
	routable(t, "POST", gw.EventsURL+"/", "Event", "invoke", "Function-ID", "ok")

	// Start counting from here.
	before := records(t, dir, "recorder")
	expect(t, call(t, "GET", gw.EventsURL+"/ok", ""), 200, "")
	expect(t, call(t, "GET", gw.EventsURL+"/bad", ""), 502, "")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "invoke", "Function-ID", "ok", "Content-Type", "application/json"), 200, "")
	waitSubscribers(t, gw, "thing.happened", "/", ok)

	eventually(t, "recorded system events", func() bool {
		rs := records(t, dir, "recorder")[len(before):]
		return countType(rs, "gateway.function.invocationFailed") >= 1 && countType(rs, "gateway.function.invoked") >= 3
	})
	rs := records(t, dir, "recorder")[len(before):]
	if countType(rs, "gateway.event.received") < 4 || countType(rs, "gateway.function.invoking") < 4 {
		t.Fatalf("recorded %d received and %d invoking events, want at least 4 each", countType(rs, "gateway.event.received"), countType(rs, "gateway.function.invoking"))
	}
	for _, r := range rs {
		if r.Event == "gateway.function.invocationFailed" {
			var d struct {
				Event      json.RawMessage `json:"event"`
				FunctionID string          `json:"functionId"`
				Error      string          `json:"error"`
			}
			json.Unmarshal(r.Data, &d)
			if d.FunctionID != "bad" || d.Error == "" || !json.Valid(d.Event) {
				t.Fatalf("invocationFailed data %s", r.Data)
			}
		}
		if r.Event == "gateway.event.received" {
			var d struct {
				Space   string            `json:"space"`
				Event   json.RawMessage   `json:"event"`
				Path    string            `json:"path"`
				Headers map[string]string `json:"headers"`
			}
			json.Unmarshal(r.Data, &d)
			if d.Space != "default" || d.Path == "" || len(d.Headers) == 0 || !json.Valid(d.Event) {
				t.Fatalf("received data %s", r.Data)
			}
		}
	}
	// The gatekeeper subscribed to invoking only.
	for _, r := range records(t, dir, "gatekeeper") {
		if r.Event != "gateway.function.invoking" {
			t.Fatalf("gatekeeper got %s, which it did not subscribe to", r.Event)
		}
	}
}

// TestPluginVeto: a sync reacter stops an event on received (400 with its
// message) and on invoking (the function is not called).
func TestPluginVeto(t *testing.T) {
	gw, _ := startWithPlugins(t, testPlugin, nil, "guard", "gatekeeper")
	fn := newFunction(t, respondJSON(`{"body":"ran"}`))
	forbidden := newFunction(t, respondJSON(`{"body":"ran"}`))
	registerHTTP(t, gw, "fn", fn)
	registerHTTP(t, gw, "forbidden", forbidden)
	subscribe(t, gw, `{"functionId":"fn","event":"http","method":"GET","path":"/fn"}`)
	subscribe(t, gw, `{"functionId":"forbidden","event":"http","method":"GET","path":"/forbidden"}`)
	subscribe(t, gw, `{"functionId":"forbidden","event":"invoke"}`)
	subscribe(t, gw, `{"functionId":"fn","event":"blockable"}`)
	routable(t, "GET", gw.EventsURL+"/fn")
	<-fn.received

	expect(t, call(t, "GET", gw.EventsURL+"/fn", "", "X-Block", "1"), 400, "blocked by the guard plugin")
	expect(t, call(t, "POST", gw.EventsURL+"/", "{}", "Event", "blockable", "X-Block", "1"), 400, "blocked by the guard plugin")
	expect(t, call(t, "GET", gw.EventsURL+"/fn", ""), 200, "")
	<-fn.received

	eventually(t, "forbidden route", func() bool { return call(t, "GET", gw.EventsURL+"/forbidden", "").status != 404 })
	expect(t, call(t, "GET", gw.EventsURL+"/forbidden", ""), 403, "calls to forbidden are not allowed")
	expect(t, call(t, "POST", gw.EventsURL+"/", "{}", "Event", "invoke", "Function-ID", "forbidden"), 403, "not allowed")
	select {
	case ev := <-forbidden.received:
		t.Fatalf("a vetoed function was called: %+v", ev)
	case ev := <-fn.received:
		t.Fatalf("a blocked event reached a function: %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestAsyncPluginDoesNotBlock: an async reacter that never answers does not
// hold up requests; what overflows its buffer is dropped and counted.
func TestAsyncPluginDoesNotBlock(t *testing.T) {
	gw, dir := startWithPlugins(t, testPlugin, []string{"-plugin-buffer", "2", "-plugin-timeout", "1h"}, "sluggish")
	t.Cleanup(func() { os.WriteFile(filepath.Join(dir, "release"), nil, 0o644) })
	fn := newFunction(t, respondJSON(`{"body":"quick"}`))
	routeHTTP(t, gw, "fn", "GET", "/fn", fn)
	// The plugin holds its first event forever; every request still
	// completes (a blocking reacter would hang here until the test times
	// out).
	for range 20 {
		expect(t, call(t, "GET", gw.EventsURL+"/fn", ""), 200, "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.WaitLog(ctx, "plugin buffer full", 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestCrashingPluginRestarted: a sync reacter that crashes or hangs stops
// its event (fail closed by default), is restarted, and never takes the
// gateway down.
func TestCrashingPluginRestarted(t *testing.T) {
	gw, _ := startWithPlugins(t, testPlugin, []string{"-plugin-timeout", "500ms"}, "fragile")
	fn := newFunction(t, respondJSON(`{"body":"alive"}`))
	routeHTTP(t, gw, "fn", "GET", "/fn", fn)

	for _, trigger := range []string{"X-Crash", "X-Hang"} {
		r := call(t, "GET", gw.EventsURL+"/fn", "", trigger, "1")
		expect(t, r, 503, "plugin")
		eventually(t, "plugin back after "+trigger, func() bool {
			return call(t, "GET", gw.EventsURL+"/fn", "").status == 200
		})
	}
	if n := pluginRestarts(gw); n < 2 {
		t.Fatalf("plugin restarted %d times, want 2\n", n)
	}
}

// TestFailOpen: with -plugin-fail-open an unavailable sync reacter lets
// events through.
func TestFailOpen(t *testing.T) {
	gw, _ := startWithPlugins(t, testPlugin, []string{"-plugin-fail-open", "-plugin-timeout", "300ms"}, "fragile")
	fn := newFunction(t, respondJSON(`{"body":"alive"}`))
	routeHTTP(t, gw, "fn", "GET", "/fn", fn)
	expect(t, call(t, "GET", gw.EventsURL+"/fn", "", "X-Hang", "1"), 200, "")
}

// TestSystemEventToFunction: a function subscribed to
// gateway.function.invoked gets it once per invocation, and its own
// invocations emit nothing, so there is no loop.
func TestSystemEventToFunction(t *testing.T) {
	gw := startDev(t, "")
	worker := newFunction(t, respondJSON(`{"done":true}`))
	watcher := newFunction(t, respondJSON(`{}`))
	registerHTTP(t, gw, "worker", worker)
	registerHTTP(t, gw, "watcher", watcher)
	subscribe(t, gw, `{"functionId":"worker","event":"job"}`)
	subscribe(t, gw, `{"functionId":"watcher","event":"gateway.function.invoked"}`)
	// Both subscriptions must be live: wait until a job's invocation is
	// reported, then start counting.
	eventually(t, "system event delivered", func() bool {
		expect(t, call(t, "POST", gw.EventsURL+"/", "{}", "Event", "job", "Content-Type", "application/json"), 202, "")
		select {
		case <-watcher.received:
			return true
		case <-time.After(50 * time.Millisecond):
			return false
		}
	})
	time.Sleep(300 * time.Millisecond)
	drain(worker.received)
	drain(watcher.received)

	for range 3 {
		expect(t, call(t, "POST", gw.EventsURL+"/", `{"n":1}`, "Event", "job", "Content-Type", "application/json"), 202, "")
	}
	var got []envelope
	for range 3 {
		got = append(got, watcher.next(t))
	}
	// Nothing more arrives: the watcher's own invocations emit no events.
	select {
	case ev := <-watcher.received:
		t.Fatalf("a fourth system event arrived: %s %s", ev.Event, ev.Data)
	case <-time.After(500 * time.Millisecond):
	}
	for _, ev := range got {
		var d struct {
			Event      envelope        `json:"event"`
			FunctionID string          `json:"functionId"`
			Result     json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		if ev.Event != "gateway.function.invoked" || d.FunctionID != "worker" || d.Event.Event != "job" || string(d.Result) != `{"done":true}` {
			t.Fatalf("system event %+v with data %s", ev, ev.Data)
		}
	}
}

func drain(ch chan envelope) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestExamplePlugin loads plugin/example, which logs what it receives.
func TestExamplePlugin(t *testing.T) {
	example := buildPlugin(t, "./plugin/example", "example")
	gw := start(t, gwproc.Options{Args: devArgs(t.TempDir(), "-plugin", example)})
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"hello":"plugin"}`, "Event", "greeting", "Content-Type", "application/json"), 202, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.WaitLog(ctx, `"msg":"system event"`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(gw.Logs(), `gateway.event.received`) {
		t.Fatalf("the example plugin did not log the received event:\n%s", gw.Logs())
	}
	m := call(t, "GET", gw.ConfigURL+"/metrics", "").body
	if v := metric(m, `eventgateway_plugin_call_duration_seconds_count{plugin="example",result="ok"}`); v < 1 {
		t.Fatalf("plugin calls not in the metrics (%v)", v)
	}
}

// TestPluginRestartBacksOff: a plugin that crashes on every event is
// restarted less and less often, not every 150ms forever.
func TestPluginRestartBacksOff(t *testing.T) {
	gw, _ := startWithPlugins(t, testPlugin, []string{"-plugin-timeout", "500ms"}, "fragile")
	fn := newFunction(t, respondJSON(`{"body":"alive"}`))
	go drain(fn.received)
	routeHTTP(t, gw, "fn", "GET", "/fn", fn)
	const span = 4 * time.Second
	for end := time.Now().Add(span); time.Now().Before(end); {
		call(t, "GET", gw.EventsURL+"/fn", "", "X-Crash", "1")
		time.Sleep(20 * time.Millisecond)
	}
	n := pluginRestarts(gw)
	t.Logf("plugin crashing on every event: %d restarts in %v", n, span)
	// Pauses of 100ms, 200ms, 400ms, ... (±25%) allow 5 or 6 restarts;
	// a pause that reset after each start allowed about 28.
	if n < 2 || n > 10 {
		t.Fatalf("%d restarts in %v, want a few, each after a longer pause", n, span)
	}
}

// TestPluginDownSpendsNoAttempt: while a sync gateway.function.invoking
// plugin is being restarted, deliveries wait for it without spending
// attempts: none of the healthy events becomes a dead letter, even with
// few attempts and short backoffs.
func TestPluginDownSpendsNoAttempt(t *testing.T) {
	gw, _ := startWithPlugins(t, testPlugin, []string{"-plugin-timeout", "500ms"}, "brittle")
	tl, healthy, boom := crashableJobs(t, gw)
	// Each boom crashes the plugin, which is down for a while after.
	jobsWhileCrashing(t, gw, tl, healthy, 300, 75, boom)
	if c := pluginRestarts(gw); c < 2 {
		t.Fatalf("the plugin restarted %d times: the test did not crash it", c)
	}
}
