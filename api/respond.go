// Package api holds the HTTP handlers of the Configuration API and the
// Events API: request parsing, limits, error bodies. It stays thin: the
// work is done by the services and the router it is given.
package api

import (
	"log/slog"
	"net/http"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/internal/plainjson"
)

// errorBody carries the message in both shapes existing clients parse.
type errorBody struct {
	Error  string         `json:"error"`
	Errors []errorMessage `json:"errors"`
}

type errorMessage struct {
	Message string `json:"message"`
}

// writeJSON writes v as a JSON response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := encodeJSON(v)
	if err != nil {
		// Only our own types are written here; this is a bug.
		writeErrorMessage(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeBody(w, status, body)
}

// writeErrorMessage writes a JSON error with a message safe for clients.
func writeErrorMessage(w http.ResponseWriter, status int, msg string) {
	body, _ := encodeJSON(errorBody{Error: msg, Errors: []errorMessage{{Message: msg}}})
	writeBody(w, status, body)
}

// encodeJSON is v as a response body: see package plainjson.
func encodeJSON(v any) ([]byte, error) {
	b, err := plainjson.Marshal(v)
	return append(b, '\n'), err
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
}

// statusOf maps an error kind to an HTTP status.
func statusOf(k errkind.Kind) int {
	switch k {
	case errkind.Invalid:
		return http.StatusBadRequest
	case errkind.NotFound:
		return http.StatusNotFound
	case errkind.Conflict:
		return http.StatusConflict
	case errkind.Unavailable:
		return http.StatusServiceUnavailable
	case errkind.TooLarge:
		return http.StatusRequestEntityTooLarge
	case errkind.Forbidden:
		return http.StatusForbidden
	default:
		return http.StatusInternalServerError
	}
}

// writeError writes err as a JSON error. Only the client-safe message of a
// classified error is shown; anything else is logged and reported as an
// internal error, so no internal detail reaches the client.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	kind := errkind.Of(err)
	status := statusOf(kind)
	msg := errkind.Message(err)
	switch kind {
	case errkind.Internal:
		msg = "internal error"
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	case errkind.Unavailable:
		w.Header().Set("Retry-After", "1")
		log.WarnContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	writeErrorMessage(w, status, msg)
}
