package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/cors"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/router/pathtree"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// Router is what the Events API needs of the router.
type Router interface {
	Snapshot() *router.Snapshot
	Call(ctx context.Context, t *router.Target, payload []byte) ([]byte, error)
	Emit(ctx context.Context, space string, ev *event.Event, path string) (int, error)
	Received(ctx context.Context, space string, ev *event.Event, path string, headers http.Header) error
}

// EventsOptions configures the Events API.
type EventsOptions struct {
	Router Router
	// MaxBody bounds request bodies. Default 6 MiB.
	MaxBody int64
	Logger  *slog.Logger
}

// Events serves the Events API: http events, invoke, and custom events.
type Events struct {
	router  Router
	maxBody int64
	log     *slog.Logger
	// anyOrigin is the CORS policy of custom events and invoke: any origin
	// may emit.
	anyOrigin *cors.Cors
	params    sync.Pool // of *pathtree.Params
}

// Header names of the Events API.
const (
	headerEvent      = "Event"
	headerFunctionID = "Function-ID"
)

// NewEvents returns the Events API handler.
func NewEvents(o EventsOptions) *Events {
	e := &Events{
		router:  o.Router,
		maxBody: o.MaxBody,
		log:     o.Logger,
		anyOrigin: cors.New(cors.Options{
			AllowedOrigins: []string{"*"},
			AllowedMethods: []string{http.MethodPost},
			AllowedHeaders: []string{"*"},
		}),
	}
	if e.maxBody <= 0 {
		e.maxBody = 6 << 20
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.params.New = func() any { ps := make(pathtree.Params, 0, 4); return &ps }
	return e
}

func (e *Events) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			e.log.ErrorContext(r.Context(), "panic in events API handler", "method", r.Method, "path", r.URL.Path, "panic", v)
			writeErrorMessage(w, http.StatusInternalServerError, "internal error")
		}
	}()
	if !e.router.Snapshot().Loaded {
		// Routing against a configuration not read yet would answer 404
		// for routes that exist, and 202 for events that then go nowhere.
		w.Header().Set("Retry-After", "1")
		writeErrorMessage(w, http.StatusServiceUnavailable, "gateway is starting: configuration not loaded yet, retry later")
		return
	}
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		e.preflight(w, r)
		return
	}
	switch name := r.Header.Get(headerEvent); name {
	case "":
		e.httpEvent(w, r)
	case subscriptions.EventInvoke:
		e.invoke(w, r)
	default:
		e.customEvent(w, r, name)
	}
}

// EventKind names the kind of an Events API request, for metrics:
// preflight, http, invoke or custom.
func EventKind(r *http.Request) string {
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		return "preflight"
	}
	switch r.Header.Get(headerEvent) {
	case "":
		return "http"
	case subscriptions.EventInvoke:
		return "invoke"
	default:
		return "custom"
	}
}

// preflight answers a CORS preflight request without invoking anything. A
// preflight for a custom event or invoke asks for the Event header; any
// other is for an http route and follows that route's CORS configuration.
func (e *Events) preflight(w http.ResponseWriter, r *http.Request) {
	if requestsHeader(r, headerEvent) {
		e.anyOrigin.HandlerFunc(w, r)
		return
	}
	method := strings.ToUpper(r.Header.Get("Access-Control-Request-Method"))
	route, ok := e.router.Snapshot().Space(functions.DefaultSpace).MatchHTTP(method, r.URL.Path, nil)
	if !ok {
		writeErrorMessage(w, http.StatusNotFound, fmt.Sprintf("no http subscription for %s %s", method, r.URL.Path))
		return
	}
	if route.CORS == nil {
		writeErrorMessage(w, http.StatusForbidden, fmt.Sprintf("CORS is not enabled for %s %s", method, route.Subscription.Path))
		return
	}
	route.CORS.HandlerFunc(w, r)
}

// requestsHeader reports whether a preflight asks to send header name.
func requestsHeader(r *http.Request, name string) bool {
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for h := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(h), name) {
				return true
			}
		}
	}
	return false
}

func (e *Events) httpEvent(w http.ResponseWriter, r *http.Request) {
	ps := e.params.Get().(*pathtree.Params)
	defer e.params.Put(ps)
	route, ok := e.router.Snapshot().Space(functions.DefaultSpace).MatchHTTP(r.Method, r.URL.Path, ps)
	if !ok {
		writeErrorMessage(w, http.StatusNotFound, fmt.Sprintf("no http subscription for %s %s", r.Method, r.URL.Path))
		return
	}
	if route.CORS != nil {
		route.CORS.HandlerFunc(w, r)
	}
	body, err := e.readBody(w, r)
	if err != nil {
		writeError(w, r, e.log, err)
		return
	}
	ev, payload := event.EncodeHTTP(r, *ps, body, time.Now())
	if err := e.router.Received(r.Context(), route.Target.Space, &ev, r.URL.Path, r.Header); err != nil {
		writeError(w, r, e.log, err)
		return
	}
	out, err := e.router.Call(r.Context(), route.Target, payload)
	if err != nil {
		e.callFailed(w, r, route.Target, err)
		return
	}
	resp, err := event.ParseHTTPResponse(out)
	if err != nil {
		e.log.WarnContext(r.Context(), "function returned a malformed response object", "functionId", route.Target.Function.ID, "error", err)
		writeErrorMessage(w, http.StatusBadGateway, "function returned a malformed response")
		return
	}
	h := w.Header()
	for k, v := range resp.Headers {
		// Canonicalized once for the check and the map, where Set
		// would do it again.
		ck := http.CanonicalHeaderKey(k)
		switch ck {
		case "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "Trailer":
			continue // framing is the gateway's business
		}
		h[ck] = []string{v}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(resp.Body)
}

func (e *Events) invoke(w http.ResponseWriter, r *http.Request) {
	e.anyOrigin.HandlerFunc(w, r)
	if r.Method != http.MethodPost {
		writeErrorMessage(w, http.StatusBadRequest, "invoke must be sent with POST")
		return
	}
	id := r.Header.Get(headerFunctionID)
	if id == "" {
		writeErrorMessage(w, http.StatusBadRequest, "invoke needs a Function-ID header")
		return
	}
	space := e.router.Snapshot().Space(functions.DefaultSpace)
	t, ok := space.InvokeTarget(r.URL.Path, id)
	if !ok {
		if space.Function(id) == nil {
			writeErrorMessage(w, http.StatusNotFound, fmt.Sprintf("function %q not found", id))
		} else {
			writeErrorMessage(w, http.StatusNotFound, fmt.Sprintf("function %q has no invoke subscription on %s", id, r.URL.Path))
		}
		return
	}
	ev, err := e.receive(r, w, t.Space, subscriptions.EventInvoke)
	if err != nil {
		writeError(w, r, e.log, err)
		return
	}
	out, err := e.router.Call(r.Context(), t, ev.AppendJSON(make([]byte, 0, 256+len(ev.Data))))
	if err != nil {
		e.callFailed(w, r, t, err)
		return
	}
	// Canonical keys, assigned: Set would canonicalize them again.
	if json.Valid(out) {
		w.Header()["Content-Type"] = []string{"application/json"}
	} else {
		w.Header()["Content-Type"] = []string{"application/octet-stream"}
	}
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

func (e *Events) customEvent(w http.ResponseWriter, r *http.Request, name string) {
	e.anyOrigin.HandlerFunc(w, r)
	if r.Method != http.MethodPost {
		writeErrorMessage(w, http.StatusBadRequest, fmt.Sprintf("events must be sent with POST, not %s", r.Method))
		return
	}
	switch {
	case name == subscriptions.EventHTTP:
		writeErrorMessage(w, http.StatusBadRequest, "http events are raised by requests without an Event header")
		return
	case strings.HasPrefix(name, "gateway."):
		writeErrorMessage(w, http.StatusBadRequest, fmt.Sprintf("event names starting with \"gateway.\" are reserved for system events: %q", name))
		return
	}
	if err := functions.ValidateID("Event header", name); err != nil {
		writeError(w, r, e.log, err)
		return
	}
	ev, err := e.receive(r, w, functions.DefaultSpace, name)
	if err != nil {
		writeError(w, r, e.log, err)
		return
	}
	if _, err := e.router.Emit(r.Context(), functions.DefaultSpace, &ev, r.URL.Path); err != nil {
		writeError(w, r, e.log, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// receive reads the body of an invoke or custom event into an envelope and
// emits gateway.event.received, whose sync plugins may refuse the event.
func (e *Events) receive(r *http.Request, w http.ResponseWriter, space, name string) (event.Event, error) {
	body, err := e.readBody(w, r)
	if err != nil {
		return event.Event{}, err
	}
	ev, err := event.New(name, body, r.Header.Get("Content-Type"), time.Now())
	if err != nil {
		return event.Event{}, errkind.Wrap(errkind.Invalid, err, "%s", err)
	}
	if err := e.router.Received(r.Context(), space, &ev, r.URL.Path, r.Header); err != nil {
		return event.Event{}, err
	}
	return ev, nil
}

// readBody reads the whole request body, up to the limit.
func (e *Events) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		// The server's body of a request without one (a GET): nothing
		// to limit or read, and no buffer to make.
		return nil, nil
	}
	if r.ContentLength > e.maxBody {
		return nil, errkind.New(errkind.TooLarge, "request body is larger than %d bytes", e.maxBody)
	}
	size := r.ContentLength
	if size < 0 {
		size = 512
	}
	buf := make([]byte, 0, size+1) // +1: EOF is seen without growing
	body := http.MaxBytesReader(w, r.Body, e.maxBody)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return nil, errkind.New(errkind.TooLarge, "request body is larger than %d bytes", e.maxBody)
			}
			return nil, errkind.Wrap(errkind.Invalid, err, "request body could not be read")
		}
	}
}

// callFailed answers a failed synchronous call without showing the
// provider's error, which is logged instead.
func (e *Events) callFailed(w http.ResponseWriter, r *http.Request, t *router.Target, err error) {
	if k := errkind.Of(err); k == errkind.Forbidden || k == errkind.Unavailable {
		// A plugin stopped the call before the function ran.
		writeError(w, r, e.log, err)
		return
	}
	status, msg := http.StatusBadGateway, "function failed"
	switch {
	case errors.Is(err, functions.ErrTimeout):
		status, msg = http.StatusGatewayTimeout, fmt.Sprintf("function timed out after %v", t.Timeout)
	case errors.Is(err, functions.ErrResponseTooLarge):
		msg = "function response is too large"
	case r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		status, msg = 499, "client closed request"
	}
	e.log.WarnContext(r.Context(), "function call failed", "functionId", t.Function.ID, "provider", t.Function.Provider.Type, "status", status, "error", err)
	writeErrorMessage(w, status, msg)
}
