package plugin_test

import (
	"log"

	"github.com/event-gateway/event-gateway/plugin"
)

// logger is a plugin that logs every event the gateway receives, without
// ever holding it up.
type logger struct{}

func (logger) Subscriptions() []plugin.Subscription {
	return []plugin.Subscription{{EventType: plugin.EventReceived, Type: plugin.Async}}
}

func (logger) React(ev plugin.Event) error {
	log.Printf("%s %s", ev.Event, ev.Data)
	return nil
}

// A plugin is a program whose main function serves its Reacter. The
// gateway starts it with -plugin=<path to the binary>.
func Example() {
	plugin.Serve(logger{})
}
