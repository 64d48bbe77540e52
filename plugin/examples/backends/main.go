// Command backends is an Event Gateway backend-source plugin: service
// discovery from a file. The file (its path in BACKENDS_FILE) holds a JSON
// object {"space/functionId": [{"url": ..., "weight": ...}, ...]}; it is
// read on each pull and watched for changes, which are pushed.
//
//	go build -o /tmp/backends ./plugin/examples/backends
//	BACKENDS_FILE=/etc/event-gateway/backends.json event-gateway -plugin /tmp/backends
package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/event-gateway/event-gateway/plugin"
)

type fileSource struct {
	path string
	log  *slog.Logger
}

func (s fileSource) read() (map[string][]plugin.Backend, error) {
	b, err := os.ReadFile(s.path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m map[string][]plugin.Backend
	return m, json.Unmarshal(b, &m)
}

// Backends answers a pull from the file as it is now.
func (s fileSource) Backends(space, functionID string) ([]plugin.Backend, bool, error) {
	m, err := s.read()
	if err != nil {
		return nil, false, err
	}
	bs, ok := m[space+"/"+functionID]
	return bs, ok, nil
}

// WatchBackends polls the file and pushes what changed: the backends of
// a function added or changed, nil for a function no longer in it.
func (s fileSource) WatchBackends(ctx context.Context, push func(space, functionID string, backends []plugin.Backend)) {
	var last map[string][]plugin.Backend
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := s.read()
		if err != nil {
			s.log.Warn("backends file unreadable", "error", err)
		} else {
			for k, bs := range m {
				if old, ok := last[k]; !ok || !slices.Equal(old, bs) {
					space, fn, _ := strings.Cut(k, "/")
					push(space, fn, bs)
				}
			}
			for k := range last {
				if _, ok := m[k]; !ok {
					space, fn, _ := strings.Cut(k, "/")
					push(space, fn, nil)
				}
			}
			last = m
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	plugin.ServeKinds(plugin.Kinds{Backends: fileSource{path: os.Getenv("BACKENDS_FILE"), log: log}})
}
