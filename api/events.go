package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/cors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/internal/tracing"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/router/pathtree"
	"github.com/event-gateway/event-gateway/router/pipeline"
	"github.com/event-gateway/event-gateway/subscriptions"
	"github.com/event-gateway/event-gateway/subscriptions/keys"
)

// Router is what the Events API needs of the router.
type Router interface {
	Snapshot() *router.Snapshot
	Call(ctx context.Context, t *router.Target, payload []byte) ([]byte, error)
	CallEvent(ctx context.Context, t *router.Target, payload []byte, space string, in *router.Incoming, subscriptionID string) ([]byte, error)
	Enqueue(ctx context.Context, space string, in *router.Incoming, subs []router.Subscriber) (int, error)
	Received(ctx context.Context, space string, ev *event.Event, path string, headers http.Header) error
	// Stages wraps a subscription's pipeline in the modifier plugins'.
	Stages(p *pipeline.Pipeline) pipeline.Chain
}

// EventsOptions configures the Events API.
type EventsOptions struct {
	Router Router
	// MaxBody bounds request bodies. Default DefaultMaxBody.
	MaxBody int64
	// SpaceDomains are the domains under which a request's host names its
	// space: a request to <space>.<domain> is routed in that space.
	SpaceDomains []string
	// MaxBodyBytesInFlight bounds the bytes of request bodies held at once
	// by requests being handled, across the Events API: past it a request
	// with a body gets 503 with Retry-After. Default
	// DefaultMaxBodyBytesInFlight; negative: no bound.
	MaxBodyBytesInFlight int64
	// MaxHops bounds the calls a request may have come through
	// (functions.HopsHeader): past it the answer is 508 Loop Detected.
	// Default DefaultMaxHops.
	MaxHops int
	// Tracer makes the spans of requests; nil when tracing is off.
	Tracer *tracing.Tracer
	Logger *slog.Logger
}

// DefaultMaxHops is the default of EventsOptions.MaxHops: deep enough for
// any chain of functions that call the gateway on purpose, shallow enough
// that a loop stops within a few calls.
const DefaultMaxHops = 8

// DefaultMaxBodyBytesInFlight is the default of
// EventsOptions.MaxBodyBytesInFlight.
const DefaultMaxBodyBytesInFlight = 256 << 20

// Events serves the Events API: http events, invoke, and custom events.
type Events struct {
	router  Router
	maxBody int64
	maxHops int
	domains []string
	log     *slog.Logger
	tracer  *tracing.Tracer
	// anyOrigin is the CORS policy of custom events and invoke: any origin
	// may emit.
	anyOrigin *cors.Cors
	params    sync.Pool // of *pathtree.Params

	// maxBodyInFlight bounds bodyInFlight, the bytes of request body
	// buffers of requests being handled; 0: no bound.
	maxBodyInFlight int64
	bodyInFlight    atomic.Int64
}

// Header names of the Events API.
const (
	headerEvent      = "Event"
	headerFunctionID = "Function-ID"
	// headerEventID answers an accepted event with its id (canonical
	// form, set without Set's canonicalization).
	headerEventID = "Event-Id"
)

// NewEvents returns the Events API handler.
func NewEvents(o EventsOptions) *Events {
	e := &Events{
		router:  o.Router,
		maxBody: o.MaxBody,
		maxHops: o.MaxHops,
		log:     o.Logger,
		tracer:  o.Tracer,
		// Any origin may send events; the origin is echoed and may send
		// credentials, as the original gateway allowed.
		anyOrigin: cors.New(cors.Options{
			AllowOriginFunc:  func(string) bool { return true },
			AllowedMethods:   []string{http.MethodPost},
			AllowedHeaders:   []string{"*"},
			AllowCredentials: true,
		}),
	}
	if e.maxBody <= 0 {
		e.maxBody = DefaultMaxBody
	}
	if e.maxHops <= 0 {
		e.maxHops = DefaultMaxHops
	}
	switch m := o.MaxBodyBytesInFlight; {
	case m == 0:
		e.maxBodyInFlight = DefaultMaxBodyBytesInFlight
	case m > 0:
		// A budget below one body would refuse the largest ones for ever.
		e.maxBodyInFlight = max(m, e.maxBody+1)
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	for _, d := range o.SpaceDomains {
		if d = strings.Trim(strings.ToLower(d), "."); d != "" {
			e.domains = append(e.domains, "."+d)
		}
	}
	e.params.New = func() any { ps := make(pathtree.Params, 0, 4); return &ps }
	return e
}

// DefaultMaxBody is the default bound of an Events API request body: as
// large as an AWS Lambda synchronous payload.
const DefaultMaxBody = 6 << 20

// headerSpace names the space of a request to the Events API, as the
// spaces API's first clients send it.
const headerSpace = "Space"

// spaceOf returns the space a request is for: the one its host names under
// a space domain, else its Space header, else the default space.
func (e *Events) spaceOf(r *http.Request) (string, error) {
	if len(e.domains) > 0 {
		host := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		for _, d := range e.domains {
			if label, ok := strings.CutSuffix(host, d); ok && label != "" && !strings.Contains(label, ".") {
				return label, functions.ValidateSpace(label)
			}
		}
	}
	if sp := r.Header.Get(headerSpace); sp != "" {
		return sp, functions.ValidateSpace(sp)
	}
	return functions.DefaultSpace, nil
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
	// The server's keys are canonical: index the map, as Get would after
	// canonicalizing the name again.
	if v := r.Header[functions.HopsHeader]; len(v) > 0 {
		hops, err := strconv.Atoi(v[0])
		switch {
		case err != nil || hops < 0:
			writeErrorMessage(w, http.StatusBadRequest, fmt.Sprintf("invalid %s header %q: want the number of calls the request came through", functions.HopsHeader, v[0]))
			return
		case hops > e.maxHops:
			// Logged once per loop, here where it is stopped; each
			// gateway call of the loop then passes the 508 back.
			e.log.WarnContext(r.Context(), "loop detected: request refused", "method", r.Method, "path", r.URL.Path, "hops", hops, "maxHops", e.maxHops)
			e.loopDetected(w, r, hops)
			return
		case hops > 0:
			r = r.WithContext(functions.WithHops(r.Context(), hops))
		}
	}
	space, err := e.spaceOf(r)
	if err != nil {
		writeError(w, r, e.log, err)
		return
	}
	if e.tracer != nil {
		// The request continues the client's trace (traceparent), and
		// everything the gateway does for it is a span under this one.
		ctx, span := e.tracer.Start(e.tracer.Extract(r.Context(), r.Header), "receive", trace.SpanKindServer,
			attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path), attribute.String("eventgateway.space", space))
		sw := &statusWriter{ResponseWriter: w}
		defer func() { span.EndStatus(sw.status()) }()
		w, r = sw, r.WithContext(ctx)
	}
	// The bytes of body buffers this request holds, given back once it
	// is answered.
	var held int64
	defer func() { e.release(held) }()
	sp := e.router.Snapshot().Space(space)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		e.preflight(w, r, sp)
		return
	}
	// The form of the request: the seed's Event header (legacy mode),
	// CloudEvents, or a plain request (the http event).
	ct := r.Header.Get("Content-Type")
	switch name, mt := r.Header.Get(headerEvent), mediaType(ct); {
	case name == subscriptions.EventInvoke:
		e.invoke(w, r, sp, &held)
	case name != "":
		e.customEvent(w, r, space, name, &held)
	case r.Header.Get("Ce-Specversion") != "" || mt == event.MediaTypeStructured || mt == event.MediaTypeBatch:
		e.cloudEvent(w, r, space, nil, &held)
	case r.Method == http.MethodPost && event.IsJSON(ct):
		// A JSON body may be a CloudEvent v0.1, as the 0.9 clients
		// send it: look before taking it for an http event.
		body, err := e.readBody(w, r, &held)
		if err != nil {
			writeError(w, r, e.log, err)
			return
		}
		if event.Detect(r.Header, body) == event.FormV01 {
			e.cloudEvent(w, r, space, body, &held)
			return
		}
		e.httpEvent(w, r, space, body, &held)
	default:
		e.httpEvent(w, r, space, nil, &held)
	}
}

// mediaType returns the media type of a Content-Type, lower case.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// EventKind names the kind of an Events API request, for metrics:
// preflight, http, invoke or custom.
func EventKind(r *http.Request) string {
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		return "preflight"
	}
	switch r.Header.Get(headerEvent) {
	case "":
		if mt := mediaType(r.Header.Get("Content-Type")); r.Header.Get("Ce-Specversion") != "" || mt == event.MediaTypeStructured || mt == event.MediaTypeBatch {
			return "cloudevent"
		}
		return "http"
	case subscriptions.EventInvoke:
		return "invoke"
	default:
		return "custom"
	}
}

// preflight answers a CORS preflight request without invoking anything. A
// preflight for a custom event or invoke asks for the Event header; any
// other is for a route of the space, and follows the route's CORS
// configuration (the spaces API's), else its subscription's.
func (e *Events) preflight(w http.ResponseWriter, r *http.Request, sp *router.Space) {
	// rs/cors matches the requested headers in lower case, as browsers
	// send them; curl users and proxies may not.
	if v := r.Header.Values("Access-Control-Request-Headers"); len(v) > 0 {
		r.Header.Set("Access-Control-Request-Headers", strings.ToLower(strings.Join(v, ",")))
	}
	if requestsHeader(r, headerEvent) || requestsHeader(r, "ce-specversion") {
		e.anyOrigin.HandlerFunc(w, r)
		return
	}
	method := strings.ToUpper(r.Header.Get("Access-Control-Request-Method"))
	if policy := sp.CORS(method, r.URL.Path); policy != nil {
		policy.HandlerFunc(w, r)
		return
	}
	route, ok := sp.MatchHTTP(method, r.URL.Path, nil)
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

// httpEvent handles a request that carries no event: the http event, or
// http.request. Its synchronous subscription answers it; its asynchronous
// subscribers get a copy, and without a synchronous one the answer is 202.
// read says whether body was read already.
func (e *Events) httpEvent(w http.ResponseWriter, r *http.Request, space string, body []byte, held *int64) {
	ps := e.params.Get().(*pathtree.Params)
	defer e.params.Put(ps)
	sp := e.router.Snapshot().Space(space)
	_, mspan := e.tracer.Start(r.Context(), "match", trace.SpanKindInternal)
	route, ok := sp.MatchHTTP(r.Method, r.URL.Path, ps)
	async := sp.AsyncHTTP(r.Method, r.URL.Path)
	mspan.End(nil)
	if !ok && len(async) == 0 {
		writeErrorMessage(w, http.StatusNotFound, fmt.Sprintf("no http subscription for %s %s", r.Method, r.URL.Path))
		return
	}
	if policy := sp.CORS(r.Method, r.URL.Path); policy != nil {
		policy.HandlerFunc(w, r)
	} else if ok && route.CORS != nil {
		route.CORS.HandlerFunc(w, r)
	}
	if body == nil {
		var err error
		if body, err = e.readBody(w, r, held); err != nil {
			writeError(w, r, e.log, err)
			return
		}
	}
	now := time.Now()
	ev, payload := event.EncodeHTTP(r, *ps, body, now)
	if ok && route.Pipeline.HasFilter() && !e.filter(r.Context(), route, ev.Data) {
		// The route's filter turns the request away: as if there were
		// no route, so the asynchronous subscribers alone get it.
		ok = false
		if len(async) == 0 {
			writeErrorMessage(w, http.StatusNotFound, fmt.Sprintf("no http subscription for %s %s matches the request (the filter of subscription %s does not)", r.Method, r.URL.Path, route.Subscription.ID))
			return
		}
	}
	if err := e.router.Received(r.Context(), space, &ev, r.URL.Path, r.Header); err != nil {
		writeError(w, r, e.log, err)
		return
	}
	et := sp.EventType(event.TypeHTTPRequest)
	if ok && len(async) == 0 && et.AuthorizerID == "" && route.Subscription.EnvelopeOrLegacy() == subscriptions.EnvelopeLegacy {
		// The first generation's route: its payload is made already.
		e.respond(w, withAffinity(r, route.Target, *ps), route, payload, "", nil)
		return
	}
	in := router.NewIncoming(&ev, payload, now)
	if et.AuthorizerID != "" {
		if err := e.authorize(r, space, et, in, ev.Data); err != nil {
			writeError(w, r, e.log, err)
			return
		}
	}
	if len(async) > 0 {
		if _, err := e.router.Enqueue(r.Context(), space, in, async); err != nil {
			writeError(w, r, e.log, err)
			return
		}
	}
	if !ok {
		// The id by which the event's trail is found.
		w.Header()[headerEventID] = []string{in.ID()}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	// An http request with asynchronous subscribers is in the event
	// trail: its answer is too. Without, it is none of the trail's
	// business, and costs it nothing.
	var accepted *router.Incoming
	if len(async) > 0 {
		accepted = in
	}
	e.respond(w, withAffinity(r, route.Target, *ps), route, in.Payload(route.Subscription.EnvelopeOrLegacy()), space, accepted)
}

// withAffinity gives the call of t the affinity key its invoker hashes
// on (functions.Affine), taken from the request r: a header, or a path
// parameter among ps.
func withAffinity(r *http.Request, t *router.Target, ps []event.Param) *http.Request {
	a, ok := t.Invoker.(functions.Affine)
	if !ok {
		return r
	}
	header, param := a.AffinityOn()
	key := ""
	switch {
	case header != "":
		// Joined as the http event shows it to functions, and as an
		// asynchronous delivery of it is hashed.
		key = strings.Join(r.Header.Values(header), ", ")
	case param != "":
		for _, p := range ps {
			if p.Key == param {
				key = p.Value
				break
			}
		}
	default:
		return r
	}
	// Set even when empty: the invoker then knows there is none.
	return r.WithContext(functions.WithAffinityKey(r.Context(), key))
}

// respond calls the synchronous subscription of a request with the event
// in the subscription's envelope, and answers with the function's response
// object. in is the event when it was accepted for the event trail (nil
// otherwise), which then records the call.
func (e *Events) respond(w http.ResponseWriter, r *http.Request, route *router.HTTPRoute, payload []byte, space string, in *router.Incoming) {
	pc := scriptContext(route)
	stages := e.router.Stages(route.Pipeline)
	payload, ok := e.transform(w, r, route, stages, payload, pc)
	if !ok {
		return
	}
	var out []byte
	var err error
	if in != nil {
		out, err = e.router.CallEvent(r.Context(), route.Target, payload, space, in, route.Subscription.ID)
	} else {
		out, err = e.router.Call(r.Context(), route.Target, payload)
	}
	if err != nil {
		e.stagesFailedCall(w, r, route, stages, pc, err)
		return
	}
	resp, err := event.ParseHTTPResponse(out)
	if err != nil {
		e.log.WarnContext(r.Context(), "function returned a malformed response object", "space", route.Target.Space, "functionId", route.Target.Function.ID, "error", err)
		writeErrorMessage(w, http.StatusBadGateway, "function returned a malformed response")
		return
	}
	if stages.HasResponse() {
		_, span := e.tracer.Start(r.Context(), "transformResponse", trace.SpanKindInternal)
		resp, err = stages.Response(r.Context(), resp, pc)
		span.End(err)
		if err != nil {
			e.scriptFailed(w, r, route, "transformResponse", err)
			return
		}
	}
	e.writeResponse(w, r, route.Target, resp)
}

// filter matches doc against the filter of a synchronous subscription.
func (e *Events) filter(ctx context.Context, route *router.HTTPRoute, doc []byte) bool {
	if e.tracer == nil {
		return route.Pipeline.Match(doc)
	}
	_, span := e.tracer.Start(ctx, "filter", trace.SpanKindInternal, attribute.String("eventgateway.subscription_id", route.Subscription.ID))
	matched := route.Pipeline.Match(doc)
	span.SetAttributes(attribute.Bool("eventgateway.matched", matched))
	span.End(nil)
	return matched
}

// transform runs the request stages of a synchronous subscription, if
// it has any: the modifier plugins' and its own transform. It returns
// the payload to call the function with, or false when it has answered
// w itself: a stage failed, or dropped the request.
func (e *Events) transform(w http.ResponseWriter, r *http.Request, route *router.HTTPRoute, stages pipeline.Chain, payload []byte, pc pipeline.Context) ([]byte, bool) {
	if !stages.HasRequest() {
		return payload, true
	}
	_, span := e.tracer.Start(r.Context(), "transform", trace.SpanKindInternal)
	out, drop, err := stages.Request(r.Context(), payload, pc)
	span.End(err)
	if err != nil {
		e.scriptFailed(w, r, route, "transform", err)
		return nil, false
	}
	if drop {
		e.dropped(w, r, route)
		return nil, false
	}
	return out, true
}

// statusWriter remembers the status of a response, for the span of a
// traced request.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// scriptContext is what a synchronous subscription's scripts are told.
func scriptContext(route *router.HTTPRoute) pipeline.Context {
	return pipeline.Context{Space: route.Target.Space, SubscriptionID: route.Subscription.ID, FunctionID: route.Target.Function.ID, Attempt: 1, Sync: true}
}

// stagesFailedCall answers a failed synchronous call: with the response
// an error stage (a modifier plugin) makes of the error, else as
// callFailed does. A plugin's refusal or failure before the call is not
// the function's error, and is answered as it is; so is a loop, whose 508
// must reach the gateway that made the call.
func (e *Events) stagesFailedCall(w http.ResponseWriter, r *http.Request, route *router.HTTPRoute, stages pipeline.Chain, pc pipeline.Context, err error) {
	if k := errkind.Of(err); stages.HasError() && k != errkind.Forbidden && k != errkind.Unavailable && !errors.Is(err, functions.ErrLoopDetected) && r.Context().Err() == nil {
		resp, handled, serr := stages.Error(r.Context(), err, pc)
		if serr != nil {
			e.scriptFailed(w, r, route, "error stage", serr)
			return
		}
		if handled {
			e.log.WarnContext(r.Context(), "function call failed; a plugin answered instead", "functionId", route.Target.Function.ID, "provider", route.Target.Function.Provider.Type, "status", resp.StatusCode, "error", err)
			e.writeResponse(w, r, route.Target, resp)
			return
		}
	}
	e.callFailed(w, r, route.Target, err)
}

// scriptFailed answers a request whose subscription's script failed: 502
// naming the subscription, with the script's error, which is the
// subscription owner's to read as a function's error body would be.
func (e *Events) scriptFailed(w http.ResponseWriter, r *http.Request, route *router.HTTPRoute, field string, err error) {
	if k := errkind.Of(err); k == errkind.Forbidden || k == errkind.Unavailable {
		// A modifier plugin's refusal (403) or failure, closed (503).
		writeError(w, r, e.log, err)
		return
	}
	status := http.StatusBadGateway
	if r.Context().Err() != nil {
		status = 499 // the client went away; nobody reads this answer
	}
	e.log.WarnContext(r.Context(), "subscription script failed", "space", route.Target.Space, "subscriptionId", route.Subscription.ID, "field", field, "error", err)
	writeErrorMessage(w, status, fmt.Sprintf("%s of subscription %s failed: %v", field, route.Subscription.ID, err))
}

// dropped answers a request whose subscription's transform returned
// null: as a filter that does not match, the route does not take it.
// An event is still accepted (its asynchronous subscribers have it);
// an http request or an invocation finds nothing.
func (e *Events) dropped(w http.ResponseWriter, r *http.Request, route *router.HTTPRoute) {
	switch route.Subscription.Event {
	case subscriptions.EventHTTP, subscriptions.EventInvoke:
		writeErrorMessage(w, http.StatusNotFound, fmt.Sprintf("the transform of subscription %s dropped the request", route.Subscription.ID))
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// writeResponse sends a function's response object.
func (e *Events) writeResponse(w http.ResponseWriter, r *http.Request, t *router.Target, resp event.HTTPResponse) {
	h := w.Header()
	for k, v := range resp.Headers {
		// Canonicalized once for the check and the map, where Set
		// would do it again.
		ck := http.CanonicalHeaderKey(k)
		switch ck {
		case "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "Trailer":
			continue // framing is the gateway's business
		}
		if !validHeaderValue(v) {
			// net/http drops invalid names and turns line breaks into
			// spaces, but lets NUL and other controls through to the
			// client.
			e.log.DebugContext(r.Context(), "function response header dropped: control characters in its value", "functionId", t.Function.ID, "header", ck)
			continue
		}
		h[ck] = []string{v}
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(resp.Body)
}

// validHeaderValue reports whether v is a valid header field value (RFC
// 9110): no control characters but horizontal tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func (e *Events) invoke(w http.ResponseWriter, r *http.Request, space *router.Space, held *int64) {
	e.anyOrigin.HandlerFunc(w, r)
	if !e.ingestAllowed(w, r, space) {
		return
	}
	if r.Method != http.MethodPost {
		writeErrorMessage(w, http.StatusBadRequest, "invoke must be sent with POST")
		return
	}
	id := r.Header.Get(headerFunctionID)
	if id == "" {
		writeErrorMessage(w, http.StatusBadRequest, "invoke needs a Function-ID header")
		return
	}
	route, ok := space.InvokeTarget(r.URL.Path, id)
	if !ok {
		if space.Function(id) == nil {
			writeErrorMessage(w, http.StatusNotFound, fmt.Sprintf("function %q not found", id))
		} else {
			writeErrorMessage(w, http.StatusNotFound, fmt.Sprintf("function %q has no invoke subscription on %s", id, r.URL.Path))
		}
		return
	}
	t := route.Target
	_, payload, _, err := e.receive(r, w, t.Space, subscriptions.EventInvoke, held)
	if err != nil {
		writeError(w, r, e.log, err)
		return
	}
	if route.Pipeline.HasFilter() && !e.filter(r.Context(), route, payload) {
		writeErrorMessage(w, http.StatusNotFound, fmt.Sprintf("the event does not match the filter of the invoke subscription %s of function %q", route.Subscription.ID, id))
		return
	}
	p := e.router.Stages(route.Pipeline)
	pc := scriptContext(route)
	payload, ok = e.transform(w, r, route, p, payload, pc)
	if !ok {
		return
	}
	r = withAffinity(r, t, nil)
	out, err := e.router.Call(r.Context(), t, payload)
	if err != nil {
		e.stagesFailedCall(w, r, route, p, pc, err)
		return
	}
	ct := "application/octet-stream"
	if json.Valid(out) {
		ct = "application/json"
	}
	if p.HasResponse() {
		// invoke answers with the function's output as it is; a
		// transformResponse sees it as the body of a 200 response
		// object and answers with what it returns.
		_, span := e.tracer.Start(r.Context(), "transformResponse", trace.SpanKindInternal)
		resp, err := p.Response(r.Context(), event.HTTPResponse{StatusCode: http.StatusOK, Headers: map[string]string{"Content-Type": ct}, Body: out}, pc)
		span.End(err)
		if err != nil {
			e.scriptFailed(w, r, route, "transformResponse", err)
			return
		}
		e.writeResponse(w, r, t, resp)
		return
	}
	// Canonical keys, assigned: Set would canonicalize them again.
	w.Header()["Content-Type"] = []string{ct}
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// customEvent handles an event sent in the seed's form: its name in the
// Event header, the body as its data.
func (e *Events) customEvent(w http.ResponseWriter, r *http.Request, space, name string, held *int64) {
	e.anyOrigin.HandlerFunc(w, r)
	if !e.ingestAllowed(w, r, e.router.Snapshot().Space(space)) {
		return
	}
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
	ev, payload, body, err := e.receive(r, w, space, name, held)
	if err != nil {
		writeError(w, r, e.log, err)
		return
	}
	// Legacy events need no registered type: the seed's clients know of
	// none. A registered type's authorizer applies all the same.
	e.dispatch(w, r, space, router.NewIncoming(&ev, payload, time.UnixMilli(ev.ReceivedAt)), body, false)
}

// cloudEvent handles a CloudEvent: 1.0 binary or structured, or v0.1.
// body is the request body when it was read already.
func (e *Events) cloudEvent(w http.ResponseWriter, r *http.Request, space string, body []byte, held *int64) {
	e.anyOrigin.HandlerFunc(w, r)
	if !e.ingestAllowed(w, r, e.router.Snapshot().Space(space)) {
		return
	}
	if body == nil {
		var err error
		if body, err = e.readBody(w, r, held); err != nil {
			writeError(w, r, e.log, err)
			return
		}
	}
	var ce event.CloudEvent
	var err error
	switch form := event.Detect(r.Header, body); form {
	case event.FormBinary:
		ce, err = event.DecodeBinary(r.Header, body)
	case event.FormStructured:
		ce, err = event.DecodeStructured(body)
	case event.FormV01:
		ce, err = event.DecodeV01(body)
	default:
		writeErrorMessage(w, http.StatusUnsupportedMediaType, fmt.Sprintf("%s events are not accepted: send one event per request", form))
		return
	}
	if err != nil {
		writeError(w, r, e.log, errkind.Wrap(errkind.Invalid, err, "%s", err))
		return
	}
	if strings.HasPrefix(ce.Type, "gateway.") {
		writeErrorMessage(w, http.StatusBadRequest, fmt.Sprintf("event types starting with \"gateway.\" are reserved for system events: %q", ce.Type))
		return
	}
	now := time.Now()
	in := router.NewCloudIncoming(ce, now)
	// System events and plugins see the event in the seed's envelope.
	legacy := ce.ToEvent(now)
	if err := e.router.Received(r.Context(), space, &legacy, r.URL.Path, r.Header); err != nil {
		writeError(w, r, e.log, err)
		return
	}
	e.dispatch(w, r, space, in, body, true)
}

// dispatch routes an accepted event of a custom type: its type must be
// registered when required, its authorizer must let it in, its
// synchronous subscription on the request's method and path answers it,
// and its asynchronous subscribers on the path get it from the queue
// (202 when nothing answers synchronously).
func (e *Events) dispatch(w http.ResponseWriter, r *http.Request, space string, in *router.Incoming, body []byte, typeRequired bool) {
	sp := e.router.Snapshot().Space(space)
	typ := in.Type()
	et := sp.EventType(typ)
	if et == nil && typeRequired {
		writeErrorMessage(w, http.StatusBadRequest, fmt.Sprintf("event type %q is not registered in space %q", typ, space))
		return
	}
	if et != nil && et.AuthorizerID != "" {
		if err := e.authorize(r, space, et, in, requestData(r, body, in.ReceivedAt)); err != nil {
			writeError(w, r, e.log, err)
			return
		}
	}
	ps := e.params.Get().(*pathtree.Params)
	defer e.params.Put(ps)
	_, mspan := e.tracer.Start(r.Context(), "match", trace.SpanKindInternal)
	route, sync := sp.MatchEvent(typ, r.Method, r.URL.Path, ps)
	mspan.End(nil)
	if sync && route.Pipeline.HasFilter() && !e.filter(r.Context(), route, in.FilterDoc(route.Subscription.EnvelopeOrLegacy())) {
		sync = false // accepted all the same, for the asynchronous subscribers
	}
	if _, err := e.router.Enqueue(r.Context(), space, in, sp.Subscribers(typ, r.URL.Path)); err != nil {
		writeError(w, r, e.log, err)
		return
	}
	// The id by which the event's trail is found: the gateway's own for
	// an event in the seed's form, the CloudEvent's id. It is on the
	// answer of a synchronous subscription too.
	w.Header()[headerEventID] = []string{in.ID()}
	if !sync {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	e.respond(w, withAffinity(r, route.Target, *ps), route, in.Payload(route.Subscription.EnvelopeOrLegacy()), space, in)
}

// headerKey carries an ingest key; Authorization: Bearer <key> does too.
const headerKey = "Event-Gateway-Key"

// ingestAllowed checks the ingest key of an event sent to a space that has
// ingest keys, and answers 401 when it is missing or wrong. Events only:
// http requests are the space's own API, guarded by the authorizer of
// http.request.
func (e *Events) ingestAllowed(w http.ResponseWriter, r *http.Request, sp *router.Space) bool {
	if !sp.RequiresKey(keys.Ingest) {
		return true
	}
	key := r.Header.Get(headerKey)
	if key == "" {
		key = bearer(r)
	}
	if sp.ValidKey(keys.Ingest, key) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="event-gateway"`)
	msg := "invalid ingest key"
	if key == "" {
		msg = "space " + sp.Name() + " takes events with an ingest key only: send it in " + headerKey + " or Authorization: Bearer"
	}
	writeErrorMessage(w, http.StatusUnauthorized, msg)
	return false
}

// bearer returns the credential of an Authorization: Bearer header.
func bearer(r *http.Request) string {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(cred)
}

// receive reads the body of an invoke or custom event into an envelope and
// emits gateway.event.received, whose sync plugins may refuse the event.
// It returns the envelope's encoding, whose memory ev.Data shares, and the
// body too.
func (e *Events) receive(r *http.Request, w http.ResponseWriter, space, name string, held *int64) (ev event.Event, payload, body []byte, err error) {
	if body, err = e.readBody(w, r, held); err != nil {
		return event.Event{}, nil, nil, err
	}
	ev, payload, err = event.NewPayload(name, body, r.Header.Get("Content-Type"), time.Now())
	if err != nil {
		return event.Event{}, nil, nil, errkind.Wrap(errkind.Invalid, err, "%s", err)
	}
	if err := e.router.Received(r.Context(), space, &ev, r.URL.Path, r.Header); err != nil {
		return event.Event{}, nil, nil, err
	}
	return ev, payload, body, nil
}

// initialBodyBuffer bounds the buffer made for a request body before its
// bytes arrive: a client may declare a Content-Length it never sends. The
// buffer grows as bytes arrive.
const initialBodyBuffer = 64 << 10

// readBody reads the whole request body, up to the limit, into a buffer
// that grows with the bytes received (doubling, never past the declared
// length), not with the length the client declares. The buffer is charged
// to the budget of body bytes in flight, in *held, which ServeHTTP gives
// back once the request is answered; past the budget the answer is an
// Unavailable error (503).
func (e *Events) readBody(w http.ResponseWriter, r *http.Request, held *int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		// The server's body of a request without one (a GET): nothing
		// to limit or read, and no buffer to make.
		return nil, nil
	}
	if r.ContentLength > e.maxBody {
		return nil, errkind.New(errkind.TooLarge, "request body is larger than %d bytes", e.maxBody)
	}
	// The most the buffer may need: one byte more than the body can
	// have, so that EOF is seen without growing.
	most := e.maxBody + 1
	if r.ContentLength >= 0 {
		most = r.ContentLength + 1
	}
	size := int64(512)
	if r.ContentLength >= 0 {
		size = r.ContentLength + 1
	}
	size = min(size, initialBodyBuffer+1, most)
	if err := e.charge(size, held); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, size)
	body := http.MaxBytesReader(w, r.Body, e.maxBody)
	for {
		if len(buf) == cap(buf) {
			grown := min(2*int64(cap(buf)), most)
			if grown <= int64(cap(buf)) {
				// Only a body longer than declared gets here; the
				// server's reader stops at the declared length.
				grown = int64(cap(buf)) + 512
			}
			if err := e.charge(grown-int64(cap(buf)), held); err != nil {
				return nil, err
			}
			nb := make([]byte, len(buf), grown)
			copy(nb, buf)
			buf = nb
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

// BodyBytesInFlight returns the bytes of request bodies held at once
// (counted while -max-body-bytes-in-flight bounds them).
func (e *Events) BodyBytesInFlight() int64 { return e.bodyInFlight.Load() }

// charge takes n bytes of the budget of request body bytes in flight, and
// adds them to *held.
func (e *Events) charge(n int64, held *int64) error {
	if e.maxBodyInFlight > 0 && e.bodyInFlight.Add(n) > e.maxBodyInFlight {
		e.bodyInFlight.Add(-n)
		return errBodyBudget
	}
	*held += n
	return nil
}

// release gives back what a request's bodies took of the budget.
func (e *Events) release(held int64) {
	if held != 0 && e.maxBodyInFlight > 0 {
		e.bodyInFlight.Add(-held)
	}
}

var errBodyBudget = errkind.New(errkind.Unavailable, "the gateway is receiving too many request bodies at once, retry later")

// loopDetected answers a request that came through more calls than the
// bound, with 508 and the hop count as functions.HopsHeader: a gateway
// that made the call knows by it that the loop, not the function, failed.
func (e *Events) loopDetected(w http.ResponseWriter, r *http.Request, hops int) {
	w.Header().Set(functions.HopsHeader, strconv.Itoa(hops))
	writeErrorMessage(w, http.StatusLoopDetected, fmt.Sprintf("loop detected: the request came through %d calls of functions by the gateway, more than %d (-max-hops)", hops, e.maxHops))
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
	case errors.Is(err, functions.ErrLoopDetected):
		// Passed back to the caller as it is, so a loop of gateway calls
		// answers 508 all the way back.
		e.loopDetected(w, r, functions.Hops(r.Context())+1)
		return
	case errors.Is(err, functions.ErrTimeout):
		status, msg = http.StatusGatewayTimeout, fmt.Sprintf("function timed out after %v", t.Timeout)
	case errors.Is(err, functions.ErrNoBackend):
		// Not the function's failure: its backends are all ejected or
		// unhealthy for now.
		w.Header().Set("Retry-After", "1")
		status, msg = http.StatusServiceUnavailable, fmt.Sprintf("function %q has no backend available: all are ejected or unhealthy, retry later", t.Function.ID)
	case errors.Is(err, functions.ErrResponseTooLarge):
		msg = "function response is too large"
	case r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		status, msg = 499, "client closed request"
	}
	e.log.WarnContext(r.Context(), "function call failed", "functionId", t.Function.ID, "provider", t.Function.Provider.Type, "status", status, "error", err)
	writeErrorMessage(w, status, msg)
}
