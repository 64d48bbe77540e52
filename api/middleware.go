package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/internal/httpx"
)

// RequireToken lets a request through to next only when it carries
// "Authorization: Bearer <token>" (the scheme in any case: clients send
// "bearer"). The liveness and readiness endpoints stay open, for load
// balancers and orchestrators.
func RequireToken(token string, next http.Handler) http.Handler {
	// Compare digests: equal lengths, so the comparison time says
	// nothing about the token's length either.
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status" || r.URL.Path == "/v1/status/ready" {
			next.ServeHTTP(w, r)
			return
		}
		scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="event-gateway"`)
			writeErrorMessage(w, http.StatusUnauthorized, "missing or invalid token: send Authorization: Bearer <token>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// LimitInFlight answers 503 with Retry-After, at once, to requests beyond
// max being handled at the same time, instead of letting them pile up.
func LimitInFlight(max int, next http.Handler) http.Handler {
	if max <= 0 {
		return next
	}
	slots := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			writeErrorMessage(w, http.StatusServiceUnavailable, "too many requests in flight, retry later")
		}
	})
}

type requestIDKey struct{}

// maxRequestIDLen bounds a client-chosen request id, which ends up in logs.
const maxRequestIDLen = 128

// WithRequestID gives every request an id: the client's X-Request-Id when
// it is short and printable, a new UUID otherwise. The id is echoed in the
// response and attached to the request's context, where RequestIDHandler
// adds it to every log line of the request.
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = uuid.NewString()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// RequestID returns the id WithRequestID gave the request of ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// RequestIDHandler is a slog.Handler that adds the request id of the
// context to each record logged with one.
type RequestIDHandler struct{ slog.Handler }

func (h RequestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("requestId", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h RequestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return RequestIDHandler{h.Handler.WithAttrs(as)}
}

func (h RequestIDHandler) WithGroup(name string) slog.Handler {
	return RequestIDHandler{h.Handler.WithGroup(name)}
}

// AccessLog logs one line per request at info level: method, path, status,
// bytes written and duration (and, through the context, the request id).
func AccessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := httpx.NewRecorder(w)
		next.ServeHTTP(rec, r)
		log.InfoContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path, "status", rec.Status,
			"bytes", rec.Bytes, "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}
