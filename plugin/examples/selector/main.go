// Command selector is an Event Gateway selector plugin: it sends each call
// to the healthy backend with the lowest latency measured so far, trying
// each once first; with no healthy backend it leaves the choice to the
// gateway.
//
//	go build -o /tmp/selector ./plugin/examples/selector
//	event-gateway -plugin /tmp/selector
package main

import (
	"github.com/event-gateway/event-gateway/plugin"
)

type fastest struct{}

func (fastest) Select(key string, backends []plugin.BackendStat) (int, error) {
	best := -1
	for i, b := range backends {
		switch {
		case !b.Healthy:
		case b.Calls == 0:
			return i, nil // not measured yet: try it
		case best < 0 || b.Latency < backends[best].Latency:
			best = i
		}
	}
	return best, nil
}

func main() {
	plugin.ServeKinds(plugin.Kinds{Selector: fastest{}})
}
