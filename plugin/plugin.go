// Package plugin is the plugin system of Event Gateway. Plugins are separate
// programs, run and supervised by the gateway through hashicorp/go-plugin.
// One plugin implements one or more kinds (Kinds) and calls ServeKinds
// from its main function; a plain observer, which reacts to system events,
// implements Reacter and calls Serve (see the package example).
//
// Observer: a Sync subscription runs inline: an error from React stops the
// event. An Async one never slows the gateway down.
//
// Modifier: changes the event before a function is called, the response
// of a synchronous call, and may turn a failed call into a response.
//
// Backend source: gives the backends of functions, pulled and pushed.
//
// Selector: chooses the backend of each call.
//
// Metric sink: receives the gateway's measurements in batches.
package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/rpc"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/event-gateway/event-gateway/router/event"
)

// The system events a plugin can subscribe to.
const (
	// EventReceived: an event reached the Events API. Data: {space, event, path, headers}.
	EventReceived = "gateway.event.received"
	// FunctionInvoking: a function is about to be called. Data: {space, event, functionId}.
	FunctionInvoking = "gateway.function.invoking"
	// FunctionInvoked: a function call succeeded. Data: {space, event, functionId, result}.
	FunctionInvoked = "gateway.function.invoked"
	// FunctionInvocationFailed: a function call failed. Data: {space, event, functionId, error}.
	FunctionInvocationFailed = "gateway.function.invocationFailed"
)

// Type says whether a subscription may stop the event.
type Type int

const (
	// Sync reacters run inline; an error from React stops the event.
	Sync Type = iota
	// Async reacters are called in the background; their errors are logged.
	Async
)

func (t Type) String() string {
	if t == Sync {
		return "sync"
	}
	return "async"
}

// Subscription asks for one system event type.
type Subscription struct {
	EventType string
	Type      Type
}

// Event is a system event: the envelope every function receives, whose
// Data holds the system event's fields as JSON. It is the event package's
// type under the name plugins have always used.
type Event = event.Event

// Reacter is what a plugin implements.
type Reacter interface {
	// Subscriptions lists the system events the plugin wants. It is asked
	// once, when the plugin starts.
	Subscriptions() []Subscription
	// React handles one system event. For a Sync subscription, a non-nil
	// error stops the event, and its message is shown to the client.
	React(event Event) error
}

// handshake is shared by the gateway and its plugins: a program started
// with a different one refuses to run as a plugin.
func handshake() goplugin.HandshakeConfig {
	return goplugin.HandshakeConfig{
		ProtocolVersion:  1,
		MagicCookieKey:   "EVENT_GATEWAY_PLUGIN",
		MagicCookieValue: "reacter",
	}
}

// The names under which each kind is dispensed. A plugin serves one name
// per kind it implements; the gateway asks for each and takes the ones
// the plugin has. A plugin built before there were kinds serves
// "reacter" alone, and is an observer.
const (
	pluginName   = "reacter"
	modifierName = "modifier"
	backendsName = "backends"
	selectorName = "selector"
	metricsName  = "metrics"
)

// Serve runs r as a plugin. It is the whole main function of a plugin, and
// returns only when the gateway stops the plugin. It is ServeKinds with an
// observer alone.
func Serve(r Reacter) {
	ServeKinds(Kinds{Observer: r})
}

// Kinds are what one plugin implements; it leaves the others nil.
type Kinds struct {
	// Observer reacts to system events.
	Observer Reacter
	// Modifier changes events, responses and errors: it implements one
	// or more of RequestModifier, ResponseModifier and ErrorModifier.
	Modifier any
	// Backends gives the backends of functions (service discovery). It
	// may implement BackendWatcher too, to push changes.
	Backends BackendSource
	// Selector chooses a backend for each call.
	Selector Selector
	// Metrics receives the gateway's measurements in batches.
	Metrics MetricSink
}

// pluginSet is the go-plugin set serving the kinds k implements.
func (k Kinds) pluginSet() goplugin.PluginSet {
	set := goplugin.PluginSet{}
	if k.Observer != nil {
		set[pluginName] = &reacterPlugin{impl: k.Observer}
	}
	if k.Modifier != nil {
		set[modifierName] = &modifierPlugin{impl: k.Modifier}
	}
	if k.Backends != nil {
		set[backendsName] = &backendsPlugin{impl: k.Backends}
	}
	if k.Selector != nil {
		set[selectorName] = &selectorPlugin{impl: k.Selector}
	}
	if k.Metrics != nil {
		set[metricsName] = &metricsPlugin{impl: k.Metrics}
	}
	return set
}

// ServeKinds runs a plugin of one or more kinds. It is the whole main
// function of a plugin, and returns only when the gateway stops it. It
// panics when k has no kind, or a Modifier implements none of the
// modifier interfaces: a plugin that can do nothing is a mistake.
func ServeKinds(k Kinds) {
	if k.Modifier != nil && modifierStages(k.Modifier) == (Stages{}) {
		panic(fmt.Sprintf("plugin: the Modifier %T implements none of RequestModifier, ResponseModifier, ErrorModifier", k.Modifier))
	}
	set := k.pluginSet()
	if len(set) == 0 {
		panic("plugin: ServeKinds with no kind")
	}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: handshake(),
		Plugins:         set,
	})
}

// reacterPlugin connects a Reacter to go-plugin's net/rpc transport.
type reacterPlugin struct{ impl Reacter }

func (p *reacterPlugin) Server(*goplugin.MuxBroker) (any, error) {
	return &rpcServer{impl: p.impl}, nil
}

func (p *reacterPlugin) Client(_ *goplugin.MuxBroker, c *rpc.Client) (any, error) {
	return &rpcClient{c: c}, nil
}

// rpcServer runs in the plugin process.
type rpcServer struct{ impl Reacter }

// Subscriptions is the RPC form of Reacter.Subscriptions.
func (s *rpcServer) Subscriptions(_ struct{}, out *[]Subscription) error {
	*out = s.impl.Subscriptions()
	return nil
}

// ReactReply carries the reacter's answer. A veto is an answer, not a
// transport failure, so it travels in the reply rather than as an RPC
// error.
type ReactReply struct{ Veto string }

// React is the RPC form of Reacter.React; the event travels encoded.
func (s *rpcServer) React(envelope []byte, out *ReactReply) error {
	var ev Event
	if err := json.Unmarshal(envelope, &ev); err != nil {
		return err
	}
	if err := s.impl.React(ev); err != nil {
		msg := err.Error()
		if msg == "" {
			msg = "rejected by plugin"
		}
		out.Veto = msg
	}
	return nil
}

// rpcClient runs in the gateway.
type rpcClient struct{ c *rpc.Client }

func (c *rpcClient) subscriptions() ([]Subscription, error) {
	var out []Subscription
	err := c.c.Call("Plugin.Subscriptions", struct{}{}, &out)
	return out, err
}

// errVeto marks a reacter's refusal, as opposed to a failure to ask it.
var errVeto = errors.New("vetoed")

func (c *rpcClient) react(envelope []byte) error {
	var out ReactReply
	if err := c.c.Call("Plugin.React", envelope, &out); err != nil {
		return err
	}
	if out.Veto != "" {
		return &VetoError{Msg: out.Veto}
	}
	return nil
}

// VetoError is a sync reacter's refusal of an event.
type VetoError struct{ Msg string }

func (e *VetoError) Error() string { return e.Msg }

func (e *VetoError) Is(target error) bool { return target == errVeto }
