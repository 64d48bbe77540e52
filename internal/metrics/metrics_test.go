package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

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
