package tests

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver on loopback: it keeps the
// spans gateways export to it.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []receivedSpan
}

type receivedSpan struct {
	trace, id, parent string
	name              string
	kind              tracepb.Span_SpanKind
	attrs             map[string]string
	instance          string // service.instance.id: which gateway process
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	o := &otlpReceiver{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("OTLP receiver: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		for _, rs := range req.ResourceSpans {
			res := attrMap(rs.GetResource().GetAttributes())
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					o.spans = append(o.spans, receivedSpan{
						trace: hex.EncodeToString(s.TraceId), id: hex.EncodeToString(s.SpanId), parent: hex.EncodeToString(s.ParentSpanId),
						name: s.Name, kind: s.Kind, attrs: attrMap(s.Attributes), instance: res["service.instance.id"],
					})
				}
			}
		}
		o.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, a := range kvs {
		switch v := a.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[a.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[a.Key] = fmt.Sprint(v.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[a.Key] = fmt.Sprint(v.BoolValue)
		}
	}
	return m
}

// endpoint is the receiver's host:port, for -tracing-endpoint.
func (o *otlpReceiver) endpoint() string { return strings.TrimPrefix(o.srv.URL, "http://") }

// inTrace returns the spans of one trace.
func (o *otlpReceiver) inTrace(traceID string) []receivedSpan {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []receivedSpan
	for _, s := range o.spans {
		if s.trace == traceID {
			out = append(out, s)
		}
	}
	return out
}

func named(spans []receivedSpan, name string) []receivedSpan {
	var out []receivedSpan
	for _, s := range spans {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// traceFunction is an HTTP function that records the traceparent of each
// call and fails the calls fail says to.
type traceFunction struct {
	srv     *httptest.Server
	calls   atomic.Int64
	parents chan string
	fail    func(n int64) bool
}

func newTraceFunction(t *testing.T, fail func(n int64) bool, answer string) *traceFunction {
	f := &traceFunction{parents: make(chan string, 100), fail: fail}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n := f.calls.Add(1)
		f.parents <- r.Header.Get("Traceparent")
		if f.fail(n) {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *traceFunction) next(t *testing.T) string {
	t.Helper()
	return called(t, f.parents, 20*time.Second)
}

// traceOf returns the trace id of a traceparent.
func traceOf(t *testing.T, traceparent string) string {
	t.Helper()
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		t.Fatalf("traceparent %q", traceparent)
	}
	return parts[1]
}

const (
	clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan   = "00f067aa0ba902b7"
	clientParent = "00-" + clientTrace + "-" + clientSpan + "-01"
)

// TestTraceAcrossAsyncHop: a client sends an event with a traceparent; the
// gateway's spans continue its trace; the function's first delivery fails,
// the gateway is stopped, and the retry, made by the next gateway process
// from the stored event, continues the same trace, and passes it on to the
// function. A sync http call carries the trace to its function too.
func TestTraceAcrossAsyncHop(t *testing.T) {
	rcv := newOTLPReceiver(t)
	dir := t.TempDir()
	args := []string{"-tracing-endpoint", rcv.endpoint(), "-tracing-protocol", "http/protobuf", "-tracing-insecure"}
	gw := startDev(t, dir, args...)

	fn := newTraceFunction(t, func(n int64) bool { return n == 1 }, `{"statusCode":200,"body":"ok"}`)
	register(t, gw, "f", fmt.Sprintf(`{"functionId":"f","provider":{"type":"http","url":%q}}`, fn.srv.URL))
	subscribeWith(t, gw, map[string]any{"functionId": "f", "event": "order.placed", "path": "/",
		"filter":    map[string]any{"data": map[string]any{"n": []int{1}}},
		"transform": `function transform(e) { e.data.seen = true; return e }`,
		"retry":     map[string]any{"maxAttempts": 3, "initialBackoff": "3s", "maxBackoff": "3s"}})

	emit(t, gw, "order.placed", `{"n":1}`, "Traceparent", clientParent, "Tracestate", "client=1")
	if got := traceOf(t, fn.next(t)); got != clientTrace {
		t.Fatalf("first attempt carried trace %s, want the client's %s", got, clientTrace)
	}
	// The attempt failed; its retry is due in 3 s. Stop this gateway
	// (its spans are exported as it exits) and start the next one.
	if _, err := gw.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	first := fmt.Sprint(gw.PID())
	gw = startDev(t, dir, args...)
	if got := traceOf(t, fn.next(t)); got != clientTrace {
		t.Fatalf("the retry carried trace %s, want the client's %s", got, clientTrace)
	}

	var spans []receivedSpan
	eventually(t, "both attempts' spans exported", func() bool {
		spans = rcv.inTrace(clientTrace)
		return len(named(spans, "deliver order.placed")) == 2
	})
	recv := named(spans, "receive")
	if len(recv) != 1 || recv[0].parent != clientSpan || recv[0].kind != tracepb.Span_SPAN_KIND_SERVER || recv[0].attrs["http.response.status_code"] != "202" {
		t.Fatalf("receive spans %+v: want one, child of the client's span, server kind, status 202", recv)
	}
	enq := named(spans, "enqueue order.placed")
	if len(enq) != 1 || enq[0].parent != recv[0].id {
		t.Fatalf("enqueue spans %+v, want one under receive %s", enq, recv[0].id)
	}
	if f := named(spans, "filter"); len(f) != 1 || f[0].parent != enq[0].id || f[0].attrs["eventgateway.matched"] != "true" {
		t.Fatalf("filter spans %+v, want one under enqueue, matched", f)
	}
	deliveries := named(spans, "deliver order.placed")
	attempts := map[string]string{}
	for _, d := range deliveries {
		if d.parent != enq[0].id || d.kind != tracepb.Span_SPAN_KIND_CONSUMER {
			t.Fatalf("delivery span %+v is not a consumer child of enqueue %s", d, enq[0].id)
		}
		attempts[d.attrs["eventgateway.attempt"]] = d.instance
	}
	if attempts["1"] == "" || attempts["2"] == "" || attempts["1"] == attempts["2"] || !strings.HasSuffix(attempts["1"], "/"+first) {
		t.Fatalf("attempts by instance %v: want attempt 1 by the first process (pid %s) and 2 by the next", attempts, first)
	}
	if tr := named(spans, "transform"); len(tr) != 2 {
		t.Fatalf("%d transform spans, want one per attempt", len(tr))
	}
	if calls := named(spans, "call f"); len(calls) != 2 || calls[0].kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Fatalf("call spans %+v, want two client spans", calls)
	}

	// A sync call: the function gets the trace, the spans nest.
	sync := newTraceFunction(t, func(int64) bool { return false }, `{"statusCode":200,"body":"hi"}`)
	register(t, gw, "s", fmt.Sprintf(`{"functionId":"s","provider":{"type":"http","url":%q}}`, sync.srv.URL))
	subscribe(t, gw, `{"functionId":"s","event":"http","method":"GET","path":"/hello"}`)
	const other = "0af7651916cd43dd8448eb211c80319c"
	r := call(t, "GET", gw.EventsURL+"/hello", "", "Traceparent", "00-"+other+"-b7ad6b7169203331-01")
	if r.status != 200 {
		t.Fatalf("GET /hello: %d %s", r.status, r.body)
	}
	if got := traceOf(t, sync.next(t)); got != other {
		t.Fatalf("sync call carried trace %s, want %s", got, other)
	}
	eventually(t, "sync spans exported", func() bool { return len(named(rcv.inTrace(other), "call s")) == 1 })
	spans = rcv.inTrace(other)
	recv, match := named(spans, "receive"), named(spans, "match")
	if len(recv) != 1 || len(match) != 1 || match[0].parent != recv[0].id || named(spans, "call s")[0].parent != recv[0].id {
		t.Fatalf("sync spans %+v: want receive with match and call under it", spans)
	}
}

// TestTracingOffByDefault: without -tracing-endpoint no traceparent is
// passed to functions, whatever the client sent.
func TestTracingOffByDefault(t *testing.T) {
	gw := startDev(t, "")
	fn := newTraceFunction(t, func(int64) bool { return false }, `{"statusCode":200,"body":"ok"}`)
	register(t, gw, "f", fmt.Sprintf(`{"functionId":"f","provider":{"type":"http","url":%q}}`, fn.srv.URL))
	subscribe(t, gw, `{"functionId":"f","event":"http","method":"GET","path":"/x"}`)
	expect(t, call(t, "GET", gw.EventsURL+"/x", "", "Traceparent", clientParent), 200, "")
	if p := fn.next(t); p != "" {
		t.Fatalf("tracing off, the function got traceparent %q", p)
	}
}
