package main

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// loadResult is what one attack measured.
type loadResult struct {
	Requests   uint64
	Throughput float64       // successful (2xx, 3xx) responses per second
	Rate       float64       // requests sent per second
	Elapsed    time.Duration // from the first request sent to the last answer
	// Latency percentiles, from vegeta's t-digest.
	P50, P90, P99, P999, Max time.Duration
	Codes                    map[string]int // status code → count; "0" is a transport error
	Errors                   []string       // distinct errors, a few
	Success                  float64        // share of 2xx/3xx
}

// failures counts the requests that did not get a 2xx or 3xx answer.
func (r loadResult) failures() uint64 {
	var n uint64
	for c, k := range r.Codes {
		code, _ := strconv.Atoi(c)
		if code < 200 || code >= 400 {
			n += uint64(k)
		}
	}
	return n
}

// count returns how many answers had status code.
func (r loadResult) count(code int) uint64 { return uint64(r.Codes[strconv.Itoa(code)]) }

// loader is the load generator for one target: vegeta's attacker over an
// HTTP client of exactly conns keep-alive connections, kept from the
// warm-up to the measurement so the measurement does not pay for opening
// them.
//
// The client is ours rather than vegeta's default for two reasons. Its
// dialer does not bind a local address first (vegeta's binds 0.0.0.0:0,
// which makes the kernel pick ephemeral ports globally and fail with
// "address already in use" once enough sockets sit in TIME_WAIT). And its
// connections are capped: in an open loop vegeta starts a new worker
// whenever all are busy, and with uncapped connections a short stall of the
// target turns into thousands of new connections, whose set-up cost then
// melts the target down: a measurement of the load generator, not of the
// target. With the cap, requests beyond conns wait for a connection, and
// since vegeta timestamps a request before it asks the client for one, the
// wait is part of the latency measured (as in wrk2).
type loader struct {
	conns  int
	client *http.Client
}

func newLoader(conns int) *loader {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		MaxIdleConns:        conns,
		IdleConnTimeout:     30 * time.Second,
	}
	return &loader{conns: conns, client: &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// close closes the loader's connections.
func (l *loader) close() { l.client.CloseIdleConnections() }

// closed sends requests from conns workers, each sending the next as soon
// as the last is answered, for d: maximum throughput at fixed concurrency.
func (l *loader) closed(ctx context.Context, t vegeta.Target, d time.Duration) loadResult {
	a := vegeta.NewAttacker(
		vegeta.Client(l.client),
		vegeta.Workers(uint64(l.conns)),
		vegeta.MaxWorkers(uint64(l.conns)),
	)
	return attack(ctx, a, t, vegeta.Rate{Freq: 0}, d)
}

// open sends requests at a fixed rate for d, whatever the answers' latency:
// a slow answer does not delay the next request (vegeta starts more
// workers), so the percentiles include the queueing a stall causes instead
// of hiding it (coordinated omission).
func (l *loader) open(ctx context.Context, t vegeta.Target, rate int, d time.Duration) loadResult {
	a := vegeta.NewAttacker(
		vegeta.Client(l.client),
		vegeta.Workers(uint64(l.conns)),
	)
	return attack(ctx, a, t, vegeta.Rate{Freq: rate, Per: time.Second}, d)
}

// closedLoop and openLoop run one attack with a loader of their own.
func closedLoop(ctx context.Context, t vegeta.Target, conns int, d time.Duration) loadResult {
	l := newLoader(conns)
	defer l.close()
	return l.closed(ctx, t, d)
}

func openLoop(ctx context.Context, t vegeta.Target, conns, rate int, d time.Duration) loadResult {
	l := newLoader(conns)
	defer l.close()
	return l.open(ctx, t, rate, d)
}

func attack(ctx context.Context, a *vegeta.Attacker, t vegeta.Target, p vegeta.Pacer, d time.Duration) loadResult {
	stop := context.AfterFunc(ctx, func() { a.Stop() })
	defer stop()
	var m vegeta.Metrics
	for res := range a.Attack(vegeta.NewStaticTargeter(t), p, d, "") {
		res.Body = nil
		m.Add(res)
	}
	m.Close()
	errs := m.Errors
	if len(errs) > 3 {
		errs = errs[:3]
	}
	return loadResult{
		Requests:   m.Requests,
		Throughput: m.Throughput,
		Rate:       m.Rate,
		Elapsed:    m.Duration + m.Wait,
		P50:        m.Latencies.P50,
		P90:        m.Latencies.P90,
		P99:        m.Latencies.P99,
		P999:       m.Latencies.Quantile(0.999),
		Max:        m.Latencies.Max,
		Codes:      m.StatusCodes,
		Errors:     slices.Clone(errs),
		Success:    m.Success,
	}
}

// target builds a vegeta target.
func target(method, url string, body []byte, header http.Header) vegeta.Target {
	return vegeta.Target{Method: method, URL: url, Body: body, Header: header}
}
