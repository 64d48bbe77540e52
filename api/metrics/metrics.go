// Package metrics holds the gateway's Prometheus metrics. Everything is
// registered on a registry the caller owns: nothing global. It knows
// nothing of the router or the functions: what they report arrives as
// plain values (ids, a result already classified).
package metrics

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/event-gateway/event-gateway/internal/httpx"
)

// Metrics records what the gateway does.
type Metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	reqDuration *prometheus.HistogramVec
	invocations *prometheus.CounterVec
	invDuration *prometheus.HistogramVec
	pluginCalls *prometheus.HistogramVec
}

const ns = "eventgateway"

// New creates the metrics on a new registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "requests_total",
			Help: "Requests answered, by API (events, config), kind (http, invoke, custom, preflight, config) and status code.",
		}, []string{"api", "kind", "status"}),
		reqDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "request_duration_seconds",
			Help:    "Time to answer a request, by API and kind.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. 16s
		}, []string{"api", "kind"}),
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "function_invocations_total",
			Help: "Function calls, by space, function, provider and result (ok, failed, timeout).",
		}, []string{"space", "function", "provider", "result"}),
		invDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "function_duration_seconds",
			Help:    "Duration of function calls, by space, function and provider.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1ms .. 32s
		}, []string{"space", "function", "provider"}),
	}
	m.pluginCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "plugin_call_duration_seconds",
		Help:    "Calls to plugins (React), by plugin and result (ok, vetoed, failed).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1ms .. 3.3s
	}, []string{"plugin", "result"})
	reg.MustRegister(m.requests, m.reqDuration, m.invocations, m.invDuration, m.pluginCalls)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Request records one answered request.
func (m *Metrics) Request(api, kind string, status int, d time.Duration) {
	m.requests.WithLabelValues(api, kind, statusLabel(status)).Inc()
	m.reqDuration.WithLabelValues(api, kind).Observe(d.Seconds())
}

// statusLabel is strconv.Itoa(code) without an allocation for the codes
// the gateway answers often: Itoa allocates for any number above 99.
func statusLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 201:
		return "201"
	case 202:
		return "202"
	case 204:
		return "204"
	case 400:
		return "400"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 409:
		return "409"
	case 413:
		return "413"
	case 499:
		return "499"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}

// Invoked records one function call of a space and its result: "ok",
// "timeout" or "failed". The caller classifies the result, so that this
// package needs nothing of the functions' errors.
func (m *Metrics) Invoked(space, functionID, provider string, d time.Duration, result string) {
	m.invocations.WithLabelValues(space, functionID, provider, result).Inc()
	m.invDuration.WithLabelValues(space, functionID, provider).Observe(d.Seconds())
}

// PluginCall records one call to a plugin.
func (m *Metrics) PluginCall(plugin string, d time.Duration, result string) {
	m.pluginCalls.WithLabelValues(plugin, result).Observe(d.Seconds())
}

// Gauge registers a gauge whose value is read from f at each scrape.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, f))
}

// Counter registers a counter whose value is read from f at each scrape.
func (m *Metrics) Counter(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, f))
}

// Instrument records every request next answers, under the API name; kind
// tells the kind of a request.
func (m *Metrics) Instrument(api string, kind func(*http.Request) string, next http.Handler) http.Handler {
	c := &requestSeries{m: m, api: api}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := httpx.Wrap(w)
		next.ServeHTTP(rec, r)
		c.observe(kind(r), rec.Status, time.Since(start))
	})
}

// requestSeries records the requests of one API as Request does, through
// a cache of the series of each kind and status: WithLabelValues hashes
// the label values and takes the vector's read lock, shared by every
// core, twice per request. The cache is a map replaced whole when a
// series is added (rarely: there are a few kinds and statuses), so that
// reading it takes no lock.
type requestSeries struct {
	m     *Metrics
	api   string
	mu    sync.Mutex // serializes additions
	known atomic.Pointer[map[seriesKey]series]
}

type seriesKey struct {
	kind   string
	status int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (c *requestSeries) observe(kind string, status int, d time.Duration) {
	k := seriesKey{kind, status}
	s, ok := c.lookup(k)
	if !ok {
		s = c.add(k)
	}
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
}

func (c *requestSeries) lookup(k seriesKey) (series, bool) {
	if known := c.known.Load(); known != nil {
		s, ok := (*known)[k]
		return s, ok
	}
	return series{}, false
}

func (c *requestSeries) add(k seriesKey) series {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.lookup(k); ok {
		return s
	}
	s := series{
		requests: c.m.requests.WithLabelValues(c.api, k.kind, statusLabel(k.status)),
		duration: c.m.reqDuration.WithLabelValues(c.api, k.kind),
	}
	var known map[seriesKey]series
	if old := c.known.Load(); old != nil {
		known = maps.Clone(*old)
	} else {
		known = make(map[seriesKey]series)
	}
	known[k] = s
	c.known.Store(&known)
	return s
}

// QueueStats are the delivery queue's figures, read once per scrape.
type QueueStats struct {
	Enqueued, Delivered, Retried, DeadLettered, Dropped, Replayed float64
	// Postponed counts deliveries not made for want of room (a full
	// bulkhead, an open breaker, a plugin restarting), put back without
	// spending an attempt.
	Postponed float64
	// Pending and DeadLetters are negative when the store could not be
	// asked; they are then left out.
	Pending, DeadLetters float64
}

// Queue registers the delivery queue's metrics, read from f at each
// scrape with one call.
func (m *Metrics) Queue(f func() QueueStats) {
	m.reg.MustRegister(&queueCollector{f: f, d: newQueueDescs()})
}

type queueCollector struct {
	f func() QueueStats
	d queueDescs
}

type queueDescs struct {
	enqueued, delivered, retried, dead, dropped, replayed, postponed, pending, deadKept *prometheus.Desc
}

func newQueueDescs() queueDescs {
	return queueDescs{
		enqueued:  prometheus.NewDesc(ns+"_deliveries_enqueued_total", "Deliveries of custom and system events stored by this instance.", nil, nil),
		delivered: prometheus.NewDesc(ns+"_deliveries_delivered_total", "Deliveries made by this instance.", nil, nil),
		retried:   prometheus.NewDesc(ns+"_deliveries_retried_total", "Failed delivery attempts scheduled for a retry by this instance.", nil, nil),
		dead:      prometheus.NewDesc(ns+"_deliveries_dead_lettered_total", "Deliveries this instance moved to the dead letters.", nil, nil),
		dropped:   prometheus.NewDesc(ns+"_deliveries_dropped_total", "Deliveries dropped because their subscription was deleted.", nil, nil),
		replayed:  prometheus.NewDesc(ns+"_deadletters_replayed_total", "Dead letters put back in the queue through this instance.", nil, nil),
		postponed: prometheus.NewDesc(ns+"_deliveries_postponed_total", "Deliveries not made for want of room (their function's bulkhead full or breaker open, a plugin restarting) and put back without spending an attempt, by this instance.", nil, nil),
		pending:   prometheus.NewDesc(ns+"_deliveries_pending", "Deliveries not yet done, over all instances sharing the store: waiting, in progress or waiting for a retry.", nil, nil),
		deadKept:  prometheus.NewDesc(ns+"_deadletters", "Dead letters kept in the store.", nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	d := c.d
	for _, x := range []*prometheus.Desc{d.enqueued, d.delivered, d.retried, d.dead, d.dropped, d.replayed, d.postponed, d.pending, d.deadKept} {
		ch <- x
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	s, d := c.f(), c.d
	ch <- prometheus.MustNewConstMetric(d.enqueued, prometheus.CounterValue, s.Enqueued)
	ch <- prometheus.MustNewConstMetric(d.delivered, prometheus.CounterValue, s.Delivered)
	ch <- prometheus.MustNewConstMetric(d.retried, prometheus.CounterValue, s.Retried)
	ch <- prometheus.MustNewConstMetric(d.dead, prometheus.CounterValue, s.DeadLettered)
	ch <- prometheus.MustNewConstMetric(d.dropped, prometheus.CounterValue, s.Dropped)
	ch <- prometheus.MustNewConstMetric(d.replayed, prometheus.CounterValue, s.Replayed)
	ch <- prometheus.MustNewConstMetric(d.postponed, prometheus.CounterValue, s.Postponed)
	if s.Pending >= 0 {
		ch <- prometheus.MustNewConstMetric(d.pending, prometheus.GaugeValue, s.Pending)
	}
	if s.DeadLetters >= 0 {
		ch <- prometheus.MustNewConstMetric(d.deadKept, prometheus.GaugeValue, s.DeadLetters)
	}
}
