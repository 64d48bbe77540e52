// Package subscriptions holds the Subscription model, its validation, the
// path rules of http subscriptions and the configuration service that
// stores subscriptions.
package subscriptions

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router/pipeline"
)

// The built-in event types.
const (
	// EventHTTP subscriptions answer HTTP requests synchronously.
	EventHTTP = "http"
	// EventInvoke subscriptions allow synchronous invocation by function id.
	EventInvoke = "invoke"
)

// Subscription routes an event (on a path) to a function.
type Subscription struct {
	ID         string `json:"subscriptionId"`
	Event      string `json:"event"`
	FunctionID string `json:"functionId"`
	// Method is set for http subscriptions only.
	Method string `json:"method,omitempty"`
	Path   string `json:"path"`
	// CORS is set for http subscriptions that enable CORS.
	CORS *CORS `json:"cors,omitempty"`
	// Retry overrides the gateway's retry policy for the asynchronous
	// deliveries of this subscription (custom and system events).
	Retry *Retry `json:"retry,omitempty"`

	// The fields below are set by the spaces API (the second generation);
	// subscriptions of the first generation leave them out.

	// Type is Sync or Async. Empty means what the event implies: http
	// subscriptions are synchronous, the others asynchronous.
	Type string `json:"type,omitempty"`
	// Envelope is the form in which the function receives events: one of
	// the Envelope constants. Empty means EnvelopeLegacy.
	Envelope string `json:"envelope,omitempty"`
	// Metadata is the user's own labels, for filtering lists.
	Metadata map[string]string `json:"metadata,omitempty"`

	// The pipeline (router/pipeline), in both generations.

	// Filter is an event pattern: only events it matches reach the
	// function (router/pipeline/filter has the syntax).
	Filter json.RawMessage `json:"filter,omitempty"`
	// Transform is JavaScript defining transform(event, context), which
	// returns the event to deliver, or null to drop it.
	Transform string `json:"transform,omitempty"`
	// TransformResponse is JavaScript defining
	// transformResponse(response, context), which returns the response
	// to send: synchronous subscriptions only.
	TransformResponse string `json:"transformResponse,omitempty"`
}

// Pipeline returns the subscription's pipeline fields.
func (s *Subscription) Pipeline() pipeline.Spec {
	return pipeline.Spec{Filter: s.Filter, Transform: s.Transform, TransformResponse: s.TransformResponse}
}

// Subscription types.
const (
	// Sync subscriptions answer the request that carries the event.
	Sync = "sync"
	// Async subscriptions get the event delivered from the durable queue;
	// the sender is answered 202 once it is stored.
	Async = "async"
)

// Envelopes a function can receive events in.
const (
	// EnvelopeLegacy is the first generation's envelope
	// {event, id, receivedAt, data, dataType}.
	EnvelopeLegacy = "legacy"
	// EnvelopeCloudEvents01 is CloudEvents v0.1, as the 0.9-generation
	// clients expect.
	EnvelopeCloudEvents01 = "cloudevents-0.1"
	// EnvelopeCloudEvents10 is CloudEvents 1.0 in structured JSON.
	EnvelopeCloudEvents10 = "cloudevents-1.0"
)

// IsSync reports whether the subscription answers requests synchronously.
func (s *Subscription) IsSync() bool {
	if s.Type != "" {
		return s.Type == Sync
	}
	return s.Event == EventHTTP || s.Event == EventInvoke
}

// NeedsEventType reports whether the subscription's event type must be
// registered in its space: that of a custom event, subscribed to through
// the spaces API with a type (sync or async). Subscriptions of the first
// generation, and those of the spaces API's first clients that name an
// event without a type, predate event types and need none.
func (s *Subscription) NeedsEventType() bool {
	return s.Type != "" && s.Event != EventHTTP && s.Event != EventInvoke && !strings.HasPrefix(s.Event, systemPrefix)
}

// systemPrefix starts the names of the gateway's system events, which
// exist without being registered.
const systemPrefix = "gateway."

// EnvelopeOrLegacy returns the subscription's envelope.
func (s *Subscription) EnvelopeOrLegacy() string {
	if s.Envelope == "" {
		return EnvelopeLegacy
	}
	return s.Envelope
}

// Retry is how a failed asynchronous delivery is retried: up to
// MaxAttempts tries in all, waiting InitialBackoff before the first retry
// and doubling (with jitter) up to MaxBackoff. Durations are strings such
// as "30s". Fields left out take the gateway's defaults.
type Retry struct {
	MaxAttempts    int    `json:"maxAttempts,omitempty"`
	InitialBackoff string `json:"initialBackoff,omitempty"`
	MaxBackoff     string `json:"maxBackoff,omitempty"`
}

// Bounds of a retry policy.
const (
	MaxRetryAttempts = 100
	MaxRetryBackoff  = 24 * time.Hour
)

// Durations returns the backoffs, zero for those left out. Normalize has
// validated them.
func (r *Retry) Durations() (initial, max time.Duration) {
	initial, _ = time.ParseDuration(r.InitialBackoff)
	max, _ = time.ParseDuration(r.MaxBackoff)
	return initial, max
}

func (r *Retry) validate() error {
	if r.MaxAttempts < 0 || r.MaxAttempts > MaxRetryAttempts {
		return errkind.New(errkind.Invalid, "retry.maxAttempts must be from 1 to %d", MaxRetryAttempts)
	}
	parse := func(field, v string) (time.Duration, error) {
		if v == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Millisecond || d > MaxRetryBackoff {
			return 0, errkind.New(errkind.Invalid, "retry.%s %q must be a duration from 1ms to %v, such as \"30s\"", field, v, MaxRetryBackoff)
		}
		return d, nil
	}
	initial, err := parse("initialBackoff", r.InitialBackoff)
	if err != nil {
		return err
	}
	max, err := parse("maxBackoff", r.MaxBackoff)
	if err != nil {
		return err
	}
	if initial > 0 && max > 0 && initial > max {
		return errkind.New(errkind.Invalid, "retry.initialBackoff %s is longer than retry.maxBackoff %s", r.InitialBackoff, r.MaxBackoff)
	}
	return nil
}

// CORS is the cross-origin configuration of an http subscription.
type CORS struct {
	// Origins may contain '*' to stand for any run of characters.
	Origins          []string `json:"origins"`
	Methods          []string `json:"methods"`
	Headers          []string `json:"headers"`
	AllowCredentials bool     `json:"allowCredentials"`
}

// The CORS defaults that fill fields left out of a "cors" object.
var (
	defaultCORSOrigins = []string{"*"}
	defaultCORSMethods = []string{"HEAD", "GET", "POST"}
	defaultCORSHeaders = []string{"Origin", "Accept", "Content-Type"}
)

var httpMethods = map[string]bool{
	"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "HEAD": true, "OPTIONS": true,
}

// idNamespace makes subscription ids name-based UUIDs (version 5) of what
// makes a subscription unique, so the same subscription always gets the same
// id and creating it twice collides on one etcd key.
var idNamespace = uuid.MustParse("5f1b7a4e-3c52-4d0e-9a43-2b9f0f6c1e07")

// Normalize validates s and brings it to its stored form in a space:
// method upper case, path normalized, CORS defaults filled in, id derived.
// It returns the parsed path segments.
func (s *Subscription) Normalize(space string) ([]Segment, error) {
	if err := functions.ValidateID("event", s.Event); err != nil {
		return nil, err
	}
	if err := functions.ValidateID("functionId", s.FunctionID); err != nil {
		return nil, err
	}
	path, segs, err := ParsePath(s.Path)
	if err != nil {
		return nil, err
	}
	s.Path = path
	s.Method = strings.ToUpper(s.Method)

	switch s.Envelope {
	case "", EnvelopeLegacy, EnvelopeCloudEvents01, EnvelopeCloudEvents10:
	default:
		return nil, errkind.New(errkind.Invalid, "envelope %q is not one of %q, %q, %q", s.Envelope, EnvelopeLegacy, EnvelopeCloudEvents01, EnvelopeCloudEvents10)
	}
	if err := functions.ValidateMetadata(s.Metadata); err != nil {
		return nil, err
	}
	switch s.Type {
	case "":
	case Sync, Async:
		if s.Event == EventInvoke && s.Type != Sync {
			return nil, errkind.New(errkind.Invalid, "invoke subscriptions are synchronous")
		}
	default:
		return nil, errkind.New(errkind.Invalid, "type %q is not %q or %q", s.Type, Sync, Async)
	}
	if err := s.normalizePipeline(); err != nil {
		return nil, err
	}

	switch {
	case s.Event == EventHTTP && s.Type == Async:
		return s.normalizeAsyncHTTP(space, segs)
	case s.Event != EventHTTP && s.Event != EventInvoke && s.Type == Sync:
		return s.normalizeSyncEvent(space, segs)
	case s.Event != EventHTTP:
		if s.Method != "" && s.Method != "POST" {
			return nil, errkind.New(errkind.Invalid, "method applies to http subscriptions only (%s events are always POSTed)", s.Event)
		}
		s.Method = ""
		if s.CORS != nil {
			return nil, errkind.New(errkind.Invalid, "cors applies to http subscriptions only (%s events accept any origin)", s.Event)
		}
		if !IsStatic(segs) {
			return nil, errkind.New(errkind.Invalid, "path of a %s subscription cannot have parameters", s.Event)
		}
		if s.Retry != nil {
			if s.Event == EventInvoke {
				return nil, errkind.New(errkind.Invalid, "retry applies to asynchronous deliveries, and invoke is synchronous")
			}
			if err := s.Retry.validate(); err != nil {
				return nil, err
			}
		}
		s.ID = newID(space, "event\x00"+s.Event+"\x00"+s.FunctionID+"\x00"+s.Path)
		return segs, nil
	}

	if err := s.checkMethod(); err != nil {
		return nil, err
	}
	if s.Retry != nil {
		return nil, errkind.New(errkind.Invalid, "retry applies to asynchronous deliveries, and http subscriptions are synchronous")
	}
	if s.CORS != nil {
		if err := s.CORS.normalize(); err != nil {
			return nil, err
		}
	}
	s.ID = newID(space, "http\x00"+s.Method+"\x00"+s.Path)
	return segs, nil
}

// normalizePipeline checks the filter and the scripts by compiling them,
// as the router will, and stores the filter compacted.
func (s *Subscription) normalizePipeline() error {
	if f := bytes.TrimSpace(s.Filter); len(f) == 0 || bytes.Equal(f, []byte("null")) {
		s.Filter = nil
	}
	if s.TransformResponse != "" && !s.IsSync() {
		return errkind.New(errkind.Invalid, "transformResponse applies to synchronous subscriptions, whose function's response is sent back; this one is asynchronous")
	}
	if _, err := pipeline.Compile(s.Pipeline(), pipeline.Options{}); err != nil {
		return errkind.Wrap(errkind.Invalid, err, "%s", err)
	}
	if s.Filter != nil {
		var b bytes.Buffer
		if err := json.Compact(&b, s.Filter); err == nil {
			s.Filter = b.Bytes()
		}
	}
	return nil
}

// checkMethod checks the method of a subscription that needs one.
func (s *Subscription) checkMethod() error {
	if s.Method == "" {
		return errkind.New(errkind.Invalid, "method is required for %s subscriptions", s.Event)
	}
	if !httpMethods[s.Method] {
		return errkind.New(errkind.Invalid, "method %q is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS", s.Method)
	}
	return nil
}

// normalizeAsyncHTTP: an asynchronous subscription to http requests gets a
// copy of every request to its method and path, answered 202 if no
// synchronous subscription answers it. Any number of functions may
// subscribe so; the path is static, as for custom events.
func (s *Subscription) normalizeAsyncHTTP(space string, segs []Segment) ([]Segment, error) {
	if err := s.checkMethod(); err != nil {
		return nil, err
	}
	if s.CORS != nil {
		return nil, errkind.New(errkind.Invalid, "cors of an http route belongs to its synchronous subscription or to a CORS configuration")
	}
	if !IsStatic(segs) {
		return nil, errkind.New(errkind.Invalid, "path of an asynchronous http subscription cannot have parameters")
	}
	if s.Retry != nil {
		if err := s.Retry.validate(); err != nil {
			return nil, err
		}
	}
	s.ID = newID(space, "async-http\x00"+s.FunctionID+"\x00"+s.Method+"\x00"+s.Path)
	return segs, nil
}

// normalizeSyncEvent: a synchronous subscription to a custom event answers
// the request that carries an event of that type to its method and path,
// as an http subscription answers a plain request. One function per event
// type, method and path.
func (s *Subscription) normalizeSyncEvent(space string, segs []Segment) ([]Segment, error) {
	if s.Method == "" {
		s.Method = "POST"
	}
	if err := s.checkMethod(); err != nil {
		return nil, err
	}
	if s.CORS != nil {
		return nil, errkind.New(errkind.Invalid, "cors of an event's route belongs to a CORS configuration")
	}
	if s.Retry != nil {
		return nil, errkind.New(errkind.Invalid, "retry applies to asynchronous deliveries, and this subscription is synchronous")
	}
	s.ID = newID(space, "sync-event\x00"+s.Event+"\x00"+s.Method+"\x00"+s.Path)
	return segs, nil
}

// newID derives a subscription id from what makes the subscription unique
// in its space. The space is part of the name, so two spaces never share
// an id (ids name queue subjects and dead letters, which all spaces
// share), except for the default space, whose ids are derived as before
// spaces existed: subscriptions stored then keep the ids their users hold.
func newID(space, unique string) string {
	if space != functions.DefaultSpace {
		unique = "space\x00" + space + "\x00" + unique
	}
	return uuid.NewSHA1(idNamespace, []byte(unique)).String()
}

func (c *CORS) normalize() error {
	fill := func(field string, v *[]string, def []string) error {
		if *v == nil {
			*v = append([]string(nil), def...)
			return nil
		}
		if len(*v) == 0 {
			return errkind.New(errkind.Invalid, "cors.%s is an empty list: leave it out for the defaults", field)
		}
		for _, s := range *v {
			if strings.TrimSpace(s) == "" {
				return errkind.New(errkind.Invalid, "cors.%s has an empty entry", field)
			}
		}
		return nil
	}
	if err := fill("origins", &c.Origins, defaultCORSOrigins); err != nil {
		return err
	}
	if err := fill("methods", &c.Methods, defaultCORSMethods); err != nil {
		return err
	}
	if err := fill("headers", &c.Headers, defaultCORSHeaders); err != nil {
		return err
	}
	for i, m := range c.Methods {
		m = strings.ToUpper(m)
		if !httpMethods[m] {
			return errkind.New(errkind.Invalid, "cors.methods: %q is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS", m)
		}
		c.Methods[i] = m
	}
	if c.AllowCredentials {
		for _, o := range c.Origins {
			if o == "*" {
				// Browsers refuse credentials with a wildcard origin.
				return errkind.New(errkind.Invalid, "cors.allowCredentials needs explicit origins, not \"*\"")
			}
		}
	}
	return nil
}
