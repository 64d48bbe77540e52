package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/api"
)

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })

func TestRequireToken(t *testing.T) {
	h := api.RequireToken("s3cret", nil, ok)
	for _, tt := range []struct {
		path, auth string
		want       int
	}{
		{"/v1/functions", "Bearer s3cret", 204},
		{"/v1/functions", "bearer s3cret", 204}, // the JS client's spelling
		{"/v1/functions", "BEARER  s3cret", 204},
		{"/v1/functions", "", 401},
		{"/v1/functions", "Bearer", 401},
		{"/v1/functions", "Bearer s3cre", 401},
		{"/v1/functions", "Bearer s3cret2", 401},
		{"/v1/functions", "Basic s3cret", 401},
		{"/v1/status", "", 204},
		{"/v1/status/ready", "", 204},
		{"/v1/status/other", "", 401},
		{"/v1/openapi.json", "", 204},
		{"/v1/openapi.yaml", "", 204},
	} {
		r := httptest.NewRequest("GET", tt.path, nil)
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%s with %q: %d, want %d", tt.path, tt.auth, w.Code, tt.want)
		}
		if w.Code == 401 {
			if w.Header().Get("Content-Type") != "application/json" || !strings.Contains(w.Body.String(), `"errors":[{"message":`) {
				t.Errorf("401 body %q (%s)", w.Body, w.Header().Get("Content-Type"))
			}
			if strings.Contains(w.Body.String(), "s3cret") {
				t.Error("the error shows the token")
			}
		}
	}
}

func TestLimitInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	h := api.LimitInFlight(2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	}))
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) })
	}
	<-started
	<-started
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("third request: %d %v", w.Code, w.Header())
	}
	close(release)
	wg.Wait()
	w = httptest.NewRecorder()
	go func() { <-started }()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code == 503 {
		t.Fatal("a slot was not given back")
	}
}

func TestRequestID(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(api.RequestIDHandler{Handler: slog.NewJSONHandler(&logs, nil)})
	var seen string
	h := api.WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = api.RequestID(r.Context())
		log.InfoContext(r.Context(), "handled")
	}))

	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Request-Id", "abc-123")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if seen != "abc-123" || w.Header().Get("X-Request-Id") != "abc-123" || !strings.Contains(logs.String(), `"requestId":"abc-123"`) {
		t.Fatalf("client id: seen %q, echoed %q, logs %s", seen, w.Header().Get("X-Request-Id"), logs.String())
	}
	for _, bad := range []string{"", "has space", strings.Repeat("x", 200), "new\nline"} {
		r := httptest.NewRequest("GET", "/", nil)
		if bad != "" {
			r.Header["X-Request-Id"] = []string{bad}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if u, err := uuid.Parse(seen); err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 || w.Header().Get("X-Request-Id") != seen {
			t.Fatalf("id %q was not replaced by a generated one: %q", bad, seen)
		}
	}
}

func TestRequestIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	h := api.WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen[api.RequestID(r.Context())] = true
	}))
	for range 1000 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	if len(seen) != 1000 {
		t.Fatalf("%d distinct ids for 1000 requests", len(seen))
	}
	if id := api.RequestID(context.Background()); id != "" {
		t.Fatalf("RequestID of a context without one: %q", id)
	}
}

// TestRequestIDContext checks that the request's context keeps what the
// server's had: its values, and cancellation reaching contexts derived
// from it.
func TestRequestIDContext(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	var ctx context.Context
	h := api.WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ctx = r.Context() }))
	r := httptest.NewRequestWithContext(parent, "GET", "/", nil)
	r.Header.Set("X-Request-Id", "abc")
	h.ServeHTTP(httptest.NewRecorder(), r)
	derived, stop := context.WithTimeout(ctx, time.Hour)
	defer stop()
	if ctx.Value(key{}) != "v" || api.RequestID(derived) != "abc" {
		t.Fatalf("value %v, id %q", ctx.Value(key{}), api.RequestID(derived))
	}
	cancel()
	select {
	case <-derived.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the server's context did not reach a derived one")
	}
	if !errors.Is(derived.Err(), context.Canceled) {
		t.Fatalf("derived context: %v", derived.Err())
	}
}

// BenchmarkMiddleware measures the middleware of cmd/event-gateway alone,
// around a handler that answers 204, with a generated request id.
func BenchmarkMiddleware(b *testing.B) {
	for _, c := range []struct {
		name string
		log  *slog.Logger
	}{
		{"metrics", nil},
		{"metrics-access-log", slog.New(api.RequestIDHandler{Handler: slog.NewJSONHandler(io.Discard, nil)})},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := wrap(ok, c.log)
			r := httptest.NewRequest("GET", "/users/42", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 204 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}

// TestAccessLog checks the access log line, around the metrics as
// cmd/event-gateway wires it, where both read one recorder.
func TestAccessLog(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(api.RequestIDHandler{Handler: slog.NewJSONHandler(&logs, nil)})
	h := wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "short and stout")
	}), log)
	r := httptest.NewRequest("GET", "/pot?x=1", nil)
	r.Header.Set("X-Request-Id", "tea-1")
	h.ServeHTTP(httptest.NewRecorder(), r)
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, logs.String())
	}
	for k, want := range map[string]any{"msg": "request", "level": "INFO", "method": "GET", "path": "/pot", "status": 418.0,
		"bytes": 15.0, "remote": "192.0.2.1:1234", "requestId": "tea-1"} {
		if line[k] != want {
			t.Errorf("%s: %v, want %v", k, line[k], want)
		}
	}
	if d, ok := line["duration"].(float64); !ok || d <= 0 {
		t.Errorf("duration: %v", line["duration"])
	}
}
