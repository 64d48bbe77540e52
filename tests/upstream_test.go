package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/gwproc"
)

// writeBackends writes the file of plugin/examples/backends: the backends
// of functions by "space/functionId".
func writeBackends(t *testing.T, path string, m map[string][]*backend) {
	t.Helper()
	type entry struct {
		URL string `json:"url"`
	}
	out := map[string][]entry{}
	for k, bs := range m {
		out[k] = []entry{}
		for _, b := range bs {
			out[k] = append(out[k], entry{b.srv.URL + "/fn"})
		}
	}
	data, _ := json.Marshal(out)
	// Written whole then renamed: the plugin never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// answers makes n calls and counts the backends that answered them.
func answers(t *testing.T, method, url string, n int, headers ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		r := call(t, method, url, "", headers...)
		expect(t, r, 200, "")
		got[r.body]++
	}
	return got
}

// TestExampleBackendSource runs plugin/examples/backends: a function with
// "discovery" is called on the backends its file lists, a change of the
// file moves the calls, and a function without "discovery" keeps its url
// even where the file names it.
func TestExampleBackendSource(t *testing.T) {
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	dir := t.TempDir()
	file := filepath.Join(dir, "backends.json")
	writeBackends(t, file, map[string][]*backend{"default/disc": {a}, "default/plain": {a}})
	gw := start(t, gwproc.Options{
		Args: devArgs(filepath.Join(dir, "etcd"), "-plugin", buildPlugin(t, "./plugin/examples/backends", "example-backends")),
		Env:  []string{"BACKENDS_FILE=" + file},
	})
	provider := fmt.Sprintf(`{"type":"http","url":%q,"balance":"round-robin","discovery":true}`, c.srv.URL+"/fn")
	register(t, gw, "disc", `{"functionId":"disc","provider":`+provider+`}`)
	register(t, gw, "plain", fmt.Sprintf(`{"functionId":"plain","provider":{"type":"http","url":%q}}`, c.srv.URL+"/fn"))
	var shown struct{ Provider json.RawMessage }
	decode(t, call(t, "GET", gw.ConfigURL+"/v1/functions/disc", ""), &shown)
	if string(shown.Provider) != provider {
		t.Errorf("provider shown as %s, want %s", shown.Provider, provider)
	}
	subscribe(t, gw, `{"functionId":"disc","event":"http","method":"GET","path":"/disc"}`)
	subscribe(t, gw, `{"functionId":"plain","event":"http","method":"GET","path":"/plain"}`)
	subscribe(t, gw, `{"functionId":"disc","event":"job"}`)
	routable(t, "GET", gw.EventsURL+"/disc")
	routable(t, "GET", gw.EventsURL+"/plain")

	if got := answers(t, "GET", gw.EventsURL+"/disc", 10); got["a"] != 10 {
		t.Fatalf("calls of the discovered function answered by %v, want a", got)
	}
	if got := answers(t, "GET", gw.EventsURL+"/plain", 5); got["c"] != 5 {
		t.Fatalf("a function without discovery answered by %v, want its url's c", got)
	}
	// Asynchronous deliveries go there too.
	untilLive(t, gw, "job", `{}`, func() bool { return a.count("job") > 0 })

	// The file changes: pushed, the calls move.
	writeBackends(t, file, map[string][]*backend{"default/disc": {a, b}, "default/plain": {b}})
	eventually(t, "calls on a and b", func() bool {
		got := answers(t, "GET", gw.EventsURL+"/disc", 4)
		return got["a"] == 2 && got["b"] == 2
	})
	if got := answers(t, "GET", gw.EventsURL+"/plain", 5); got["c"] != 5 {
		t.Fatalf("a function without discovery answered by %v after a push", got)
	}
	// Out of the file: the configured url applies again.
	writeBackends(t, file, map[string][]*backend{})
	eventually(t, "calls back on the configured url", func() bool {
		return answers(t, "GET", gw.EventsURL+"/disc", 3)["c"] == 3
	})
	// A function registered after the push pulls what the file says.
	writeBackends(t, file, map[string][]*backend{"default/late": {b}})
	register(t, gw, "late", `{"functionId":"late","provider":{"type":"http","discovery":true}}`)
	subscribe(t, gw, `{"functionId":"late","event":"http","method":"GET","path":"/late"}`)
	eventually(t, "the late function called on b", func() bool {
		r := call(t, "GET", gw.EventsURL+"/late", "")
		return r.status == 200 && r.body == "b"
	})
}

// TestDiscoveryWithoutPlugin: with no backend-source plugin, a function
// with discovery calls its configured url; without one it has no backend
// (503), and nothing else changes.
func TestDiscoveryWithoutPlugin(t *testing.T) {
	a := newBackend(t, "a")
	gw := startDev(t, "")
	register(t, gw, "withurl", fmt.Sprintf(`{"functionId":"withurl","provider":{"type":"http","url":%q,"discovery":true}}`, a.srv.URL+"/fn"))
	register(t, gw, "bare", `{"functionId":"bare","provider":{"type":"http","discovery":true}}`)
	subscribe(t, gw, `{"functionId":"withurl","event":"http","method":"GET","path":"/withurl"}`)
	subscribe(t, gw, `{"functionId":"bare","event":"http","method":"GET","path":"/bare"}`)
	routable(t, "GET", gw.EventsURL+"/withurl")
	routable(t, "GET", gw.EventsURL+"/bare")
	if got := answers(t, "GET", gw.EventsURL+"/withurl", 3); got["a"] != 3 {
		t.Fatalf("answered by %v", got)
	}
	expect(t, call(t, "GET", gw.EventsURL+"/bare", ""), http.StatusServiceUnavailable, `function "bare" has no backend available`)
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/functions", `{"functionId":"f","provider":{"type":"http","discovery":true,"canary":{"version":"v2","percent":5}}}`), http.StatusBadRequest, "provider.canary is not available with provider.discovery")
	if !strings.Contains(gw.Logs(), "no backend-source plugin is loaded") {
		t.Error("no warning that discovery has no source")
	}
}

// TestExampleSelector runs plugin/examples/selector, which sends calls to
// the backend with the lowest latency once each has been tried: a slow
// backend of weight 10 gets one call, a fast one of weight 1 the rest.
func TestExampleSelector(t *testing.T) {
	slow := newFunction(t, func(w http.ResponseWriter, _ envelope) {
		time.Sleep(100 * time.Millisecond)
		w.Write([]byte(`{"body":"slow"}`))
	})
	fast := newFunction(t, respondJSON(`{"body":"fast"}`))
	dir := t.TempDir()
	gw := start(t, gwproc.Options{Args: devArgs(filepath.Join(dir, "etcd"), "-plugin", buildPlugin(t, "./plugin/examples/selector", "example-selector"))})
	register(t, gw, "fn", fmt.Sprintf(`{"functionId":"fn","provider":{"type":"http","backends":[{"url":%q,"weight":10},{"url":%q,"weight":1}]}}`, slow.srv.URL, fast.srv.URL))
	subscribe(t, gw, `{"functionId":"fn","event":"http","method":"GET","path":"/fn"}`)
	routable(t, "GET", gw.EventsURL+"/fn")
	// routable's call was the first: the selector tried the slow
	// backend, the fast one next, then chose the fastest every time.
	got := answers(t, "GET", gw.EventsURL+"/fn", 30)
	if got["fast"] != 30 || len(slow.received) != 1 {
		t.Fatalf("answered by %v, the slow backend called %d times: want the fast backend's after one call of each", got, len(slow.received))
	}
}

// TestSelectorPluginFailure: a selector that crashes or hangs stops the
// synchronous call with 503 and is restarted; while it restarts,
// asynchronous deliveries wait without spending attempts, and are all
// made.
func TestSelectorPluginFailure(t *testing.T) {
	gw, dir := startWithPlugins(t, kindsPlugin, []string{"-plugin-timeout", "500ms"}, "selector")
	a, b := newBackend(t, "a"), newBackend(t, "b")
	register(t, gw, "fn", fmt.Sprintf(`{"functionId":"fn","provider":{"type":"http","backends":[{"url":%q},{"url":%q}],"balance":"hash","hashOn":"header:X-User"}}`, a.srv.URL+"/fn", b.srv.URL+"/fn"))
	subscribe(t, gw, `{"functionId":"fn","event":"http","method":"GET","path":"/fn"}`)
	routable(t, "GET", gw.EventsURL+"/fn")
	// The selector is asked, with the key.
	expect(t, call(t, "GET", gw.EventsURL+"/fn", "", "X-User", "ada"), 200, "")
	eventually(t, "the selector asked with the key", func() bool {
		log, _ := os.ReadFile(filepath.Join(dir, "selector.log"))
		return strings.Contains(string(log), `"key":"ada"`)
	})
	for _, trouble := range []string{"crash", "hang"} {
		expect(t, call(t, "GET", gw.EventsURL+"/fn", "", "X-User", trouble), 503, "a plugin could not choose a backend")
		eventually(t, "selector back after "+trouble, func() bool {
			return call(t, "GET", gw.EventsURL+"/fn", "", "X-User", "ada").status == 200
		})
	}

	tl, worker := newTally(t)
	register(t, gw, "worker", fmt.Sprintf(`{"functionId":"worker","provider":{"type":"http","backends":[{"url":%q},{"url":%q}]}}`, worker.srv.URL+"/1", worker.srv.URL+"/2"))
	healthy := subscribe(t, gw, `{"functionId":"worker","event":"job","retry":{"maxAttempts":2,"initialBackoff":"10ms","maxBackoff":"20ms"}}`)
	untilLive(t, gw, "job", `{"n":-1}`, func() bool { return tl.count() > 0 })
	postponed := metric(call(t, "GET", gw.ConfigURL+"/metrics", "").body, "eventgateway_deliveries_postponed_total")
	jobsWhileCrashing(t, gw, tl, healthy, 200, 70, func() {
		expect(t, call(t, "GET", gw.EventsURL+"/fn", "", "X-User", "crash"), 503, "")
	})
	if c := pluginRestarts(gw); c < 4 {
		t.Fatalf("the selector restarted %d times: the test did not crash it", c)
	}
	if got := metric(call(t, "GET", gw.ConfigURL+"/metrics", "").body, "eventgateway_deliveries_postponed_total"); got <= postponed {
		t.Fatalf("no delivery postponed while the selector restarted (%v, before %v)", got, postponed)
	}
}
