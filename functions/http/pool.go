package httpfn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/functions/upstream"
)

// pool is the Invoker of a function with several backends. It picks one
// backend per call (canary split, then the balance policy, or the
// selector plugin, within the chosen version group), calls it through the
// Provider's shared transport like a one-url function, and judges the
// outcome for passive health. An active health check, when configured,
// runs in a goroutine that Close stops.
//
// Its backends may change while it serves (a function with discovery,
// upstream.go): they are a backendSet, replaced whole, read once per call.
type pool struct {
	id  string
	log *slog.Logger
	p   *Provider
	set atomic.Pointer[backendSet]

	policy  string
	canary  string // the canary version, "" without a canary
	percent uint64 // canary share, 0 to 100
	split   atomic.Uint64
	active  *Active // nil without an active check

	hashHeader, hashParam string
	least                 bool // the policy counts calls in flight
	// sel is the selector plugin, nil without one: the pool's own policy
	// then chooses, and no call is timed.
	sel upstream.Selector

	failures    int32
	ejection    time.Duration
	maxEjection time.Duration

	// A function with discovery (upstream.go): where the source knows it,
	// and the backends it was configured with, which apply whenever the
	// source does not know it.
	discovery  bool
	space      string
	configured []Backend
	mu         sync.Mutex // serialises changes of set
	pushed     bool       // set came from a push: a pull answered later is older

	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// backendSet is the backends of a pool at one time.
type backendSet struct {
	all []*backend
	// groups[0] holds the backends of the stable version(s), groups[1]
	// those of the canary version (nil without a canary).
	groups [2]*group
}

// backend is one endpoint of a pool. Its health is shared with the
// backend of the same URL in the sets that replace this one, so that a
// change of the list does not forgive an ejection.
type backend struct {
	idx     int // in backendSet.all, below MaxBackends (64)
	inv     *invoker
	url     string
	weight  int
	version string
	// seed is the backend's hash for rendezvous hashing: of its URL, so
	// that every gateway instance, and every version of the function's
	// configuration that keeps the backend, maps a key the same way.
	seed  uint64
	probe *url.URL // nil without an active check
	*health
}

// health is what a pool knows of a backend's state.
type health struct {
	outstanding atomic.Int64
	// Passive health: consecutive failed calls; the end of the last
	// ejection (Unix nanoseconds, 0 never), kept once it has passed; the
	// ejections since the backend was last healthy for a while, which
	// makes each ejection twice as long as the one before.
	fails     atomic.Int32
	until     atomic.Int64
	ejections atomic.Int32
	// down is set by the active check. probeFails and probePasses are
	// only touched by the prober, one round at a time.
	down                    atomic.Bool
	probeFails, probePasses int
	// What a selector is told, counted only when there is one: calls and
	// failed calls, and a moving average of the calls' durations.
	calls, failed atomic.Uint64
	latency       atomic.Int64
}

// choice is the state of one choice of a backend: the backends already
// tried by the call (bit idx), and the time, read on first need: most
// calls find no ejection and read no clock.
type choice struct {
	skip uint64
	now  int64
}

// available reports whether b may be called now.
func (b *backend) available(c *choice) bool {
	if b.down.Load() || c.skip&(1<<b.idx) != 0 {
		return false
	}
	u := b.until.Load()
	if u == 0 {
		return true
	}
	if c.now == 0 {
		c.now = time.Now().UnixNano()
	}
	return c.now >= u
}

// group is the backends of one version group and the state of its
// balance policy.
type group struct {
	backends []*backend
	policy   string
	equal    bool // every weight is the same
	rr       atomic.Uint64
	mu       sync.Mutex // guards current
	current  []int      // smooth weighted round robin
}

// newPool builds the invoker of function id with configuration c, which
// has passed Validate, over c's backends (or its url, for a function with
// discovery).
func (p *Provider) newPool(id string, c *Config) *pool {
	pl := &pool{id: id, log: p.log.With("functionId", id), p: p, sel: p.sel, discovery: c.Discovery}
	if c.HashOn != "" {
		pl.hashHeader, pl.hashParam, _ = parseHashOn(c.HashOn)
	}
	pass := Passive{}
	if c.Health != nil && c.Health.Passive != nil {
		pass = *c.Health.Passive
	}
	pl.failures = int32(orDefault(pass.Failures, DefaultPassiveFailures))
	pl.ejection, _ = duration("", pass.Ejection, DefaultEjection, 0, math.MaxInt64)
	pl.maxEjection, _ = duration("", pass.MaxEjection, max(DefaultMaxEjection, pl.ejection), 0, math.MaxInt64)
	if c.Health != nil {
		pl.active = c.Health.Active
	}
	pl.policy = c.Balance
	if pl.policy == "" {
		pl.policy = BalanceWeighted
	}
	pl.least = pl.policy == BalanceLeastOutstanding
	if c.Canary != nil {
		pl.canary = c.Canary.Version
		pl.percent = uint64(c.Canary.Percent)
	}
	pl.configured = c.Backends
	if c.URL != "" {
		pl.configured = []Backend{{URL: c.URL}}
	}
	pl.set.Store(pl.build(pl.configured, nil))
	pl.ctx, pl.cancel = context.WithCancel(context.Background())
	if pl.active != nil {
		pl.wg.Add(1)
		go pl.probeLoop(pl.ctx, p, pl.active)
	}
	return pl
}

// build makes the set of backends bcs, taking the health of each backend
// of old (nil for none) that it keeps.
func (pl *pool) build(bcs []Backend, old *backendSet) *backendSet {
	s := &backendSet{}
	var was map[string]*health
	if old != nil {
		was = make(map[string]*health, len(old.all))
		for _, b := range old.all {
			was[b.url] = b.health
		}
	}
	for _, bc := range bcs {
		b := &backend{idx: len(s.all), url: bc.URL, weight: 1, version: bc.Version, seed: mix(xxhash.Sum64String(bc.URL))}
		if bc.Weight != nil {
			b.weight = *bc.Weight
		}
		if b.health = was[bc.URL]; b.health == nil {
			b.health = new(health)
		}
		b.inv = pl.p.URLInvoker(bc.URL).(*invoker)
		if pl.active != nil {
			raw := bc.ProbeURL
			if raw == "" && b.inv.u != nil {
				u := *b.inv.u
				u.Path, u.RawPath, u.RawQuery = pl.active.Path, "", ""
				raw = u.String()
			}
			b.probe, _ = url.Parse(raw)
		}
		s.all = append(s.all, b)
		gi := 0
		if pl.canary != "" && bc.Version == pl.canary {
			gi = 1
		}
		if s.groups[gi] == nil {
			s.groups[gi] = &group{policy: pl.policy, equal: true}
		}
		g := s.groups[gi]
		if len(g.backends) > 0 && g.backends[0].weight != b.weight {
			g.equal = false
		}
		g.backends = append(g.backends, b)
		g.current = append(g.current, 0)
	}
	if s.groups[0] == nil {
		// Every backend is the canary's (discovered backends, which
		// have no version, replaced the stable ones), or there is none.
		s.groups[0], s.groups[1] = s.groups[1], nil
	}
	return s
}

// current is the pool's backends now.
func (pl *pool) current() *backendSet { return pl.set.Load() }

var (
	_ functions.Invoker = (*pool)(nil)
	_ functions.Affine  = (*pool)(nil)
)

// AffinityOn names the header or path parameter the pool hashes calls on;
// both are empty unless its balance is "hash".
func (pl *pool) AffinityOn() (header, param string) { return pl.hashHeader, pl.hashParam }

// Close stops the active health check and the function's discovery, if
// any. Calls in flight finish, and the pool keeps serving calls, with the
// backends and the health it last knew.
func (pl *pool) Close() error {
	pl.closed.Do(func() {
		if pl.discovery {
			pl.p.unwatch(pl)
		}
		pl.cancel()
		pl.wg.Wait()
	})
	return nil
}

// Invoke calls one available backend, or fails with ErrNoBackend. A
// backend that refuses the connection has received nothing: the call
// then goes to another available backend, if there is one.
func (pl *pool) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	set := pl.current()
	key, h, keyed := pl.key(ctx, payload)
	var tried uint64
	var refused error
	for {
		b, err := pl.choose(ctx, set, key, h, keyed, tried)
		if err != nil {
			return nil, err
		}
		if b == nil {
			if refused != nil {
				return nil, refused
			}
			if len(set.all) == 0 {
				return nil, fmt.Errorf("%w: it has no backend (discovery found none, and none is configured)", functions.ErrNoBackend)
			}
			return nil, fmt.Errorf("%w: its %d backends are ejected or unhealthy", functions.ErrNoBackend, len(set.all))
		}
		counted := pl.least || pl.sel != nil
		if counted {
			b.outstanding.Add(1)
		}
		var began time.Time
		if pl.sel != nil {
			began = time.Now()
		}
		out, err := b.inv.Invoke(ctx, payload)
		if counted {
			b.outstanding.Add(-1)
		}
		if pl.sel != nil {
			b.measure(time.Since(began), err != nil && backendFailed(ctx, err))
		}
		pl.observe(ctx, b, err)
		if err == nil || !notConnected(err) || ctx.Err() != nil {
			return out, err
		}
		tried |= 1 << b.idx
		refused = err
	}
}

// notConnected reports whether err is the failure to connect to a
// backend, before anything of the call was sent.
func notConnected(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// key returns the call's affinity key and its hash, and whether it has
// one: never unless the pool hashes.
func (pl *pool) key(ctx context.Context, payload []byte) (key string, h uint64, keyed bool) {
	if pl.hashHeader == "" && pl.hashParam == "" {
		return "", 0, false
	}
	key, ok := functions.AffinityKey(ctx)
	if !ok {
		// The caller did not look (an asynchronous delivery).
		key, _ = keyFromPayload(payload, pl.hashHeader, pl.hashParam)
	}
	if key == "" {
		return "", 0, false
	}
	return key, xxhash.Sum64String(key), true
}

// choose picks the backend of a call with affinity key key, of hash h
// (if keyed), among those of set not in skip: nil when none is
// available. It fails only when the selector plugin does.
func (pl *pool) choose(ctx context.Context, set *backendSet, key string, h uint64, keyed bool, skip uint64) (*backend, error) {
	first, second := set.groups[0], set.groups[1]
	if first == nil {
		return nil, nil // no backend at all
	}
	if second != nil && pl.canaryTurn(h, keyed) {
		first, second = second, first
	}
	c := choice{skip: skip}
	if b, err := pl.pickIn(ctx, first, key, h, keyed, &c); b != nil || err != nil {
		return b, err
	}
	if second != nil {
		// The chosen version has no backend to call: the other takes
		// its share rather than the call fail.
		return pl.pickIn(ctx, second, key, h, keyed, &c)
	}
	return nil, nil
}

// pickIn picks an available backend of g: the selector's choice when
// there is a selector and a choice to make, else the group's policy's.
func (pl *pool) pickIn(ctx context.Context, g *group, key string, h uint64, keyed bool, c *choice) (*backend, error) {
	if pl.sel != nil {
		if b, err := pl.selectIn(ctx, g, key, c); b != nil || err != nil {
			return b, err
		}
	}
	return g.pick(h, keyed, c), nil
}

// canaryTurn reports whether a call goes to the canary version. A keyed
// call is decided by its key, so that a user stays on one version; the
// others take exactly percent of every hundred calls, spread evenly.
func (pl *pool) canaryTurn(h uint64, keyed bool) bool {
	if keyed {
		return mix(h^canarySalt)%100 < pl.percent
	}
	n := pl.split.Add(1) - 1
	return (n+1)*pl.percent/100 > n*pl.percent/100
}

// canarySalt decorrelates the canary split from the choice of a backend.
const canarySalt = 0x9e3779b97f4a7c15

// pick chooses an available backend of the group by its policy.
func (g *group) pick(h uint64, keyed bool, c *choice) *backend {
	switch {
	case g.policy == BalanceHash && keyed:
		return g.rendezvous(h, c)
	case g.policy == BalanceRoundRobin || (g.equal && g.policy != BalanceLeastOutstanding):
		// Equal weights make smooth weighted round robin plain round
		// robin, which needs no lock.
		n := g.rr.Add(1) - 1
		for i := range g.backends {
			if b := g.backends[(n+uint64(i))%uint64(len(g.backends))]; b.available(c) {
				return b
			}
		}
		return nil
	case g.policy == BalanceLeastOutstanding && g.equal:
		return g.leastOutstanding(c)
	case g.policy == BalanceLeastOutstanding:
		// Unequal weights: a strict least-outstanding choice would send
		// every call to the heaviest backend while calls are few. Each
		// backend's weight is divided by its calls in flight plus one
		// instead, as Envoy's least-request does: idle backends share by
		// weight, a busy one gets less.
		return g.smoothWeighted(c, true)
	default: // weighted, and hash without a key
		return g.smoothWeighted(c, false)
	}
}

// smoothWeighted is nginx's smooth weighted round robin over the available
// backends: each call raises every backend's current weight by its weight
// and takes the highest, which then drops by the total. Over any run of
// total calls each backend gets exactly its weight's worth, interleaved
// rather than in bursts.
//
// With byLoad each weight is first divided by the backend's calls in
// flight plus one (scaled, so that it stays a whole number of at least 1).
func (g *group) smoothWeighted(c *choice, byLoad bool) *backend {
	g.mu.Lock()
	defer g.mu.Unlock()
	best, total := -1, 0
	for i, b := range g.backends {
		if !b.available(c) {
			continue
		}
		w := b.weight
		if byLoad {
			w = max(w*loadScale/int(b.outstanding.Load()+1), 1)
		}
		g.current[i] += w
		total += w
		if best < 0 || g.current[i] > g.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	g.current[best] -= total
	return g.backends[best]
}

// loadScale keeps the weights divided by load whole numbers.
const loadScale = 1024

// leastOutstanding takes the available backend with the fewest calls in
// flight (the weights are equal), starting the scan at a rotating place so that
// ties are spread.
func (g *group) leastOutstanding(c *choice) *backend {
	n := len(g.backends)
	start := int(g.rr.Add(1) % uint64(n))
	var best *backend
	var bestOut int64
	for i := range n {
		b := g.backends[(start+i)%n]
		if !b.available(c) {
			continue
		}
		if out := b.outstanding.Load(); best == nil || out < bestOut {
			best, bestOut = b, out
		}
	}
	return best
}

// rendezvous is weighted rendezvous (highest random weight) hashing: each
// available backend scores the key, the highest score wins. Adding a
// backend moves only the keys it now wins, about 1/n of them, and an
// ejected backend's keys spread over the others while every other key
// stays put.
func (g *group) rendezvous(h uint64, c *choice) *backend {
	var best *backend
	bestScore := math.Inf(-1)
	var bestRaw uint64
	for _, b := range g.backends {
		if !b.available(c) {
			continue
		}
		x := mix(h ^ b.seed)
		if g.equal {
			if best == nil || x > bestRaw {
				best, bestRaw = b, x
			}
			continue
		}
		// Score w / -ln(u), u uniform in (0, 1): a backend of weight w
		// wins w/total of the keys.
		u := (float64(x>>11) + 0.5) / (1 << 53)
		if s := float64(b.weight) / -math.Log(u); best == nil || s > bestScore {
			best, bestScore = b, s
		}
	}
	return best
}

// mix is the finalizer of splitmix64: it spreads the bits of x, so that
// the hashes of a key with different seeds are independent.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// keyFromPayload takes the affinity key from the http event in payload
// (any envelope keeps the request in "data"), for a call whose caller
// set none: an asynchronous delivery.
func keyFromPayload(payload []byte, header, param string) (string, bool) {
	var env struct {
		Data struct {
			Headers map[string]string `json:"headers"`
			Params  map[string]string `json:"params"`
		} `json:"data"`
	}
	if json.Unmarshal(payload, &env) != nil {
		return "", false
	}
	if header != "" {
		for k, v := range env.Data.Headers {
			if strings.EqualFold(k, header) {
				return v, true
			}
		}
		return "", false
	}
	v, ok := env.Data.Params[param]
	return v, ok
}

// observe records the outcome of a call of b for passive health.
func (pl *pool) observe(ctx context.Context, b *backend, err error) {
	if err == nil || !backendFailed(ctx, err) {
		if b.fails.Load() != 0 {
			b.fails.Store(0)
		}
		if ej := b.ejections.Load(); ej > 0 && err == nil {
			// Healthy for as long as its last ejection lasted since it
			// ended: the next ejection starts short again.
			now := time.Now().UnixNano()
			if now-b.until.Load() > int64(pl.ejectionFor(ej)) {
				b.ejections.Store(0)
			}
		}
		return
	}
	n := b.fails.Add(1)
	if n < pl.failures || !b.fails.CompareAndSwap(n, 0) {
		return // not yet, or another call is ejecting it
	}
	now := time.Now().UnixNano()
	if b.until.Load() > now {
		return // ejected already: these are calls made before
	}
	ej := b.ejections.Add(1)
	d := pl.ejectionFor(ej)
	b.until.Store(now + int64(d))
	pl.log.Warn("backend ejected: it gets no calls for a while", "backend", b.url, "failures", n, "ejectedFor", d, "ejections", ej, "error", err)
}

// ejectionFor is how long the ej-th ejection in a row lasts.
func (pl *pool) ejectionFor(ej int32) time.Duration {
	d := pl.ejection
	for i := int32(1); i < ej && d < pl.maxEjection; i++ {
		d *= 2
	}
	return min(d, pl.maxEjection)
}

// backendFailed reports whether err, the outcome of a call, speaks against
// the backend: it could not be reached, did not answer in time, or
// answered with a 5xx status. A 4xx is the event's problem, a response
// too large or a loop the function's; a call cancelled by its caller says
// nothing.
func backendFailed(ctx context.Context, err error) bool {
	var se *StatusError
	switch {
	case errors.As(err, &se):
		return se.Code >= 500
	case errors.Is(err, functions.ErrResponseTooLarge), errors.Is(err, functions.ErrLoopDetected):
		return false
	case errors.Is(ctx.Err(), context.Canceled), errors.Is(err, context.Canceled):
		return false
	}
	return true
}

// StatusError is the non-2xx status a function answered with. Invokers
// return it wrapped with functions.ErrFunctionFailed.
type StatusError struct{ Code int }

func (e *StatusError) Error() string { return fmt.Sprintf("http status %d", e.Code) }

// probeLoop runs the active health check until ctx is cancelled: a round
// at once, then one every interval.
func (pl *pool) probeLoop(ctx context.Context, p *Provider, a *Active) {
	defer pl.wg.Done()
	interval, _ := duration("", a.Interval, DefaultProbeInterval, 0, math.MaxInt64)
	timeout, _ := duration("", a.Timeout, min(DefaultProbeTimeout, interval), 0, math.MaxInt64)
	fails, passes := orDefault(a.Failures, DefaultProbeFailures), orDefault(a.Passes, DefaultProbePasses)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, b := range pl.current().all {
			if b.probe == nil {
				continue
			}
			wg.Go(func() { pl.probeOne(ctx, p, b, timeout, fails, passes) })
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeOne probes b once and marks it down or up.
func (pl *pool) probeOne(ctx context.Context, p *Provider, b *backend, timeout time.Duration, fails, passes int) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, b.probe.String(), nil)
	ok := false
	var why string
	if err == nil {
		var resp *http.Response
		if resp, err = p.rt.RoundTrip(req); err == nil {
			discard(resp.Body)
			ok = resp.StatusCode >= 200 && resp.StatusCode <= 299
			why = resp.Status
		}
	}
	if ctx.Err() != nil {
		return // closing: the outcome says nothing
	}
	if err != nil {
		why = Classify(pctx, err, "probe").Error()
	}
	if ok {
		b.probeFails = 0
		b.probePasses++
		if b.down.Load() && b.probePasses >= passes {
			b.down.Store(false)
			pl.log.Info("backend healthy again: its probe passed", "backend", b.url, "probe", b.probe.String())
		}
		return
	}
	b.probePasses = 0
	b.probeFails++
	if !b.down.Load() && b.probeFails >= fails {
		b.down.Store(true)
		pl.log.Warn("backend unhealthy: its probe failed, it gets no calls", "backend", b.url, "probe", b.probe.String(), "result", why)
	}
}
