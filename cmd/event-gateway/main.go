// Command event-gateway runs one Event Gateway instance: the Events API, the
// Configuration API, and (with -dev) an embedded etcd.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/event-gateway/event-gateway/api"
	"github.com/event-gateway/event-gateway/api/metrics"
	"github.com/event-gateway/event-gateway/dashboard"
	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/functions/awslambda"
	"github.com/event-gateway/event-gateway/functions/emulator"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/history"
	"github.com/event-gateway/event-gateway/instances"
	"github.com/event-gateway/event-gateway/internal/tracing"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/plugin"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/fnstats"
	"github.com/event-gateway/event-gateway/router/jetstream"
	"github.com/event-gateway/event-gateway/router/tail"
	"github.com/event-gateway/event-gateway/spacestate"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "install-serverless":
			return installServerless(args[1:], stdout, stderr)
		case "apply":
			return applyCommand(args[1:], stdout, stderr, os.Getenv)
		case "export":
			return exportCommand(args[1:], stdout, stderr, os.Getenv)
		case "history":
			return historyCommand(args[1:], stdout, stderr, os.Getenv)
		case "rollback":
			return rollbackCommand(args[1:], stdout, stderr, os.Getenv)
		}
	}
	opts, err := parseFlags(args, stderr, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "event-gateway:", err)
		return 2
	}
	if opts.version {
		fmt.Fprintln(stdout, "event-gateway", versionString())
		return 0
	}
	log := newLogger(opts, stderr)

	// The first SIGINT or SIGTERM starts a graceful shutdown; stop() then
	// restores the default handling, so a second signal ends the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, stop, opts, log); err != nil {
		log.Error("event-gateway stopped", "error", err)
		return 1
	}
	return 0
}

func newLogger(opts *options, w io.Writer) *slog.Logger {
	ho := &slog.HandlerOptions{Level: opts.logLevel}
	var h slog.Handler = slog.NewTextHandler(w, ho)
	if opts.logFormat == "json" {
		h = slog.NewJSONHandler(w, ho)
	}
	// Every line logged while handling a request carries its id.
	return slog.New(api.RequestIDHandler{Handler: h})
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func serve(ctx context.Context, stop context.CancelFunc, opts *options, log *slog.Logger) error {
	log.Info("starting event-gateway", "version", versionString(), "dev", opts.dev)
	endpoints := opts.dbHosts
	if opts.dev {
		start := time.Now()
		emb, err := libkv.StartEmbedded(ctx, libkv.EmbedConfig{
			DataDir:   opts.embedDataDir,
			ClientURL: opts.embedCliAddr,
			PeerURL:   opts.embedPeerAddr,
			Logger:    log.With("component", "etcd"),
		})
		if err != nil {
			return err
		}
		defer emb.Close()
		endpoints = emb.Endpoints()
		log.Info("embedded etcd started", "dataDir", opts.embedDataDir, "endpoints", endpoints, "took", time.Since(start).Round(time.Millisecond))
	}

	store, err := libkv.Open(libkv.Config{
		Endpoints: endpoints,
		Prefix:    opts.dbPrefix,
		Username:  opts.dbUsername,
		Password:  opts.dbPassword,
		CertFile:  opts.dbCert,
		KeyFile:   opts.dbKey,
		CAFile:    opts.dbCA,
	})
	if err != nil {
		return err
	}
	defer store.Close()
	go waitForStore(ctx, store, endpoints, log)

	m := metrics.New()
	var reacters router.Reacters
	var host *plugin.Host
	if len(opts.plugins) > 0 {
		var err error
		host, err = plugin.StartHost(ctx, plugin.HostOptions{
			Paths:    opts.plugins,
			Timeout:  opts.pluginTimeout,
			FailOpen: opts.pluginFailOpen,
			Buffer:   opts.pluginBuffer,
			Logger:   log.With("component", "plugins"),
			Observe:  m.PluginCall,
		})
		if err != nil {
			return err
		}
		// Shut down after the queue has drained (deliveries emit system
		// events); this only covers the returns before that.
		defer host.Shutdown(context.Background())
		reacters = host
	}

	// The provider types this gateway serves: the Configuration API
	// accepts these, and the router invokes them.
	providers := functions.NewRegistry(
		// Backend-source and selector plugins, when loaded, give the
		// backends of functions with discovery and choose among them.
		httpfn.New(httpfn.Options{MaxResponseBytes: opts.maxBody, Logger: log, Source: host.BackendSource(), Selector: host.Selector()}),
		awslambda.New(awslambda.Options{MaxResponseBytes: opts.maxBody}),
		// Functions run by the Serverless Framework's local emulator
		// (serverless run; docs/serverless.md).
		emulator.New(emulator.Options{MaxResponseBytes: opts.maxBody}),
	)
	defer providers.Close()

	// The dashboard's live tail sees the system events beside the plugins.
	pluginReacters := reacters
	tails := tail.New(64)
	reacters = tail.Join(reacters, tails)
	stats := fnstats.New()

	nc, closeNATS, err := connectNATS(opts, log)
	if err != nil {
		return err
	}
	defer closeNATS()
	trl, err := startTrail(ctx, opts, nc, log)
	if err != nil {
		return err
	}
	// After shutdown's drain of the deliveries, before NATS closes.
	defer trl.close()
	qctx, qcancel := context.WithTimeout(ctx, 30*time.Second)
	queue, err := jetstream.New(qctx, jetstream.Options{
		Conn:             nc,
		Replicas:         opts.natsReplicas,
		MaxBytes:         opts.natsMaxBytes,
		MaxMsgs:          int64(opts.workersBacklog),
		AckWait:          opts.deliveryAckWait,
		Workers:          opts.workers,
		DeadLetterMaxAge: opts.deadLetterMaxAge,
		Trail:            trl.queue,
		Logger:           log.With("component", "queue"),
	})
	qcancel()
	if err != nil {
		return fmt.Errorf("delivery queue: %w", err)
	}
	tracer, err := tracing.New(ctx, tracing.Options{
		Endpoint: opts.tracingEndpoint, Protocol: opts.tracingProtocol, Insecure: opts.tracingInsecure,
		SampleRatio: opts.tracingSampleRatio, Version: versionString(), Instance: instanceName(),
	})
	if err != nil {
		return err
	}
	if tracer != nil {
		log.Info("tracing on", "endpoint", opts.tracingEndpoint, "protocol", cmp.Or(opts.tracingProtocol, tracing.ProtocolGRPC), "sampleRatio", opts.tracingSampleRatio)
		defer func() {
			// The spans of the last requests, exported before the exit.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tracer.Shutdown(sctx); err != nil {
				log.Warn("tracing: spans not exported at exit", "error", err)
			}
		}()
	}
	observer := router.Observers{m, stats}
	if host.HasMetricSinks() {
		// Metric-sink plugins get every function call too, batched
		// off the request path.
		observer = append(observer, host)
	}
	rt := router.New(router.Options{
		Tracer:           tracer,
		Store:            store,
		Invokers:         providers.Invoker,
		Queue:            queue,
		Plugins:          reacters,
		Modifiers:        host.Stages(),
		Observer:         observer,
		Trail:            trl.router,
		DefaultTimeout:   opts.functionTimeout,
		TransformTimeout: opts.transformTimeout,
		Isolation:        isolation(opts),
		Logger:           log.With("component", "router"),
	})
	// The router and the workers outlive the servers, so accepted events
	// can still be delivered while the gateway drains.
	bgCtx, bgCancel := context.WithCancel(context.Background())
	defer bgCancel()
	routerDone := make(chan struct{})
	go func() {
		rt.Run(bgCtx)
		close(routerDone)
	}()
	defaultRetry := jetstream.RetryPolicy{MaxAttempts: opts.deliveryAttempts, InitialBackoff: opts.deliveryInitialBackoff, MaxBackoff: opts.deliveryMaxBackoff}
	if err := queue.Start(bgCtx, rt.Deliver, func(space, subscriptionID string) jetstream.RetryPolicy {
		return retryPolicy(rt.Snapshot().Space(space).Subscription(subscriptionID), defaultRetry)
	}); err != nil {
		return fmt.Errorf("delivery queue: %w", err)
	}

	// Every change made through the Configuration API is recorded in the
	// history of its space, in the transaction that makes it: the
	// services write through a view of the store with the history's hook.
	hist := history.New(store, history.Options{MaxEntries: opts.historyMaxEntries, MaxAge: opts.historyMaxAge, Providers: providers})
	recorded := store.WithTxnHook(hist.Hook)
	subs := subscriptions.NewService(recorded)
	spaces := api.NewStoreSpaces(recorded, providers, subs)
	go func() {
		// Index the routes that earlier releases stored for the conflict
		// checks now rather than at the first route created (which does it
		// if this fails, say while etcd is away).
		if err := subs.EnsureIndexed(bgCtx); err != nil {
			log.Warn("route index not prepared yet", "error", err)
		}
	}()
	configAPI := api.NewConfig(api.ConfigOptions{
		Functions:     spaces.Functions(functions.DefaultSpace),
		Subscriptions: spaces.Subscriptions(functions.DefaultSpace),
		Spaces:        spaces,
		State:         spacestate.New(recorded, providers, subs, hist),
		Synced: func(ctx context.Context) {
			// Read your writes on this instance: a change is answered
			// once the router routes by it (within a second; the watch
			// takes milliseconds when etcd is healthy).
			if rev, err := store.Revision(ctx); err == nil {
				rt.WaitRevision(ctx, rev, time.Second)
			}
		},
		Logger:       log.With("api", "config"),
		StoreTimeout: opts.dbTimeout,
		Ready: func() (bool, int64) {
			snap := rt.Snapshot()
			return snap.Loaded, snap.Revision
		},
		DeadLetters: queue,
		Dashboard: api.DashboardSources{
			SpaceNames: spaces.SpaceNames,
			Tail:       tails,
			Stats:      stats,
			Instances:  func(ctx context.Context) ([]instances.Info, error) { return instances.List(ctx, store) },
		},
		Trail: trl.api,
	})

	eventsAPI := api.NewEvents(api.EventsOptions{
		Router:  rt,
		MaxBody: opts.maxBody,
		MaxHops: opts.maxHops,
		// 0 on the command line is no limit; in the options, the default.
		MaxBodyBytesInFlight: cmp.Or(opts.maxBodyInFlight, -1),
		SpaceDomains:         opts.spaceDomains,
		Tracer:               tracer,
		Logger:               log.With("api", "events"),
	})

	registerGauges(m, rt, queue, pluginReacters, eventsAPI)
	metricsHandler := m.Handler()
	var configHandler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /v1/metrics is where the 0.8+ clients look.
		if (r.URL.Path == "/metrics" || r.URL.Path == "/v1/metrics") && r.Method == http.MethodGet {
			metricsHandler.ServeHTTP(w, r)
			return
		}
		configAPI.ServeHTTP(w, r)
	})
	configHandler = m.Instrument("config", func(*http.Request) string { return "config" }, configHandler)
	// The token, and the configuration keys of each space, which work
	// with or without a token.
	configHandler = api.RequireToken(opts.configToken, func(space string) api.SpaceKeys {
		return rt.Snapshot().Space(space)
	}, configHandler)
	// The dashboard's files need no token: the page asks for one, and
	// its calls to the API carry it.
	authed, dash := configHandler, dashboard.Handler()
	configHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dashboard.Serves(r.URL.Path) {
			dash.ServeHTTP(w, r)
			return
		}
		authed.ServeHTTP(w, r)
	})
	if opts.configToken == "" && !loopback(opts.configHost) {
		log.Warn("the Configuration API accepts changes from anyone who can reach it: set -config-token or bind -config-host to 127.0.0.1", "host", opts.configHost)
	}
	eventsHandler := m.Instrument("events", api.EventKind, eventsAPI)
	if opts.accessLog {
		configHandler = api.AccessLog(log.With("api", "config"), configHandler)
		eventsHandler = api.AccessLog(log.With("api", "events"), eventsHandler)
	}
	configHandler = api.WithRequestID(api.LimitInFlight(opts.maxInFlight, configHandler))
	eventsHandler = api.WithRequestID(api.LimitInFlight(opts.maxInFlight, eventsHandler))

	configSrv, err := listen(opts, opts.configHost, opts.configPort, configHandler, log, "config", 60*time.Second, opts.configTLSCert, opts.configTLSKey)
	if err != nil {
		return err
	}
	// A synchronous call may take as long as the longest function timeout;
	// the write deadline must not cut it short.
	eventsSrv, err := listen(opts, opts.eventsHost, opts.eventsPort, eventsHandler, log, "events", functions.MaxTimeout+time.Minute, opts.eventsTLSCert, opts.eventsTLSKey)
	if err != nil {
		configSrv.Close()
		return err
	}
	if opts.dev {
		// serverless run shows the two addresses from this message,
		// which it reads with a regular expression: keep its wording.
		eventsURL, configURL := apiURL(eventsSrv, opts.eventsTLSCert != ""), apiURL(configSrv, opts.configTLSCert != "")
		log.Info(fmt.Sprintf("Running in development mode with embedded etcd. Event API listening on %s. Config API listening on %s.", eventsURL, configURL),
			"eventsUrl", eventsURL, "configUrl", configURL)
	}
	// Each instance lists itself in the store for the dashboard, until
	// the shutdown starts.
	registered := registerInstance(ctx, store, rt, opts, apiURL(configSrv, opts.configTLSCert != ""), apiURL(eventsSrv, opts.eventsTLSCert != ""), log)
	defer func() {
		// The entry is revoked at once; a store that is away must not
		// hold up the exit (the lease then expires by itself).
		select {
		case <-registered:
		case <-time.After(time.Second):
		}
	}()
	// Ready means routing: the configuration has been read from etcd.
	go func() {
		select {
		case <-rt.Ready():
			log.Info("event-gateway ready", "revision", rt.Snapshot().Revision)
		case <-ctx.Done():
		}
	}()

	<-ctx.Done()
	stop()
	return shutdown(opts, log, eventsSrv, configSrv, queue, host, bgCancel, routerDone)
}

// shutdown stops the gateway within -shutdown-timeout. The Events API
// stops taking events and its requests finish, the deliveries in progress
// finish, the Configuration API stops and the plugins get their buffered
// events, each within what is left of the timeout but its last tenth (at
// most a second). In that last part, what has not finished is cut short:
// deliveries still in progress are handed back to the store at once (not
// after -delivery-ack-wait), plugins are killed, connections closed. What
// was cut short is counted and logged.
func shutdown(opts *options, log *slog.Logger, eventsSrv, configSrv *http.Server, queue *jetstream.Queue, host *plugin.Host, bgCancel context.CancelFunc, routerDone <-chan struct{}) error {
	log.Info("shutting down", "timeout", opts.shutdownTimeout)
	began := time.Now()
	deadline := began.Add(opts.shutdownTimeout)
	hard, cancelHard := context.WithDeadline(context.Background(), deadline)
	defer cancelHard()
	sctx, cancel := context.WithDeadline(hard, deadline.Add(-min(time.Second, opts.shutdownTimeout/10)))
	defer cancel()
	// Stop taking events first and let in-flight calls finish, then drain
	// the accepted deliveries, then stop the configuration side.
	if err := eventsSrv.Shutdown(sctx); err != nil {
		log.Warn("events API requests cut short by the shutdown timeout", "error", err)
		eventsSrv.Close()
	}
	// Deliveries in flight finish; the rest stay in the store, for this
	// instance's next start or for another instance.
	if err := queue.Stop(sctx); err != nil {
		left := queue.Abort(hard)
		log.Warn("deliveries in progress cut short by the shutdown timeout: handed back to the store, they will be made again", "error", err, "notHandedBack", left)
	}
	if err := configSrv.Shutdown(sctx); err != nil {
		log.Warn("configuration API requests cut short by the shutdown timeout", "error", err)
		configSrv.Close()
	}
	bgCancel()
	select {
	case <-routerDone:
	case <-hard.Done():
	}
	// Plugins get their buffered events while time is left: deliveries
	// made up to now may have added some.
	if dropped := host.Shutdown(sctx); dropped > 0 {
		log.Warn("async system events left undelivered to plugins by the shutdown timeout", "dropped", dropped)
	}
	log.Info("stopped", "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// registerInstance keeps this instance's entry in the store's list of
// instances until ctx ends.
func registerInstance(ctx context.Context, store *libkv.Store, rt *router.Router, opts *options, configURL, eventsURL string, log *slog.Logger) <-chan struct{} {
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s-%d-%04x", cmp.Or(host, "gateway"), os.Getpid(), rand.N(1<<16))
	// An API bound to every interface is shown as localhost in the log;
	// other machines reach it by the host's name.
	if host != "" && everywhere(opts.configHost) {
		configURL = strings.Replace(configURL, "//localhost:", "//"+host+":", 1)
	}
	if host != "" && everywhere(opts.eventsHost) {
		eventsURL = strings.Replace(eventsURL, "//localhost:", "//"+host+":", 1)
	}
	started := time.Now().UTC()
	return instances.Register(ctx, store, func() instances.Info {
		snap := rt.Snapshot()
		return instances.Info{ID: id, ConfigURL: configURL, EventsURL: eventsURL, Version: versionString(),
			Started: started, Ready: snap.Loaded, Revision: snap.Revision}
	}, instances.Options{Logger: log.With("component", "instances")})
}

// isolation is the router's bulkhead and breaker settings from the flags.
func isolation(opts *options) router.IsolationOptions {
	iso := router.IsolationOptions{MaxInFlight: opts.functionMaxInFlight, BreakerFailures: opts.breakerFailures, BreakerOpen: opts.breakerOpen}
	if iso.BreakerFailures == 0 {
		iso.BreakerFailures = -1 // the flag's 0 is no breaker
	}
	return iso
}

// listen binds the API's port and serves h on it in the background. Binding
// first means a port in use fails start-up with a clear error, and port 0
// is logged as the port actually chosen.
func listen(opts *options, host string, port int, h http.Handler, log *slog.Logger, name string, writeTimeout time.Duration, certFile, keyFile string) (*http.Server, error) {
	var cert tls.Certificate
	if certFile != "" {
		var err error
		if cert, err = tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("%s API TLS: %w", name, err)
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("%s API: %w", name, err)
	}
	scheme := "http"
	if certFile != "" {
		scheme = "https"
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    opts.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.With("api", name).Handler(), slog.LevelWarn),
	}
	if certFile != "" {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	srv.Addr = ln.Addr().String() // the address bound, for apiURL
	log.Info("listening", "api", name, "addr", srv.Addr, "scheme", scheme)
	go func() {
		serve := srv.Serve
		if certFile != "" {
			// ServeTLS, not a TLS listener: it also sets up HTTP/2.
			serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("server failed", "api", name, "error", err)
		}
	}()
	return srv, nil
}

// apiURL is the base URL of an API that listens: on localhost when it is
// bound to all interfaces.
func apiURL(srv *http.Server, tls bool) string {
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		return srv.Addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// registerGauges exposes the state of the router, the queue and the
// plugins as metrics read at each scrape.
func registerGauges(m *metrics.Metrics, rt *router.Router, q *jetstream.Queue, plugins router.Reacters, events *api.Events) {
	m.Gauge("events_body_bytes_in_flight", "Bytes of request bodies the Events API holds at once.", func() float64 { return float64(events.BodyBytesInFlight()) })
	m.Gauge("config_revision", "etcd revision of the routing snapshot.", func() float64 { return float64(rt.Snapshot().Revision) })
	m.Gauge("config_loaded", "1 once the configuration has been read from etcd.", func() float64 {
		if rt.Snapshot().Loaded {
			return 1
		}
		return 0
	})
	m.Queue(func() metrics.QueueStats {
		s := q.Stats()
		return metrics.QueueStats{
			Enqueued: float64(s.Enqueued), Delivered: float64(s.Delivered), Retried: float64(s.Retried),
			DeadLettered: float64(s.DeadLettered), Dropped: float64(s.Dropped), Replayed: float64(s.Replayed), Postponed: float64(s.Postponed),
			Pending: float64(s.Pending), DeadLetters: float64(s.DeadLetters),
		}
	})
	if h, ok := plugins.(*plugin.Host); ok {
		m.Counter("plugin_events_dropped_total", "Async system events dropped because a plugin's buffer was full.", func() float64 { return float64(h.Dropped()) })
		if h.HasMetricSinks() {
			m.Counter("plugin_measurements_dropped_total", "Measurements a metric-sink plugin did not get: its buffer was full or it failed on their batch.", func() float64 { return float64(h.MeasurementsDropped()) })
		}
	}
}

// everywhere reports whether a bind address is every interface.
func everywhere(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}

// loopback reports whether a bind address reaches only this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// waitForStore checks that etcd answers, retrying with capped exponential
// backoff and saying so, so an operator sees at once why nothing works;
// then it logs each loss of the connection and its return, until ctx ends.
func waitForStore(ctx context.Context, store *libkv.Store, endpoints []string, log *slog.Logger) {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := store.Ping(pctx)
		cancel()
		if err == nil {
			log.Info("connected to etcd", "endpoints", endpoints)
			// From now on, one line when the connection is lost and one
			// when it is back, rather than a warning per failed call.
			store.MonitorConnection(ctx,
				func() {
					log.Warn("lost the connection to etcd: configuration calls answer 503 and routing keeps the configuration last read until it is back", "endpoints", endpoints)
				},
				func() { log.Info("connection to etcd is back", "endpoints", endpoints) })
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("waiting for etcd", "endpoints", endpoints, "attempt", attempt, "retryIn", backoff, "error", err)
		select {
		case <-time.After(backoff + rand.N(backoff/2)):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// instanceName names this process among the gateway's instances, in its
// traces: host name and process id.
func instanceName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}
