// Package openapitest checks the HTTP exchanges of the project's API tests
// against the OpenAPI document of the gateway (api/openapi/openapi.yaml),
// so that the document cannot drift from what the gateway answers.
//
// A Validator knows which base URLs are a gateway's Configuration API and
// which its Events API (Register). Its Transport, installed in the HTTP
// clients of the tests, checks every response from a registered API:
//
//   - the request must match an operation of the document (a path and a
//     method), unless the gateway answered that the endpoint does not
//     exist (404 "no endpoint …", 405) or refused it before routing (401,
//     503): a route that answers anything else must be documented;
//   - the status must be one the operation documents, and the headers and
//     body must match its response (schemas are closed: a field the
//     document does not name is an error);
//   - a request the gateway accepted (2xx) must match the operation's
//     parameters and request body, so the document is not stricter than
//     the gateway.
//
// A mismatch is returned as the client's error, naming the request, the
// operation and what to add to the document, and is also reported when
// the registering test ends (Register), so that a test that ignores
// client errors still fails. Requests to hosts that were not registered
// are refused: every exchange of a test that uses the Transport is
// checked or deliberately skipped (Unchecked). Clients that are not Go,
// such as the JavaScript SDKs, are given a checking reverse proxy (Proxy).
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/event-gateway/event-gateway/api/openapi"
)

// DocumentPath is where the document is kept, for messages.
const DocumentPath = "api/openapi/openapi.yaml"

// anyPath marks the path item of the Events API, whose {path} parameter
// stands for a whole path: OpenAPI templates cannot span segments.
const anyPath = "x-event-gateway-any-path"

// API names one of the gateway's two HTTP APIs.
type API int

const (
	// ConfigAPI is the Configuration API (-config-port).
	ConfigAPI API = iota + 1
	// EventsAPI is the Events API (-events-port).
	EventsAPI
)

func (a API) String() string {
	switch a {
	case ConfigAPI:
		return "Configuration API"
	default:
		return "Events API"
	}
}

// Validator checks exchanges with registered APIs against the document.
type Validator struct {
	doc    *openapi3.T
	config routers.Router
	// eventsPath is the path of the Events API's item in the document.
	eventsPath string
	events     *openapi3.PathItem

	mu       sync.Mutex
	bases    map[string]API
	failures map[string][]string // by base URL
	checked  map[string]int      // exchanges checked, by base URL
	total    int                 // exchanges checked in all
}

// New loads the embedded document and prepares its routes.
func New() (*Validator, error) {
	doc, err := openapi3.NewLoader().LoadFromData(openapi.YAML())
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", DocumentPath, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("%s is not a valid OpenAPI 3 document: %w", DocumentPath, err)
	}
	v := &Validator{doc: doc, bases: map[string]API{}, failures: map[string][]string{}, checked: map[string]int{}}
	// The Configuration API's paths are routed by the document's
	// templates; the Events API's item takes every path of its port.
	configDoc := *doc
	configDoc.Servers = nil
	configDoc.Paths = openapi3.NewPaths()
	for path, item := range doc.Paths.Map() {
		if item.Extensions[anyPath] == true {
			v.eventsPath, v.events = path, item
			continue
		}
		configDoc.Paths.Set(path, item)
	}
	if v.events == nil {
		return nil, fmt.Errorf("%s has no path item marked %s (the Events API)", DocumentPath, anyPath)
	}
	if v.config, err = legacy.NewRouter(&configDoc); err != nil {
		return nil, fmt.Errorf("routes of %s: %w", DocumentPath, err)
	}
	return v, nil
}

// MustNew is New for package-level test helpers.
func MustNew() *Validator {
	v, err := New()
	if err != nil {
		panic(err)
	}
	return v
}

// Register tells that baseURL (scheme, host and port, such as
// http://127.0.0.1:4001) serves api, until t ends. When t ends, every
// exchange with baseURL that did not match the document fails t, even if
// the client's error was ignored.
func (v *Validator) Register(t testing.TB, baseURL string, api API) {
	t.Helper()
	base, err := baseOf(baseURL)
	if err != nil {
		t.Fatalf("openapitest: register %q: %v", baseURL, err)
	}
	v.mu.Lock()
	v.bases[base] = api
	v.mu.Unlock()
	t.Cleanup(func() {
		v.mu.Lock()
		failures := v.failures[base]
		delete(v.bases, base)
		delete(v.failures, base)
		delete(v.checked, base)
		v.mu.Unlock()
		if len(failures) > 0 {
			t.Errorf("%d exchanges with the %s at %s do not match %s:\n%s", len(failures), api, base, DocumentPath, strings.Join(failures, "\n"))
		}
	})
}

// Checked returns how many exchanges with baseURL were checked.
func (v *Validator) Checked(baseURL string) int {
	base, _ := baseOf(baseURL)
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.checked[base]
}

// Total returns how many exchanges were checked, with every API.
func (v *Validator) Total() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.total
}

func baseOf(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("%q has no scheme and host", rawURL)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

type uncheckedKey struct{}

// bodyUnknownKey marks a request whose body the Transport could not read
// again (it had no GetBody): its request is not checked.
type bodyUnknownKey struct{}

// Unchecked returns ctx marked so that the Transport does not check the
// exchange of a request made with it: for a request that is deliberately
// malformed or hostile, and answered by the HTTP server itself (a 431 for
// huge headers) rather than by the gateway. reason says why, for the
// reader; it must not be empty.
func Unchecked(ctx context.Context, reason string) context.Context {
	if strings.TrimSpace(reason) == "" {
		panic("openapitest.Unchecked: say why the exchange is not checked")
	}
	return context.WithValue(ctx, uncheckedKey{}, reason)
}

// Transport returns a RoundTripper that sends requests with next
// (http.DefaultTransport when nil) and checks each exchange.
func (v *Validator) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{v: v, next: next}
}

// Client returns an HTTP client whose Transport checks each exchange.
func (v *Validator) Client(c *http.Client) *http.Client {
	out := &http.Client{}
	if c != nil {
		*out = *c
	}
	out.Transport = v.Transport(out.Transport)
	return out
}

// Proxy starts, until t ends, a reverse proxy to baseURL, which must be
// registered, that checks each exchange as the Transport does, and
// returns its URL: for clients that are not Go, such as the JavaScript
// SDKs. A mismatch is answered 502 with the reason, and fails the test
// that registered baseURL when it ends. The proxy keeps the client's Host
// header (the space of a request may be in it).
func (v *Validator) Proxy(t testing.TB, baseURL string) string {
	t.Helper()
	target, err := url.Parse(baseURL)
	if err != nil {
		t.Fatalf("openapitest: proxy to %q: %v", baseURL, err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
			// The body, held so that the Transport can check it.
			if r.In.Body != nil && r.In.Body != http.NoBody {
				b, err := io.ReadAll(r.In.Body)
				if err != nil {
					b = nil
				}
				r.Out.Body = io.NopCloser(bytes.NewReader(b))
				r.Out.ContentLength = int64(len(b))
				r.Out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
			}
		},
		Transport: v.Transport(nil),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

type transport struct {
	v    *Validator
	next http.RoundTripper
}

// RoundTrip sends req and checks the exchange. A mismatch is returned as
// an error without the response: a test helper fails on it at once, with
// the request and what the document misses, rather than on some later
// assertion. (net/http asks RoundTrippers to return the response whatever
// its status; this one is for tests, where a response the document does
// not describe is a failure.)
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, skip := req.Context().Value(uncheckedKey{}).(string); skip {
		return t.next.RoundTrip(req)
	}
	base, err := baseOf(req.URL.String())
	if err != nil {
		return nil, err
	}
	t.v.mu.Lock()
	api, ok := t.v.bases[base]
	t.v.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("openapitest: %s %s: %s is not a registered gateway API: register it (Validator.Register) or mark the request openapitest.Unchecked, saying why", req.Method, req.URL, base)
	}
	// The request's body, for the check, from a copy: the original goes
	// out as it is. A body without GetBody (a stream) is not checked, nor
	// are the Events API's, which the document leaves free: copying a
	// large event would slow the test for nothing.
	var reqBody []byte
	bodyKnown := req.Body == nil || req.Body == http.NoBody
	if req.GetBody != nil && !bodyKnown && api != EventsAPI {
		bodyKnown = true
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		reqBody, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	// The response's body is read only when the document has a schema
	// for it: a function's answer (any content) passes as it comes.
	var body []byte
	if t.v.bodySchema(api, req, resp.StatusCode, resp.Header.Get("Content-Type")) {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("openapitest: %s %s: read the response: %w", req.Method, req.URL, err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	if !bodyKnown {
		req = req.WithContext(context.WithValue(req.Context(), bodyUnknownKey{}, true))
	}
	if err := t.v.Check(req.Context(), api, req, reqBody, resp.StatusCode, resp.Header, body); err != nil {
		t.v.mu.Lock()
		t.v.failures[base] = append(t.v.failures[base], err.Error())
		t.v.mu.Unlock()
		return nil, err
	}
	t.v.mu.Lock()
	t.v.checked[base]++
	t.v.total++
	t.v.mu.Unlock()
	return resp, nil
}

// Check checks one exchange with api: req (whose body is reqBody) answered
// with status, header and body.
func (v *Validator) Check(ctx context.Context, api API, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	route, params, err := v.route(api, req)
	what := fmt.Sprintf("%s %s (%s) answered %d", req.Method, req.URL.RequestURI(), api, status)
	if err != nil {
		// Not in the document: fine if the gateway says it has no such
		// endpoint, or refused the request before routing it.
		if nerr := v.checkNoEndpoint(status, header, body); nerr != nil {
			return fmt.Errorf("openapitest: %s, and %s has no operation %s for this path (%v): %v. "+
				"If this is a new endpoint, describe it in %s under paths: the path, the method, its parameters, request body and every response status with its body",
				what, DocumentPath, req.Method, err, nerr, DocumentPath)
		}
		return nil
	}
	op := route.Operation
	where := fmt.Sprintf("operation %s (%s %s)", op.OperationID, strings.ToUpper(route.Method), route.Path)
	if req.Method == http.MethodHead {
		// openapi3filter does not look at HEAD responses: their bodies
		// are empty. The status must still be documented.
		if op.Responses.Status(status) == nil && op.Responses.Default() == nil {
			return fmt.Errorf("openapitest: %s: status %d is not documented: add responses: %q to %s in %s", what, status, fmt.Sprint(status), where, DocumentPath)
		}
		return nil
	}
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	}
	opts.WithCustomSchemaErrorFunc(v.schemaError)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	rin.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, rin); err != nil {
		if op.Responses.Status(status) == nil && op.Responses.Default() == nil {
			return fmt.Errorf("openapitest: %s: status %d is not documented: add responses: %q to %s in %s, with its body", what, status, fmt.Sprint(status), where, DocumentPath)
		}
		return fmt.Errorf("openapitest: %s: the response does not match %s in %s: %s. Describe what the gateway answers there (a new field goes into the response's schema under components/schemas)",
			what, where, DocumentPath, describe(err))
	}
	if status >= 200 && status < 300 {
		// The gateway took this request: the document must take it too
		// (its body too, when it was read).
		if _, unknown := ctx.Value(bodyUnknownKey{}).(bool); unknown || api == EventsAPI {
			reqOpts := *opts
			reqOpts.ExcludeRequestBody = true
			opts = &reqOpts
		}
		r := req.Clone(ctx)
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		if reqBody == nil {
			r.Body = http.NoBody
		}
		if api == ConfigAPI {
			// The Configuration API reads every body as JSON, whatever
			// its Content-Type says (curl -d sends a form type), as the
			// document says; its request bodies are described as JSON.
			r.Header.Set("Content-Type", "application/json")
		}
		in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Errorf("openapitest: %s: the gateway took the request, but %s in %s refuses it: %s. Describe the request as the gateway takes it (parameters, request body schema)",
				what, where, DocumentPath, describe(err))
		}
	}
	return nil
}

// bodySchema reports whether the document has a schema for the body of
// the answer to req with status and contentType, or cannot tell (the
// route is not in the document: the check needs the body then).
func (v *Validator) bodySchema(api API, req *http.Request, status int, contentType string) bool {
	route, _, err := v.route(api, req)
	if err != nil {
		return true
	}
	resp := route.Operation.Responses.Status(status)
	if resp == nil {
		resp = route.Operation.Responses.Default()
	}
	if resp == nil || resp.Value == nil {
		return true
	}
	mt := resp.Value.Content.Get(contentType)
	return mt == nil || mt.Schema != nil
}

// route finds the operation of req in the document.
func (v *Validator) route(api API, req *http.Request) (*routers.Route, map[string]string, error) {
	if api == EventsAPI {
		op := v.events.GetOperation(req.Method)
		if op == nil {
			return nil, nil, routers.ErrMethodNotAllowed
		}
		return &routers.Route{Spec: v.doc, Path: v.eventsPath, PathItem: v.events, Method: req.Method, Operation: op},
			map[string]string{"path": req.URL.Path}, nil
	}
	// The router matches the path alone: the document's servers name
	// the default ports, not the test's.
	r := req.Clone(req.Context())
	r.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	r.Host = ""
	route, params, err := v.config.FindRoute(r)
	if err != nil {
		return nil, nil, err
	}
	for name, value := range params {
		if value == "" {
			// The router lets a last parameter be empty
			// (/v1/functions/ for /v1/functions/{functionId}); the
			// gateway's does not.
			return nil, nil, fmt.Errorf("path parameter %s is empty: %w", name, routers.ErrPathNotFound)
		}
	}
	return route, params, nil
}

// checkNoEndpoint accepts the answers of the Configuration API to a
// request for an endpoint it does not have: 404 "no endpoint …" or 405
// from its router, 401 or 503 from the middleware before it, each with
// the error body.
func (v *Validator) checkNoEndpoint(status int, header http.Header, body []byte) error {
	var e struct {
		Error  string `json:"error"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("Content-Type %q", ct)
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Message != e.Error {
		return fmt.Errorf("body %.200q is not the error body", body)
	}
	switch {
	case status == http.StatusNotFound && strings.HasPrefix(e.Error, "no endpoint "):
	case status == http.StatusMethodNotAllowed && strings.Contains(e.Error, " is not allowed on "):
	case status == http.StatusUnauthorized, status == http.StatusServiceUnavailable:
	default:
		return fmt.Errorf("the gateway did not say the endpoint does not exist (%q)", e.Error)
	}
	return nil
}

// schemaError renders a schema error as where it is, why, and the schema
// of the document that refused it, without the schema and value dumps of
// kin-openapi's default message.
func (v *Validator) schemaError(err *openapi3.SchemaError) string {
	msg := fmt.Sprintf("at /%s: %s", strings.Join(err.JSONPointer(), "/"), err.Reason)
	if err.Origin != nil {
		msg += " (" + err.Origin.Error() + ")"
	}
	for name, ref := range v.doc.Components.Schemas {
		if ref.Value == err.Schema {
			msg += " [components/schemas/" + name + "]"
			break
		}
	}
	return msg
}

// describe renders a validation error of openapi3filter.
func describe(err error) string {
	var re *openapi3filter.ResponseError
	var qe *openapi3filter.RequestError
	switch {
	case errors.As(err, &re):
		if re.Err == nil {
			return re.Reason
		}
		return re.Reason + ": " + multi(re.Err)
	case errors.As(err, &qe):
		return qe.Error()
	}
	return err.Error()
}

func multi(err error) string {
	if me, ok := err.(openapi3.MultiError); ok {
		const most = 5
		parts := make([]string, 0, most+1)
		for i, e := range me {
			if i == most {
				parts = append(parts, fmt.Sprintf("and %d more", len(me)-most))
				break
			}
			parts = append(parts, multi(e))
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}
