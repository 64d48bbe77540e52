package plugin

import (
	"context"
	"net/rpc"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/event-gateway/event-gateway/functions/upstream"
)

// Backend is one endpoint of a function.
type Backend = upstream.Backend

// BackendSource gives the backends of functions: Gatekeeper's upstream,
// for service discovery.
type BackendSource interface {
	// Backends answers a pull: the backends of a function, or found false
	// when the source does not know it (its configured backends apply).
	Backends(space, functionID string) (backends []Backend, found bool, err error)
}

// BackendWatcher is implemented by a BackendSource that pushes changes.
type BackendWatcher interface {
	// WatchBackends is called once, when the plugin starts, in its own
	// goroutine. It calls push with the backends of a function whenever
	// they change (nil: the source no longer knows it), until ctx ends.
	WatchBackends(ctx context.Context, push func(space, functionID string, backends []Backend))
}

// The RPC messages of a backend source.
type (
	BackendsArgs  struct{ Space, FunctionID string }
	BackendsReply struct {
		Backends []Backend
		Found    bool
		Err      string
	}
	// ChangesArgs asks for the pushed backends changed after version
	// After, waiting up to Wait for one.
	ChangesArgs struct {
		After uint64
		Wait  time.Duration
	}
	// ChangesReply is the changes, and the version they bring the gateway
	// to. Full is true when they are the whole state (After was 0, or
	// from another run of the plugin).
	ChangesReply struct {
		Version uint64
		Full    bool
		Updates []upstream.Update
	}
)

type backendsPlugin struct{ impl BackendSource }

func (p *backendsPlugin) Server(*goplugin.MuxBroker) (any, error) {
	s := &backendsServer{impl: p.impl, state: map[[2]string]pushed{}, wake: make(chan struct{})}
	if w, ok := p.impl.(BackendWatcher); ok {
		// Runs for the life of the plugin process.
		go w.WatchBackends(context.Background(), s.push)
	}
	return s, nil
}

func (p *backendsPlugin) Client(_ *goplugin.MuxBroker, c *rpc.Client) (any, error) {
	return &backendsClient{c: c}, nil
}

// backendsServer keeps the state pushed by the plugin, versioned, and
// answers the gateway's long polls from it: state, not a log, so a
// gateway that falls behind costs no memory.
type backendsServer struct {
	impl    BackendSource
	mu      sync.Mutex
	version uint64
	state   map[[2]string]pushed
	wake    chan struct{} // closed and replaced on each push
}

type pushed struct {
	backends []Backend
	version  uint64
}

func (s *backendsServer) push(space, functionID string, backends []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	s.state[[2]string{space, functionID}] = pushed{backends: backends, version: s.version}
	close(s.wake)
	s.wake = make(chan struct{})
}

func (s *backendsServer) Backends(a BackendsArgs, out *BackendsReply) error {
	bs, found, err := s.impl.Backends(a.Space, a.FunctionID)
	out.Backends, out.Found = bs, found
	if err != nil {
		out.Err = err.Error()
	}
	return nil
}

func (s *backendsServer) Changes(a ChangesArgs, out *ChangesReply) error {
	s.mu.Lock()
	if a.After == s.version {
		// Nothing new: wait for a push, or answer empty after Wait.
		wake := s.wake
		s.mu.Unlock()
		t := time.NewTimer(a.Wait)
		select {
		case <-wake:
		case <-t.C:
		}
		t.Stop()
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	// After past this run's version: the gateway knew another run.
	out.Full = a.After == 0 || a.After > s.version
	out.Version = s.version
	for k, p := range s.state {
		if out.Full || p.version > a.After {
			out.Updates = append(out.Updates, upstream.Update{Space: k[0], FunctionID: k[1], Backends: p.backends, Found: p.backends != nil})
		}
	}
	return nil
}

type backendsClient struct{ c *rpc.Client }

func (c *backendsClient) backends(a BackendsArgs) (BackendsReply, error) {
	var out BackendsReply
	err := c.c.Call("Plugin.Backends", a, &out)
	return out, err
}

func (c *backendsClient) changes(a ChangesArgs) (ChangesReply, error) {
	var out ChangesReply
	err := c.c.Call("Plugin.Changes", a, &out)
	return out, err
}
