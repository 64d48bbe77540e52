package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// machine describes where the run happened.
type machine struct {
	cpu, kernel, goVersion, commit, dirty, memory, nginx string
	cores                                                int
}

func describeMachine() machine {
	m := machine{cpu: "unknown CPU", cores: runtime.NumCPU(), goVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(v), &kb)
				m.memory = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
	}
	// Uncommitted changes to the gateway matter: figures then describe the
	// work tree, not the commit. The bench tool's own files do not count.
	if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
		var changed []string
		for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
			if len(line) < 4 {
				continue
			}
			f := line[3:]
			if strings.HasPrefix(f, "bench/") || strings.HasPrefix(f, "docs/") || f == "go.mod" || f == "go.sum" {
				continue
			}
			changed = append(changed, f)
		}
		if len(changed) > 0 {
			if len(changed) > 6 {
				changed = append(changed[:6], "…")
			}
			m.dirty = strings.Join(changed, ", ")
		}
	}
	if path, err := exec.LookPath("nginx"); err == nil {
		if out, err := exec.Command(path, "-v").CombinedOutput(); err == nil {
			m.nginx = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version:"))
		}
	}
	return m
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// num formats n with thousands separators.
func num(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ratio(a, b float64) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func bytesIEC(n float64) string {
	switch {
	case n >= 1<<30 || n <= -(1<<30):
		return fmt.Sprintf("%.2f GiB", n/(1<<30))
	case n >= 1<<20 || n <= -(1<<20):
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10 || n <= -(1<<10):
		return fmt.Sprintf("%.2f KiB", n/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", n)
	}
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// markdown renders the report.
func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := r.cfg
	m := r.machine
	mode := "full"
	if c.quick {
		mode = "quick (-quick)"
	}

	w("## Event Gateway bench, %s\n\n", r.start.UTC().Format("2006-01-02 15:04 UTC"))
	w("- Machine: %s, %d cores, %s RAM, Linux %s, %s/%s\n", m.cpu, m.cores, m.memory, m.kernel, runtime.GOOS, runtime.GOARCH)
	w("- Go: %s; gateway built from commit `%s`", m.goVersion, m.commit)
	if m.dirty != "" {
		w(" with uncommitted changes (%s)", m.dirty)
	}
	w("\n")
	w("- Run: %s, %v per measurement, %d connections in closed loops, took %v; load generator (vegeta), backend, proxy and gateway are separate processes on the same machine\n",
		mode, c.duration, c.conns, r.took.Round(time.Second))
	w("- Other processes used %s cores on average during the run", cores(r.otherCPU))
	if r.otherCPU > 0.05 && r.who != "" {
		w(" (most: %s)", r.who)
	}
	w("\n\n")

	if c.only != nil {
		var ran []string
		for _, name := range sections {
			if c.runs(name) {
				ran = append(ran, name)
			}
		}
		w("Only some sections were run (`-only %s`).\n\n", strings.Join(ran, ","))
	}
	if c.runs("path") {
		r.pathMarkdown(w)
	}
	if len(r.emits) > 0 {
		r.emitMarkdown(w)
	}
	if len(r.transforms) > 0 {
		r.transformMarkdown(w)
	}
	if c.runs("propagation") {
		r.propagationMarkdown(w)
	}
	if c.runs("scale") {
		r.scaleMarkdown(w)
	}
	r.targetsMarkdown(w)
	return b.String()
}

func (r *report) pathMarkdown(w func(string, ...any)) {
	c := r.cfg
	direct, proxy, http := r.row("direct"), r.row("proxy"), r.row("http")
	w("### Request path (1–4)\n\n")
	w("Max req/s: closed loop, %[1]d keep-alive connections, each sending its next request when the last is answered. "+
		"Latency: open loop at a fixed **%[2]s req/s** (half the bare proxy's max) for every target, over %[1]d keep-alive connections: "+
		"requests are sent when due, whatever the answers, and one that waits for a free connection counts the wait, so a stall shows in the tail instead of being hidden (coordinated omission).\n\n",
		c.conns, num(float64(r.openRate)))
	w("| target | max req/s | ×direct | ×bare proxy | CPU per request | p50 | p90 | p99 | p99.9 | max | sent req/s | failed | other CPU |\n")
	w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, t := range r.rows {
		if t.skipped != "" {
			w("| %s | skipped: %s | | | | | | | | | | | |\n", t.name, t.skipped)
			continue
		}
		fails := t.max.failures() + t.open.failures()
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", t.name,
			num(t.max.Throughput), ratio(t.max.Throughput, direct.max.Throughput), ratio(t.max.Throughput, proxy.max.Throughput), dur(t.cpuPerReq),
			dur(t.open.P50), dur(t.open.P90), dur(t.open.P99), dur(t.open.P999), dur(t.open.Max), num(t.open.Rate), fails, cores(t.otherCPU))
	}
	w("\n")
	if c.rounds > 1 {
		w("Max req/s is the best of %d rounds taken in turn over all targets:", c.rounds)
		for _, t := range r.rows {
			if t.skipped == "" {
				var rs []string
				for _, x := range t.rounds {
					rs = append(rs, num(x))
				}
				w(" %s %s;", t.key, strings.Join(rs, " / "))
			}
		}
		if len(http.rounds) == len(proxy.rounds) && http.skipped == "" {
			w(" `http` ×bare proxy round by round:")
			for i := range http.rounds {
				w(" %s", ratio(http.rounds[i], proxy.rounds[i]))
			}
			w(".")
		}
		w(" p50…max are vegeta's percentiles (t-digest) of one open-loop run. ")
	} else {
		w("p50…max are vegeta's percentiles (t-digest). ")
	}
	w("*CPU per request*: CPU time of the process that answers (the backend for direct, the proxy, nginx, the gateway) during the best closed-loop round, per request; it moves much less than throughput when the machine is disturbed. ")
	w("*failed*: answers other than 2xx/3xx and transport errors. *other CPU*: cores used meanwhile by processes that are not the bench's (/proc/stat less the bench's own processes); above ~0.1 the row was disturbed.\n\n")
	for _, t := range r.rows {
		if t.skipped != "" {
			continue
		}
		if fails := t.max.failures() + t.open.failures(); fails > 0 {
			w("- %s failures: closed loop %v %v; open loop %v %v\n", t.key, t.max.Codes, t.max.Errors, t.open.Codes, t.open.Errors)
		}
		if t.otherCPU > 0.1 && t.who != "" {
			w("- %s was disturbed by other processes (cores): %s\n", t.key, t.who)
		}
		if uint64(t.backendSaw) != t.max.Requests-t.max.count(0) {
			w("- %s: the backend saw %d requests during the closed loop, for %d answers\n", t.key, t.backendSaw, t.max.Requests)
		}
	}
	w("\n")
}

func (r *report) emitMarkdown(w func(string, ...any)) {
	c := r.cfg
	w("### Custom events (5)\n\n")
	w("Emit: closed loop, %d connections, %v, `POST` with an `Event` header; a `202` is accepted. "+
		"Delivered/s: deliveries counted by the backend, from the first emit to the last delivery. *Gateway CPU per event*: its CPU time from the first emit to the last delivery, per accepted event (its deliveries included). "+
		"*Distinct*: (event id, subscriber) pairs; delivery is at least once, so *repeated* counts the deliveries made again.\n\n", c.conns, c.duration)
	w("| a 202 is persisted to | subscribers | accepted/s | delivered/s | gateway CPU per event | accepted (202) | other answers | expected (accepted × subscribers) | delivered, distinct | repeated | last delivery after the emit ended | nothing lost | other CPU |\n")
	w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n")
	for _, e := range r.emits {
		lost := "yes"
		if !e.drained {
			lost = fmt.Sprintf("**no**: %s missing", num(float64(e.expected()-e.unique)))
		}
		w("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", e.persisted(), e.subscribers, num(e.acceptedPS), num(e.deliveredPS), dur(e.cpuPerEvent),
			num(float64(e.accepted)), num(float64(e.other)), num(float64(e.expected())), num(float64(e.unique)), num(float64(e.delivered-e.unique)),
			dur(e.drainTook), lost, cores(e.otherCPU))
	}
	for _, e := range r.emits {
		if e.otherCPU > 0.1 && e.who != "" {
			w("\n- %d subscriber(s) was disturbed by other processes (cores): %s\n", e.subscribers, e.who)
		}
		if e.other > 0 {
			w("\n- %d subscriber(s), answers other than 202: %v %v\n", e.subscribers, e.load.Codes, e.load.Errors)
		}
	}
	w("\n")
}

func (r *report) transformMarkdown(w func(string, ...any)) {
	c := r.cfg
	w("### Custom events through a transform (5b)\n\n")
	w("As (5) with one subscriber, %d connections, %v per run, alternating a subscriber without filter or transform and one whose `transform` renames a field, adds one and drops one (goja, `docs/transformations.md`), two rounds each. "+
		"The transform runs at each delivery; *gateway CPU per event* includes it.\n\n", c.conns, c.duration)
	w("| subscriber | accepted/s | delivered/s | gateway CPU per event | accepted (202) | delivered, distinct | nothing lost | other CPU |\n")
	w("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n")
	var cpu [2]time.Duration
	var n [2]int
	for _, e := range r.transforms {
		i := 0
		if e.label == "transform" {
			i = 1
		}
		cpu[i] += e.cpuPerEvent
		n[i]++
		lost := "yes"
		if !e.drained {
			lost = fmt.Sprintf("**no**: %s missing", num(float64(e.expected()-e.unique)))
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", e.label, num(e.acceptedPS), num(e.deliveredPS), dur(e.cpuPerEvent), num(float64(e.accepted)), num(float64(e.unique)), lost, cores(e.otherCPU))
	}
	if n[0] > 0 && n[1] > 0 {
		a, b := cpu[0]/time.Duration(n[0]), cpu[1]/time.Duration(n[1])
		w("\nMean gateway CPU per event: %s without, %s with the transform (+%s, ×%.2f).\n", dur(a), dur(b), dur(b-a), float64(b)/float64(a))
	}
	w("\n")
}

func (r *report) propagationMarkdown(w func(string, ...any)) {
	p := r.prop
	w("### Config propagation (6)\n\n")
	w("%d `POST /v1/subscriptions` to instance 1 (which runs the embedded etcd), one at a time; instances 2 and 3 share its etcd (`-db-hosts`). "+
		"Time from the start of the POST until the new route answers non-404 on each instance, polled about every millisecond. The POST alone: p50 %s.\n\n",
		p.trials, dur(p.postP50))
	w("| instance | p50 | p99 | max |\n| --- | ---: | ---: | ---: |\n")
	w("| all %d | %s | %s | %s |\n", p.instances, dur(p.all.Quantile(0.5)), dur(p.all.Quantile(0.99)), dur(p.all.Max))
	for i, l := range p.per {
		w("| %d | %s | %s | %s |\n", i+1, dur(l.Quantile(0.5)), dur(l.Quantile(0.99)), dur(l.Max))
	}
	if p.timeouts > 0 {
		w("\n**%d** times a route was not routable within %v.\n", p.timeouts, propTimeout)
	}
	w("\n")
}

func (r *report) scaleMarkdown(w func(string, ...any)) {
	s := r.scale
	w("### Route-table scale (7)\n\n")
	w("%s `http` subscriptions (a third each static, `:param`, `*wildcard`, 4–6 segments) written straight into etcd (batched transactions, the gateway's own key layout), then a fresh instance started on it.\n\n", num(float64(s.n)))
	w("| measure | value |\n| --- | ---: |\n")
	w("| written into etcd in | %s |\n", dur(s.written))
	w("| fresh instance: start → `/v1/status/ready` 200 | %s |\n", dur(s.readyAfter))
	w("| fresh instance: start → a route written last answers 200 | %s |\n", dur(s.routedAfter))
	w("| RSS with %s subscriptions / with 1 | %s / %s |\n", num(float64(s.n)), bytesIEC(float64(s.rssN)), bytesIEC(float64(s.rss1)))
	w("| extra RSS per subscription | %s |\n", bytesIEC(s.extraPerSub()))
	if s.heapN > 0 {
		w("| live heap after a GC with %s / with 1, extra per subscription (`-cpuprofile` runs only) | %s / %s, %s |\n", num(float64(s.n)), bytesIEC(float64(s.heapN)), bytesIEC(float64(s.heap1)), bytesIEC(float64(s.heapN-s.heap1)/float64(s.n)))
	}
	w("| peak RSS (VmHWM) with %s / with 1, extra per subscription | %s / %s, %s |\n", num(float64(s.n)), bytesIEC(float64(s.hwmN)), bytesIEC(float64(s.hwm1)), bytesIEC(s.peakPerSub()))
	w("| HTTP p50 on `%s` at 200 req/s: %s routes / 1 route | %s / %s (difference %s) |\n", s.probe, num(float64(s.n)), dur(s.httpN.P50), dur(s.http1.P50), signedDur(s.httpN.P50-s.http1.P50))
	for _, l := range s.lookups {
		allocs := ""
		if l.bytesOp != "" {
			allocs = fmt.Sprintf(", %s B/op, %s allocs/op", l.bytesOp, l.allocOp)
		}
		w("| `%s` (`go test -bench`, 10,000 routes) | %.0f ns%s |\n", l.name, l.nsPerOp, allocs)
	}
	if s.lookupErr != "" {
		w("| lookup benchmark | failed: %s |\n", strings.ReplaceAll(s.lookupErr, "\n", " "))
	}
	w("\n")
}

func (r *report) targetsMarkdown(w func(string, ...any)) {
	c, m := r.cfg, r.machine
	direct, proxy, http := r.row("direct"), r.row("proxy"), r.row("http")
	s, p := r.scale, r.prop
	w("### Targets (issue 7)\n\n")
	w("| target | measured | |\n| --- | --- | --- |\n")
	if c.runs("path") && http.skipped == "" {
		rp, rd := http.max.Throughput/proxy.max.Throughput, http.max.Throughput/direct.max.Throughput
		w("| `http` subscription throughput ≥ 1.25× bare Go proxy | %.2f× | %s |\n", rp, met(rp >= 1.25))
		w("| `http` subscription throughput ≥ 0.25× direct | %.2f× | %s |\n", rd, met(rd >= 0.25))
		w("| `http` p99 at %s req/s ≤ bare proxy's p99 (%s) | %s | %s |\n", num(float64(r.openRate)), dur(proxy.open.P99), dur(http.open.P99), met(http.open.P99 <= proxy.open.P99))
	}
	if c.runs("scale") {
		r.scaleTargets(w, s)
	}
	if c.runs("propagation") {
		p99 := p.all.Quantile(0.99)
		w("| config propagation p99 ≤ 50 ms | %s | %s |\n", dur(p99), met(p99 > 0 && p99 <= 50*time.Millisecond && p.timeouts == 0))
	}
	for _, e := range r.emits {
		w("| custom events, %d subscriber(s), persisted to %s: none lost (distinct deliveries = accepted × subscribers) | %s of %s | %s |\n",
			e.subscribers, e.persisted(), num(float64(e.unique)), num(float64(e.expected())), met(e.drained))
		if e.subscribers == 1 && !e.fsync {
			w("| custom events (issue 6): ≥ 10,000 accepted/s, 1 subscriber, nothing lost | %s/s | %s |\n", num(e.acceptedPS), met(e.acceptedPS >= 10000 && e.drained))
		}
	}
	w("\n")
	if len(r.notes) > 0 || r.nginxSkip != "" {
		if r.nginxSkip != "" {
			w("- %s\n", r.nginxSkip)
		} else if m.nginx != "" {
			w("- nginx: %s\n", m.nginx)
		}
		for _, n := range r.notes {
			w("- %s\n", n)
		}
		w("\n")
	} else if m.nginx != "" && c.runs("path") {
		w("- nginx: %s\n\n", m.nginx)
	}
}

func (r *report) scaleTargets(w func(string, ...any), s scaleResult) {
	scaleNote := ""
	if s.n != 100_000 {
		scaleNote = fmt.Sprintf(" (at %s, not 100,000)", num(float64(s.n)))
	}
	w("| 100,000 subscriptions: ≤ 1 KiB RSS each | %s%s | %s |\n", bytesIEC(s.extraPerSub()), scaleNote, met(s.extraPerSub() <= 1024))
	if len(s.lookups) > 0 {
		worst := s.lookups[0]
		for _, l := range s.lookups {
			if l.nsPerOp > worst.nsPerOp {
				worst = l
			}
		}
		w("| lookup ≤ 1 µs | %.0f ns (slowest of the `go test` lookups) | %s |\n", worst.nsPerOp, met(worst.nsPerOp <= 1000))
	}
	w("| 100,000 subscriptions synced ≤ 5 s | %s to routable%s | %s |\n", dur(s.routedAfter), scaleNote, met(s.routedAfter <= 5*time.Second))
}

func cores(c float64) string {
	if c < 0 {
		return "?"
	}
	return fmt.Sprintf("%.2f", c)
}

func signedDur(d time.Duration) string {
	if d < 0 {
		return "−" + dur(-d)
	}
	if d == 0 {
		return "0"
	}
	return "+" + dur(d)
}
