// Package httpfn invokes functions of provider type "http": it POSTs the
// event payload to the function's URL and returns the response body.
//
// Provider is the functions.Kind of type "http": register it in the
// gateway's functions.Registry. Its configuration is Config, {"url": …}.
//
// One Provider serves every http function of a gateway. It owns a single
// pooled http.Transport so that keep-alive connections to a function's host are
// shared by all calls; building a client or transport per call (or per
// function) would defeat the pool and pay a TCP and TLS handshake each time.
package httpfn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/event-gateway/event-gateway/internal/tracing"
	"go.opentelemetry.io/otel/trace"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/functions/upstream"
	"github.com/event-gateway/event-gateway/internal/errkind"
)

// Type is the provider type this package serves.
const Type functions.ProviderType = "http"

// Config is the configuration of an http function: the URL the event is
// POSTed to, or several backends to spread the calls over (backends.go).
// It has no secret (a secret in the URL would be shown by GET;
// credentials in it are refused).
type Config struct {
	// URL is omitted when empty so that a function with backends is
	// stored without it; a function with one url is stored as it always
	// was, {"url":"…"}.
	URL      string    `json:"url,omitempty"`
	Backends []Backend `json:"backends,omitempty"`
	// Balance is the policy that picks a backend; "weighted" when empty.
	Balance string `json:"balance,omitempty"`
	// HashOn is what the "hash" policy hashes: "header:NAME" or
	// "param:NAME".
	HashOn string  `json:"hashOn,omitempty"`
	Canary *Canary `json:"canary,omitempty"`
	Health *Health `json:"health,omitempty"`
	// Discovery takes the backends from the gateway's backend-source
	// plugin whenever it knows the function (upstream.go); URL or
	// Backends, optional then, apply while it does not.
	Discovery bool `json:"discovery,omitempty"`
}

// Provider returns c as the provider of a Function, for code (and tests)
// that build functions without going through the API.
func (c Config) Provider() functions.Provider {
	b, _ := json.Marshal(c) // strings, numbers and slices of them always encode
	return functions.Provider{Type: Type, Config: b}
}

// MaxURLLen bounds a function's URL, as the gateway bounds paths: a URL
// is stored, listed and sent with every call.
const MaxURLLen = 2048

// Validate checks that URL is an absolute http or https URL without
// credentials, of at most MaxURLLen bytes, or else that Backends and the
// fields that go with them are valid.
func (c *Config) Validate() error {
	if c.Discovery {
		return c.validateDiscovery()
	}
	if c.Backends != nil {
		if c.URL != "" {
			return errkind.New(errkind.Invalid, "provider.url and provider.backends exclude each other: give one url, or list the backends")
		}
		return c.validateBackends()
	}
	if c.URL == "" {
		return errkind.New(errkind.Invalid, "provider.url is required for type http (or provider.backends, to list several)")
	}
	if err := c.onlyWithBackends(); err != nil {
		return err
	}
	return ValidateURL("provider.url", c.URL)
}

// ValidateURL checks the URL of an endpoint a provider calls (field names
// it in messages): absolute http or https, without credentials, at most
// MaxURLLen bytes.
func ValidateURL(field, raw string) error {
	if len(raw) > MaxURLLen {
		return errkind.New(errkind.Invalid, "%s is longer than %d bytes", field, MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasPrefix(u.Host, ":") {
		return errkind.New(errkind.Invalid, "%s %q must be an absolute http or https URL", field, raw)
	}
	if u.User != nil {
		// Credentials in the URL would be shown back by GET.
		return errkind.New(errkind.Invalid, "%s must not carry credentials", field)
	}
	return nil
}

// Redact does nothing: an http function's configuration has no secret.
func (c *Config) Redact() {}

// KeepSecrets does nothing: an http function's configuration has no secret.
func (c *Config) KeepSecrets(functions.Config) error { return nil }

// Defaults for Options fields left at their zero value.
const (
	// DefaultMaxResponseBytes matches AWS Lambda's synchronous response
	// limit, so both provider types accept the same responses.
	DefaultMaxResponseBytes int64 = 6 << 20
	// DefaultTimeout bounds a call whose context has no deadline.
	DefaultTimeout = 60 * time.Second
	// DefaultDialTimeout bounds establishing the TCP connection.
	DefaultDialTimeout = 5 * time.Second
	// DefaultTLSHandshakeTimeout bounds the TLS handshake.
	DefaultTLSHandshakeTimeout = 5 * time.Second
	// DefaultIdleConnTimeout is how long an idle keep-alive connection is kept.
	DefaultIdleConnTimeout = 90 * time.Second
	// DefaultMaxIdleConnsPerHost is sized for many concurrent calls to one
	// function host: net/http's default of 2 would make most calls under
	// load open a fresh connection and leave it in TIME_WAIT afterwards.
	DefaultMaxIdleConnsPerHost = 256
	// DefaultMaxIdleConns caps idle connections across all hosts.
	DefaultMaxIdleConns = 1024
)

// maxDrainBytes is how much of an unwanted body (an error response) is read
// so that its connection can go back to the pool. Past this it is cheaper to
// drop the connection than to keep reading.
const maxDrainBytes = 64 << 10

// Options configures a Provider. The zero value is usable.
type Options struct {
	// MaxResponseBytes caps a function's response body. Default 6 MiB.
	MaxResponseBytes int64

	// DefaultTimeout bounds a call whose context carries no deadline, so a
	// hung function cannot hold a goroutine and a connection forever.
	// Callers are expected to pass a deadline; this is a backstop.
	// Default 60s.
	DefaultTimeout time.Duration

	// Transport replaces the pooled transport the Provider builds. The
	// timeout and pool fields below are ignored when it is set. Tests use
	// it; so could a gateway that wants one transport for all providers.
	Transport http.RoundTripper

	// DialTimeout bounds TCP connection setup. Default 5s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake. Default 5s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers once the
	// request is written. The default, 0, sets no such limit: for a
	// function that time is its execution time, which the caller's context
	// deadline already bounds per function. A transport-wide value would
	// cut off functions configured with a longer timeout, and would be
	// reported as an unreachable function rather than ErrTimeout.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout is how long idle connections are kept. Default 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is the idle pool size per host. Default 256.
	MaxIdleConnsPerHost int
	// MaxIdleConns is the idle pool size over all hosts. Default 1024.
	MaxIdleConns int

	// Logger gets what the health of functions with several backends
	// does: ejections, probes failing and passing. Default: discarded.
	Logger *slog.Logger

	// Source gives the backends of the functions with "discovery"
	// (upstream.go): the gateway's backend-source plugins. Nil: those
	// functions call their configured backends.
	Source upstream.Source
	// Selector chooses the backend of each call of a function with
	// several (upstream.go): the gateway's selector plugin. Nil: each
	// function's balance policy chooses.
	Selector upstream.Selector
}

// Provider invokes http functions through one shared, pooled client. It is
// safe for concurrent use; build it once with New.
type Provider struct {
	// rt is called directly rather than through an http.Client: the Client
	// layer adds only redirect following, which a function call must not
	// do (a 301/302 turns the POST into a GET, and any redirect sends the
	// event to a host nobody registered), plus a header copy per call made
	// for that redirect logic. A 3xx is thus returned as is and, being
	// non-2xx, reported as a failure.
	rt             http.RoundTripper
	log            *slog.Logger
	maxResponse    int64
	defaultTimeout time.Duration
	// headers[n] is sent, read-only, with every request of hop count n
	// (functions.HopsHeader). Sharing them saves a map per call; the
	// RoundTripper contract forbids modifying the request.
	headers [sharedHopHeaders + 1]http.Header

	source    upstream.Source
	sel       upstream.Selector
	stopWatch context.CancelFunc // nil without a source
	mu        sync.Mutex         // guards live
	// live is the pools of the functions with discovery, which the
	// source's pushes change.
	live map[fnKey]map[*pool]struct{}
}

// sharedHopHeaders is the highest hop count whose request header is made
// once and shared; a call past it (a gateway run with a larger -max-hops)
// gets a header map of its own.
const sharedHopHeaders = 32

// header returns the request header of a call with hop count hops.
func (p *Provider) header(hops int) http.Header {
	if hops >= 1 && hops <= sharedHopHeaders {
		return p.headers[hops]
	}
	return hopHeader(hops)
}

func hopHeader(hops int) http.Header {
	return http.Header{"Content-Type": {"application/json"}, functions.HopsHeader: {strconv.Itoa(hops)}}
}

// New builds a Provider. Call Close when it is no longer needed.
func New(opts Options) *Provider {
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = DefaultTimeout
	}
	rt := opts.Transport
	if rt == nil {
		rt = newTransport(opts)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Provider{
		rt:             rt,
		log:            opts.Logger,
		maxResponse:    opts.MaxResponseBytes,
		defaultTimeout: opts.DefaultTimeout,
		source:         opts.Source,
		sel:            opts.Selector,
		live:           map[fnKey]map[*pool]struct{}{},
	}
	if p.source != nil {
		var ctx context.Context
		ctx, p.stopWatch = context.WithCancel(context.Background())
		p.source.Watch(ctx, p.pushed)
	}
	for n := 1; n <= sharedHopHeaders; n++ {
		p.headers[n] = hopHeader(n)
	}
	return p
}

func newTransport(opts Options) *http.Transport {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.TLSHandshakeTimeout <= 0 {
		opts.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if opts.IdleConnTimeout <= 0 {
		opts.IdleConnTimeout = DefaultIdleConnTimeout
	}
	if opts.MaxIdleConnsPerHost <= 0 {
		opts.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if opts.MaxIdleConns <= 0 {
		opts.MaxIdleConns = DefaultMaxIdleConns
	}
	dialer := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true, // a custom DialContext turns it off otherwise
		TLSHandshakeTimeout:   opts.TLSHandshakeTimeout,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		IdleConnTimeout:       opts.IdleConnTimeout,
		MaxIdleConns:          opts.MaxIdleConns,
		MaxIdleConnsPerHost:   opts.MaxIdleConnsPerHost,
		ExpectContinueTimeout: time.Second,
	}
}

// Close closes the Provider's idle connections and stops applying what
// the Source pushes. Calls in flight finish; the Provider stays usable and
// simply dials again. It returns nil; the error makes Provider an
// io.Closer, which functions.Registry.Close closes.
func (p *Provider) Close() error {
	if p.stopWatch != nil {
		p.stopWatch()
	}
	if c, ok := p.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return nil
}

var _ functions.Kind = (*Provider)(nil)

// Type returns "http".
func (p *Provider) Type() functions.ProviderType { return Type }

// NewConfig returns an empty *Config.
func (p *Provider) NewConfig() functions.Config { return new(Config) }

// Invoker returns the invoker of f, whose configuration c is a *Config.
func (p *Provider) Invoker(f functions.Function, c functions.Config) (functions.Invoker, error) {
	cfg, ok := c.(*Config)
	if !ok {
		return nil, fmt.Errorf("httpfn: configuration of type %T is not an http configuration", c)
	}
	if cfg.Backends == nil && !cfg.Discovery {
		return p.URLInvoker(cfg.URL), nil
	}
	// Stored configurations were checked when sent; one that is not
	// valid now (written by another version) is not guessed at.
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Discovery {
		return p.discover(f.Space, f.ID, cfg), nil
	}
	return p.newPool(f.ID, cfg), nil
}

// URLInvoker returns an Invoker for the function at rawURL. It is cheap: it
// holds no connection of its own (so it needs no Close), and may be built
// per call or cached. A URL that does not parse makes every Invoke fail
// with that error.
func (p *Provider) URLInvoker(rawURL string) functions.Invoker {
	inv := &invoker{p: p, url: rawURL}
	u, err := url.Parse(rawURL)
	switch {
	case err != nil:
		inv.err = fmt.Errorf("httpfn: invalid function url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		inv.err = fmt.Errorf("httpfn: function url scheme %q is not http or https", u.Scheme)
	default:
		inv.u = u
	}
	return inv
}

type invoker struct {
	p   *Provider
	url string
	// u is parsed once: requests share it, read-only (a RoundTripper must
	// not modify the request).
	u   *url.URL
	err error
}

// Invoke POSTs payload to the function and returns the 2xx response body.
func (inv *invoker) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if inv.err != nil {
		return nil, inv.err
	}
	p := inv.p
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.defaultTimeout)
		defer cancel()
	}

	// NewRequestWithContext sets ContentLength and GetBody for a
	// *bytes.Reader-like body; GetBody lets the transport resend the POST
	// when a pooled connection turns out to have been closed by the server
	// before anything was written, instead of failing the call. The body
	// stays io.NopCloser(*bytes.Reader), which the transport recognizes as
	// in memory: it then writes the headers and a small body together.
	req := (&http.Request{
		Method:        http.MethodPost,
		URL:           inv.u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        p.header(functions.Hops(ctx) + 1),
		Body:          io.NopCloser(bytes.NewReader(payload)),
		ContentLength: int64(len(payload)),
		Host:          inv.u.Host,
	}).WithContext(ctx)
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(payload)), nil }
	if trace.SpanContextFromContext(ctx).IsValid() {
		// A traced call: the function continues the trace (W3C
		// traceparent). The shared header is read-only: copy it.
		req.Header = req.Header.Clone()
		tracing.Inject(ctx, req.Header)
	}
	if len(payload) == 0 {
		// A non-nil body of length 0 would be sent chunked, as of unknown
		// length.
		req.Body = http.NoBody
		req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
	}

	resp, err := p.rt.RoundTrip(req)
	if err != nil {
		return nil, classify(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		discard(resp.Body)
		if resp.StatusCode == http.StatusLoopDetected && resp.Header.Get(functions.HopsHeader) != "" {
			// A gateway refused the call as one round too many: calling
			// again would only make the same loop.
			return nil, fmt.Errorf("%w: the function's URL is a gateway that answered 508 after %s hops", functions.ErrLoopDetected, resp.Header.Get(functions.HopsHeader))
		}
		return nil, fmt.Errorf("%w: %w", functions.ErrFunctionFailed, &StatusError{Code: resp.StatusCode})
	}
	if n, ok := functions.ResponsePrefix(ctx); ok {
		// The caller wants a prefix: any size is fine, the rest is
		// discarded (closing early drops this one connection).
		body, err := io.ReadAll(io.LimitReader(resp.Body, min(n, p.maxResponse)))
		discard(resp.Body)
		if err != nil {
			return nil, classify(ctx, fmt.Errorf("read response: %w", err))
		}
		return body, nil
	}
	body, err := readBody(resp.Body, resp.ContentLength, p.maxResponse)
	if err != nil {
		discard(resp.Body)
		return nil, classify(ctx, err)
	}
	// Read to its end: the connection is back in the pool already, and
	// there is nothing left to discard.
	_ = resp.Body.Close()
	return body, nil
}

// classify is Classify for this provider's calls.
func classify(ctx context.Context, err error) error { return Classify(ctx, err, "httpfn: post") }

// Classify maps a transport or read error of a call over HTTP onto the
// functions sentinels, naming the call with what. The *url.Error wrapper
// is dropped because its text repeats the full URL, whose query string may
// carry a secret, into every log line.
func Classify(ctx context.Context, err error, what string) error {
	if errors.Is(err, functions.ErrResponseTooLarge) {
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", functions.ErrTimeout, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// readBody reads r to EOF into one buffer, failing with ErrResponseTooLarge
// as soon as more than limit bytes arrive. size is the declared
// Content-Length or -1. A declared size is used to allocate the buffer
// exactly once (plus one byte so that EOF is seen without growing); a body
// declared larger than limit is refused without reading it.
func readBody(r io.Reader, size, limit int64) ([]byte, error) {
	if size > limit {
		return nil, functions.ErrResponseTooLarge
	}
	n := size
	if n < 0 {
		n = min(512, limit) // unknown length (chunked, or gzip decoded)
	}
	b := make([]byte, 0, n+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // let append pick the growth
		}
		// Never read past limit+1 bytes: one byte over proves the excess.
		end := cap(b)
		if int64(end) > limit+1 {
			end = int(limit + 1)
		}
		m, err := r.Read(b[len(b):end])
		b = b[:len(b)+m]
		if int64(len(b)) > limit {
			return nil, functions.ErrResponseTooLarge
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read response: %w", err)
		}
	}
}

// discard reads what is left of a small body and closes it, so that the
// connection returns to the pool. A large remainder is not read: closing
// early makes the transport drop that one connection instead.
func discard(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, maxDrainBytes)
	_ = body.Close()
}
