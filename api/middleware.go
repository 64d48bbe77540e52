package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/history"
	"github.com/event-gateway/event-gateway/internal/httpx"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/subscriptions/keys"
)

// SpaceKeys tells the configuration keys of a space.
type SpaceKeys interface {
	RequiresKey(kind string) bool
	ValidKey(kind, secret string) bool
}

// TokenActorName is the name the configuration history gives the
// gateway's token (-config-token), which has none of its own.
const TokenActorName = "config-token"

// keyNamer is what a SpaceKeys may also tell: which key a secret is.
type keyNamer interface {
	Key(kind, secret string) (router.KeyInfo, bool)
}

// RequireToken lets a request through to next only when it carries
// Authorization: Bearer <token>, the gateway's token, compared in constant
// time; liveness, readiness and the OpenAPI document need none. When
// spaceKeys is set, a request to the resources of a space
// (/v1/spaces/<space>/…, and /v1/functions and /v1/subscriptions for the
// default space) may instead carry one of that space's configuration keys,
// and one to a space that has such keys needs the token or one of them
// even when the gateway has no token.
func RequireToken(token string, spaceKeys func(space string) SpaceKeys, next http.Handler) http.Handler {
	// Compare digests: equal lengths, so the comparison time says
	// nothing about the token's length either.
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/status", "/v1/status/ready", openAPIJSONPath, openAPIYAMLPath:
			next.ServeHTTP(w, r)
			return
		}
		// The configuration history records who made each change: the
		// credential's name, never its value.
		as := func(a history.Actor) *http.Request {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				return r
			}
			return r.WithContext(history.WithOrigin(r.Context(), history.Origin{Actor: a, RequestID: RequestID(r.Context())}))
		}
		cred := bearer(r)
		got := sha256.Sum256([]byte(cred))
		if token != "" && cred != "" && subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			next.ServeHTTP(w, as(history.Actor{Kind: "token", Name: TokenActorName}))
			return
		}
		var sk SpaceKeys
		if spaceKeys != nil {
			if sp, ok := pathSpace(r.URL.Path); ok {
				sk = spaceKeys(sp)
			}
		}
		if sk != nil && sk.ValidKey(keys.Config, cred) {
			a := history.Actor{Kind: "key"}
			if kn, ok := sk.(keyNamer); ok {
				if k, ok := kn.Key(keys.Config, cred); ok {
					a.KeyID, a.Name = k.ID, k.Name
				}
			}
			next.ServeHTTP(w, as(a))
			return
		}
		if token == "" && (sk == nil || !sk.RequiresKey(keys.Config)) {
			next.ServeHTTP(w, as(history.Actor{Kind: "none"}))
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="event-gateway"`)
		writeErrorMessage(w, http.StatusUnauthorized, "missing or invalid token: send Authorization: Bearer <token>")
	})
}

// pathSpace returns the space whose resources a Configuration API path
// names.
func pathSpace(path string) (string, bool) {
	if rest, ok := strings.CutPrefix(path, "/v1/spaces/"); ok {
		sp, _, _ := strings.Cut(rest, "/")
		return sp, sp != ""
	}
	if strings.Contains(path, "/deadletters") {
		// Dead letters are kept for every space together: the gateway's
		// token alone reaches them.
		return "", false
	}
	for _, p := range []string{"/v1/functions", "/v1/subscriptions"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return functions.DefaultSpace, true
		}
	}
	return "", false
}

// LimitInFlight answers 503 with Retry-After, at once, to requests beyond
// max being handled at the same time, instead of letting them pile up.
func LimitInFlight(max int, next http.Handler) http.Handler {
	if max <= 0 {
		return next
	}
	// A counter taken with compare-and-swap: what a buffered channel of
	// max slots did, without the channel's lock on every request.
	var inFlight atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for {
			n := inFlight.Load()
			if n >= int64(max) {
				w.Header().Set("Retry-After", "1")
				writeErrorMessage(w, http.StatusServiceUnavailable, "too many requests in flight, retry later")
				return
			}
			if inFlight.CompareAndSwap(n, n+1) {
				break
			}
		}
		defer inFlight.Add(-1)
		next.ServeHTTP(w, r)
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
		c := &requestCtx{Context: r.Context()}
		// The server's keys are canonical: indexing the map saves the
		// canonicalization Get and Set would redo on every request.
		if v := r.Header["X-Request-Id"]; len(v) > 0 && validRequestID(v[0]) {
			c.id = v[0]
		} else {
			c.id = newRequestID()
		}
		c.hdr[0] = c.id
		w.Header()["X-Request-Id"] = c.hdr[:]
		next.ServeHTTP(w, r.WithContext(c))
	})
}

// requestCtx is the context WithRequestID gives a request: its parent
// with the request id as a value. It is context.WithValue made for this
// one value, so that one allocation holds the context, the id and the
// response header's value slice, where WithValue, boxing the id in an
// interface and Header.Set make three.
type requestCtx struct {
	context.Context
	id  string
	hdr [1]string
}

// Value answers the request id key with the context itself, which a
// pointer fits in an interface without an allocation; RequestID reads the
// id from it. Other keys go to the parent, so the context package still
// finds the server's cancelable context there and derived contexts
// propagate cancellation without a goroutine of their own.
func (c *requestCtx) Value(key any) any {
	if _, ok := key.(requestIDKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// newRequestID returns a new random UUID (version 4). Its bits come from
// math/rand/v2, whose generator the runtime seeds from the system's
// entropy for each process: unique across instances and restarts like any
// version 4 UUID, without the system call (or vDSO call) and the buffer
// of crypto/rand for every request. A request id is a tag for logs, not a
// secret, so it need not be unpredictable.
func newRequestID() string {
	var u uuid.UUID
	binary.LittleEndian.PutUint64(u[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(u[8:], rand.Uint64())
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant RFC 9562
	return u.String()
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
	if c, ok := ctx.Value(requestIDKey{}).(*requestCtx); ok {
		return c.id
	}
	return ""
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
		rec := httpx.Wrap(w)
		next.ServeHTTP(rec, r)
		// Attrs rather than key-value pairs: they are not boxed in
		// interfaces, which costs an allocation per value and request.
		log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.Status), slog.Int64("bytes", rec.Bytes), slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr))
	})
}
