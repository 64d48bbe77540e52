package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/api"
)

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })

func TestRequireToken(t *testing.T) {
	h := api.RequireToken("s3cret", ok)
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
		if _, err := uuid.Parse(seen); err != nil || w.Header().Get("X-Request-Id") != seen {
			t.Fatalf("id %q was not replaced by a generated one: %q", bad, seen)
		}
	}
}
