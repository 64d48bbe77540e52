package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/event-gateway/event-gateway/functions"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions"

	"github.com/event-gateway/event-gateway/internal/gwproc"
)

// scaleResult is the route-table scale measurement.
type scaleResult struct {
	n            int
	written      time.Duration // writing the n subscriptions into etcd
	readyAfter   time.Duration // process start → /v1/status/ready 200
	routedAfter  time.Duration // process start → a route written last answers 200
	rssN, rss1   int64         // VmRSS with n subscriptions and with one
	hwmN, hwm1   int64         // VmHWM (peak RSS)
	probe        string        // the path timed over HTTP on both
	httpN, http1 loadResult    // open loop on the probe path
	lookups      []benchLine   // go test -bench Lookup ./router/pathtree/
	lookupErr    string
	// With -cpuprofile: the live heap after a GC (runtime.MemStats
	// HeapAlloc), read after the RSS.
	heapN, heap1 int64
}

func (s scaleResult) extraPerSub() float64 { return float64(s.rssN-s.rss1) / float64(s.n) }
func (s scaleResult) peakPerSub() float64  { return float64(s.hwmN-s.hwm1) / float64(s.n) }

// benchLine is one result line of go test -bench.
type benchLine struct {
	name             string
	nsPerOp          float64
	bytesOp, allocOp string
}

// scalePath returns the path of route i: a third each static, :param and
// *wildcard, five levels deep, in groups so that some tree nodes have ten
// children and others thousands.
func scalePath(i int) string {
	switch i % 3 {
	case 0:
		return fmt.Sprintf("/s/g%d/h%d/r%d", i%10, i%100, i)
	case 1:
		return fmt.Sprintf("/p/g%d/u%d/:id/posts/:post", i%10, i)
	default:
		return fmt.Sprintf("/w/g%d/b%d/*rest", i%10, i)
	}
}

// The etcd prefixes of the scale test. The instance under test reads the
// default one; the etcd host and the baseline instance read their own, so
// they see none of the n subscriptions.
const (
	hostPrefix = "/bench-etcd-host/"
	basePrefix = "/bench-base/"
)

// scaleTest writes n http subscriptions straight into etcd, in the layout
// the gateway's services use, then times a fresh instance until it is ready
// and routes, and compares its RSS with an instance that has one
// subscription.
func scaleTest(ctx context.Context, c config, bin, tmp, backend string) (scaleResult, error) {
	res := scaleResult{n: c.subs}
	progress("route-table scale: starting an etcd host (a -dev gateway on prefix %s)", hostPrefix)
	host, err := startGateway(ctx, bin, gatewayOpts{
		tmp: tmp, name: "etcd-host", dev: true, dataDir: filepath.Join(tmp, "etcd-scale"),
		args: []string{"-db-prefix", hostPrefix},
	})
	if err != nil {
		return res, err
	}
	defer host.stop(10 * time.Second)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{host.etcd}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return res, err
	}
	defer cli.Close()

	last := c.subs - 1
	for last%3 != 1 {
		last-- // the probe is a :param route, near the end of the list
	}
	probeRoute := scalePath(last)
	res.probe = fmt.Sprintf("/p/g%d/u%d/42/posts/7", last%10, last)

	progress("route-table scale: writing %d http subscriptions into etcd", c.subs)
	t0 := time.Now()
	if err := writeSubscriptions(ctx, cli, libkv.DefaultPrefix, backend, c.subs, scalePath); err != nil {
		return res, err
	}
	res.written = time.Since(t0)
	if err := writeSubscriptions(ctx, cli, basePrefix, backend, 1, func(int) string { return probeRoute }); err != nil {
		return res, err
	}

	progress("route-table scale: starting an instance with 1 subscription, then one with %d", c.subs)
	var pprofBase, pprofN string
	var envBase, envN []string
	if c.profile != "" {
		pb, err := freePort()
		if err != nil {
			return res, err
		}
		pn, err := freePort()
		if err != nil {
			return res, err
		}
		pprofBase, pprofN = fmt.Sprintf("127.0.0.1:%d", pb), fmt.Sprintf("127.0.0.1:%d", pn)
		envBase, envN = []string{pprofEnv + "=" + pprofBase}, []string{pprofEnv + "=" + pprofN}
	}
	base, err := startGateway(ctx, bin, gatewayOpts{tmp: tmp, name: "scale-base", dbHosts: host.etcd, args: []string{"-db-prefix", basePrefix}, env: envBase})
	if err != nil {
		return res, err
	}
	defer base.stop(10 * time.Second)
	if err := waitStatus(ctx, base.events+res.probe, http.StatusOK, 10*time.Second); err != nil {
		return res, err
	}
	inst, err := startGateway(ctx, bin, gatewayOpts{tmp: tmp, name: "scale-n", dbHosts: host.etcd, wait: 5 * time.Minute, env: envN})
	if err != nil {
		return res, err
	}
	defer inst.stop(10 * time.Second)
	res.readyAfter = inst.ready.Sub(inst.started)
	if err := waitStatus(ctx, inst.events+res.probe, http.StatusOK, 60*time.Second); err != nil {
		return res, err
	}
	res.routedAfter = time.Since(inst.started)

	// Let both settle the same way, then read their memory.
	for _, g := range []*gateway{base, inst} {
		closedLoop(ctx, target("GET", g.events+res.probe, nil, nil), 4, 200*time.Millisecond)
	}
	select {
	case <-time.After(c.settle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	for _, m := range []struct {
		g        *gateway
		rss, hwm *int64
	}{{base, &res.rss1, &res.hwm1}, {inst, &res.rssN, &res.hwmN}} {
		if *m.rss, err = vmStatus(m.g.pid(), "VmRSS"); err != nil {
			return res, err
		}
		if *m.hwm, err = vmStatus(m.g.pid(), "VmHWM"); err != nil {
			return res, err
		}
	}

	if c.profile != "" {
		if res.heap1, err = heapProfile(ctx, pprofBase, filepath.Join(c.profile, "scale-1.heap.pprof")); err != nil {
			return res, err
		}
		if res.heapN, err = heapProfile(ctx, pprofN, filepath.Join(c.profile, fmt.Sprintf("scale-%d.heap.pprof", c.subs))); err != nil {
			return res, err
		}
	}

	d := c.duration / 2
	progress("route-table scale: HTTP latency on %s, 200 req/s for %v on each instance", res.probe, d)
	res.http1 = openLoop(ctx, target("GET", base.events+res.probe, nil, nil), c.conns, 200, d)
	res.httpN = openLoop(ctx, target("GET", inst.events+res.probe, nil, nil), c.conns, 200, d)
	inst.stop(10 * time.Second)
	base.stop(10 * time.Second)
	host.stop(10 * time.Second)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	progress("route-table scale: go test -bench Lookup ./router/pathtree/")
	res.lookups, err = lookupBench(ctx, c.quick)
	if err != nil {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		res.lookupErr = err.Error()
	}
	return res, nil
}

// writeSubscriptions writes one http function and n http subscriptions of
// it under prefix, exactly as the Configuration API stores them: the
// subscription JSON after Normalize, its uses/ index key and its
// routes/<METHOD>/ and shape index keys. Batches are transactions of at most 96
// operations (etcd allows 128), written by a few goroutines at once.
func writeSubscriptions(ctx context.Context, cli *clientv3.Client, prefix, backend string, n int, path func(int) string) error {
	space := functions.DefaultSpace
	f := functions.Function{ID: "scale", Provider: httpfn.Config{URL: backend + "/fn"}.Provider()}
	if err := f.Validate(); err != nil {
		return err
	}
	fv, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if _, err := cli.Put(ctx, prefix+functions.FunctionKey(space, f.ID), string(fv)); err != nil {
		return err
	}
	const perTxn = 24 // four keys each
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				lo := int(next.Add(perTxn)) - perTxn
				if lo >= n || ctx.Err() != nil {
					return
				}
				ops := make([]clientv3.Op, 0, 4*perTxn)
				for i := lo; i < min(lo+perTxn, n); i++ {
					sub := subscriptions.Subscription{Event: subscriptions.EventHTTP, FunctionID: f.ID, Method: "GET", Path: path(i)}
					if _, err := sub.Normalize(functions.DefaultSpace); err != nil {
						errs <- fmt.Errorf("subscription %d: %w", i, err)
						return
					}
					v, err := json.Marshal(sub)
					if err != nil {
						errs <- err
						return
					}
					ops = append(ops,
						clientv3.OpPut(prefix+subscriptions.Key(space, sub.ID), string(v)),
						clientv3.OpPut(prefix+functions.UseKey(space, sub.FunctionID, sub.ID), ""),
						clientv3.OpPut(prefix+subscriptions.RouteKey(space, sub.Method, sub.ID), sub.Path),
						clientv3.OpPut(prefix+subscriptions.ShapeKey(space, &sub), sub.Path))
				}
				if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

var benchRE = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+(\d+) B/op\s+(\d+) allocs/op)?`)

// lookupBench runs the path tree's lookup benchmarks (10,000 routes).
func lookupBench(ctx context.Context, quick bool) ([]benchLine, error) {
	root, err := gwproc.ModuleRoot()
	if err != nil {
		return nil, err
	}
	bt := "1s"
	if quick {
		bt = "100ms"
	}
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "Lookup", "-benchtime", bt, "-benchmem", "./router/pathtree/")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	ch, err := startChild("go test", cmd)
	if err != nil {
		return nil, err
	}
	select {
	case <-ch.done:
	case <-ctx.Done():
		ch.stop(5 * time.Second)
		return nil, ctx.Err()
	case <-time.After(3 * time.Minute):
		ch.stop(5 * time.Second)
		return nil, fmt.Errorf("go test -bench Lookup took over 3 minutes")
	}
	if !cmd.ProcessState.Success() {
		return nil, fmt.Errorf("go test -bench Lookup: %s\n%s", cmd.ProcessState, out.String())
	}
	var lines []benchLine
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		m := benchRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseFloat(m[3], 64)
		lines = append(lines, benchLine{name: m[1], nsPerOp: ns, bytesOp: m[4], allocOp: m[5]})
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("go test -bench Lookup printed no result:\n%s", out.String())
	}
	return lines, nil
}
