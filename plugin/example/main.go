// Command example is an Event Gateway plugin that logs every system event
// it receives. Build it and load it with -plugin:
//
//	go build -o /tmp/example-plugin ./plugin/example
//	go run ./cmd/event-gateway -dev -plugin /tmp/example-plugin
package main

import (
	"log/slog"
	"os"

	"github.com/event-gateway/event-gateway/plugin"
)

// logger reacts to every system event, asynchronously: it only watches.
type logger struct{ log *slog.Logger }

func (l logger) Subscriptions() []plugin.Subscription {
	return []plugin.Subscription{
		{EventType: plugin.EventReceived, Type: plugin.Async},
		{EventType: plugin.FunctionInvoking, Type: plugin.Async},
		{EventType: plugin.FunctionInvoked, Type: plugin.Async},
		{EventType: plugin.FunctionInvocationFailed, Type: plugin.Async},
	}
}

func (l logger) React(ev plugin.Event) error {
	l.log.Info("system event", "type", ev.Event, "id", ev.ID, "data", string(ev.Data))
	return nil
}

func main() {
	// A plugin's standard error is read by the gateway and logged there;
	// JSON lines keep their fields.
	plugin.Serve(logger{log: slog.New(slog.NewJSONHandler(os.Stderr, nil))})
}
