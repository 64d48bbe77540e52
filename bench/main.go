// Command bench measures Event Gateway against the floor costs of its
// request path, side by side in one run on loopback: a fast backend called
// directly, a bare httputil.ReverseProxy, nginx (when installed), the
// gateway's http subscriptions and invoke, custom-event emit, configuration
// propagation across three instances, and the route table at 100,000
// subscriptions. It prints a Markdown report.
//
//	go run ./bench          # full run, a few minutes
//	go run ./bench -quick   # under a minute
//
// Everything it starts (the gateway binary it builds from this repository,
// the backend and proxy, which are this binary re-executed with a hidden
// -role flag, nginx) runs as a separate process, listens on 127.0.0.1 only
// and is stopped when the tool ends, Ctrl-C included.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config holds the command-line settings.
type config struct {
	quick    bool
	conns    int
	duration time.Duration
	warmup   time.Duration
	out      string
	subs     int
	trials   int
	drainMax time.Duration
	settle   time.Duration
	rounds   int
	profile  string
	// gatewayArgs are added to the arguments of the gateways of the
	// request-path and custom-event sections.
	gatewayArgs []string
	// only holds the sections to run; nil runs them all.
	only map[string]bool
}

// sections are the parts of a run that -only can pick.
var sections = []string{"path", "emit", "transform", "sync", "propagation", "scale"}

// runs reports whether the section is part of this run.
func (c config) runs(section string) bool { return c.only == nil || c.only[section] }

// hidden flags are used by the tool to run its own children.
var hidden = map[string]bool{"role": true, "listen": true, "upstream": true}

func main() {
	var c config
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.BoolVar(&c.quick, "quick", false, "short run: everything in under a minute, 10,000 subscriptions for the route-table scale")
	fs.IntVar(&c.conns, "conns", 50, "keep-alive connections of the load generator, in every run: closed loops (maximum throughput), open loops (latency) and emit")
	fs.DurationVar(&c.duration, "duration", 0, "length of each measurement (default 10s, 2s with -quick)")
	fs.StringVar(&c.out, "out", "", "also write the Markdown report to this file")
	fs.IntVar(&c.subs, "subs", 0, "subscriptions of the route-table scale test (default 100000, 10000 with -quick)")
	fs.StringVar(&c.profile, "cpuprofile", "", "also profile the gateway (built with net/http/pprof through a compiler overlay) under http, invoke and emit load, in extra runs after the measured ones, and write the profiles and their top functions to this directory")
	fs.Func("gateway-arg", "add an argument to the command line of the gateway of the path, emit and sync sections, to compare settings (repeatable; e.g. -gateway-arg=-trail-retention=0)", func(v string) error {
		c.gatewayArgs = append(c.gatewayArgs, v)
		return nil
	})
	fs.IntVar(&c.trials, "trials", 0, "configuration changes timed by the propagation test (default 100, 20 with -quick)")
	only := fs.String("only", "", "run only these sections, comma-separated: "+strings.Join(sections, ", ")+" (path: request path 1–4 and nginx; emit: custom events; transform: custom events through a subscriber with a transform and without; sync: custom events with -nats-sync; propagation; scale: route table)")
	role := fs.String("role", "", "")
	listen := fs.String("listen", "127.0.0.1:0", "")
	upstream := fs.String("upstream", "", "")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: go run ./bench [flags]\n\nMeasures Event Gateway on loopback and prints a Markdown report.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if hidden[f.Name] {
				return
			}
			fmt.Fprintf(w, "  -%s\n    \t%s", f.Name, f.Usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}

	switch *role {
	case "":
	case "backend":
		exitOn(runBackend(*listen))
	case "proxy":
		exitOn(runProxy(*listen, *upstream, c.conns))
	default:
		exitOn(fmt.Errorf("unknown role %q", *role))
	}

	if c.conns <= 0 {
		exitOn(errors.New("-conns must be positive"))
	}
	if *only != "" {
		c.only = map[string]bool{}
		for name := range strings.SplitSeq(*only, ",") {
			name = strings.TrimSpace(name)
			if !slices.Contains(sections, name) {
				exitOn(fmt.Errorf("-only: unknown section %q (known: %s)", name, strings.Join(sections, ", ")))
			}
			c.only[name] = true
		}
	}
	c.warmup = 2 * time.Second
	c.drainMax = 2 * time.Minute
	c.settle = 3 * time.Second
	c.rounds = 2
	def := func(v *int, full, quick int) {
		if *v <= 0 {
			*v = full
			if c.quick {
				*v = quick
			}
		}
	}
	def(&c.subs, 100_000, 10_000)
	def(&c.trials, 100, 20)
	if c.duration <= 0 {
		c.duration = 10 * time.Second
		if c.quick {
			c.duration = 2 * time.Second
		}
	}
	if c.quick {
		c.warmup = 500 * time.Millisecond
		c.drainMax = 15 * time.Second
		c.settle = time.Second
		c.rounds = 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cpu0 := snapCPU()
	report, err := run(ctx, c)
	stop()
	stopAll()
	if report != nil {
		cpu1 := snapCPU()
		report.otherCPU, report.who = othersCores(cpu0, cpu1), disturbers(cpu0, cpu1)
		cleanupTemp(report)
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted; every process it started is stopped")
			os.Exit(130)
		}
		exitOn(err)
	}
	md := report.markdown()
	fmt.Print(md)
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(md), 0o644); err != nil {
			exitOn(err)
		}
	}
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// progress tells the user what is being measured, on standard error, so
// standard output is the report alone.
var progressOut io.Writer = os.Stderr

func progress(format string, args ...any) {
	fmt.Fprintf(progressOut, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func cleanupTemp(r *report) {
	if r.tmp != "" && strings.Contains(r.tmp, "event-gateway-bench") {
		os.RemoveAll(r.tmp)
	}
}
