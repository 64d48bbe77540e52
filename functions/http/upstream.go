package httpfn

import (
	"context"
	"fmt"
	"time"

	"github.com/event-gateway/event-gateway/functions/upstream"
)

// The gateway's backend-source and selector plugins (functions/upstream),
// as the Provider uses them:
//
//   - A function whose configuration says "discovery": true takes its
//     backends from the source: they are pulled when its invoker is made,
//     and replaced whenever the source pushes a change for it. While the
//     source does not know the function, the backends it was configured
//     with apply (its "url" or "backends"; none is refused with 503). A
//     function without "discovery" never asks the source: what an
//     operator stored is what is called.
//   - A selector, when loaded, chooses the backend of every call of a
//     function with several, among those available, instead of the
//     function's "balance" policy; it answers -1 to leave the choice to
//     that policy.

// pullTimeout bounds the pull of a function's backends. The source
// bounds each plugin's answer by the plugin timeout already; this is a
// backstop.
const pullTimeout = 30 * time.Second

// repullMin and repullMax bound the wait between pulls of a function's
// backends that failed (a source plugin restarting).
const (
	repullMin = time.Second
	repullMax = 30 * time.Second
)

// fnKey names a function of a space.
type fnKey struct{ space, id string }

// discover makes the pool of a function with discovery: the configured
// backends at first, then the source's.
func (p *Provider) discover(space, id string, c *Config) *pool {
	pl := p.newPool(id, c)
	pl.space = space
	if p.source == nil {
		pl.log.Warn("provider.discovery is set but no backend-source plugin is loaded: the configured backends apply", "space", space)
		return pl
	}
	// Watched before the pull, so that a push made meanwhile is not
	// lost: the pull's answer is then older, and dropped.
	p.watch(pl)
	ctx, cancel := context.WithTimeout(pl.ctx, pullTimeout)
	err := pl.pull(ctx)
	cancel()
	if err != nil {
		pl.log.Warn("backends of the function not known yet: the configured ones apply, asking again", "space", space, "error", err)
		pl.wg.Add(1)
		go pl.repull()
	}
	return pl
}

// pull asks the source for the pool's backends and applies the answer.
func (pl *pool) pull(ctx context.Context) error {
	bs, found, err := pl.p.source.Backends(ctx, pl.space, pl.id)
	if err != nil {
		return fmt.Errorf("httpfn: pull the backends of %s/%s: %w", pl.space, pl.id, err)
	}
	pl.apply(bs, found, false)
	return nil
}

// repull pulls until a pull succeeds, a push makes it moot, or the pool
// is closed, waiting longer after each failure.
func (pl *pool) repull() {
	defer pl.wg.Done()
	wait := repullMin
	for {
		t := time.NewTimer(wait)
		select {
		case <-pl.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		pl.mu.Lock()
		pushed := pl.pushed
		pl.mu.Unlock()
		if pushed {
			return
		}
		ctx, cancel := context.WithTimeout(pl.ctx, pullTimeout)
		err := pl.pull(ctx)
		cancel()
		if err == nil || pl.ctx.Err() != nil {
			return
		}
		pl.log.Warn("backends of the function still not known", "space", pl.space, "error", err, "retryIn", min(2*wait, repullMax))
		wait = min(2*wait, repullMax)
	}
}

// apply replaces the pool's backends by those the source gave (found), or
// by the configured ones (not found). A pull's answer is dropped once a
// push has been applied: it may be older.
func (pl *pool) apply(bs []upstream.Backend, found, push bool) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if !push && pl.pushed {
		return
	}
	pl.pushed = pl.pushed || push
	list := pl.configured
	if found {
		list = pl.discovered(bs)
	}
	pl.set.Store(pl.build(list, pl.current()))
	pl.log.Info("backends of the function set by discovery", "space", pl.space, "found", found, "backends", len(list))
}

// discovered turns the backends a source gave into a pool's list, leaving
// out (with a warning) what a configured list would not be allowed: a URL
// that is not http(s), twice the same URL, more than MaxBackends. Weights
// are brought within 1 to MaxWeight.
func (pl *pool) discovered(bs []upstream.Backend) []Backend {
	list := make([]Backend, 0, min(len(bs), MaxBackends))
	seen := make(map[string]bool, len(bs))
	for i, b := range bs {
		if err := ValidateURL(fmt.Sprintf("backends[%d].url", i), b.URL); err != nil {
			pl.log.Warn("discovered backend left out", "space", pl.space, "error", err)
			continue
		}
		if seen[b.URL] {
			continue
		}
		if len(list) == MaxBackends {
			pl.log.Warn("discovered backends past the limit left out", "space", pl.space, "limit", MaxBackends, "given", len(bs))
			break
		}
		seen[b.URL] = true
		w := min(max(b.Weight, 1), MaxWeight)
		list = append(list, Backend{URL: b.URL, Weight: &w})
	}
	return list
}

// watch registers pl for the source's pushes; Close unregisters it.
func (p *Provider) watch(pl *pool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := fnKey{pl.space, pl.id}
	if p.live[k] == nil {
		p.live[k] = map[*pool]struct{}{}
	}
	p.live[k][pl] = struct{}{}
}

func (p *Provider) unwatch(pl *pool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := fnKey{pl.space, pl.id}
	delete(p.live[k], pl)
	if len(p.live[k]) == 0 {
		delete(p.live, k)
	}
}

// pushed applies a change pushed by the source to the live pools of its
// function (several while a new version of the function replaces one).
func (p *Provider) pushed(u upstream.Update) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pl := range p.live[fnKey{u.Space, u.FunctionID}] {
		pl.apply(u.Backends, u.Found, true)
	}
}

// selectIn asks the selector to choose among the available backends of
// g. It returns nil without an error when there is no choice to make (at
// most one is available: the group's policy takes it, or finds none) or
// the selector leaves it to the group's policy. Ejected and unhealthy
// backends are never shown to it.
func (pl *pool) selectIn(ctx context.Context, g *group, key string, c *choice) (*backend, error) {
	avail := make([]*backend, 0, len(g.backends))
	for _, b := range g.backends {
		if b.available(c) {
			avail = append(avail, b)
		}
	}
	if len(avail) < 2 {
		return nil, nil
	}
	stats := make([]upstream.BackendStat, len(avail))
	for i, b := range avail {
		stats[i] = upstream.BackendStat{
			Backend:     upstream.Backend{URL: b.url, Weight: b.weight},
			Healthy:     true,
			Outstanding: int(b.outstanding.Load()),
			Latency:     time.Duration(b.latency.Load()),
			Calls:       b.calls.Load(),
			Failures:    b.failed.Load(),
		}
	}
	i, err := pl.sel.Select(ctx, key, stats)
	if err != nil {
		// The selector's errors are errkind.Unavailable (a synchronous
		// call answers 503) and, while it restarts, wrap
		// plugin.ErrNotRunning (a delivery waits, spending no attempt).
		return nil, fmt.Errorf("httpfn: function %s: choose a backend: %w", pl.id, err)
	}
	if i < 0 || i >= len(avail) {
		return nil, nil
	}
	return avail[i], nil
}

// latencyWeight is the weight of the last call in the moving average of
// a backend's latency: 1/8, as TCP's smoothed round-trip time.
const latencyWeight = 8

// measure records a call of d, failed or not, for the selector.
func (b *backend) measure(d time.Duration, failed bool) {
	if b.calls.Add(1) == 1 {
		b.latency.Store(int64(d))
	} else {
		// Racing calls may lose an update: an average loses little.
		old := b.latency.Load()
		b.latency.Store(old + (int64(d)-old)/latencyWeight)
	}
	if failed {
		b.failed.Add(1)
	}
}
