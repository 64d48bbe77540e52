package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
)

// HostOptions configures a Host.
type HostOptions struct {
	// Paths are the plugin executables to run.
	Paths []string
	// Timeout bounds one call to a plugin of any kind. A plugin that takes longer is
	// considered hung: it is killed and restarted. Default 1s.
	Timeout time.Duration
	// FailOpen lets events through when a sync reacter cannot be asked
	// (crashed, hung, restarting). By default such events are stopped.
	// The same for the other kinds: a modifier that cannot be asked
	// leaves the call unmodified, a backend source leaves the configured
	// backends, a selector leaves the choice to the gateway.
	FailOpen bool
	// Buffer is the number of async events that may wait for each plugin.
	// Past it events are dropped and counted. Default 1000.
	Buffer int
	Logger *slog.Logger
	// MetricBatch is the most measurements sent to a metric sink in one
	// call; MetricFlush the longest one waits for its batch to fill.
	// Defaults DefaultMetricBatch and DefaultMetricFlush. A metric sink's
	// buffer holds Buffer measurements.
	MetricBatch int
	MetricFlush time.Duration
	// Observe, when set, is told of every call to a plugin: its name, how
	// long it took, and the result: "ok", "vetoed" or "failed".
	Observe func(plugin string, d time.Duration, result string)
}

// Host runs plugins and hands them system events, calls, backends and
// measurements, each to the plugins of its kind. It is safe for
// concurrent use.
type Host struct {
	plugins []*proc
	// wants maps an event type to whether any plugin subscribes to it,
	// fixed once the plugins have started.
	wants map[string]bool
	log   *slog.Logger

	sources *sources  // the backend sources; nil when none
	chooser *selector // the selector; nil when none
	sinks   []*sink   // the metric sinks
}

// ErrUnavailable is returned for sync events a failed plugin could not
// judge, when the host fails closed.
var ErrUnavailable = errors.New("plugin unavailable")

// Defaults of HostOptions.
const (
	// DefaultTimeout bounds one plugin's reaction to one system event.
	DefaultTimeout = time.Second
	// DefaultBuffer is the number of async system events that may wait
	// for each plugin.
	DefaultBuffer = 1000
)

// ErrNotRunning is the ErrUnavailable of a plugin that was not running
// when asked: it failed before and is being restarted. Unlike a plugin
// that failed while handling the event, it says nothing of the event, so
// a delivery can wait for it without spending an attempt.
var ErrNotRunning = fmt.Errorf("%w: not running, being restarted", ErrUnavailable)

// StartHost starts every plugin and asks each which kinds it implements,
// and an observer for its subscriptions. A
// plugin that cannot start is an error: the gateway should not run without
// a plugin it was told to load.
func StartHost(ctx context.Context, o HostOptions) (*Host, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MetricBatch <= 0 {
		o.MetricBatch = DefaultMetricBatch
	}
	if o.MetricFlush <= 0 {
		o.MetricFlush = DefaultMetricFlush
	}
	h := &Host{wants: make(map[string]bool), log: o.Logger}
	for _, path := range o.Paths {
		p := &proc{
			path:     path,
			name:     filepath.Base(path),
			timeout:  o.Timeout,
			failOpen: o.FailOpen,
			async:    make(chan []byte, o.Buffer),
			restart:  make(chan struct{}, 1),
			stop:     make(chan struct{}),
			observe:  o.Observe,
			log:      o.Logger.With("plugin", filepath.Base(path)),
		}
		if err := p.start(); err != nil {
			h.Close()
			return nil, fmt.Errorf("plugin %s: %w", path, err)
		}
		h.plugins = append(h.plugins, p)
		for eventType := range p.subs {
			h.wants[eventType] = true
		}
		if p.kinds.selector {
			if h.chooser != nil {
				h.Close()
				return nil, fmt.Errorf("plugin %s: a second selector (%s is one): a call has one policy", path, h.chooser.p.path)
			}
			h.chooser = &selector{p}
		}
		p.log.Info("plugin started", "kinds", p.kinds.String(), "subscriptions", len(p.subs))
		p.wg.Go(p.supervise)
		if p.kinds.observer {
			p.wg.Go(p.drainAsync)
		}
		if p.kinds.backends {
			if h.sources == nil {
				h.sources = &sources{}
			}
			h.sources.procs = append(h.sources.procs, p)
			p.wg.Go(func() { p.pollBackends(&h.sources.overrides) })
		}
		if p.kinds.metrics {
			s := &sink{p: p, buf: make(chan Measurement, o.Buffer), batch: o.MetricBatch, flush: o.MetricFlush}
			h.sinks = append(h.sinks, s)
			p.wg.Go(s.run)
		}
	}
	return h, nil
}

// Wants reports whether any plugin subscribes to the event type, so the
// gateway can skip building system events nobody reads.
func (h *Host) Wants(eventType string) bool {
	return h != nil && h.wants[eventType]
}

// React hands a system event to every plugin subscribed to its type: sync
// reacters in turn, inline; async ones through their buffers. It returns
// the first sync refusal, as a *VetoError, or ErrUnavailable when a sync
// reacter could not be asked and the host fails closed.
func (h *Host) React(ctx context.Context, eventType string, envelope []byte) error {
	if !h.Wants(eventType) {
		return nil
	}
	for _, p := range h.plugins {
		t, ok := p.subs[eventType]
		if !ok {
			continue
		}
		if t == Async {
			p.enqueue(envelope)
			continue
		}
		if err := p.reactSync(ctx, envelope); err != nil {
			return err
		}
	}
	return nil
}

// Dropped is the number of async events dropped because a plugin's buffer
// was full.
func (h *Host) Dropped() int64 {
	var n int64
	for _, p := range h.plugins {
		n += p.dropped.Load()
	}
	return n
}

// Close stops every plugin, giving each its buffered async events first,
// however long they take. See Shutdown for a bounded stop.
func (h *Host) Close() {
	h.Shutdown(context.Background())
}

// Shutdown stops every plugin. Async events still buffered are given to
// their plugins until ctx ends; then the plugins are killed (a call in
// progress fails) and what is left in their buffers is dropped. It returns
// the number of events dropped so, also logged.
func (h *Host) Shutdown(ctx context.Context) (left int) {
	if h == nil {
		return 0
	}
	counts := make(chan int, len(h.plugins))
	for _, p := range h.plugins {
		go func() { counts <- p.close(ctx) }()
	}
	for range h.plugins {
		left += <-counts
	}
	return left
}

// proc is one plugin process and its supervisor.
type proc struct {
	path, name string
	timeout    time.Duration
	failOpen   bool
	observe    func(plugin string, d time.Duration, result string)
	log        *slog.Logger
	subs       map[string]Type

	// kinds are what the plugin implements, fixed at the first start.
	kinds  kindSet
	stages Stages // of a modifier

	mu     sync.RWMutex
	client *goplugin.Client
	conn   *conn // nil while the plugin is down
	// gen counts the starts of the process, so a long poll can tell a
	// new run of the plugin from the one it asked.
	gen uint64

	async   chan []byte
	dropped atomic.Int64
	restart chan struct{} // signals the supervisor that the plugin failed
	stop    chan struct{}
	stopCtx context.Context // bounds the last deliveries, once stop is closed
	stopped atomic.Bool
	wg      sync.WaitGroup
}

// conn is the clients of the kinds a running plugin implements.
type conn struct {
	reacter  *rpcClient
	modifier *modifierClient
	backends *backendsClient
	selector *selectorClient
	metrics  *metricsClient
}

// kindSet says which kinds a plugin implements.
type kindSet struct{ observer, modifier, backends, selector, metrics bool }

func (k kindSet) String() string {
	var out []string
	for _, x := range []struct {
		has  bool
		name string
	}{{k.observer, "observer"}, {k.modifier, "modifier"}, {k.backends, "backends"}, {k.selector, "selector"}, {k.metrics, "metrics"}} {
		if x.has {
			out = append(out, x.name)
		}
	}
	return strings.Join(out, ",")
}

// clientSet is what the gateway knows how to dispense: every kind.
func clientSet() goplugin.PluginSet {
	return goplugin.PluginSet{
		pluginName:   &reacterPlugin{},
		modifierName: &modifierPlugin{},
		backendsName: &backendsPlugin{},
		selectorName: &selectorPlugin{},
		metricsName:  &metricsPlugin{},
	}
}

// dispense connects to the kinds the plugin serves. At the first start a
// kind the plugin refuses is one it does not implement (a plugin built
// before there were kinds serves the observer alone); at a restart the
// plugin must serve the same kinds as before.
func (p *proc) dispense(rpcc goplugin.ClientProtocol, first bool) (*conn, kindSet, error) {
	c := &conn{}
	var k kindSet
	for _, x := range []struct {
		name string
		had  bool
		set  func(any)
	}{
		{pluginName, p.kinds.observer, func(v any) { c.reacter, k.observer = v.(*rpcClient), true }},
		{modifierName, p.kinds.modifier, func(v any) { c.modifier, k.modifier = v.(*modifierClient), true }},
		{backendsName, p.kinds.backends, func(v any) { c.backends, k.backends = v.(*backendsClient), true }},
		{selectorName, p.kinds.selector, func(v any) { c.selector, k.selector = v.(*selectorClient), true }},
		{metricsName, p.kinds.metrics, func(v any) { c.metrics, k.metrics = v.(*metricsClient), true }},
	} {
		if !first && !x.had {
			continue
		}
		raw, err := rpcc.Dispense(x.name)
		if err != nil {
			if first && strings.Contains(err.Error(), "unknown plugin type") {
				continue
			}
			return nil, k, fmt.Errorf("connecting to its %s: %w", x.name, err)
		}
		x.set(raw)
	}
	if k == (kindSet{}) {
		return nil, k, errors.New("the program implements no kind of plugin")
	}
	return c, k, nil
}

// start launches the plugin process and connects to it.
func (p *proc) start() error {
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  handshake(),
		Plugins:          clientSet(),
		Cmd:              exec.Command(p.path),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolNetRPC},
		Logger:           newHCLogger(p.log),
		Stderr:           stderrWriter{p.log},
		StartTimeout:     10 * time.Second,
	})
	rpcc, err := client.Client()
	if err != nil {
		client.Kill()
		return err
	}
	first := p.gen == 0
	c, kinds, err := p.dispense(rpcc, first)
	if err != nil {
		client.Kill()
		return err
	}
	if first {
		// Kinds, subscriptions and stages are fixed at the first start:
		// the gateway decides from them what to build and call at all.
		p.kinds = kinds
		p.subs = map[string]Type{}
		if c.reacter != nil {
			subs, err := callTimeout(p.timeout, c.reacter.subscriptions)
			if err != nil {
				client.Kill()
				return fmt.Errorf("asking for subscriptions: %w", err)
			}
			for _, s := range subs {
				p.subs[s.EventType] = s.Type
			}
		}
		if c.modifier != nil {
			st, err := callTimeout(p.timeout, c.modifier.stages)
			if err != nil {
				client.Kill()
				return fmt.Errorf("asking for the modifier's stages: %w", err)
			}
			p.stages = st
		}
	}
	p.mu.Lock()
	p.client, p.conn = client, c
	p.gen++
	p.mu.Unlock()
	return nil
}

// callTimeout runs f, giving up after d. net/rpc calls take no context; a
// call given up on finishes in the background once the plugin is killed.
func callTimeout[T any](d time.Duration, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-t.C:
		var zero T
		return zero, fmt.Errorf("no answer within %v", d)
	}
}

// invoke calls the plugin once, through f with the running connection,
// bounded by the timeout. Any failure other than the plugin's refusal (an
// error wrapping errVeto) marks the plugin failed, so the supervisor
// restarts it, and is returned wrapping ErrUnavailable; ErrNotRunning
// when the plugin was down already.
func (p *proc) invoke(f func(*conn) error) error {
	c := p.running()
	if c == nil {
		return ErrNotRunning
	}
	began := time.Now()
	_, err := callTimeout(p.timeout, func() (struct{}, error) { return struct{}{}, f(c) })
	return p.settle(began, err)
}

// running returns the connection to the plugin, nil while it is down.
func (p *proc) running() *conn {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.conn
}

// settle reports a call made at began that ended with err, and marks the
// plugin failed unless err is nil or a refusal.
func (p *proc) settle(began time.Time, err error) error {
	if p.observe != nil {
		result := "ok"
		switch {
		case errors.Is(err, errVeto):
			result = "vetoed"
		case err != nil:
			result = "failed"
		}
		p.observe(p.name, time.Since(began), result)
	}
	if err != nil && !errors.Is(err, errVeto) {
		p.fail(err)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// react hands the plugin one system event. It is invoke written out for
// the reacter, whose calls are the most frequent: one closure per call,
// as before there were kinds, rather than two.
func (p *proc) react(envelope []byte) error {
	c := p.running()
	if c == nil {
		return ErrNotRunning
	}
	began := time.Now()
	_, err := callTimeout(p.timeout, func() (struct{}, error) { return struct{}{}, c.reacter.react(envelope) })
	return p.settle(began, err)
}

func (p *proc) reactSync(ctx context.Context, envelope []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := p.react(envelope)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errVeto):
		return err
	case p.failOpen:
		return nil
	default:
		return fmt.Errorf("plugin %s: %w", p.name, err)
	}
}

func (p *proc) enqueue(envelope []byte) {
	select {
	case p.async <- envelope:
	default:
		if n := p.dropped.Add(1); n == 1 || n%1000 == 0 {
			p.log.Warn("plugin buffer full: async system events dropped", "dropped", n)
		}
	}
}

// drainAsync feeds buffered async events to the plugin. On close it gives
// the plugin what is still buffered, then returns.
func (p *proc) drainAsync() {
	for {
		select {
		case envelope := <-p.async:
			p.reactAsync(envelope)
		case <-p.stop:
			for p.stopCtx.Err() == nil {
				select {
				case envelope := <-p.async:
					p.reactAsync(envelope)
				default:
					return
				}
			}
			return
		}
	}
}

func (p *proc) reactAsync(envelope []byte) {
	if err := p.react(envelope); err != nil && !errors.Is(err, errVeto) {
		p.log.Warn("async plugin call failed", "error", err)
	}
}

// fail marks the plugin down and wakes the supervisor.
func (p *proc) fail(err error) {
	p.mu.Lock()
	if p.conn == nil {
		p.mu.Unlock()
		return
	}
	p.conn = nil
	p.mu.Unlock()
	if !p.stopped.Load() {
		p.log.Error("plugin failed, restarting", "error", err)
	}
	select {
	case p.restart <- struct{}{}:
	default:
	}
}

// Restart pauses. A plugin that fails again soon after a restart waits
// twice as long before the next one, up to restartMax; the pause goes back
// to restartMin only once it has stayed up for restartStable. A plugin that
// crashes on every event is thus restarted less and less often, not every
// 150ms forever.
const (
	restartMin    = 100 * time.Millisecond
	restartMax    = 30 * time.Second
	restartStable = 10 * time.Second
)

// supervise restarts the plugin with backoff whenever it fails or exits.
func (p *proc) supervise() {
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	backoff := restartMin
	upSince := time.Now()
	for {
		select {
		case <-p.stop:
			return
		case <-poll.C:
			p.mu.RLock()
			exited := p.client != nil && p.client.Exited()
			p.mu.RUnlock()
			if !exited {
				continue
			}
			p.fail(errors.New("plugin process exited"))
			continue
		case <-p.restart:
		}
		if time.Since(upSince) >= restartStable {
			backoff = restartMin
		}
		for {
			p.mu.Lock()
			if p.client != nil {
				p.client.Kill()
			}
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(backoff + rand.N(backoff/2)):
			}
			pause := backoff
			backoff = min(backoff*2, restartMax)
			if err := p.start(); err != nil {
				p.log.Error("plugin restart failed", "error", err, "retryIn", backoff)
				continue
			}
			upSince = time.Now()
			p.log.Info("plugin restarted", "after", pause)
			break
		}
	}
}

// close stops the plugin, giving it its buffered async events until ctx
// ends, and returns the number of them left undelivered.
func (p *proc) close(ctx context.Context) int {
	if !p.stopped.CompareAndSwap(false, true) {
		return 0
	}
	p.stopCtx = ctx
	close(p.stop)
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// Killing the process ends a call in progress.
		p.kill()
		<-done
	}
	p.kill()
	left := len(p.async)
	if left > 0 {
		p.log.Warn("plugin stopped before it was given all its async system events: the rest are dropped", "dropped", left)
		p.dropped.Add(int64(left))
	}
	return left
}

func (p *proc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		p.client.Kill()
	}
	p.conn = nil
}
