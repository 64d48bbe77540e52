package plugin

import (
	"net/rpc"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/event-gateway/event-gateway/functions/upstream"
)

// BackendStat is a backend and what the gateway measured of it.
type BackendStat = upstream.BackendStat

// Selector is a load-balancing policy.
type Selector interface {
	// Select returns the index in backends of the one to call, or -1 to
	// leave the choice to the gateway's own policy. key is what a sticky
	// policy hashes, "" if the function names none.
	Select(key string, backends []BackendStat) (int, error)
}

// The RPC messages of a selector.
type (
	SelectArgs struct {
		Key      string
		Backends []BackendStat
	}
	SelectReply struct {
		Index int
		Err   string
	}
)

type selectorPlugin struct{ impl Selector }

func (p *selectorPlugin) Server(*goplugin.MuxBroker) (any, error) {
	return &selectorServer{impl: p.impl}, nil
}

func (p *selectorPlugin) Client(_ *goplugin.MuxBroker, c *rpc.Client) (any, error) {
	return &selectorClient{c: c}, nil
}

type selectorServer struct{ impl Selector }

func (s *selectorServer) Select(a SelectArgs, out *SelectReply) error {
	i, err := s.impl.Select(a.Key, a.Backends)
	out.Index = i
	if err != nil {
		out.Err = err.Error()
	}
	return nil
}

type selectorClient struct{ c *rpc.Client }

func (c *selectorClient) choose(a SelectArgs) (SelectReply, error) {
	var out SelectReply
	err := c.c.Call("Plugin.Select", a, &out)
	return out, err
}
