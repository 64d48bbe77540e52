// Command observer is an Event Gateway observer plugin written against the
// plugin kinds: it refuses events whose request carries the header
// X-Deny, and counts the function calls it sees. (plugin/example is the
// same kind written as before there were kinds, with plugin.Serve; both
// work.)
//
//	go build -o /tmp/observer ./plugin/examples/observer
//	go run ./cmd/event-gateway -dev -plugin /tmp/observer
package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"

	"github.com/event-gateway/event-gateway/plugin"
)

type observer struct {
	log   *slog.Logger
	calls int // React is called for one event at a time per subscription type
}

func (o *observer) Subscriptions() []plugin.Subscription {
	return []plugin.Subscription{
		{EventType: plugin.EventReceived, Type: plugin.Sync},
		{EventType: plugin.FunctionInvoked, Type: plugin.Async},
	}
}

func (o *observer) React(ev plugin.Event) error {
	if ev.Event == plugin.EventReceived {
		var d struct {
			Headers map[string]string `json:"headers"`
		}
		if err := json.Unmarshal(ev.Data, &d); err == nil && d.Headers["X-Deny"] != "" {
			return errors.New("denied by the observer plugin")
		}
		return nil
	}
	o.calls++
	o.log.Info("function invoked", "calls", o.calls)
	return nil
}

func main() {
	plugin.ServeKinds(plugin.Kinds{Observer: &observer{log: slog.New(slog.NewJSONHandler(os.Stderr, nil))}})
}
