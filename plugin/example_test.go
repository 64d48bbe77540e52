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

// stamp is a modifier that marks every synchronous response.
type stamp struct{}

func (stamp) ModifyResponse(_ plugin.Call, r plugin.Response) (plugin.Response, error) {
	h := map[string]string{"X-Served-By": "stamp"}
	for k, v := range r.Headers {
		h[k] = v
	}
	r.Headers = h
	return r, nil
}

// A plugin of several kinds serves each of them from one process: here an
// observer and a modifier that implements only the response stage.
func ExampleServeKinds() {
	plugin.ServeKinds(plugin.Kinds{Observer: logger{}, Modifier: stamp{}})
}
