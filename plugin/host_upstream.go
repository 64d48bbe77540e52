package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/event-gateway/event-gateway/functions/upstream"
	"github.com/event-gateway/event-gateway/internal/errkind"
)

// backendsPollWait is how long a long poll for pushed backends waits in
// the plugin for a change before it answers with none. The poll's own
// bound is this plus the plugin timeout: a plugin that does not answer
// by then is hung, and restarted.
const backendsPollWait = 20 * time.Second

// BackendSource returns the backend-source plugins as one
// upstream.Source, nil when there are none. Pushed backends come first,
// from whichever plugin pushed them first; a pull asks the plugins in the
// order they were given to the host, and the first that knows the
// function answers.
func (h *Host) BackendSource() upstream.Source {
	if h == nil || h.sources == nil {
		return nil
	}
	return h.sources
}

// sources is the backend-source plugins and what they pushed.
type sources struct {
	procs     []*proc
	overrides upstream.Overrides
}

func (s *sources) Backends(ctx context.Context, space, functionID string) ([]upstream.Backend, bool, error) {
	if bs, ok := s.overrides.Get(space, functionID); ok {
		return bs, true, nil
	}
	for _, p := range s.procs {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		var reply BackendsReply
		err := p.invoke(func(c *conn) (err error) {
			reply, err = c.backends.backends(BackendsArgs{Space: space, FunctionID: functionID})
			return err
		})
		if err == nil && reply.Err != "" {
			err = fmt.Errorf("the source's error: %s", reply.Err)
		}
		if err != nil {
			if p.failOpen {
				// The configured backends, or the next source's.
				p.log.Warn("backend source could not answer: ignored (fail open)", "space", space, "functionId", functionID, "error", err)
				continue
			}
			return nil, false, errkind.Wrap(errkind.Unavailable, fmt.Errorf("plugin %s: %w", p.name, err), "a plugin could not say where the function is, retry later")
		}
		if reply.Found {
			return reply.Backends, true, nil
		}
	}
	return nil, false, nil
}

func (s *sources) Watch(ctx context.Context, f func(upstream.Update)) {
	s.overrides.Watch(ctx, f)
}

// pollBackends long-polls a backend-source plugin for the backends it
// pushes, for as long as the plugin runs, and records them in o. After a
// restart it asks for the whole state again, which replaces what the
// previous run pushed; while the plugin is down, what it pushed last
// stays in force.
func (p *proc) pollBackends(o *upstream.Overrides) {
	var after, gen uint64
	for {
		p.mu.RLock()
		c, g := p.conn, p.gen
		p.mu.RUnlock()
		if c == nil {
			select {
			case <-p.stop:
				return
			case <-time.After(restartMin / 2):
			}
			continue
		}
		if g != gen {
			after, gen = 0, g
		}
		type result struct {
			r   ChangesReply
			err error
		}
		ch := make(chan result, 1)
		go func() {
			r, err := c.backends.changes(ChangesArgs{After: after, Wait: backendsPollWait})
			ch <- result{r, err}
		}()
		t := time.NewTimer(backendsPollWait + p.timeout)
		select {
		case <-p.stop:
			t.Stop()
			return // the call ends when the process is killed
		case <-t.C:
			p.fail(fmt.Errorf("no answer to a poll for backends within %v", backendsPollWait+p.timeout))
			continue
		case res := <-ch:
			t.Stop()
			if res.err != nil {
				p.fail(res.err)
				continue
			}
			o.Apply(p.name, res.r.Updates, res.r.Full)
			after = res.r.Version
		}
	}
}

// Selector returns the selector plugin, nil when there is none.
func (h *Host) Selector() upstream.Selector {
	if h == nil || h.chooser == nil {
		return nil
	}
	return *h.chooser
}

// selector is a selector plugin as an upstream.Selector.
type selector struct{ p *proc }

func (s selector) Select(ctx context.Context, key string, backends []upstream.BackendStat) (int, error) {
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	var reply SelectReply
	err := s.p.invoke(func(c *conn) (err error) {
		reply, err = c.selector.choose(SelectArgs{Key: key, Backends: backends})
		return err
	})
	if err == nil && reply.Err != "" {
		err = fmt.Errorf("the selector's error: %s", reply.Err)
	}
	if err == nil && (reply.Index < -1 || reply.Index >= len(backends)) {
		err = fmt.Errorf("the selector chose backend %d of %d", reply.Index, len(backends))
	}
	if err != nil {
		if s.p.failOpen {
			return -1, nil // the provider's own policy
		}
		return -1, errkind.Wrap(errkind.Unavailable, fmt.Errorf("plugin %s: %w", s.p.name, err), "a plugin could not choose a backend, retry later")
	}
	return reply.Index, nil
}
