package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/httpx"
)

func TestStatusLabel(t *testing.T) {
	for code := 100; code < 1000; code++ {
		if got, want := statusLabel(code), strconv.Itoa(code); got != want {
			t.Fatalf("statusLabel(%d) = %q, want %q", code, got, want)
		}
	}
}

// TestInstrumentSharesRecorder checks that Instrument inside another
// middleware's Recorder uses it rather than a second one, and still
// records the status the handler wrote.
func TestInstrumentSharesRecorder(t *testing.T) {
	m := New()
	var inner http.ResponseWriter
	h := m.Instrument("events", func(*http.Request) string { return "http" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner = w
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "ok")
	}))
	outer := httpx.NewRecorder(httptest.NewRecorder())
	h.ServeHTTP(outer, httptest.NewRequest("POST", "/", nil))
	if inner != outer {
		t.Errorf("the handler got %T, not the outer recorder", inner)
	}
	if outer.Status != 202 || outer.Bytes != 2 {
		t.Errorf("outer recorder: %d, %d bytes", outer.Status, outer.Bytes)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", nil))

	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	want := `eventgateway_requests_total{api="events",kind="http",status="202"} 2`
	if !strings.Contains(w.Body.String(), want) {
		t.Errorf("metrics lack %s:\n%s", want, w.Body)
	}
}

// TestInstrumentSeries checks the counts of several kinds and statuses,
// which Instrument keeps series of.
func TestInstrumentSeries(t *testing.T) {
	m := New()
	h := m.Instrument("events", func(r *http.Request) string { return r.URL.Query().Get("kind") },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			code, _ := strconv.Atoi(r.URL.Query().Get("status"))
			w.WriteHeader(code)
		}))
	for _, q := range []string{"kind=http&status=200", "kind=http&status=404", "kind=custom&status=202", "kind=http&status=200", "kind=http&status=418"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/?"+q, nil))
	}
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`eventgateway_requests_total{api="events",kind="http",status="200"} 2`,
		`eventgateway_requests_total{api="events",kind="http",status="404"} 1`,
		`eventgateway_requests_total{api="events",kind="http",status="418"} 1`,
		`eventgateway_requests_total{api="events",kind="custom",status="202"} 1`,
		`eventgateway_request_duration_seconds_count{api="events",kind="http"} 4`,
		`eventgateway_request_duration_seconds_count{api="events",kind="custom"} 1`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestInstrumentConcurrent adds series while others are recorded.
func TestInstrumentConcurrent(t *testing.T) {
	m := New()
	h := m.Instrument("events", func(*http.Request) string { return "http" },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			code, _ := strconv.Atoi(r.URL.Query().Get("status"))
			w.WriteHeader(code)
		}))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/?status="+strconv.Itoa(200+(g*100+i)%50), nil))
			}
		})
	}
	wg.Wait()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if want := `eventgateway_request_duration_seconds_count{api="events",kind="http"} 400`; !strings.Contains(w.Body.String(), want) {
		t.Errorf("metrics lack %s", want)
	}
	if want := `eventgateway_requests_total{api="events",kind="http",status="249"} 8`; !strings.Contains(w.Body.String(), want) {
		t.Errorf("metrics lack %s", want)
	}
}

// TestInvoked checks the per-function series: the space is a label of
// each, the result is the caller's. (The space is the first label given,
// but the text format sorts labels by name.)
func TestInvoked(t *testing.T) {
	m := New()
	m.Invoked("default", "fn", "http", 3*time.Millisecond, "ok")
	m.Invoked("default", "fn", "http", 5*time.Millisecond, "ok")
	m.Invoked("default", "fn", "http", time.Second, "timeout")
	m.Invoked("team-a", "fn", "awslambda", time.Millisecond, "failed")
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`eventgateway_function_invocations_total{function="fn",provider="http",result="ok",space="default"} 2`,
		`eventgateway_function_invocations_total{function="fn",provider="http",result="timeout",space="default"} 1`,
		`eventgateway_function_invocations_total{function="fn",provider="awslambda",result="failed",space="team-a"} 1`,
		`eventgateway_function_duration_seconds_count{function="fn",provider="http",space="default"} 3`,
		`eventgateway_function_duration_seconds_count{function="fn",provider="awslambda",space="team-a"} 1`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", w.Body)
	}
}

// BenchmarkRequestSeries compares recording a request through
// WithLabelValues (Request) and through Instrument's cache of series.
func BenchmarkRequestSeries(b *testing.B) {
	m := New()
	b.Run("WithLabelValues", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Request("events", "http", 200, time.Millisecond)
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := &requestSeries{m: m, api: "events"}
		b.ReportAllocs()
		for b.Loop() {
			c.observe("http", 200, time.Millisecond)
		}
	})
}
