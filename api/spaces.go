package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/subscriptions"
	"github.com/event-gateway/event-gateway/subscriptions/cors"
	"github.com/event-gateway/event-gateway/subscriptions/eventtypes"
	"github.com/event-gateway/event-gateway/subscriptions/keys"
)

// The spaces API is the Configuration API's second generation, the one of
// the original gateway's 0.9 release that @serverless/event-gateway-sdk
// speaks: every resource under /v1/spaces/<space>/, 201 on create, 204 on
// delete, lists wrapped in an object, a "space" and "metadata" on every
// resource. It works on the same data as the first generation, whose
// /v1/functions and /v1/subscriptions are the space "default".

// Spaces gives the configuration services of each space.
type Spaces interface {
	Functions(space string) FunctionService
	Subscriptions(space string) SpaceSubscriptionService
	EventTypes(space string) EventTypeService
	CORS(space string) CORSService
	Keys(space string) KeyService
}

// SpaceSubscriptionService is what the spaces API needs of the
// subscriptions of one space.
type SpaceSubscriptionService interface {
	SubscriptionService
	// Update changes a subscription's metadata or pipeline in place.
	Update(ctx context.Context, id string, change func(*subscriptions.Subscription)) (subscriptions.Subscription, error)
}

// eventTypeHTTP is the spaces API's name of the http event: a plain
// request, answered by a synchronous subscription.
const eventTypeHTTP = "http.request"

func (c *Config) routeSpaces(r *httprouter.Router) {
	const root = "/v1/spaces/:space/"
	r.POST(root+"functions", c.handle(c.spaceCreateFunction))
	r.GET(root+"functions", c.handle(c.spaceListFunctions))
	r.GET(root+"functions/:id", c.handle(c.spaceGetFunction))
	r.PUT(root+"functions/:id", c.handle(c.spaceUpdateFunction))
	r.DELETE(root+"functions/:id", c.handle(c.spaceDeleteFunction))
	r.POST(root+"subscriptions", c.handle(c.spaceCreateSubscription))
	r.GET(root+"subscriptions", c.handle(c.spaceListSubscriptions))
	r.GET(root+"subscriptions/:id", c.handle(c.spaceGetSubscription))
	r.PUT(root+"subscriptions/:id", c.handle(c.spaceUpdateSubscription))
	r.DELETE(root+"subscriptions/:id", c.handle(c.spaceDeleteSubscription))
	r.POST(root+"try", c.query(c.try))
	c.routeSpaceResources(r)
}

// space returns the space named in the URL, checked.
func space(ps httprouter.Params) (string, error) {
	s := ps.ByName("space")
	if err := functions.ValidateSpace(s); err != nil {
		return "", err
	}
	return s, nil
}

// checkSpace refuses a body whose "space" names another space than the URL.
func checkSpace(body, url string) error {
	if body != "" && body != url {
		return errkind.New(errkind.Invalid, "space %q of the body does not match the URL's %q", body, url)
	}
	return nil
}

// Functions.

// spaceFunction is a function as the spaces API shows it: its provider
// type beside the provider's own fields, not among them.
type spaceFunction struct {
	Space       string                 `json:"space"`
	FunctionID  string                 `json:"functionId"`
	Type        functions.ProviderType `json:"type"`
	Provider    json.RawMessage        `json:"provider"`
	Timeout     string                 `json:"timeout,omitempty"`
	MaxInFlight int                    `json:"maxInFlight,omitempty"`
	Metadata    map[string]string      `json:"metadata,omitempty"`
}

func toSpaceFunction(space string, f functions.Function) spaceFunction {
	cfg := f.Provider.Config
	if len(bytes.TrimSpace(cfg)) == 0 {
		cfg = json.RawMessage("{}")
	}
	return spaceFunction{Space: space, FunctionID: f.ID, Type: f.Provider.Type, Provider: cfg, Timeout: f.Timeout, MaxInFlight: f.MaxInFlight, Metadata: f.Metadata}
}

// spaceFunctionRequest is a function as clients send it: 0.9 clients put
// the type beside the provider, 0.6 clients inside it; both are taken.
type spaceFunctionRequest struct {
	Space       string                 `json:"space"`
	FunctionID  string                 `json:"functionId"`
	Type        functions.ProviderType `json:"type"`
	Provider    *functions.Provider    `json:"provider"`
	Timeout     string                 `json:"timeout"`
	MaxInFlight int                    `json:"maxInFlight"`
	Metadata    map[string]string      `json:"metadata"`
}

func (req *spaceFunctionRequest) function(space string) (functions.Function, error) {
	if err := checkSpace(req.Space, space); err != nil {
		return functions.Function{}, err
	}
	if req.Provider == nil {
		return functions.Function{}, errkind.New(errkind.Invalid, "provider is required")
	}
	p := *req.Provider
	switch {
	case p.Type == "":
		p.Type = req.Type
	case req.Type != "" && req.Type != p.Type:
		return functions.Function{}, errkind.New(errkind.Invalid, "type %q and provider.type %q differ", req.Type, p.Type)
	}
	if p.Type == "" {
		return functions.Function{}, errkind.New(errkind.Invalid, "type is required")
	}
	return functions.Function{ID: req.FunctionID, Provider: p, Timeout: req.Timeout, MaxInFlight: req.MaxInFlight, Metadata: req.Metadata}, nil
}

func (c *Config) spaceCreateFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	var req spaceFunctionRequest
	if err := c.decode(w, r, &req); err != nil {
		return err
	}
	f, err := req.function(sp)
	if err != nil {
		return err
	}
	svc := c.spaces.Functions(sp)
	if f, err = svc.Create(r.Context(), f); err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "Function registered.", "space", sp, "functionId", f.ID, "provider", f.Provider.Type)
	writeJSON(w, http.StatusCreated, toSpaceFunction(sp, svc.Redact(f)))
	return nil
}

func (c *Config) spaceListFunctions(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	svc := c.spaces.Functions(sp)
	return writeList(w, r, "functions",
		func(ctx context.Context, _ map[string]string) ([]functions.Function, error) { return svc.List(ctx) },
		svc.ListPage,
		func(f *functions.Function) map[string]string { return f.Metadata },
		func(f functions.Function) spaceFunction { return toSpaceFunction(sp, svc.Redact(f)) })
}

func (c *Config) spaceGetFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	svc := c.spaces.Functions(sp)
	f, err := svc.Get(r.Context(), ps.ByName("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toSpaceFunction(sp, svc.Redact(f)))
	return nil
}

func (c *Config) spaceUpdateFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	id := ps.ByName("id")
	var req spaceFunctionRequest
	if err := c.decode(w, r, &req); err != nil {
		return err
	}
	if req.FunctionID != "" && req.FunctionID != id {
		return errkind.New(errkind.Invalid, "functionId %q does not match the URL's %q: a function cannot be renamed", req.FunctionID, id)
	}
	req.FunctionID = id
	f, err := req.function(sp)
	if err != nil {
		return err
	}
	svc := c.spaces.Functions(sp)
	if f, err = svc.Update(r.Context(), f); err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "function updated", "space", sp, "functionId", f.ID, "provider", f.Provider.Type)
	writeJSON(w, http.StatusOK, toSpaceFunction(sp, svc.Redact(f)))
	return nil
}

func (c *Config) spaceDeleteFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	id := ps.ByName("id")
	if err := c.spaces.Functions(sp).Delete(r.Context(), id); err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "function deleted", "space", sp, "functionId", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Subscriptions.

// spaceSubscription is a subscription as the spaces API shows it. Event
// is shown for subscriptions made without a type (by the first generation
// or the spaces API's first clients), which read it back.
type spaceSubscription struct {
	Space          string               `json:"space"`
	SubscriptionID string               `json:"subscriptionId"`
	Type           string               `json:"type"`
	EventType      string               `json:"eventType"`
	Event          string               `json:"event,omitempty"`
	FunctionID     string               `json:"functionId"`
	Method         string               `json:"method"`
	Path           string               `json:"path"`
	Envelope       string               `json:"envelope"`
	CORS           *subscriptions.CORS  `json:"cors,omitempty"`
	Retry          *subscriptions.Retry `json:"retry,omitempty"`
	Metadata       map[string]string    `json:"metadata,omitempty"`
	// The pipeline: filter, transform, transformResponse.
	Filter            json.RawMessage `json:"filter,omitempty"`
	Transform         string          `json:"transform,omitempty"`
	TransformResponse string          `json:"transformResponse,omitempty"`
}

func toSpaceSubscription(space string, s subscriptions.Subscription) spaceSubscription {
	out := spaceSubscription{
		Space: space, SubscriptionID: s.ID, EventType: s.Event, FunctionID: s.FunctionID,
		Method: s.Method, Path: s.Path, Envelope: s.EnvelopeOrLegacy(),
		CORS: s.CORS, Retry: s.Retry, Metadata: s.Metadata,
		Filter: s.Filter, Transform: s.Transform, TransformResponse: s.TransformResponse,
	}
	out.Type = subscriptions.Async
	if s.IsSync() {
		out.Type = subscriptions.Sync
	}
	if s.Event == subscriptions.EventHTTP {
		out.EventType = eventTypeHTTP
	}
	if s.Type == "" {
		out.Event = s.Event
	}
	if out.Method == "" {
		out.Method = http.MethodPost
	}
	return out
}

// spaceSubscriptionRequest is a subscription as clients send it: 0.9
// clients with type and eventType, 0.6 clients with event alone.
type spaceSubscriptionRequest struct {
	Space          string               `json:"space"`
	SubscriptionID string               `json:"subscriptionId"`
	Type           string               `json:"type"`
	EventType      string               `json:"eventType"`
	Event          string               `json:"event"`
	FunctionID     string               `json:"functionId"`
	Method         string               `json:"method"`
	Path           string               `json:"path"`
	Envelope       string               `json:"envelope"`
	CORS           *subscriptions.CORS  `json:"cors"`
	Retry          *subscriptions.Retry `json:"retry"`
	Metadata       map[string]string    `json:"metadata"`
	// Filter is kept raw: null (remove it, in an update) differs from
	// left out (keep it). The scripts are pointers for the same reason.
	Filter            json.RawMessage `json:"filter"`
	Transform         *string         `json:"transform"`
	TransformResponse *string         `json:"transformResponse"`
}

// subscription maps the request onto the model. A typed subscription
// (0.9) defaults to path "/", method POST and the CloudEvents v0.1
// envelope; one with an event alone (0.6) keeps the first generation's
// rules and envelope.
func (req *spaceSubscriptionRequest) subscription(space string) (subscriptions.Subscription, error) {
	if err := checkSpace(req.Space, space); err != nil {
		return subscriptions.Subscription{}, err
	}
	s := subscriptions.Subscription{
		FunctionID: req.FunctionID, Method: req.Method, Path: req.Path,
		Envelope: req.Envelope, CORS: req.CORS, Retry: req.Retry, Metadata: req.Metadata,
		Filter: req.Filter,
	}
	if req.Transform != nil {
		s.Transform = *req.Transform
	}
	if req.TransformResponse != nil {
		s.TransformResponse = *req.TransformResponse
	}
	if s.Path == "" {
		s.Path = "/"
	}
	if req.EventType == "" && req.Type == "" {
		s.Event = req.Event
		if s.Event == "" {
			return s, errkind.New(errkind.Invalid, "eventType is required")
		}
		return s, nil
	}
	if req.Event != "" && req.Event != req.EventType {
		return s, errkind.New(errkind.Invalid, "event %q and eventType %q differ: send eventType alone", req.Event, req.EventType)
	}
	if req.EventType == "" {
		return s, errkind.New(errkind.Invalid, "eventType is required")
	}
	s.Event, s.Type = req.EventType, req.Type
	switch s.Event {
	case eventTypeHTTP:
		s.Event = subscriptions.EventHTTP
	case subscriptions.EventHTTP:
		return s, errkind.New(errkind.Invalid, "eventType of http requests is %q", eventTypeHTTP)
	}
	if s.Type == "" {
		s.Type = subscriptions.Async
		if s.Event == subscriptions.EventHTTP || s.Event == subscriptions.EventInvoke {
			s.Type = subscriptions.Sync
		}
	}
	if s.Method == "" {
		s.Method = http.MethodPost
	}
	if s.Envelope == "" {
		s.Envelope = subscriptions.EnvelopeCloudEvents01
	}
	return s, nil
}

func (c *Config) spaceCreateSubscription(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	var req spaceSubscriptionRequest
	if err := c.decode(w, r, &req); err != nil {
		return err
	}
	if req.SubscriptionID != "" {
		return errkind.New(errkind.Invalid, "subscriptionId is assigned by the gateway")
	}
	s, err := req.subscription(sp)
	if err != nil {
		return err
	}
	if s, err = c.spaces.Subscriptions(sp).Create(r.Context(), s); err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "Subscription created.", "space", sp, "subscriptionId", s.ID, "event", s.Event, "type", s.Type, "functionId", s.FunctionID, "method", s.Method, "path", s.Path)
	writeJSON(w, http.StatusCreated, toSpaceSubscription(sp, s))
	return nil
}

func (c *Config) spaceListSubscriptions(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	svc := c.spaces.Subscriptions(sp)
	return writeList(w, r, "subscriptions",
		func(ctx context.Context, _ map[string]string) ([]subscriptions.Subscription, error) {
			return svc.List(ctx)
		},
		svc.ListPage,
		func(s *subscriptions.Subscription) map[string]string { return s.Metadata },
		func(s subscriptions.Subscription) spaceSubscription { return toSpaceSubscription(sp, s) })
}

func (c *Config) spaceGetSubscription(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	s, err := c.spaces.Subscriptions(sp).Get(r.Context(), ps.ByName("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toSpaceSubscription(sp, s))
	return nil
}

// spaceUpdateSubscription changes a subscription's metadata. What makes
// the subscription (its type, event type, function, method and path) may
// be sent again as it is, but not changed: that is another subscription.
func (c *Config) spaceUpdateSubscription(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	id := ps.ByName("id")
	var req spaceSubscriptionRequest
	if err := c.decode(w, r, &req); err != nil {
		return err
	}
	if req.SubscriptionID != "" && req.SubscriptionID != id {
		return errkind.New(errkind.Invalid, "subscriptionId %q does not match the URL's %q", req.SubscriptionID, id)
	}
	if err := checkSpace(req.Space, sp); err != nil {
		return err
	}
	svc := c.spaces.Subscriptions(sp)
	old, err := svc.Get(r.Context(), id)
	if err != nil {
		return err
	}
	cur := toSpaceSubscription(sp, old)
	for _, f := range []struct{ name, sent, have string }{
		{"type", req.Type, cur.Type},
		{"eventType", req.EventType, cur.EventType},
		{"event", req.Event, old.Event},
		{"functionId", req.FunctionID, cur.FunctionID},
		{"method", strings.ToUpper(req.Method), cur.Method},
		{"envelope", req.Envelope, cur.Envelope},
	} {
		if f.sent != "" && f.sent != f.have {
			return errkind.New(errkind.Invalid, "%s cannot be changed (%q to %q): create another subscription", f.name, f.have, f.sent)
		}
	}
	if req.Path != "" {
		p, _, err := subscriptions.ParsePath(req.Path)
		if err != nil || p != cur.Path {
			return errkind.New(errkind.Invalid, "path cannot be changed (%q to %q): create another subscription", cur.Path, req.Path)
		}
	}
	if req.CORS != nil && !reflect.DeepEqual(req.CORS, old.CORS) || req.Retry != nil && !reflect.DeepEqual(req.Retry, old.Retry) {
		return errkind.New(errkind.Invalid, "cors and retry cannot be changed: create another subscription")
	}
	// Fields left out are kept, as for functions; "filter": null and
	// empty scripts remove them.
	s, err := svc.Update(r.Context(), id, func(s *subscriptions.Subscription) {
		if req.Metadata != nil {
			s.Metadata = req.Metadata
		}
		if req.Filter != nil {
			s.Filter = req.Filter
		}
		if req.Transform != nil {
			s.Transform = *req.Transform
		}
		if req.TransformResponse != nil {
			s.TransformResponse = *req.TransformResponse
		}
	})
	if err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "subscription updated", "space", sp, "subscriptionId", id)
	writeJSON(w, http.StatusOK, toSpaceSubscription(sp, s))
	return nil
}

func (c *Config) spaceDeleteSubscription(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	id := ps.ByName("id")
	if err := c.spaces.Subscriptions(sp).Delete(r.Context(), id); err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "Subscription deleted.", "space", sp, "subscriptionId", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// resourceService is what the spaces API needs of a kind of resource of
// one space that is created, read, listed, updated and deleted by a name
// or id (event types, CORS configurations).
type resourceService[T any] interface {
	Create(ctx context.Context, v T) (T, error)
	Get(ctx context.Context, id string) (T, error)
	List(ctx context.Context, filter map[string]string) ([]T, error)
	ListPage(ctx context.Context, page functions.Page, filter map[string]string) ([]T, string, error)
	Update(ctx context.Context, id string, v T) (T, error)
	Delete(ctx context.Context, id string) error
}

// EventTypeService is what the spaces API needs of the event types of one
// space.
type EventTypeService = resourceService[eventtypes.EventType]

// CORSService is what the spaces API needs of the CORS configurations of
// one space.
type CORSService = resourceService[cors.Config]

// resource serves one such kind of resource under /v1/spaces/<space>/.
type resource[T any] struct {
	c *Config
	// path is the URL segment of the kind, what lists wrap their items
	// in, and its name in logs.
	path, list, name string
	service          func(space string) resourceService[T]
	// space and id read what a client sent of the resource.
	space, id func(*T) string
}

func (res resource[T]) route(r *httprouter.Router) {
	root := "/v1/spaces/:space/" + res.path
	c := res.c
	r.POST(root, c.handle(res.create))
	r.GET(root, c.handle(res.listAll))
	r.GET(root+"/:id", c.handle(res.get))
	r.PUT(root+"/:id", c.handle(res.update))
	r.DELETE(root+"/:id", c.handle(res.delete))
}

// decode reads a resource from the request body, checking its space.
func (res resource[T]) decode(w http.ResponseWriter, r *http.Request, sp string) (T, error) {
	var v T
	if err := res.c.decode(w, r, &v); err != nil {
		return v, err
	}
	return v, checkSpace(res.space(&v), sp)
}

func (res resource[T]) create(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	v, err := res.decode(w, r, sp)
	if err != nil {
		return err
	}
	if v, err = res.service(sp).Create(r.Context(), v); err != nil {
		return err
	}
	res.c.log.InfoContext(r.Context(), res.name+" created", "space", sp, "id", res.id(&v))
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (res resource[T]) listAll(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	svc := res.service(sp)
	// The services filter on metadata themselves; pages follow the ids,
	// whatever order the whole list has.
	return writeList(w, r, res.list, svc.List, svc.ListPage, nil, func(v T) T { return v })
}

func (res resource[T]) get(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	v, err := res.service(sp).Get(r.Context(), ps.ByName("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (res resource[T]) update(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	v, err := res.decode(w, r, sp)
	if err != nil {
		return err
	}
	id := ps.ByName("id")
	if v, err = res.service(sp).Update(r.Context(), id, v); err != nil {
		return err
	}
	res.c.log.InfoContext(r.Context(), res.name+" updated", "space", sp, "id", id)
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (res resource[T]) delete(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	id := ps.ByName("id")
	if err := res.service(sp).Delete(r.Context(), id); err != nil {
		return err
	}
	res.c.log.InfoContext(r.Context(), res.name+" deleted", "space", sp, "id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Config) routeSpaceResources(r *httprouter.Router) {
	resource[eventtypes.EventType]{
		c: c, path: "eventtypes", list: "eventTypes", name: "event type",
		service: func(sp string) resourceService[eventtypes.EventType] { return c.spaces.EventTypes(sp) },
		space:   func(et *eventtypes.EventType) string { return et.Space },
		id:      func(et *eventtypes.EventType) string { return et.Name },
	}.route(r)
	resource[cors.Config]{
		c: c, path: "cors", list: "cors", name: "CORS configuration",
		service: func(sp string) resourceService[cors.Config] { return c.spaces.CORS(sp) },
		space:   func(cfg *cors.Config) string { return cfg.Space },
		id:      func(cfg *cors.Config) string { return cfg.ID },
	}.route(r)
	const root = "/v1/spaces/:space/"
	r.POST(root+"keys", c.handle(c.spaceCreateKey))
	r.GET(root+"keys", c.handle(c.spaceListKeys))
	r.DELETE(root+"keys/:id", c.handle(c.spaceDeleteKey))
}

// KeyService is what the spaces API needs of the access keys of one space.
type KeyService interface {
	Create(ctx context.Context, k keys.Key) (keys.Key, error)
	List(ctx context.Context) ([]keys.Key, error)
	Delete(ctx context.Context, id string) error
}

// Access keys: created with their secret in the answer, listed without.

func (c *Config) spaceCreateKey(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	var k keys.Key
	if err := c.decode(w, r, &k); err != nil {
		return err
	}
	if err := checkSpace(k.Space, sp); err != nil {
		return err
	}
	if k, err = c.spaces.Keys(sp).Create(r.Context(), k); err != nil {
		return err
	}
	// The secret is in the answer only; never in a log.
	c.log.InfoContext(r.Context(), "key created", "space", sp, "keyId", k.ID, "kind", k.Kind, "name", k.Name)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, k)
	return nil
}

func (c *Config) spaceListKeys(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	page, filter, err := listQuery(r, true)
	if err == nil && paged(page) {
		err = errkind.New(errkind.Invalid, "keys are listed whole: a space has few")
	}
	if err != nil {
		return err
	}
	ks, err := c.spaces.Keys(sp).List(r.Context())
	if err != nil {
		return err
	}
	out := make([]keys.Key, 0, len(ks))
	for _, k := range ks {
		if functions.MatchMetadata(k.Metadata, filter) {
			out = append(out, k)
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Keys []keys.Key `json:"keys"`
	}{out})
	return nil
}

func (c *Config) spaceDeleteKey(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	id := ps.ByName("id")
	if err := c.spaces.Keys(sp).Delete(r.Context(), id); err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "key deleted", "space", sp, "keyId", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
