package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// report is everything one run measured.
type report struct {
	cfg     config
	tmp     string
	machine machine
	start   time.Time
	took    time.Duration

	rows     []*targetRow
	openRate int // the fixed rate of the latency runs: half the bare proxy's maximum
	emits    []emitRow
	// transforms are the rows of the transform section.
	transforms []emitRow
	prop       propResult
	scale      scaleResult
	notes      []string
	// nginxSkip says why nginx is not measured, when it is not.
	nginxSkip string
	// otherCPU is how many cores processes other than the bench's used
	// on average during the whole run.
	otherCPU float64
	who      string
}

// targetRow is one of the request-path targets (1–4, nginx).
type targetRow struct {
	key, name string
	tgt       vegeta.Target
	max, open loadResult
	rounds    []float64 // max req/s of each closed-loop round; max is the best
	// otherCPU is how many cores other processes used during the
	// measurements (the larger of the closed and open loops).
	otherCPU float64
	who      string // the other processes that used the most CPU, if any
	// backendSaw is how many requests reached the backend during the best
	// closed-loop round: one per request, for every target.
	backendSaw int64
	skipped    string
	// pid is the process that answers the target (the backend for direct),
	// and cpuPerReq the CPU it used per request in the best round.
	pid       int
	cpuPerReq time.Duration
}

// cpuPer divides CPU clock ticks among n.
func cpuPer(ticks int64, n uint64) time.Duration {
	if n == 0 || ticks < 0 {
		return 0
	}
	return time.Duration(float64(ticks) * float64(time.Second/userHZ) / float64(n))
}

func (r *report) row(key string) *targetRow {
	for _, t := range r.rows {
		if t.key == key {
			return t
		}
	}
	return nil
}

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// run starts everything, measures, and stops what it no longer needs; the
// caller stops whatever is left.
func run(ctx context.Context, c config) (*report, error) {
	r := &report{cfg: c, start: time.Now(), machine: describeMachine()}
	tmp, err := os.MkdirTemp("", "event-gateway-bench-")
	if err != nil {
		return nil, err
	}
	r.tmp = tmp

	if other := quietCheck(); other > 0.15 {
		r.note("Before the run, other processes used %.2f cores: the machine was not idle.", other)
		progress("warning: other processes use %.2f cores; the figures will be disturbed", other)
	}

	progress("building the gateway (no -race)")
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	bin, err := buildGateway(bctx, tmp, c.profile != "")
	cancel()
	if err != nil {
		return r, err
	}
	var pprofAddr string
	var g1env []string
	if c.profile != "" {
		if err := os.MkdirAll(c.profile, 0o755); err != nil {
			return r, err
		}
		port, err := freePort()
		if err != nil {
			return r, err
		}
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
		g1env = []string{pprofEnv + "=" + pprofAddr}
	}

	progress("starting the backend and the gateway")
	backendProc, backend, err := startRole(ctx, "backend")
	if err != nil {
		return r, err
	}
	g1, err := startGateway(ctx, bin, gatewayOpts{
		tmp: tmp, name: "gateway-1", dev: true, dataDir: filepath.Join(tmp, "etcd-1"),
		args: append([]string{"-workers-backlog", "2000000"}, c.gatewayArgs...),
		env:  g1env,
	})
	if err != nil {
		return r, err
	}
	if err := configure(ctx, g1, backend); err != nil {
		return r, err
	}
	if len(c.gatewayArgs) > 0 {
		r.note("The gateway ran with these arguments added: `%s`.", strings.Join(c.gatewayArgs, " "))
	}

	if c.runs("path") {
		if err := r.pathTests(ctx, backendProc, backend, g1, pprofAddr); err != nil {
			return r, err
		}
	}
	if c.runs("emit") {
		if err := r.emitTests(ctx, g1, backend, false); err != nil {
			return r, err
		}
		if c.profile != "" {
			for _, e := range []struct{ name, event, path string }{{"emit-1", "bench.one", "/one"}, {"emit-10", "bench.ten", "/ten"}} {
				tgt := target("POST", g1.events+e.path, []byte(`{"user":{"id":42,"name":"Max"}}`),
					http.Header{"Event": {e.event}, "Content-Type": {"application/json"}})
				if err := profileRun(ctx, pprofAddr, c.profile, e.name, tgt, c.conns, c.duration); err != nil {
					return r, fmt.Errorf("profile %s: %w", e.name, err)
				}
				if err := waitDeliveries(ctx, backend, c.drainMax); err != nil {
					return r, err
				}
			}
		}
	}
	if c.runs("transform") {
		if err := r.transformTests(ctx, g1, backend); err != nil {
			return r, err
		}
	}
	if c.profile != "" && (c.runs("path") || c.runs("emit")) {
		r.note("CPU profiles of the first gateway, taken in extra runs after the measured ones, are in %s (`go tool pprof -top FILE`).", c.profile)
	}

	if c.runs("sync") {
		progress("custom events with -nats-sync: a gateway that fsyncs every accepted event")
		gs, err := startGateway(ctx, bin, gatewayOpts{
			tmp: tmp, name: "gateway-sync", dev: true, dataDir: filepath.Join(tmp, "etcd-sync"),
			args: append([]string{"-workers-backlog", "2000000", "-nats-sync"}, c.gatewayArgs...),
		})
		if err != nil {
			return r, err
		}
		if err := configure(ctx, gs, backend); err != nil {
			return r, err
		}
		if err := r.emitTests(ctx, gs, backend, true); err != nil {
			return r, err
		}
		gs.stop(10 * time.Second)
	}

	if c.runs("propagation") {
		progress("config propagation: starting two more gateways on the first one's etcd (%s)", g1.etcd)
		var gws = []*gateway{g1}
		for i := 2; i <= 3; i++ {
			g, err := startGateway(ctx, bin, gatewayOpts{tmp: tmp, name: fmt.Sprintf("gateway-%d", i), dbHosts: g1.etcd})
			if err != nil {
				return r, err
			}
			gws = append(gws, g)
		}
		if r.prop, err = propagation(ctx, gws, c.trials); err != nil {
			return r, err
		}
		for i := len(gws) - 1; i >= 0; i-- {
			gws[i].stop(10 * time.Second)
		}
	} else {
		g1.stop(10 * time.Second)
	}

	if c.runs("scale") {
		if r.scale, err = scaleTest(ctx, c, bin, tmp, backend); err != nil {
			return r, err
		}
	}
	r.took = time.Since(r.start)
	return r, nil
}

// pathTests measures the request path (1–4 and nginx), with the bare Go
// proxy and nginx started for it and stopped after.
func (r *report) pathTests(ctx context.Context, backendProc *child, backend string, g1 *gateway, pprofAddr string) error {
	c := r.cfg
	proxyProc, proxy, err := startRole(ctx, "proxy", "-upstream", backend, "-conns", strconv.Itoa(c.conns))
	if err != nil {
		return err
	}
	defer proxyProc.stop(5 * time.Second)
	nginxProc, nginxURL, nginxNote, err := startNginx(ctx, r.tmp, backend, c.conns)
	if err != nil {
		return err
	}
	if nginxProc != nil {
		defer nginxProc.stop(5 * time.Second)
	}
	r.nginxSkip = nginxNote
	pids := map[string]int{"direct": backendProc.pid(), "proxy": proxyProc.pid(), "http": g1.pid(), "invoke": g1.pid()}
	if nginxProc != nil {
		pids["nginx"] = nginxProc.pid()
	}
	if err := r.requestPath(ctx, backend, proxy, nginxURL, g1, pids); err != nil {
		return err
	}
	if c.profile != "" {
		for _, key := range []string{"http", "invoke"} {
			if err := profileRun(ctx, pprofAddr, c.profile, key, r.row(key).tgt, c.conns, c.duration); err != nil {
				return fmt.Errorf("profile %s: %w", key, err)
			}
		}
	}
	return nil
}

// quietCheck measures, for a second, how many cores other processes use.
func quietCheck() float64 {
	a := snapCPU()
	time.Sleep(time.Second)
	return othersCores(a, snapCPU())
}

// waitDeliveries waits until the backend has received no delivery for a
// second, at most d.
func waitDeliveries(ctx context.Context, backend string, d time.Duration) error {
	deadline := time.Now().Add(d)
	last, err := deliveryCount(ctx, backend)
	if err != nil {
		return err
	}
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		cur, err := deliveryCount(ctx, backend)
		if err != nil {
			return err
		}
		if cur.Count == last.Count {
			return nil
		}
		last = cur
	}
	return nil
}

// configure registers the bench's functions and subscriptions on g and
// waits until they route.
func configure(ctx context.Context, g *gateway, backend string) error {
	fn := func(id, url string) string {
		return fmt.Sprintf(`{"functionId":%q,"provider":{"type":"http","url":%q}}`, id, url)
	}
	reqs := []struct{ path, body string }{
		{"/v1/functions", fn("bench", backend+"/fn")},
		{"/v1/subscriptions", `{"functionId":"bench","event":"http","method":"GET","path":"/hello"}`},
		{"/v1/subscriptions", `{"functionId":"bench","event":"invoke","path":"/"}`},
	}
	for i := range 10 {
		id := fmt.Sprintf("sink%d", i)
		reqs = append(reqs, struct{ path, body string }{"/v1/functions", fn(id, fmt.Sprintf("%s/deliver/%d", backend, i))})
		if i == 0 {
			reqs = append(reqs, struct{ path, body string }{"/v1/subscriptions", `{"functionId":"sink0","event":"bench.one","path":"/one"}`})
		}
		reqs = append(reqs, struct{ path, body string }{"/v1/subscriptions", fmt.Sprintf(`{"functionId":%q,"event":"bench.ten","path":"/ten"}`, id)})
	}
	tx, err := json.Marshal(map[string]string{"functionId": "sinktx", "event": "bench.tx", "path": "/tx", "transform": transformScript})
	if err != nil {
		return err
	}
	reqs = append(reqs, struct{ path, body string }{"/v1/functions", fn("sinktx", backend+"/deliver/tx")},
		struct{ path, body string }{"/v1/subscriptions", string(tx)})
	for _, q := range reqs {
		if err := postJSON(ctx, g.config+q.path, q.body); err != nil {
			return err
		}
	}
	return waitStatus(ctx, g.events+"/hello", http.StatusOK, 10*time.Second)
}

// requestPath measures targets 1–4 (and nginx): maximum throughput in a
// closed loop, then latency in an open loop at half the bare proxy's
// maximum, the same rate for every target.
func (r *report) requestPath(ctx context.Context, backend, proxy, nginx string, g *gateway, pids map[string]int) error {
	c := r.cfg
	invokeHdr := http.Header{"Event": {"invoke"}, "Function-Id": {"bench"}, "Content-Type": {"application/json"}}
	r.rows = []*targetRow{
		{key: "direct", name: "1. direct to the backend", tgt: target("GET", backend+"/hello", nil, nil)},
		{key: "proxy", name: "2. bare Go `httputil.ReverseProxy`", tgt: target("GET", proxy+"/hello", nil, nil)},
		{key: "nginx", name: "nginx, 1 worker, upstream keepalive", tgt: target("GET", nginx+"/hello", nil, nil)},
		{key: "http", name: "3. gateway `http` subscription", tgt: target("GET", g.events+"/hello", nil, nil)},
		{key: "invoke", name: "4. gateway `invoke`", tgt: target("POST", g.events+"/", []byte(`{"name":"bench"}`), invokeHdr)},
	}
	if nginx == "" {
		r.row("nginx").skipped = r.nginxSkip
	}
	for _, t := range r.rows {
		t.pid = pids[t.key]
	}
	for _, t := range r.rows {
		if t.skipped != "" {
			continue
		}
		if err := sanity(ctx, t.tgt); err != nil {
			return fmt.Errorf("%s: %w", t.key, err)
		}
	}
	// Rounds go over every target in turn, so a disturbance (another
	// process, a GC in the load generator) does not hit one target only;
	// each target keeps its best round.
	for round := range c.rounds {
		for _, t := range r.rows {
			if t.skipped != "" {
				continue
			}
			progress("%s: warm-up %v, then closed loop, %d connections, %v (round %d of %d)", t.key, c.warmup, c.conns, c.duration, round+1, c.rounds)
			l := newLoader(c.conns)
			l.closed(ctx, t.tgt, c.warmup)
			before, err := deliveryCount(ctx, backend)
			if err != nil {
				return err
			}
			cpu0 := snapCPU()
			own0, _ := procCPU(t.pid, false)
			res := l.closed(ctx, t.tgt, c.duration)
			own1, _ := procCPU(t.pid, false)
			cpu1 := snapCPU()
			other, who := othersCores(cpu0, cpu1), disturbers(cpu0, cpu1)
			l.close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			after, err := deliveryCount(ctx, backend)
			if err != nil {
				return err
			}
			if res.Requests == 0 || res.Success == 0 {
				return fmt.Errorf("%s: no successful request (%v %v)", t.key, res.Codes, res.Errors)
			}
			t.rounds = append(t.rounds, res.Throughput)
			if res.Throughput >= t.max.Throughput {
				t.max = res
				t.otherCPU, t.who = other, who
				t.backendSaw = after.Requests - before.Requests
				t.cpuPerReq = cpuPer(own1-own0, res.Requests)
			}
		}
	}
	r.openRate = max(1, int(r.row("proxy").max.Throughput/2))
	for _, t := range r.rows {
		if t.skipped != "" {
			continue
		}
		progress("%s: warm-up %v, then open loop at %d req/s over %d connections for %v", t.key, c.warmup, r.openRate, c.conns, c.duration)
		l := newLoader(c.conns)
		l.open(ctx, t.tgt, r.openRate, c.warmup)
		cpu0 := snapCPU()
		t.open = l.open(ctx, t.tgt, r.openRate, c.duration)
		cpu1 := snapCPU()
		if o := othersCores(cpu0, cpu1); o > t.otherCPU {
			t.otherCPU, t.who = o, disturbers(cpu0, cpu1)
		}
		l.close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// sanity sends one request to a target and checks that it answers 200
// with the backend's answer: the body itself, or for an http event the
// response object's body, "ok".
func sanity(ctx context.Context, t vegeta.Target) error {
	code, b, err := do(ctx, t.Method, t.URL, t.Body, t.Header)
	if err != nil {
		return err
	}
	if code != http.StatusOK || (string(b) != string(backendBody) && string(b) != "ok") {
		return fmt.Errorf("%s %s answered %d %q, not the backend's answer", t.Method, t.URL, code, b)
	}
	return nil
}

// startNginx runs nginx as a single process (no master, one worker's
// worth of event loop) proxying to the backend with upstream keepalive,
// when nginx is installed. It returns a note instead when it is not.
func startNginx(ctx context.Context, tmp, backend string, conns int) (*child, string, string, error) {
	path, err := exec.LookPath("nginx")
	if err != nil {
		return nil, "", "nginx is not on PATH: its row is skipped (`apt-get install nginx` adds it).", nil
	}
	port, err := freePort()
	if err != nil {
		return nil, "", "", err
	}
	dir := filepath.Join(tmp, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", "", err
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream backend {
        server %[2]s;
        keepalive %[3]d;
    }
    server {
        listen 127.0.0.1:%[4]d;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, dir, backend[len("http://"):], max(2*conns, 64), port)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, "", "", err
	}
	cmd := exec.Command(path, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	c, err := startChild("nginx", cmd)
	if err != nil {
		return nil, "", "", err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitStatus(ctx, url+"/hello", http.StatusOK, 10*time.Second); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		c.stop(5 * time.Second)
		return nil, "", fmt.Sprintf("nginx did not start, its row is skipped: %v %s %s", err, c.logs(), b), nil
	}
	return c, url, "", nil
}
