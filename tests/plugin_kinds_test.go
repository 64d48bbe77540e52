package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/event-gateway/event-gateway/internal/gwproc"
)

// kindsPlugin builds plugin/testdata/kinds once and returns it under name,
// which picks its kinds ("modifier", "metrics", ...).
func kindsPlugin(t *testing.T, name string) string {
	t.Helper()
	bin := buildPlugin(t, "./plugin/testdata/kinds", "kinds")
	p := filepath.Join(filepath.Dir(bin), name)
	if err := os.Link(bin, p); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	return p
}

func modifiedData(ev envelope) bool {
	var d struct {
		Modified bool `json:"modified"`
	}
	json.Unmarshal(ev.Data, &d)
	return d.Modified
}

// TestModifierPlugin: a modifier plugin changes the event of synchronous
// calls and asynchronous deliveries, the response of a synchronous call,
// and turns a failed call into a response; a subscription's own transform
// runs after it, its transformResponse before it.
func TestModifierPlugin(t *testing.T) {
	gw, _ := startWithPlugins(t, kindsPlugin, nil, "modifier")
	fn := newFunction(t, func(w http.ResponseWriter, ev envelope) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"statusCode":200,"headers":{"X-Fn":"1"},"body":{"modified":%v}}`, modifiedData(ev))
	})
	bad := newFunction(t, func(w http.ResponseWriter, _ envelope) { w.WriteHeader(500) })
	registerHTTP(t, gw, "fn", fn)
	registerHTTP(t, gw, "bad", bad)
	registerHTTP(t, gw, "unrescued", bad)
	subscribe(t, gw, `{"functionId":"fn","event":"http","method":"POST","path":"/fn"}`)
	subscribe(t, gw, `{"functionId":"bad","event":"http","method":"GET","path":"/bad"}`)
	subscribe(t, gw, `{"functionId":"unrescued","event":"http","method":"GET","path":"/unrescued"}`)
	subscribe(t, gw, `{"functionId":"fn","event":"job"}`)
	subscribe(t, gw, `{"functionId":"fn","event":"http","method":"POST","path":"/scripted","transform":"function transform(e) { e.data.sawModified = e.data.modified === true; return e }","transformResponse":"function transformResponse(r) { r.headers['X-Script'] = r.headers['X-Modified'] || 'before the plugin'; return r }"}`)
	routable(t, "POST", gw.EventsURL+"/fn")

	r := call(t, "POST", gw.EventsURL+"/fn", `{"a":1}`, "Content-Type", "application/json")
	expect(t, r, 200, "")
	if r.header.Get("X-Modified") != "yes" || r.header.Get("X-Fn") != "1" || !strings.Contains(r.body, `"modified":true`) {
		t.Fatalf("sync call through the modifier: %d %v %s", r.status, r.header, r.body)
	}
	if ev := fn.next(t); !modifiedData(ev) {
		t.Fatalf("the function got %s", ev.Data)
	}

	// Errors: rescued by the plugin, or left alone.
	routable(t, "GET", gw.EventsURL+"/bad")
	r = call(t, "GET", gw.EventsURL+"/bad", "")
	if r.status != 299 || r.body != "rescued: bad" {
		t.Fatalf("failed call through the modifier: %d %s", r.status, r.body)
	}
	routable(t, "GET", gw.EventsURL+"/unrescued")
	expect(t, call(t, "GET", gw.EventsURL+"/unrescued", ""), 502, "function failed")

	// Order around the subscription's own scripts.
	routable(t, "POST", gw.EventsURL+"/scripted")
	drain(fn.received)
	r = call(t, "POST", gw.EventsURL+"/scripted", `{}`, "Content-Type", "application/json")
	expect(t, r, 200, "")
	if r.header.Get("X-Script") != "before the plugin" || r.header.Get("X-Modified") != "yes" {
		t.Fatalf("transformResponse did not run before the plugin's response stage: %v", r.header)
	}
	var d struct {
		SawModified bool `json:"sawModified"`
	}
	json.Unmarshal(fn.next(t).Data, &d)
	if !d.SawModified {
		t.Fatal("the subscription's transform did not see the plugin's change")
	}

	// invoke: the function's output as a 200 response object to the
	// response stage; a failure to the error stage.
	subscribe(t, gw, `{"functionId":"fn","event":"invoke"}`)
	subscribe(t, gw, `{"functionId":"bad","event":"invoke"}`)
	eventually(t, "invoke subscriptions", func() bool {
		return call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "invoke", "Function-ID", "bad").status != 404
	})
	drain(fn.received)
	r = call(t, "POST", gw.EventsURL+"/", `{"b":2}`, "Event", "invoke", "Function-ID", "fn", "Content-Type", "application/json")
	if r.status != 200 || r.header.Get("X-Modified") != "yes" || !strings.Contains(r.body, `"modified":true`) {
		t.Fatalf("invoke through the modifier: %d %v %s", r.status, r.header, r.body)
	}
	r = call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "invoke", "Function-ID", "bad")
	if r.status != 299 || r.body != "rescued: bad" {
		t.Fatalf("failed invoke through the modifier: %d %s", r.status, r.body)
	}

	// Asynchronous deliveries.
	drain(fn.received)
	untilLive(t, gw, "job", `{"n":1}`, func() bool { return len(fn.received) > 0 })
	if ev := fn.next(t); ev.Event != "job" || !modifiedData(ev) {
		t.Fatalf("async delivery: %s %s", ev.Event, ev.Data)
	}
}

// TestModifierPluginFailure: a modifier that crashes or hangs on a call
// stops it with 503 (fail closed), is restarted, and comes back; while it
// restarts, asynchronous deliveries wait without spending attempts.
func TestModifierPluginFailure(t *testing.T) {
	gw, _ := startWithPlugins(t, kindsPlugin, []string{"-plugin-timeout", "500ms"}, "modifier")
	fn := newFunction(t, respondJSON(`{"body":"alive"}`))
	go drain(fn.received)
	routeHTTP(t, gw, "fn", "POST", "/fn", fn)
	for _, trouble := range []string{"crash", "hang"} {
		expect(t, call(t, "POST", gw.EventsURL+"/fn", `{"x":"`+trouble+`"}`, "Content-Type", "application/json"), 503, "a plugin could not modify the call")
		eventually(t, "modifier back after "+trouble, func() bool {
			return call(t, "POST", gw.EventsURL+"/fn", `{}`, "Content-Type", "application/json").status == 200
		})
	}

	tl, healthy, boom := crashableJobs(t, gw)
	jobsWhileCrashing(t, gw, tl, healthy, 200, 70, boom)
	if c := pluginRestarts(gw); c < 4 {
		t.Fatalf("the modifier restarted %d times: the test did not crash it", c)
	}
}

// TestModifierPluginFailOpen: with -plugin-fail-open a modifier that
// cannot be asked lets the call through unmodified.
func TestModifierPluginFailOpen(t *testing.T) {
	gw, _ := startWithPlugins(t, kindsPlugin, []string{"-plugin-fail-open", "-plugin-timeout", "300ms"}, "modifier")
	fn := newFunction(t, respondJSON(`{"body":"alive"}`))
	routeHTTP(t, gw, "fn", "POST", "/fn", fn)
	drain(fn.received)
	for _, trouble := range []string{"hang", "crash"} {
		expect(t, call(t, "POST", gw.EventsURL+"/fn", `{"x":"`+trouble+`"}`, "Content-Type", "application/json"), 200, "")
		if ev := fn.next(t); modifiedData(ev) {
			t.Fatalf("%s: the event was modified by a plugin that could not be asked: %s", trouble, ev.Data)
		}
	}
}

// TestMetricSinkPlugin: a metric sink gets every function call, batched.
func TestMetricSinkPlugin(t *testing.T) {
	gw, dir := startWithPlugins(t, kindsPlugin, nil, "metrics")
	fn := newFunction(t, respondJSON(`{"body":"ok"}`))
	go drain(fn.received)
	routeHTTP(t, gw, "fn", "GET", "/fn", fn)
	for range 20 {
		expect(t, call(t, "GET", gw.EventsURL+"/fn", ""), 200, "")
	}
	eventually(t, "20 calls measured", func() bool {
		n := 0
		b, _ := os.ReadFile(filepath.Join(dir, "metrics.log"))
		for _, line := range strings.Split(string(b), "\n") {
			n += strings.Count(line, `"FunctionID":"fn"`)
		}
		return n >= 20
	})
	b, _ := os.ReadFile(filepath.Join(dir, "metrics.log"))
	if !strings.Contains(string(b), `"Provider":"http"`) || !strings.Contains(string(b), `"Result":"ok"`) {
		t.Fatalf("measurements %s", b)
	}
	m := call(t, "GET", gw.ConfigURL+"/metrics", "").body
	if v := metric(m, `eventgateway_plugin_measurements_dropped_total`); v != 0 {
		t.Fatalf("dropped measurements: %v", v)
	}
}

// TestExampleModifierAndMetrics runs plugin/examples/modifier and
// plugin/examples/metrics in a gateway.
func TestExampleModifierAndMetrics(t *testing.T) {
	dir := t.TempDir()
	mod := buildPlugin(t, "./plugin/examples/modifier", "example-modifier")
	sink := buildPlugin(t, "./plugin/examples/metrics", "example-metrics")
	gw := start(t, gwproc.Options{
		Args: devArgs(filepath.Join(dir, "etcd"), "-plugin", mod, "-plugin", sink),
		Env:  []string{"METRICS_FILE=" + filepath.Join(dir, "metrics.jsonl")},
	})
	fn := newFunction(t, func(w http.ResponseWriter, ev envelope) {
		var d struct {
			Body struct {
				ModifiedBy string `json:"modifiedBy"`
			} `json:"body"`
			ModifiedBy string `json:"modifiedBy"`
		}
		json.Unmarshal(ev.Data, &d)
		fmt.Fprintf(w, `{"body":%q}`, d.ModifiedBy)
	})
	go drain(fn.received)
	bad := newFunction(t, func(w http.ResponseWriter, _ envelope) { w.WriteHeader(500) })
	registerHTTP(t, gw, "fn", fn)
	registerHTTP(t, gw, "bad", bad)
	subscribe(t, gw, `{"functionId":"fn","event":"http","method":"POST","path":"/fn"}`)
	subscribe(t, gw, `{"functionId":"bad","event":"http","method":"GET","path":"/bad"}`)
	routable(t, "POST", gw.EventsURL+"/fn")
	r := call(t, "POST", gw.EventsURL+"/fn", `{"a":1}`, "Content-Type", "application/json")
	if r.status != 200 || r.body != "modifier" || r.header.Get("X-Modified-By") != "modifier" {
		t.Fatalf("through the example modifier: %d %v %q", r.status, r.header, r.body)
	}
	routable(t, "GET", gw.EventsURL+"/bad")
	r = call(t, "GET", gw.EventsURL+"/bad", "")
	if r.status != 503 || r.header.Get("Retry-After") != "1" || !strings.Contains(r.body, `"function":"bad"`) {
		t.Fatalf("failed call through the example modifier: %d %v %s", r.status, r.header, r.body)
	}
	eventually(t, "the example sink's file", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
		return strings.Contains(string(b), `"functionId":"bad","provider":"http","result":"failed"`) && strings.Contains(string(b), `"functionId":"fn"`)
	})
}
