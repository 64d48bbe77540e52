package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// FunctionService is what the Configuration API needs of the functions.
type FunctionService interface {
	Create(ctx context.Context, f functions.Function) (functions.Function, error)
	Get(ctx context.Context, id string) (functions.Function, error)
	List(ctx context.Context) ([]functions.Function, error)
	// ListPage returns a page of the functions whose metadata match
	// filter, and the id to continue after ("" at the end).
	ListPage(ctx context.Context, page functions.Page, filter map[string]string) ([]functions.Function, string, error)
	Update(ctx context.Context, f functions.Function) (functions.Function, error)
	Delete(ctx context.Context, id string) error
	// Redact returns a function as a client may see it, without secrets.
	Redact(f functions.Function) functions.Function
}

// SubscriptionService is what the Configuration API needs of the
// subscriptions.
type SubscriptionService interface {
	Create(ctx context.Context, s subscriptions.Subscription) (subscriptions.Subscription, error)
	Get(ctx context.Context, id string) (subscriptions.Subscription, error)
	List(ctx context.Context) ([]subscriptions.Subscription, error)
	// ListPage returns a page of the subscriptions whose metadata match
	// filter, and the id to continue after ("" at the end).
	ListPage(ctx context.Context, page functions.Page, filter map[string]string) ([]subscriptions.Subscription, string, error)
	Delete(ctx context.Context, id string) error
}

// DefaultStoreTimeout is the default of ConfigOptions.StoreTimeout: a
// healthy etcd answers in milliseconds, and a client waiting on one that
// is away learns it (503) in two seconds.
const DefaultStoreTimeout = 2 * time.Second

// ConfigOptions configures the Configuration API.
type ConfigOptions struct {
	Functions     FunctionService
	Subscriptions SubscriptionService
	Logger        *slog.Logger
	// StoreTimeout bounds the handling of each request, so one made while
	// etcd is away answers 503 instead of hanging. It runs from the start
	// of the handler, reading the request body (at most MaxBody) included.
	// Default DefaultStoreTimeout.
	StoreTimeout time.Duration
	// MaxBody bounds request bodies. Default 1 MiB.
	MaxBody int64
	// Ready reports whether the instance routes from a configuration read
	// from the store, and the store revision it reflects. Nil: always ready.
	Ready func() (bool, int64)
	// DeadLetters serves /v1/deadletters; nil leaves those endpoints out.
	DeadLetters DeadLetterService
	// Spaces serves the spaces API (/v1/spaces/...); nil leaves it out.
	Spaces Spaces
	// State serves the declarative state of each space (apply, export,
	// history, rollback under /v1/spaces/<space>/); nil leaves it out.
	State StateService
	// Trail serves the event trail (/v1/spaces/<space>/events, api/trail.go);
	// nil when it is off, and its endpoints say so.
	Trail TrailService
	// Synced, when set, is called after every change made through the
	// API, before it is answered: it returns once this instance routes by
	// the change, so a client that changes the configuration and then
	// sends an event to the same instance sees its change applied.
	Synced func(ctx context.Context)
	// Dashboard serves what the dashboard reads beside the resources
	// (dashboard.go).
	Dashboard DashboardSources
}

// Config serves the Configuration API.
type Config struct {
	fns     FunctionService
	subs    SubscriptionService
	log     *slog.Logger
	timeout time.Duration
	maxBody int64
	ready   func() (bool, int64)
	dead    DeadLetterService
	spaces  Spaces
	state   StateService
	trail   TrailService
	synced  func(ctx context.Context)
	router  *httprouter.Router
}

// NewConfig returns the Configuration API handler.
func NewConfig(opts ConfigOptions) *Config {
	c := &Config{
		fns:     opts.Functions,
		subs:    opts.Subscriptions,
		log:     opts.Logger,
		timeout: opts.StoreTimeout,
		maxBody: opts.MaxBody,
		ready:   opts.Ready,
		dead:    opts.DeadLetters,
		spaces:  opts.Spaces,
		state:   opts.State,
		trail:   opts.Trail,
		synced:  opts.Synced,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.timeout <= 0 {
		c.timeout = DefaultStoreTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = 1 << 20
	}

	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = false
	r.GET("/v1/status", c.handle(c.status))
	r.GET("/v1/status/ready", c.handle(c.readiness))
	c.routeOpenAPI(r)
	r.POST("/v1/functions", c.handle(c.createFunction))
	r.GET("/v1/functions", c.handle(c.listFunctions))
	r.GET("/v1/functions/:id", c.handle(c.getFunction))
	r.PUT("/v1/functions/:id", c.handle(c.updateFunction))
	r.DELETE("/v1/functions/:id", c.handle(c.deleteFunction))
	r.POST("/v1/subscriptions", c.handle(c.createSubscription))
	r.GET("/v1/subscriptions", c.handle(c.listSubscriptions))
	r.GET("/v1/subscriptions/:id", c.handle(c.getSubscription))
	r.DELETE("/v1/subscriptions/:id", c.handle(c.deleteSubscription))
	r.POST("/v1/try", c.query(c.try))
	if c.dead != nil {
		c.routeDeadLetters(r)
	}
	if c.spaces != nil {
		c.routeSpaces(r)
	}
	if c.state != nil {
		c.routeState(r)
	}
	c.routeDashboard(r, opts.Dashboard)
	c.routeTrail(r)
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeErrorMessage(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeErrorMessage(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path))
	})
	r.PanicHandler = func(w http.ResponseWriter, r *http.Request, v any) {
		c.log.ErrorContext(r.Context(), "panic in configuration API handler", "method", r.Method, "path", r.URL.Path, "panic", v)
		writeErrorMessage(w, http.StatusInternalServerError, "internal error")
	}
	c.router = r
	return c
}

func (c *Config) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.router.ServeHTTP(w, r) }

// handlerFunc is the shape of every Configuration API handler. On success
// it writes its own response, so each handler picks its status (200, 201,
// 204) and the body shape of its API generation; on failure it writes
// nothing and returns the error, which handle turns into the one error
// response every generation shares.
type handlerFunc func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error

// handle adapts h to httprouter. It bounds the request's context by the
// store timeout, so a request made while etcd is away answers 503 instead
// of hanging, and writes a returned error with writeError, which maps its
// kind to a status and logs it: handlers neither log nor write errors.
func (c *Config) handle(h handlerFunc) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		ctx, cancel := context.WithTimeout(r.Context(), c.timeout)
		defer cancel()
		r = r.WithContext(ctx)
		if c.synced == nil || r.Method == http.MethodGet || r.Method == http.MethodHead {
			if err := h(w, r, ps); err != nil {
				writeError(w, r, c.log, err)
			}
			return
		}
		// A change: hold the answer until this instance routes by it.
		var bw bufferedResponse
		if err := h(&bw, r, ps); err != nil {
			writeError(w, r, c.log, err)
			return
		}
		if bw.status < 300 {
			c.synced(ctx)
		}
		bw.flush(w)
	}
}

// query is handle for a POST that changes nothing (it computes an
// answer from its body): nothing to wait for before answering.
func (c *Config) query(h handlerFunc) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		ctx, cancel := context.WithTimeout(r.Context(), c.timeout)
		defer cancel()
		if err := h(w, r.WithContext(ctx), ps); err != nil {
			writeError(w, r, c.log, err)
		}
	}
}

// bufferedResponse holds a response until it is sent with flush.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header {
	if b.header == nil {
		b.header = make(http.Header)
	}
	return b.header
}

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) flush(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range b.header {
		h[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}

// status is liveness: the process answers.
func (c *Config) status(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

type readyBody struct {
	Status   string `json:"status"`
	Revision int64  `json:"revision,omitempty"`
}

// readiness answers 200 once the instance routes from a configuration it
// has read from etcd, and keeps answering 200 while etcd is away (the
// instance still routes from its copy). Not ready is an answer, not an
// error: its body is the status, not an error body.
func (c *Config) readiness(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	ready, rev := true, int64(0)
	if c.ready != nil {
		ready, rev = c.ready()
	}
	if !ready {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, readyBody{Status: "configuration not loaded yet"})
		return nil
	}
	writeJSON(w, http.StatusOK, readyBody{Status: "ready", Revision: rev})
	return nil
}

type functionList struct {
	Functions []functions.Function `json:"functions"`
	// Next is the cursor of the next page of a paginated list.
	Next string `json:"next,omitempty"`
}

type subscriptionList struct {
	Subscriptions []subscriptions.Subscription `json:"subscriptions"`
	Next          string                       `json:"next,omitempty"`
}

type updateFunctionRequest struct {
	// FunctionID may repeat the id of the URL; anything else is an error.
	FunctionID string              `json:"functionId"`
	Provider   *functions.Provider `json:"provider"`
	Timeout    string              `json:"timeout"`
	// MaxInFlight is replaced like the timeout: left out, the default.
	MaxInFlight int `json:"maxInFlight"`
}

func (c *Config) createFunction(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	var f functions.Function
	if err := c.decode(w, r, &f); err != nil {
		return err
	}
	f, err := c.fns.Create(r.Context(), f)
	if err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "Function registered.", "functionId", f.ID, "provider", f.Provider.Type)
	writeJSON(w, http.StatusOK, c.fns.Redact(f))
	return nil
}

func (c *Config) listFunctions(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	page, _, err := listQuery(r, false)
	if err != nil {
		return err
	}
	var fns []functions.Function
	var next string
	if paged(page) {
		fns, next, err = c.fns.ListPage(r.Context(), page, nil)
	} else {
		fns, err = c.fns.List(r.Context())
	}
	if err != nil {
		return err
	}
	for i := range fns {
		fns[i] = c.fns.Redact(fns[i])
	}
	writeJSON(w, http.StatusOK, functionList{Functions: fns, Next: nextPage(w, r, next)})
	return nil
}

func (c *Config) getFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	f, err := c.fns.Get(r.Context(), ps.ByName("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.fns.Redact(f))
	return nil
}

func (c *Config) updateFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	id := ps.ByName("id")
	var req updateFunctionRequest
	if err := c.decode(w, r, &req); err != nil {
		return err
	}
	if req.Provider == nil {
		return errkind.New(errkind.Invalid, "provider is required")
	}
	if req.FunctionID != "" && req.FunctionID != id {
		return errkind.New(errkind.Invalid, "functionId %q does not match the URL's %q: a function cannot be renamed", req.FunctionID, id)
	}
	f, err := c.fns.Update(r.Context(), functions.Function{ID: id, Provider: *req.Provider, Timeout: req.Timeout, MaxInFlight: req.MaxInFlight})
	if err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "function updated", "functionId", f.ID, "provider", f.Provider.Type)
	writeJSON(w, http.StatusOK, c.fns.Redact(f))
	return nil
}

func (c *Config) deleteFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	id := ps.ByName("id")
	if err := c.fns.Delete(r.Context(), id); err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "function deleted", "functionId", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Config) createSubscription(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	var s subscriptions.Subscription
	if err := c.decode(w, r, &s); err != nil {
		return err
	}
	if s.ID != "" {
		return errkind.New(errkind.Invalid, "subscriptionId is assigned by the gateway")
	}
	s, err := c.subs.Create(r.Context(), s)
	if err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "Subscription created.", "subscriptionId", s.ID, "event", s.Event, "functionId", s.FunctionID, "method", s.Method, "path", s.Path)
	writeJSON(w, http.StatusOK, s)
	return nil
}

func (c *Config) listSubscriptions(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	page, _, err := listQuery(r, false)
	if err != nil {
		return err
	}
	var subs []subscriptions.Subscription
	var next string
	if paged(page) {
		subs, next, err = c.subs.ListPage(r.Context(), page, nil)
	} else {
		subs, err = c.subs.List(r.Context())
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, subscriptionList{Subscriptions: subs, Next: nextPage(w, r, next)})
	return nil
}

func (c *Config) getSubscription(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	s, err := c.subs.Get(r.Context(), ps.ByName("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

func (c *Config) deleteSubscription(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	id := ps.ByName("id")
	// The log line names what was deleted, as serverless run shows it.
	var s subscriptions.Subscription
	if c.log.Enabled(r.Context(), slog.LevelInfo) {
		s, _ = c.subs.Get(r.Context(), id)
	}
	if err := c.subs.Delete(r.Context(), id); err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "Subscription deleted.", "subscriptionId", id, "event", s.Event, "functionId", s.FunctionID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// decode reads one JSON value from the request body into v, strictly:
// unknown fields, trailing data and bodies over the limit are errors. The
// Content-Type is not checked: curl -d sends a form type by default.
func (c *Config) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, c.maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, c.maxBody)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err, c.maxBody)
		}
		return errkind.New(errkind.Invalid, "request body has data after the JSON value")
	}
	return nil
}

func decodeError(err error, limit int64) error {
	var (
		tooLarge  *http.MaxBytesError
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return errkind.New(errkind.TooLarge, "request body is larger than %d bytes", limit)
	case errors.Is(err, io.EOF):
		return errkind.New(errkind.Invalid, "request body is empty: a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errkind.New(errkind.Invalid, "request body is not valid JSON: unexpected end")
	case errors.As(err, &syntax):
		return errkind.New(errkind.Invalid, "request body is not valid JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typeError):
		if typeError.Field == "" {
			return errkind.New(errkind.Invalid, "request body must be a JSON object")
		}
		return errkind.New(errkind.Invalid, "field %s must be a JSON %s", typeError.Field, errkind.JSONType(typeError.Type.Kind()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errkind.New(errkind.Invalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return errkind.Wrap(errkind.Invalid, err, "request body could not be read")
	}
}
