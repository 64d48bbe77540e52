package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/event-gateway/event-gateway/api"
	"github.com/event-gateway/event-gateway/history"
	"github.com/event-gateway/event-gateway/internal/tracing"
	"github.com/event-gateway/event-gateway/plugin"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/jetstream"
	"github.com/event-gateway/event-gateway/router/pipeline/transform"
	"github.com/event-gateway/event-gateway/router/trail"
)

// options are the command-line settings. The flag names are those earlier
// gateways of this kind used, so existing scripts keep working.
type options struct {
	configHost, eventsHost string
	configPort, eventsPort int

	dbHosts                []string
	dbPrefix               string
	dbTimeout              time.Duration
	dbUsername, dbPassword string
	dbCert, dbKey, dbCA    string

	dev           bool
	embedDataDir  string
	embedCliAddr  string
	embedPeerAddr string

	logLevel  slog.Level
	logFormat string

	maxBody                int64
	maxHops                int
	maxBodyInFlight        int64
	functionTimeout        time.Duration
	transformTimeout       time.Duration
	tracingEndpoint        string
	tracingProtocol        string
	tracingInsecure        bool
	tracingSampleRatio     float64
	functionMaxInFlight    int
	breakerFailures        int
	breakerOpen            time.Duration
	workers                int
	workersBacklog         int
	deliveryAttempts       int
	deliveryInitialBackoff time.Duration
	deliveryMaxBackoff     time.Duration
	deliveryAckWait        time.Duration
	deadLetterMaxAge       time.Duration
	historyMaxEntries      int
	historyMaxAge          time.Duration
	trailRetention         time.Duration
	trailMaxBytes          int64

	natsURL                   string
	natsCreds                 string
	natsCert, natsKey, natsCA string
	natsDataDir               string
	natsSync                  bool
	natsReplicas              int
	natsMaxBytes              int64

	plugins        []string
	pluginTimeout  time.Duration
	pluginFailOpen bool
	pluginBuffer   int

	configToken                 string
	configTLSCert, configTLSKey string
	eventsTLSCert, eventsTLSKey string
	maxInFlight                 int
	accessLog                   bool
	spaceDomains                []string
	maxHeaderBytes              int

	shutdownTimeout time.Duration
	version         bool
}

// natsSubdir is where, below -embed-data-dir, -dev keeps the embedded
// NATS server's data when -nats-data-dir is not set.
const natsSubdir = "nats"

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("event-gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configHost, "config-host", "", "address the Configuration API binds to (empty: all interfaces)")
	fs.IntVar(&o.configPort, "config-port", 4001, "port of the Configuration API (0: pick a free one)")
	fs.StringVar(&o.eventsHost, "events-host", "", "address the Events API binds to (empty: all interfaces)")
	fs.IntVar(&o.eventsPort, "events-port", 4000, "port of the Events API (0: pick a free one)")
	dbHosts := fs.String("db-hosts", "127.0.0.1:2379", "comma-separated etcd endpoints")
	fs.StringVar(&o.dbPrefix, "db-prefix", "/event-gateway/", "etcd key prefix; gateways with different prefixes share an etcd without seeing each other")
	fs.DurationVar(&o.dbTimeout, "db-timeout", api.DefaultStoreTimeout, "how long a configuration call waits for etcd before answering 503")
	fs.StringVar(&o.dbUsername, "db-username", "", "etcd user name (with -db-password or $EVENT_GATEWAY_DB_PASSWORD)")
	fs.StringVar(&o.dbPassword, "db-password", "", "etcd password; prefer $EVENT_GATEWAY_DB_PASSWORD, which other users cannot read from the process list")
	fs.StringVar(&o.dbCert, "db-cert", "", "client certificate for etcd TLS")
	fs.StringVar(&o.dbKey, "db-key", "", "key of the client certificate for etcd TLS")
	fs.StringVar(&o.dbCA, "db-ca", "", "CA certificate that signed the etcd servers' certificates")
	fs.BoolVar(&o.dev, "dev", false, "run an embedded etcd in this process (development mode)")
	fs.StringVar(&o.embedDataDir, "embed-data-dir", "event-gateway.etcd", "data directory of the embedded etcd (-dev)")
	fs.StringVar(&o.embedCliAddr, "embed-cli-addr", "http://127.0.0.1:2379", "client URL of the embedded etcd (-dev)")
	fs.StringVar(&o.embedPeerAddr, "embed-peer-addr", "http://127.0.0.1:2380", "peer URL of the embedded etcd (-dev)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.Int64Var(&o.maxBody, "max-body", api.DefaultMaxBody, "largest request body the Events API accepts, in bytes (413 above)")
	fs.DurationVar(&o.functionTimeout, "function-timeout", router.DefaultTimeout, "timeout of a function call when the function sets none")
	fs.StringVar(&o.tracingEndpoint, "tracing-endpoint", "", "OTLP receiver (host:port) to send OpenTelemetry traces to; empty: tracing off")
	fs.StringVar(&o.tracingProtocol, "tracing-protocol", tracing.ProtocolGRPC, "OTLP protocol of -tracing-endpoint: grpc or http/protobuf")
	fs.BoolVar(&o.tracingInsecure, "tracing-insecure", false, "send traces to -tracing-endpoint without TLS")
	fs.Float64Var(&o.tracingSampleRatio, "tracing-sample-ratio", 1, "share of new traces recorded, 0 to 1 (a request with a sampled traceparent is always recorded)")
	fs.DurationVar(&o.transformTimeout, "transform-timeout", transform.DefaultTimeout, "how long one call of a subscription's transform or transformResponse script may run before it is interrupted and fails")
	fs.IntVar(&o.functionMaxInFlight, "function-max-in-flight", router.DefaultMaxInFlight, "asynchronous deliveries this instance makes at once to one function that sets no maxInFlight (its bulkhead); keep it well below -workers")
	fs.IntVar(&o.breakerFailures, "function-breaker-failures", router.DefaultBreakerFailures, "consecutive calls of a function that time out or cannot reach it after which its circuit breaker opens (0: no breaker)")
	fs.DurationVar(&o.breakerOpen, "function-breaker-open", router.DefaultBreakerOpen, "how long an open circuit breaker holds a function's deliveries before one probes it")
	fs.Int64Var(&o.maxBodyInFlight, "max-body-bytes-in-flight", api.DefaultMaxBodyBytesInFlight, "bytes of request bodies the Events API holds at once, over all requests; past it: 503 with Retry-After (0: no limit)")
	fs.IntVar(&o.maxHops, "max-hops", api.DefaultMaxHops, "calls of functions a request to the Events API may have come through (the Event-Gateway-Hops header the gateway sends them); past it: 508 Loop Detected")
	fs.IntVar(&o.workers, "workers", jetstream.DefaultWorkers, "deliveries of custom events this instance makes at once")
	fs.IntVar(&o.workersBacklog, "workers-backlog", jetstream.DefaultMaxMsgs, "records (each up to 64 deliveries of events accepted together) that may wait in the store; past it emitters get 503")
	fs.IntVar(&o.deliveryAttempts, "delivery-attempts", jetstream.DefaultMaxAttempts, "tries of a delivery before it becomes a dead letter (a subscription's retry.maxAttempts overrides it)")
	fs.DurationVar(&o.deliveryInitialBackoff, "delivery-initial-backoff", jetstream.DefaultInitialBackoff, "pause before the first retry of a failed delivery; it doubles for each further one")
	fs.DurationVar(&o.deliveryMaxBackoff, "delivery-max-backoff", jetstream.DefaultMaxBackoff, "longest pause between two tries of a delivery")
	fs.DurationVar(&o.deliveryAckWait, "delivery-ack-wait", jetstream.DefaultAckWait, "how long a delivery taken by an instance that then died waits before another try")
	fs.IntVar(&o.historyMaxEntries, "history-max-entries", history.DefaultMaxEntries, "configuration changes kept in the history of each space")
	fs.DurationVar(&o.historyMaxAge, "history-max-age", 0, "drop configuration history records older than this (0: keep them until -history-max-entries pushes them out)")
	fs.DurationVar(&o.deadLetterMaxAge, "dead-letter-max-age", jetstream.DefaultDeadLetterMaxAge, "how long dead letters are kept")
	fs.DurationVar(&o.trailRetention, "trail-retention", trail.DefaultRetention, "how long the event trail (what became of each accepted event, GET /v1/spaces/<space>/events/<id>) is kept; 0 turns the trail off")
	fs.Int64Var(&o.trailMaxBytes, "trail-max-bytes", trail.DefaultMaxBytes, "bytes the event trail may take in the store; past it the oldest records go first")
	fs.StringVar(&o.natsURL, "nats-url", "", "NATS server(s) with JetStream that store deliveries (comma-separated); empty: an embedded server")
	fs.StringVar(&o.natsCreds, "nats-creds", "", "NATS credentials file (-nats-url)")
	fs.StringVar(&o.natsCert, "nats-cert", "", "client certificate for NATS TLS (-nats-url)")
	fs.StringVar(&o.natsKey, "nats-key", "", "key of the NATS client certificate")
	fs.StringVar(&o.natsCA, "nats-ca", "", "CA of the NATS servers' certificates (-nats-url)")
	fs.StringVar(&o.natsDataDir, "nats-data-dir", "event-gateway.nats", "data directory of the embedded NATS server (with -dev and an -embed-data-dir given, <embed-data-dir>/nats unless set)")
	fs.BoolVar(&o.natsSync, "nats-sync", false, "embedded NATS: write each accepted event to disk (fsync) before answering 202, so it survives power loss, not only a crash")
	fs.IntVar(&o.natsReplicas, "nats-replicas", jetstream.DefaultReplicas, "replicas of the delivery streams (3 on a NATS cluster)")
	fs.Int64Var(&o.natsMaxBytes, "nats-max-bytes", jetstream.DefaultMaxBytes, "bytes the waiting deliveries may take in the store; past it emitters get 503")
	fs.Var((*stringList)(&o.plugins), "plugin", "path of a plugin executable to load (repeatable)")
	fs.DurationVar(&o.pluginTimeout, "plugin-timeout", plugin.DefaultTimeout, "how long a plugin may take to answer one call (of any kind) before it is restarted")
	fs.BoolVar(&o.pluginFailOpen, "plugin-fail-open", false, "let events and calls through when a plugin cannot be asked: unmodified, with the configured backends, the gateway choosing (default: stop them with 503)")
	fs.IntVar(&o.pluginBuffer, "plugin-buffer", plugin.DefaultBuffer, "async system events that may wait for each observer plugin, measurements for each metric sink; more are dropped and counted")
	fs.StringVar(&o.configToken, "config-token", "", "require Authorization: Bearer <token> on the Configuration API (or set $EVENT_GATEWAY_TOKEN)")
	fs.StringVar(&o.configTLSCert, "config-tls-cert", "", "certificate file: serve the Configuration API over TLS")
	fs.StringVar(&o.configTLSKey, "config-tls-key", "", "key file of -config-tls-cert")
	fs.StringVar(&o.eventsTLSCert, "events-tls-cert", "", "certificate file: serve the Events API over TLS")
	fs.StringVar(&o.eventsTLSKey, "events-tls-key", "", "key file of -events-tls-cert")
	fs.Var((*stringList)(&o.spaceDomains), "space-domain", "a domain under which the Events API takes the space from the host: a request to <space>.<domain> is routed in <space> (repeatable; without it, a request names its space with a Space header, or is in the default space)")
	fs.BoolVar(&o.accessLog, "access-log", false, "log every request (method, path, status, bytes, duration) at info level")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 10000, "requests each API handles at once; more get 503 (0: no limit)")
	fs.IntVar(&o.maxHeaderBytes, "max-header-bytes", 64<<10, "largest request line and headers, in bytes (431 above)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long to wait for in-flight requests on shutdown")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.dev && set["embed-data-dir"] && !set["nats-data-dir"] {
		// A development gateway given a data directory keeps all its
		// state there, as serverless run expects (it runs the gateway
		// in the user's service folder with a temporary data dir).
		o.natsDataDir = filepath.Join(o.embedDataDir, natsSubdir)
	}

	if o.configToken == "" {
		o.configToken = getenv("EVENT_GATEWAY_TOKEN")
	}
	if (o.configTLSCert == "") != (o.configTLSKey == "") || (o.eventsTLSCert == "") != (o.eventsTLSKey == "") {
		return nil, errors.New("a TLS certificate and its key go together (-config-tls-cert/-key, -events-tls-cert/-key)")
	}
	if o.maxHops <= 0 {
		return nil, errors.New("-max-hops must be positive")
	}
	if o.maxBodyInFlight < 0 || (o.maxBodyInFlight > 0 && o.maxBodyInFlight <= o.maxBody) {
		return nil, errors.New("-max-body-bytes-in-flight must be 0 (no limit) or more than -max-body")
	}
	if o.maxInFlight < 0 || o.maxHeaderBytes <= 0 {
		return nil, errors.New("-max-in-flight must not be negative and -max-header-bytes must be positive")
	}
	if o.dbPassword == "" {
		o.dbPassword = getenv("EVENT_GATEWAY_DB_PASSWORD")
	}
	if (o.dbUsername == "") != (o.dbPassword == "") {
		return nil, errors.New("-db-username and -db-password (or $EVENT_GATEWAY_DB_PASSWORD) go together")
	}
	if (o.dbCert == "") != (o.dbKey == "") {
		return nil, errors.New("-db-cert and -db-key go together")
	}
	for _, h := range strings.Split(*dbHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			o.dbHosts = append(o.dbHosts, h)
		}
	}
	if len(o.dbHosts) == 0 && !o.dev {
		return nil, errors.New("-db-hosts: at least one etcd endpoint is needed (or use -dev)")
	}
	if err := o.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level: %q is not one of debug, info, warn, error", *logLevel)
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return nil, fmt.Errorf("-log-format: %q is not text or json", o.logFormat)
	}
	for _, p := range []struct {
		name string
		port int
	}{{"-config-port", o.configPort}, {"-events-port", o.eventsPort}} {
		if p.port < 0 || p.port > 65535 {
			return nil, fmt.Errorf("%s: %d is not a port number", p.name, p.port)
		}
	}
	if o.maxBody <= 0 {
		return nil, errors.New("-max-body must be positive")
	}
	if o.functionTimeout <= 0 || o.functionTimeout > 15*time.Minute {
		return nil, errors.New("-function-timeout must be between 0 and 15m")
	}
	if o.tracingSampleRatio < 0 || o.tracingSampleRatio > 1 {
		return nil, errors.New("-tracing-sample-ratio must be between 0 and 1")
	}
	if o.tracingProtocol != tracing.ProtocolGRPC && o.tracingProtocol != tracing.ProtocolHTTP {
		return nil, fmt.Errorf("-tracing-protocol must be %s or %s", tracing.ProtocolGRPC, tracing.ProtocolHTTP)
	}
	if o.transformTimeout <= 0 || o.transformTimeout > time.Minute {
		return nil, errors.New("-transform-timeout must be between 0 and 1m")
	}
	if o.functionMaxInFlight <= 0 || o.breakerFailures < 0 || o.breakerOpen <= 0 {
		return nil, errors.New("-function-max-in-flight and -function-breaker-open must be positive, and -function-breaker-failures not negative")
	}
	if o.workers <= 0 || o.workersBacklog <= 0 || o.deliveryAttempts <= 0 || o.natsReplicas <= 0 || o.natsMaxBytes <= 0 {
		return nil, errors.New("-workers, -workers-backlog, -delivery-attempts, -nats-replicas and -nats-max-bytes must be positive")
	}
	if o.deliveryInitialBackoff <= 0 || o.deliveryMaxBackoff < o.deliveryInitialBackoff || o.deliveryAckWait <= 0 || o.deadLetterMaxAge <= 0 {
		return nil, errors.New("-delivery-initial-backoff, -delivery-ack-wait and -dead-letter-max-age must be positive, and -delivery-max-backoff at least the initial backoff")
	}
	if o.trailRetention < 0 || o.trailMaxBytes <= 0 {
		return nil, errors.New("-trail-retention must not be negative (0: no trail) and -trail-max-bytes must be positive")
	}
	if (o.natsCert == "") != (o.natsKey == "") {
		return nil, errors.New("-nats-cert and -nats-key go together")
	}
	if o.pluginTimeout <= 0 || o.pluginBuffer <= 0 {
		return nil, errors.New("-plugin-timeout and -plugin-buffer must be positive")
	}
	if o.historyMaxEntries < 1 || o.historyMaxAge < 0 {
		return nil, errors.New("-history-max-entries must be at least 1 and -history-max-age not negative")
	}
	if o.dbTimeout <= 0 {
		return nil, errors.New("-db-timeout must be positive")
	}
	if !strings.HasPrefix(o.dbPrefix, "/") {
		return nil, fmt.Errorf("-db-prefix: %q must start with /", o.dbPrefix)
	}
	return o, nil
}
