package api

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/event-gateway/event-gateway/internal/errkind"
)

// TestHandle checks the adapter every Configuration API handler goes
// through: what a handler writes on success passes untouched, whatever
// its status and body shape, and a returned error becomes the shared JSON
// error body, logged once when it is the server's fault.
func TestHandle(t *testing.T) {
	var logged bytes.Buffer
	c := NewConfig(ConfigOptions{
		Logger:       slog.New(slog.NewTextHandler(&logged, nil)),
		StoreTimeout: time.Minute,
	})
	for _, tc := range []struct {
		name   string
		h      handlerFunc
		status int
		body   string
		logs   int
	}{
		{"created", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
			writeJSON(w, http.StatusCreated, map[string]string{"space": "default"})
			return nil
		}, 201, `{"space":"default"}` + "\n", 0},
		{"no content", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}, 204, "", 0},
		{"deadline", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
			if d, ok := r.Context().Deadline(); !ok || time.Until(d) > time.Minute {
				t.Errorf("context deadline %v, %v: want the store timeout", d, ok)
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}, 204, "", 0},
		{"invalid", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
			return errkind.New(errkind.Invalid, "bad thing")
		}, 400, `{"error":"bad thing","errors":[{"message":"bad thing"}]}` + "\n", 0},
		{"unavailable", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
			return errkind.Wrap(errkind.Unavailable, errors.New("etcd: no leader"), "store unavailable")
		}, 503, `{"error":"store unavailable","errors":[{"message":"store unavailable"}]}` + "\n", 1},
		{"unclassified", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
			return errors.New("secret detail")
		}, 500, `{"error":"internal error","errors":[{"message":"internal error"}]}` + "\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logged.Reset()
			w := httptest.NewRecorder()
			c.handle(tc.h)(w, httptest.NewRequest("GET", "/x", nil), nil)
			if w.Code != tc.status || w.Body.String() != tc.body {
				t.Errorf("got %d %q, want %d %q", w.Code, w.Body, tc.status, tc.body)
			}
			if n := strings.Count(logged.String(), "request failed"); n != tc.logs {
				t.Errorf("logged %d times, want %d:\n%s", n, tc.logs, logged.String())
			}
		})
	}
}
