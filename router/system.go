package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/plugin"
	"github.com/event-gateway/event-gateway/router/event"
)

// The system events, emitted at each stage of handling an event.
const (
	SystemEventReceived            = plugin.EventReceived
	SystemFunctionInvoking         = plugin.FunctionInvoking
	SystemFunctionInvoked          = plugin.FunctionInvoked
	SystemFunctionInvocationFailed = plugin.FunctionInvocationFailed
)

// systemPath is the path functions subscribe on to receive system events.
const systemPath = "/"

// Reacters are the plugins that react to system events.
type Reacters interface {
	// Wants reports whether any plugin subscribes to the event type.
	Wants(eventType string) bool
	// React hands an encoded system event to the subscribed plugins. An
	// error stops the event: a *plugin.VetoError is a plugin's refusal;
	// anything else means a sync plugin could not be asked.
	React(ctx context.Context, eventType string, envelope []byte) error
}

// The data of the system events. Space names the space of the event or
// function, so a plugin, which sees the events of every space, can tell
// tenants apart.

type receivedData struct {
	Space   string            `json:"space"`
	Event   json.RawMessage   `json:"event"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
}

type invokingData struct {
	Space      string          `json:"space"`
	Event      json.RawMessage `json:"event"`
	FunctionID string          `json:"functionId"`
}

type invokedData struct {
	Space      string          `json:"space"`
	Event      json.RawMessage `json:"event"`
	FunctionID string          `json:"functionId"`
	// Result is the function's response: JSON as it is, other bytes as a
	// base64 string.
	Result json.RawMessage `json:"result"`
}

type failedData struct {
	Space      string          `json:"space"`
	Event      json.RawMessage `json:"event"`
	FunctionID string          `json:"functionId"`
	Error      string          `json:"error"`
}

// listening reports whether anything wants system events of this type:
// a function subscribed to it or a plugin. When nothing does, no system
// event is built at all.
func (r *Router) listening(snap *Snapshot, space, eventType string) bool {
	return len(snap.Space(space).Subscribers(eventType, systemPath)) > 0 || (r.plugins != nil && r.plugins.Wants(eventType))
}

// Received emits gateway.event.received for an event that reached the
// Events API in a space. A sync plugin's refusal comes back as an Invalid
// error with the plugin's message: the event must not go further.
func (r *Router) Received(ctx context.Context, space string, ev *event.Event, path string, headers http.Header) error {
	// Per event, so built only when debug is on: serverless run shows it
	// (docs/serverless.md).
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.LogAttrs(ctx, slog.LevelDebug, "Event received.", slog.String("space", space),
			slog.String("path", path), slog.String("event", string(ev.AppendJSON(nil))))
	}
	snap := r.Snapshot()
	if !r.listening(snap, space, SystemEventReceived) {
		return nil
	}
	return r.emitSystem(ctx, snap, space, SystemEventReceived, receivedData{
		Space: space,
		Event: ev.AppendJSON(nil), Path: path, Headers: event.FlattenHeaders(headers),
	}, errkind.Invalid)
}

// emitSystem builds one system event of a space and hands it to the
// plugins, then to the functions of the space subscribed to it. A plugin's
// refusal is returned as an error of kind veto; the functions' deliveries
// never stop anything.
func (r *Router) emitSystem(ctx context.Context, snap *Snapshot, space, eventType string, data any, veto errkind.Kind) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s: %w", eventType, err)
	}
	ev := event.Event{Event: eventType, ID: event.NewID(), ReceivedAt: time.Now().UnixMilli(), Data: raw, DataType: "application/json"}
	payload := ev.AppendJSON(make([]byte, 0, 128+len(raw)))
	if r.plugins != nil && r.plugins.Wants(eventType) {
		if err := r.plugins.React(ctx, eventType, payload); err != nil {
			var v *plugin.VetoError
			if errors.As(err, &v) {
				return errkind.Wrap(veto, err, "%s", v.Msg)
			}
			return errkind.Wrap(errkind.Unavailable, err, "a plugin could not check the event, retry later")
		}
	}
	subs := snap.Space(space).Subscribers(eventType, systemPath)
	if len(subs) == 0 {
		return nil
	}
	ds := make([]Delivery, 0, len(subs))
	for _, s := range subs {
		if !s.Pipeline.Match(payload) {
			continue
		}
		ds = append(ds, Delivery{Space: space, SubscriptionID: s.SubscriptionID, FunctionID: s.FunctionID, EventID: ev.ID, Event: eventType, Payload: payload, System: true, Revision: snap.Revision})
	}
	if len(ds) == 0 {
		return nil
	}
	if err := r.queue.Enqueue(ctx, ds); err != nil {
		// System events are a side channel: a full queue must not fail
		// the event that caused them.
		r.log.Warn("system event not delivered to functions", "space", space, "event", eventType, "subscribers", len(subs), "error", err)
	}
	return nil
}

// resultJSON makes a function's raw result fit in a JSON document.
func resultJSON(out []byte) json.RawMessage {
	if len(out) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(out) {
		return out
	}
	b, _ := json.Marshal(out) // base64
	return b
}
