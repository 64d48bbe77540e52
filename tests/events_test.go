package tests

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/internal/gwproc"
	"github.com/event-gateway/event-gateway/internal/lambdatest"
)

// envelope is the event as a function receives it.
type envelope struct {
	Event      string          `json:"event"`
	ID         string          `json:"id"`
	ReceivedAt int64           `json:"receivedAt"`
	Data       json.RawMessage `json:"data"`
	DataType   string          `json:"dataType"`
}

type httpData struct {
	Path    string              `json:"path"`
	Method  string              `json:"method"`
	Headers map[string]string   `json:"headers"`
	Host    string              `json:"host"`
	Query   map[string][]string `json:"query"`
	Params  map[string]string   `json:"params"`
	Body    json.RawMessage     `json:"body"`
}

// function is an HTTP function on loopback: it records what it receives
// and answers with respond.
type function struct {
	srv      *httptest.Server
	received chan envelope
}

func newFunction(t *testing.T, respond func(w http.ResponseWriter, ev envelope)) *function {
	t.Helper()
	f := &function{received: make(chan envelope, 1000)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev envelope
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Errorf("function received invalid JSON %q: %v", b, err)
			w.WriteHeader(400)
			return
		}
		f.received <- ev
		respond(w, ev)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *function) next(t *testing.T) envelope {
	t.Helper()
	return called(t, f.received, 10*time.Second)
}

// called returns what a test function records of its next call, which
// must come within d.
func called[T any](t *testing.T, calls <-chan T, d time.Duration) T {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(d):
		t.Fatal("function was not called")
		var none T
		return none
	}
}

func respondJSON(body string) func(http.ResponseWriter, envelope) {
	return func(w http.ResponseWriter, _ envelope) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

func register(t *testing.T, gw *gwproc.Process, id, body string) {
	t.Helper()
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/functions", body), 200, "")
}

func registerHTTP(t *testing.T, gw *gwproc.Process, id string, f *function) {
	t.Helper()
	register(t, gw, id, fmt.Sprintf(`{"functionId":%q,"provider":{"type":"http","url":%q}}`, id, f.srv.URL))
}

// routeHTTP registers f as the function id and subscribes it to the http
// event at method and path, and waits until gw routes there.
func routeHTTP(t *testing.T, gw *gwproc.Process, id, method, path string, f *function) {
	t.Helper()
	registerHTTP(t, gw, id, f)
	subscribe(t, gw, fmt.Sprintf(`{"functionId":%q,"event":"http","method":%q,"path":%q}`, id, method, path))
	routable(t, method, gw.EventsURL+path)
}

func subscribe(t *testing.T, gw *gwproc.Process, body string) string {
	t.Helper()
	r := call(t, "POST", gw.ConfigURL+"/v1/subscriptions", body)
	expect(t, r, 200, "")
	var s struct {
		SubscriptionID string `json:"subscriptionId"`
	}
	decode(t, r, &s)
	return s.SubscriptionID
}

// eventually polls until check passes, to wait for configuration to reach
// the router through the etcd watch.
func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func routable(t *testing.T, method, url string, headers ...string) {
	t.Helper()
	eventually(t, method+" "+url+" routable", func() bool {
		return call(t, method, url, "", headers...).status != http.StatusNotFound
	})
}

func TestHTTPEvent(t *testing.T) {
	gw := startDev(t, "")
	fn := newFunction(t, respondJSON(`{"statusCode":201,"headers":{"content-type":"text/html"},"body":"<head></head>"}`))
	registerHTTP(t, gw, "page", fn)
	subscribe(t, gw, `{"functionId":"page","event":"http","method":"POST","path":"/users/:id/files/*rest"}`)

	url := gw.EventsURL + "/users/42/files/a/b.txt?x=1&x=2&y=3"
	eventually(t, "route", func() bool {
		r := call(t, "POST", url, `{"name":"Max"}`, "Content-Type", "application/json", "X-Custom", "yes")
		if r.status == 404 {
			return false
		}
		if r.status != 201 || r.header.Get("Content-Type") != "text/html" || r.body != "<head></head>" {
			t.Fatalf("response %d %q %q, want 201 text/html <head></head>", r.status, r.header.Get("Content-Type"), r.body)
		}
		return true
	})
	ev := fn.next(t)
	if ev.Event != "http" || ev.DataType != "application/json" {
		t.Fatalf("envelope %+v", ev)
	}
	checkIDAndTime(t, ev)
	var d httpData
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatal(err)
	}
	if d.Path != "/users/42/files/a/b.txt" || d.Method != "POST" || !strings.HasPrefix(d.Host, "127.0.0.1:") {
		t.Fatalf("http data %+v", d)
	}
	if d.Params["id"] != "42" || d.Params["rest"] != "a/b.txt" || len(d.Params) != 2 {
		t.Fatalf("params %v", d.Params)
	}
	if fmt.Sprint(d.Query["x"]) != "[1 2]" || fmt.Sprint(d.Query["y"]) != "[3]" {
		t.Fatalf("query %v", d.Query)
	}
	if d.Headers["X-Custom"] != "yes" || string(d.Body) != `{"name":"Max"}` {
		t.Fatalf("headers %v body %s", d.Headers, d.Body)
	}
}

func checkIDAndTime(t *testing.T, ev envelope) {
	t.Helper()
	id, err := uuid.Parse(ev.ID)
	if err != nil || id.Version() != 7 {
		t.Fatalf("event id %q is not a UUID v7", ev.ID)
	}
	if sec, nsec := id.Time().UnixTime(); sec*1000+nsec/1e6 != ev.ReceivedAt {
		t.Fatalf("event id %q does not carry receivedAt %d", ev.ID, ev.ReceivedAt)
	}
	if d := time.Since(time.UnixMilli(ev.ReceivedAt)); d < 0 || d > time.Minute {
		t.Fatalf("receivedAt %d is %v from now", ev.ReceivedAt, d)
	}
}

func TestCustomEventFanOut(t *testing.T) {
	gw := startDev(t, "")
	a := newFunction(t, respondJSON(`{}`))
	b := newFunction(t, respondJSON(`{}`))
	registerHTTP(t, gw, "a", a)
	registerHTTP(t, gw, "b", b)
	subscribe(t, gw, `{"functionId":"a","event":"user.created","path":"/team"}`)
	subscribe(t, gw, `{"functionId":"b","event":"user.created","path":"/team"}`)
	other := newFunction(t, respondJSON(`{}`))
	registerHTTP(t, gw, "other", other)
	subscribe(t, gw, `{"functionId":"other","event":"user.deleted","path":"/team"}`)

	// Wait until both subscriptions are routable (an event to a path with
	// no subscribers is accepted and goes nowhere), then start afresh.
	probe := func() {
		expect(t, call(t, "POST", gw.EventsURL+"/team", `"probe"`, "Event", "user.created", "Content-Type", "application/json"), 202, "")
	}
	gotA, gotB := false, false
	eventually(t, "both subscribers", func() bool {
		probe()
		deadline := time.After(100 * time.Millisecond)
		for !(gotA && gotB) {
			select {
			case <-a.received:
				gotA = true
			case <-b.received:
				gotB = true
			case <-deadline:
				return false
			}
		}
		return true
	})
	time.Sleep(200 * time.Millisecond) // let the last probes land
	drain(a.received)
	drain(b.received)

	expect(t, call(t, "POST", gw.EventsURL+"/team/", `{"name":"Max"}`, "Event", "user.created", "Content-Type", "application/json; charset=utf-8"), 202, "")
	ea, eb := a.next(t), b.next(t)
	for _, ev := range []envelope{ea, eb} {
		if ev.Event != "user.created" || string(ev.Data) != `{"name":"Max"}` || ev.DataType != "application/json; charset=utf-8" {
			t.Fatalf("envelope %+v", ev)
		}
		checkIDAndTime(t, ev)
	}
	select {
	case ev := <-other.received:
		t.Fatalf("a subscriber of another event got %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestCustomEventBinaryData(t *testing.T) {
	gw := startDev(t, "")
	fn := newFunction(t, respondJSON(`{}`))
	registerHTTP(t, gw, "cat", fn)
	subscribe(t, gw, `{"functionId":"cat","event":"pet","path":"/"}`)
	waitSubscribers(t, gw, "pet", "/", fn)

	expect(t, call(t, "POST", gw.EventsURL+"/", "😸", "Event", "pet"), 202, "")
	ev := fn.next(t)
	var data string
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatalf("data %s is not a string", ev.Data)
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil || string(raw) != "😸" || ev.DataType != "application/octet-stream" {
		t.Fatalf("data %q (%v), dataType %q; want base64 of 😸 and application/octet-stream", raw, err, ev.DataType)
	}
	// A +json type is JSON.
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"a":1}`, "Event", "pet", "Content-Type", "application/cloudevents+json"), 202, "")
	if ev := fn.next(t); string(ev.Data) != `{"a":1}` {
		t.Fatalf("+json data %s", ev.Data)
	}
	// A body that says JSON but is not is refused.
	expect(t, call(t, "POST", gw.EventsURL+"/", `{oops`, "Event", "pet", "Content-Type", "application/json"), 400, "not valid JSON")
}

// waitSubscribers emits probe events until fn receives one, then drains.
func waitSubscribers(t *testing.T, gw *gwproc.Process, event, path string, fn *function) {
	t.Helper()
	eventually(t, "subscription of "+event, func() bool {
		expect(t, call(t, "POST", gw.EventsURL+path, `"probe"`, "Event", event, "Content-Type", "application/json"), 202, "")
		select {
		case <-fn.received:
			return true
		case <-time.After(50 * time.Millisecond):
			return false
		}
	})
	for {
		select {
		case <-fn.received:
		case <-time.After(100 * time.Millisecond):
			return
		}
	}
}

func TestInvoke(t *testing.T) {
	gw := startDev(t, "")
	fn := newFunction(t, func(w http.ResponseWriter, ev envelope) {
		fmt.Fprintf(w, `{"echo":%s}`, ev.Data)
	})
	registerHTTP(t, gw, "createUser", fn)
	noSub := newFunction(t, respondJSON(`{}`))
	registerHTTP(t, gw, "unsubscribed", noSub)
	subscribe(t, gw, `{"functionId":"createUser","event":"invoke"}`)

	hdr := []string{"Event", "invoke", "Function-ID", "createUser", "Content-Type", "application/json"}
	routable(t, "POST", gw.EventsURL+"/", hdr...)
	fn.next(t)
	r := call(t, "POST", gw.EventsURL+"/", `{"name":"Max"}`, hdr...)
	expect(t, r, 200, "")
	if r.body != `{"echo":{"name":"Max"}}` {
		t.Fatalf("invoke body %q", r.body)
	}
	if ev := fn.next(t); ev.Event != "invoke" {
		t.Fatalf("envelope %+v", ev)
	}
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "invoke", "Function-ID", "ghost"), 404, "not found")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "invoke", "Function-ID", "unsubscribed"), 404, "no invoke subscription")
	expect(t, call(t, "POST", gw.EventsURL+"/elsewhere", `{}`, hdr...), 404, "no invoke subscription")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "invoke"), 400, "Function-ID")
	expect(t, call(t, "GET", gw.EventsURL+"/", "", "Event", "invoke", "Function-ID", "createUser"), 400, "POST")
}

func TestCORS(t *testing.T) {
	gw := startDev(t, "")
	fn := newFunction(t, respondJSON(`{"body":"ok"}`))
	registerHTTP(t, gw, "f", fn)
	subscribe(t, gw, `{"functionId":"f","event":"http","method":"GET","path":"/open","cors":{"origins":["https://*.example.com"],"methods":["GET"],"headers":["X-Token"]}}`)
	subscribe(t, gw, `{"functionId":"f","event":"http","method":"GET","path":"/closed"}`)
	routable(t, "GET", gw.EventsURL+"/open")
	routable(t, "GET", gw.EventsURL+"/closed")
	for len(fn.received) > 0 {
		<-fn.received
	}

	pre := func(path, origin, method, headers string) response {
		return call(t, "OPTIONS", gw.EventsURL+path, "", "Origin", origin, "Access-Control-Request-Method", method, "Access-Control-Request-Headers", headers)
	}
	r := pre("/open", "https://app.example.com", "GET", "x-token") // browsers send lower case
	if r.status >= 300 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("allowed preflight: %d %v", r.status, r.header)
	}
	r = pre("/open", "https://evil.test", "GET", "")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from a refused origin allowed: %v", r.header)
	}
	r = pre("/closed", "https://app.example.com", "GET", "")
	if r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight on a route without CORS: %d %v", r.status, r.header)
	}
	expect(t, pre("/nowhere", "https://app.example.com", "GET", ""), 404, "no http subscription")
	// Actual request: the allowed origin is echoed and the function runs.
	r = call(t, "GET", gw.EventsURL+"/open", "", "Origin", "https://app.example.com")
	if r.status != 200 || r.body != "ok" || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("actual CORS request: %d %q %v", r.status, r.body, r.header)
	}
	fn.next(t)
	// Preflights never reach the function.
	select {
	case ev := <-fn.received:
		t.Fatalf("a preflight invoked the function: %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
	// Custom events and invoke accept any origin.
	r = pre("/", "https://anywhere.test", "POST", "event,content-type")
	if r.status >= 300 || r.header.Get("Access-Control-Allow-Origin") == "" {
		t.Fatalf("events preflight: %d %v", r.status, r.header)
	}
}

func TestEventsErrors(t *testing.T) {
	gw := startDev(t, "", "-max-body", "1024", "-function-timeout", "300ms")
	malformed := newFunction(t, respondJSON(`{"statusCode":"two hundred"}`))
	failing := newFunction(t, func(w http.ResponseWriter, _ envelope) {
		w.WriteHeader(500)
		io.WriteString(w, "stack trace: secret internals")
	})
	slow := newFunction(t, func(w http.ResponseWriter, _ envelope) {
		time.Sleep(2 * time.Second)
		io.WriteString(w, `{}`)
	})
	informational := newFunction(t, respondJSON(`{"statusCode":101}`))
	registerHTTP(t, gw, "informational", informational)
	subscribe(t, gw, `{"functionId":"informational","event":"http","method":"GET","path":"/informational"}`)
	registerHTTP(t, gw, "malformed", malformed)
	registerHTTP(t, gw, "failing", failing)
	registerHTTP(t, gw, "slow", slow)
	subscribe(t, gw, `{"functionId":"malformed","event":"http","method":"GET","path":"/malformed"}`)
	subscribe(t, gw, `{"functionId":"failing","event":"http","method":"GET","path":"/failing"}`)
	subscribe(t, gw, `{"functionId":"slow","event":"http","method":"GET","path":"/slow"}`)
	subscribe(t, gw, `{"functionId":"failing","event":"http","method":"POST","path":"/upload"}`)
	routable(t, "GET", gw.EventsURL+"/malformed")
	routable(t, "GET", gw.EventsURL+"/failing")

	expect(t, call(t, "GET", gw.EventsURL+"/nothing/here", ""), 404, "no http subscription")
	expect(t, call(t, "GET", gw.EventsURL+"/malformed", ""), 502, "malformed")
	routable(t, "GET", gw.EventsURL+"/informational")
	expect(t, call(t, "GET", gw.EventsURL+"/informational", ""), 502, "malformed") // a 1xx would leave the client waiting
	r := call(t, "GET", gw.EventsURL+"/failing", "")
	expect(t, r, 502, "function failed")
	if strings.Contains(r.body, "secret") {
		t.Fatalf("error leaks the function's output: %s", r.body)
	}
	expect(t, call(t, "GET", gw.EventsURL+"/slow", ""), 504, "timed out")
	expect(t, call(t, "POST", gw.EventsURL+"/upload", strings.Repeat("x", 2048)), 413, "larger than")
	expect(t, call(t, "POST", gw.EventsURL+"/", strings.Repeat("x", 2048), "Event", "big"), 413, "larger than")
	expect(t, call(t, "PUT", gw.EventsURL+"/", "{}", "Event", "user.created"), 400, "POST")
	expect(t, call(t, "POST", gw.EventsURL+"/", "{}", "Event", "gateway.event.received"), 400, "reserved")
	expect(t, call(t, "POST", gw.EventsURL+"/", "{}", "Event", "bad event"), 400, "Event header")
	// No subscriber: accepted, delivered to nobody.
	expect(t, call(t, "POST", gw.EventsURL+"/", "{}", "Event", "nobody.listens"), 202, "")
}

// TestFunctionTimeoutField: a function's own timeout overrides the default.
func TestFunctionTimeoutField(t *testing.T) {
	gw := startDev(t, "", "-function-timeout", "10s")
	slow := newFunction(t, func(w http.ResponseWriter, _ envelope) {
		time.Sleep(1500 * time.Millisecond)
		io.WriteString(w, `{}`)
	})
	register(t, gw, "slow", fmt.Sprintf(`{"functionId":"slow","timeout":"200ms","provider":{"type":"http","url":%q}}`, slow.srv.URL))
	subscribe(t, gw, `{"functionId":"slow","event":"http","method":"GET","path":"/slow"}`)
	eventually(t, "route", func() bool {
		r := call(t, "GET", gw.EventsURL+"/slow", "")
		if r.status == 404 {
			return false
		}
		expect(t, r, 504, "200ms")
		return true
	})
}

// TestBackpressure: when the queue is full the emitter gets 503 with
// Retry-After, never a 202 for an event that is then dropped.
func TestBackpressure(t *testing.T) {
	gw := startDev(t, "", "-workers", "1", "-workers-backlog", "2")
	release := make(chan struct{})
	blocked := newFunction(t, func(w http.ResponseWriter, _ envelope) {
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
	})
	// Cleanups run last-in first-out: release the handlers before the
	// function's server waits for them to finish.
	t.Cleanup(func() { close(release) })
	registerHTTP(t, gw, "blocked", blocked)
	subscribe(t, gw, `{"functionId":"blocked","event":"job","path":"/"}`)
	// One delivery occupies the worker, two fill the backlog.
	eventually(t, "subscription", func() bool {
		expect(t, call(t, "POST", gw.EventsURL+"/", "{}", "Event", "job", "Content-Type", "application/json"), 202, "")
		select {
		case <-blocked.received:
			return true
		case <-time.After(50 * time.Millisecond):
			return false
		}
	})
	accepted := 0
	var last response
	for range 10 {
		last = call(t, "POST", gw.EventsURL+"/", "{}", "Event", "job", "Content-Type", "application/json")
		if last.status != 202 {
			break
		}
		accepted++
	}
	expect(t, last, 503, "retry later")
	if last.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if accepted > 2 {
		t.Fatalf("%d events accepted beyond a backlog of 2", accepted)
	}
}

// TestLambdaFunction routes an http event to a Lambda function through the
// real AWS SDK, against a local Lambda-compatible endpoint.
func TestLambdaFunction(t *testing.T) {
	lam := lambdatest.New()
	t.Cleanup(lam.Close)
	lam.Register("hello", func(ctx context.Context, ev envelope) (map[string]any, error) {
		var d httpData
		json.Unmarshal(ev.Data, &d)
		return map[string]any{"statusCode": 200, "headers": map[string]string{"Content-Type": "text/plain"}, "body": "hi " + d.Params["name"]}, nil
	})
	lam.Register("broken", func(ctx context.Context, ev envelope) (map[string]any, error) {
		return nil, errors.New("database password is hunter2")
	})
	gw := startDev(t, "")
	// The SDK's standard endpoint override and credentials from the
	// environment, as with any local Lambda emulator.
	gw.Stop(10 * time.Second)
	gw = start(t, gwproc.Options{
		Args: devArgs(t.TempDir()),
		Env:  []string{"AWS_ENDPOINT_URL_LAMBDA=" + lam.URL(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"},
	})
	register(t, gw, "hello", `{"functionId":"hello","provider":{"type":"awslambda","arn":"arn:aws:lambda:us-east-1:123456789012:function:hello","region":"us-east-1"}}`)
	register(t, gw, "broken", `{"functionId":"broken","provider":{"type":"awslambda","arn":"broken","region":"us-east-1","awsAccessKeyId":"AKIDTEST","awsSecretAccessKey":"static"}}`)
	subscribe(t, gw, `{"functionId":"hello","event":"http","method":"GET","path":"/hello/:name"}`)
	subscribe(t, gw, `{"functionId":"broken","event":"http","method":"GET","path":"/broken"}`)
	routable(t, "GET", gw.EventsURL+"/hello/world")

	r := call(t, "GET", gw.EventsURL+"/hello/world", "")
	if r.status != 200 || r.body != "hi world" || r.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("lambda response %d %q %v", r.status, r.body, r.header)
	}
	routable(t, "GET", gw.EventsURL+"/broken")
	r = call(t, "GET", gw.EventsURL+"/broken", "")
	expect(t, r, 502, "function failed")
	if strings.Contains(r.body, "hunter2") {
		t.Fatalf("the Lambda error leaks to the client: %s", r.body)
	}
}
