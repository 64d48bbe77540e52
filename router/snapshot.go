package router

import (
	"crypto/sha256"
	"log/slog"
	"time"

	"github.com/event-gateway/event-gateway/router/pipeline"

	"github.com/rs/cors"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/router/pathtree"
	"github.com/event-gateway/event-gateway/subscriptions"
	"github.com/event-gateway/event-gateway/subscriptions/eventtypes"
	"github.com/event-gateway/event-gateway/subscriptions/keys"
)

// Target is a function ready to be called.
type Target struct {
	// Space is the space of the function.
	Space    string
	Function functions.Function
	Invoker  functions.Invoker
	// Timeout bounds one call: the function's own, or the default.
	Timeout time.Duration
}

// HTTPRoute is the route of an http subscription.
type HTTPRoute struct {
	// Subscription is shared with the router's cache: do not modify it.
	Subscription *subscriptions.Subscription
	Target       *Target
	// CORS is nil when the subscription does not enable CORS.
	CORS *cors.Cors
	// Pipeline is the subscription's filter and transformations; nil
	// for none.
	Pipeline *pipeline.Pipeline
}

// Subscriber is one function subscribed to an event, asynchronously.
type Subscriber struct {
	SubscriptionID string
	FunctionID     string
	// Envelope is the form the function receives events in
	// (subscriptions.Envelope*).
	Envelope string
	// Pipeline is the subscription's filter and transformation; nil for
	// none.
	Pipeline *pipeline.Pipeline
}

// Snapshot is an immutable view of the configuration of every space,
// built from the store at one revision. Request handling reads it without
// locks.
type Snapshot struct {
	// Revision is the store revision the snapshot reflects.
	Revision int64
	// Loaded is false until the configuration has been read from the
	// store once: an empty snapshot then means "not known yet", not "no
	// subscriptions", and events must not be accepted against it.
	Loaded bool

	spaces map[string]*Space
}

// Space returns the routing table of a space, or nil when the space has
// nothing. Every method of a nil *Space finds nothing.
func (s *Snapshot) Space(name string) *Space { return s.spaces[name] }

// Space is the routing table of one space within a snapshot.
type Space struct {
	name      string
	functions map[string]*Target
	// subs holds the subscriptions of custom and system events, for
	// deliveries to check that theirs still exists and to find its retry
	// policy. Shared with the router's cache: do not modify.
	subs map[string]*subscriptions.Subscription
	// pipes holds the pipelines of the subscriptions in subs that have
	// one; nil when none has.
	pipes map[string]*pipeline.Pipeline
	// http holds one path tree per method, indexed by methodIndex.
	http [numMethods]*pathtree.Tree[*HTTPRoute]
	// events maps event name → path → subscribers.
	events map[string]map[string][]Subscriber
	// asyncHTTP maps method → path → the asynchronous subscribers of
	// http requests.
	asyncHTTP [numMethods]map[string][]Subscriber
	// syncEvents maps event name → one path tree per method of the
	// synchronous subscriptions to custom events.
	syncEvents map[string]*[numMethods]*pathtree.Tree[*HTTPRoute]
	// types holds the event types registered through the spaces API.
	types map[string]*EventType
	// cors holds one path tree per method of the space's CORS
	// configurations.
	cors [numMethods]*pathtree.Tree[*cors.Cors]
	// keys holds the digests of the space's access keys by kind.
	keys map[string]map[[sha256.Size]byte]KeyInfo
	// invoke maps path → function id → the function's invoke
	// subscription there.
	invoke map[string]map[string]*HTTPRoute
}

// numMethods is the number of methods an http subscription can have.
const numMethods = 7

// methodNames are the methods in the order of methodIndex.
var methodNames = [numMethods]string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "POST":
		return 1
	case "PUT":
		return 2
	case "PATCH":
		return 3
	case "DELETE":
		return 4
	case "HEAD":
		return 5
	case "OPTIONS":
		return 6
	}
	return -1
}

// Name returns the name of the space.
func (s *Space) Name() string {
	if s == nil {
		return ""
	}
	return s.name
}

// Function returns the target of a function, or nil.
func (s *Space) Function(id string) *Target {
	if s == nil {
		return nil
	}
	return s.functions[id]
}

// HasSubscription reports whether a subscription of a custom or system
// event exists (http subscriptions are not kept by id).
func (s *Space) HasSubscription(id string) bool {
	return s.Subscription(id) != nil
}

// Subscription returns a subscription of a custom or system event, or nil.
// Do not modify it.
func (s *Space) Subscription(id string) *subscriptions.Subscription {
	if s == nil {
		return nil
	}
	return s.subs[id]
}

// Pipeline returns the pipeline of a subscription of a custom or system
// event, or nil when it has none.
func (s *Space) Pipeline(id string) *pipeline.Pipeline {
	if s == nil {
		return nil
	}
	return s.pipes[id]
}

// MatchHTTP finds the http route of a request, filling ps with the path
// parameters.
func (s *Space) MatchHTTP(method, path string, ps *pathtree.Params) (*HTTPRoute, bool) {
	i := methodIndex(method)
	if s == nil || i < 0 || s.http[i] == nil {
		return nil, false
	}
	return s.http[i].Lookup(path, ps)
}

// Subscribers returns the subscribers of a custom event on a path. The
// slice is shared: do not modify it.
func (s *Space) Subscribers(event, path string) []Subscriber {
	if s == nil {
		return nil
	}
	return s.events[event][trimSlash(path)]
}

// AsyncHTTP returns the asynchronous subscribers of http requests to a
// method and path. The slice is shared: do not modify it.
func (s *Space) AsyncHTTP(method, path string) []Subscriber {
	i := methodIndex(method)
	if s == nil || i < 0 {
		return nil
	}
	return s.asyncHTTP[i][trimSlash(path)]
}

// MatchEvent finds the synchronous subscription to a custom event on a
// method and path, filling ps with the path parameters.
func (s *Space) MatchEvent(eventType, method, path string, ps *pathtree.Params) (*HTTPRoute, bool) {
	i := methodIndex(method)
	if s == nil || i < 0 {
		return nil, false
	}
	trees := s.syncEvents[eventType]
	if trees == nil || trees[i] == nil {
		return nil, false
	}
	return trees[i].Lookup(path, ps)
}

// EventType is a registered event type, with its authorizer when it has
// one.
type EventType struct {
	Name string
	// Authorizer is the function that authorizes events of the type; nil
	// for none. AuthorizerID names it even when the function is missing,
	// and then events of the type are refused.
	Authorizer   *Target
	AuthorizerID string
}

// builtinHTTP is the event type http.request, which every space has.
var builtinHTTP = &EventType{Name: eventtypes.HTTPRequest}

// EventType returns a registered event type of the space, or nil. The
// built-in http.request is there unless the space stored its own.
func (s *Space) EventType(name string) *EventType {
	if s != nil {
		if et := s.types[name]; et != nil {
			return et
		}
	}
	if name == eventtypes.HTTPRequest {
		return builtinHTTP
	}
	return nil
}

// RequiresKey reports whether the space has keys of a kind
// (keys.Ingest, keys.Config): then requests of that kind need one.
func (s *Space) RequiresKey(kind string) bool {
	return s != nil && len(s.keys[kind]) > 0
}

// ValidKey reports whether secret is a key of the given kind of the space.
func (s *Space) ValidKey(kind, secret string) bool {
	_, ok := s.Key(kind, secret)
	return ok
}

// KeyInfo names an access key: what the configuration history records of
// who made a change, never the secret.
type KeyInfo struct{ ID, Name string }

// Key returns the id and name of the key of the given kind of the space
// whose secret is secret, if there is one.
func (s *Space) Key(kind, secret string) (KeyInfo, bool) {
	if s == nil || secret == "" {
		return KeyInfo{}, false
	}
	k, ok := s.keys[kind][keys.Digest(secret)]
	return k, ok
}

// CORS returns the policy of the space's CORS configuration for a method
// and path, or nil.
func (s *Space) CORS(method, path string) *cors.Cors {
	i := methodIndex(method)
	if s == nil || i < 0 || s.cors[i] == nil {
		return nil
	}
	p, _ := s.cors[i].Lookup(path, nil)
	return p
}

// InvokeTarget returns the invoke subscription of a function on path, if
// the function exists and has one there. (Its CORS is nil: invoke accepts
// any origin.)
func (s *Space) InvokeTarget(path, functionID string) (*HTTPRoute, bool) {
	if s == nil {
		return nil, false
	}
	rt, ok := s.invoke[trimSlash(path)][functionID]
	return rt, ok && rt.Target != nil
}

// trimSlash drops one trailing slash, the normal form of subscription paths.
func trimSlash(p string) string {
	if len(p) > 1 && p[len(p)-1] == '/' {
		return p[:len(p)-1]
	}
	if p == "" {
		return "/"
	}
	return p
}

// subEntry is a subscription with what the snapshot build needs of it,
// computed once when the subscription arrives.
type subEntry struct {
	sub  subscriptions.Subscription
	segs []subscriptions.Segment
	cors *cors.Cors
	// pipe is compiled here, once per version of the subscription.
	pipe *pipeline.Pipeline
}

func newSubEntry(sub subscriptions.Subscription, o pipeline.Options) (*subEntry, error) {
	// A route table of 100,000 subscriptions holds as many copies of a
	// handful of event and method names: share one of each.
	switch sub.Event {
	case subscriptions.EventHTTP:
		sub.Event = subscriptions.EventHTTP
	case subscriptions.EventInvoke:
		sub.Event = subscriptions.EventInvoke
	}
	if i := methodIndex(sub.Method); i >= 0 {
		sub.Method = methodNames[i]
	}
	path, segs, err := subscriptions.ParsePath(sub.Path)
	if err != nil {
		return nil, err
	}
	// The segments are slices of the normalized path: keep that one copy.
	sub.Path = path
	pipe, err := pipeline.Compile(sub.Pipeline(), o)
	if err != nil {
		return nil, err
	}
	e := &subEntry{sub: sub, segs: segs, pipe: pipe}
	if sub.CORS != nil {
		e.cors = corsPolicy(sub.CORS.Origins, sub.CORS.Methods, sub.CORS.Headers, sub.CORS.AllowCredentials)
	}
	return e, nil
}

// corsEntry is a CORS configuration of the spaces API with what the
// snapshot build needs of it.
type corsEntry struct {
	method, path string
	segs         []subscriptions.Segment
	policy       *cors.Cors
}

// corsPolicy makes the policy of a CORS configuration.
func corsPolicy(origins, methods, headers []string, credentials bool) *cors.Cors {
	return cors.New(cors.Options{
		AllowedOrigins:   origins,
		AllowedMethods:   methods,
		AllowedHeaders:   headers,
		AllowCredentials: credentials,
	})
}

// build makes a snapshot of the cached configuration; a nil cache makes
// the empty snapshot of a router that has not read the store yet.
// Spaces that did not change since prev are taken from it as they are, so
// a change costs the rebuild of its own space only.
func build(rev int64, c *cache, prev *Snapshot, log *slog.Logger) *Snapshot {
	s := &Snapshot{Revision: rev, Loaded: c != nil, spaces: make(map[string]*Space)}
	if c == nil {
		return s
	}
	for name, sc := range c.spaces {
		if old := prev.Space(name); old != nil && !c.dirty[name] {
			s.spaces[name] = old
			continue
		}
		s.spaces[name] = buildSpace(name, sc, log)
	}
	clear(c.dirty)
	return s
}

func buildSpace(name string, c *spaceCache, log *slog.Logger) *Space {
	s := &Space{
		name:       name,
		functions:  make(map[string]*Target, len(c.fns)),
		subs:       make(map[string]*subscriptions.Subscription),
		events:     make(map[string]map[string][]Subscriber),
		syncEvents: make(map[string]*[numMethods]*pathtree.Tree[*HTTPRoute]),
		types:      make(map[string]*EventType, len(c.types)),
		invoke:     make(map[string]map[string]*HTTPRoute),
	}
	fns := c.fns
	for id, t := range fns {
		s.functions[id] = t
	}
	for _, k := range c.keys {
		if s.keys == nil {
			s.keys = make(map[string]map[[sha256.Size]byte]KeyInfo, 2)
		}
		if s.keys[k.kind] == nil {
			s.keys[k.kind] = make(map[[sha256.Size]byte]KeyInfo)
		}
		s.keys[k.kind][k.digest] = KeyInfo{ID: k.id, Name: k.name}
	}
	for name, et := range c.types {
		s.types[name] = &EventType{Name: name, AuthorizerID: et.AuthorizerID, Authorizer: fns[et.AuthorizerID]}
	}
	for id, e := range c.cors {
		i := methodIndex(e.method)
		if i < 0 {
			continue
		}
		if s.cors[i] == nil {
			s.cors[i] = new(pathtree.Tree[*cors.Cors])
		}
		if err := s.cors[i].Insert(e.segs, e.policy); err != nil {
			log.Warn("CORS configuration skipped", "space", name, "corsId", id, "method", e.method, "path", e.path, "error", err)
		}
	}
	for id, e := range c.subs {
		sub := &e.sub
		if !sub.IsSync() {
			// Only asynchronous deliveries look subscriptions up.
			s.subs[id] = sub
			if e.pipe != nil {
				if s.pipes == nil {
					s.pipes = make(map[string]*pipeline.Pipeline)
				}
				s.pipes[id] = e.pipe
			}
		}
		subscriber := Subscriber{SubscriptionID: id, FunctionID: sub.FunctionID, Envelope: sub.EnvelopeOrLegacy(), Pipeline: e.pipe}
		switch {
		case sub.Event == subscriptions.EventInvoke:
			m := s.invoke[sub.Path]
			if m == nil {
				m = make(map[string]*HTTPRoute)
				s.invoke[sub.Path] = m
			}
			m[sub.FunctionID] = &HTTPRoute{Subscription: sub, Target: fns[sub.FunctionID], Pipeline: e.pipe}
		case sub.IsSync():
			trees := &s.http
			if sub.Event != subscriptions.EventHTTP {
				trees = s.syncEvents[sub.Event]
				if trees == nil {
					trees = new([numMethods]*pathtree.Tree[*HTTPRoute])
					s.syncEvents[sub.Event] = trees
				}
			}
			t := fns[sub.FunctionID]
			i := methodIndex(sub.Method)
			if t == nil || i < 0 {
				log.Warn("synchronous subscription skipped: unknown function or method", "space", name, "subscriptionId", id, "functionId", sub.FunctionID, "method", sub.Method)
				continue
			}
			if trees[i] == nil {
				trees[i] = new(pathtree.Tree[*HTTPRoute])
			}
			if err := trees[i].Insert(e.segs, &HTTPRoute{Subscription: sub, Target: t, CORS: e.cors, Pipeline: e.pipe}); err != nil {
				// The Configuration API refuses conflicts in one
				// transaction; only a hand-edited store gets here.
				log.Warn("synchronous subscription skipped", "space", name, "subscriptionId", id, "method", sub.Method, "path", sub.Path, "error", err)
			}
		case sub.Event == subscriptions.EventHTTP:
			i := methodIndex(sub.Method)
			if i < 0 {
				continue
			}
			if s.asyncHTTP[i] == nil {
				s.asyncHTTP[i] = make(map[string][]Subscriber)
			}
			s.asyncHTTP[i][sub.Path] = append(s.asyncHTTP[i][sub.Path], subscriber)
		default:
			m := s.events[sub.Event]
			if m == nil {
				m = make(map[string][]Subscriber)
				s.events[sub.Event] = m
			}
			m[sub.Path] = append(m[sub.Path], subscriber)
		}
	}
	return s
}
