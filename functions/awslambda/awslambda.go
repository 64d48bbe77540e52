// Package awslambda invokes functions of provider type "awslambda" through
// the AWS SDK for Go v2, synchronously (InvocationType RequestResponse).
//
// Provider is the functions.Kind of type "awslambda": register it in the
// gateway's functions.Registry. Its configuration is Config.
//
// One Provider serves every Lambda function of a gateway. It keeps one
// *lambda.Client per distinct (region, credentials) pair, because a client
// is costly to build (configuration loading, credential and endpoint
// resolution) and holds the per-region endpoint and signer state, while all
// clients share one pooled HTTP client so keep-alive connections to the
// Lambda endpoint are reused across functions. A client is cached while an
// invoker uses it: closing the last invoker of a pair evicts its client,
// so credentials that are no longer configured do not stay in memory.
//
// Endpoints come from the SDK's standard configuration: AWS_ENDPOINT_URL_LAMBDA
// (or AWS_ENDPOINT_URL, or endpoint_url in the shared config file) points
// every client at another endpoint, such as a local Lambda emulator.
package awslambda

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
)

// Type is the provider type this package serves.
const Type functions.ProviderType = "awslambda"

// Config is the configuration of a Lambda function. Without keys, the
// function is called with the credentials of the gateway's environment
// (the SDK's default chain). The secret key and the session token are
// secrets: never shown by the API, kept when sent back as
// functions.Redacted.
type Config struct {
	ARN                string `json:"arn"`
	Region             string `json:"region"`
	AWSAccessKeyID     string `json:"awsAccessKeyId,omitempty"`
	AWSSecretAccessKey string `json:"awsSecretAccessKey,omitempty"`
	AWSSessionToken    string `json:"awsSessionToken,omitempty"`
}

// Provider returns c as the provider of a Function, for code (and tests)
// that build functions without going through the API.
func (c Config) Provider() functions.Provider {
	b, _ := json.Marshal(c) // a struct of strings always encodes
	return functions.Provider{Type: Type, Config: b}
}

var regionPattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// Validate checks that the function is named and its credentials complete.
func (c *Config) Validate() error {
	switch {
	case c.ARN == "":
		return errkind.New(errkind.Invalid, "provider.arn is required for type awslambda")
	case c.Region == "":
		return errkind.New(errkind.Invalid, "provider.region is required for type awslambda")
	case !regionPattern.MatchString(c.Region):
		return errkind.New(errkind.Invalid, "provider.region %q is not a region name", c.Region)
	case (c.AWSAccessKeyID == "") != (c.AWSSecretAccessKey == ""):
		return errkind.New(errkind.Invalid, "provider.awsAccessKeyId and provider.awsSecretAccessKey go together")
	case c.AWSSessionToken != "" && c.AWSAccessKeyID == "":
		return errkind.New(errkind.Invalid, "provider.awsSessionToken needs provider.awsAccessKeyId and provider.awsSecretAccessKey")
	}
	return nil
}

// Redact hides the secret key and the session token; the access key id
// stays visible, so a client can tell which key a function uses.
func (c *Config) Redact() {
	if c.AWSSecretAccessKey != "" {
		c.AWSSecretAccessKey = functions.Redacted
	}
	if c.AWSSessionToken != "" {
		c.AWSSessionToken = functions.Redacted
	}
}

// KeepSecrets takes each secret sent as functions.Redacted from stored, a
// *Config or nil.
func (c *Config) KeepSecrets(stored functions.Config) error {
	old, _ := stored.(*Config)
	if c.AWSSecretAccessKey != functions.Redacted && c.AWSSessionToken != functions.Redacted {
		return nil
	}
	if old == nil {
		return errkind.New(errkind.Invalid, "%q is the redaction marker, not a credential", functions.Redacted)
	}
	if c.AWSSecretAccessKey == functions.Redacted {
		c.AWSSecretAccessKey = old.AWSSecretAccessKey
	}
	if c.AWSSessionToken == functions.Redacted {
		c.AWSSessionToken = old.AWSSessionToken
	}
	return nil
}

// Defaults for Options fields left at their zero value.
const (
	// DefaultMaxResponseBytes is Lambda's own synchronous response limit.
	DefaultMaxResponseBytes int64 = 6 << 20
	// DefaultTimeout bounds a call whose context has no deadline.
	DefaultTimeout = 60 * time.Second
	// DefaultMaxIdleConnsPerHost: all Lambda calls of a region go to one
	// endpoint host, so the SDK's per-host idle pool must be sized for the
	// gateway's concurrency or most calls under load pay a TLS handshake.
	DefaultMaxIdleConnsPerHost = 256
	// DefaultMaxIdleConns caps idle connections over all regions.
	DefaultMaxIdleConns = 1024
	// DefaultIdleConnTimeout is how long an idle connection is kept.
	DefaultIdleConnTimeout = 90 * time.Second
)

// Options configures a Provider. The zero value is usable.
type Options struct {
	// MaxResponseBytes caps a function's response payload. Default 6 MiB.
	MaxResponseBytes int64

	// DefaultTimeout bounds a call whose context carries no deadline.
	// Callers are expected to pass one; this is a backstop. Default 60s.
	DefaultTimeout time.Duration

	// HTTPClient is what every Lambda client sends Invoke requests with.
	// When nil the Provider builds one pooled client (the SDK's transport
	// defaults and any custom CA bundle, with the pool sizes above) and
	// shares it among all its Lambda clients. A client given here is used
	// as is, so a custom CA bundle is then the caller's to configure.
	HTTPClient aws.HTTPClient

	// LoadOptions are applied to config.LoadDefaultConfig after the
	// Provider's own (region, static credentials, retryer), so they can
	// override them. Tests use it, e.g. for config.WithBaseEndpoint. Use
	// HTTPClient, not config.WithHTTPClient, to change the client Invoke
	// calls go through.
	LoadOptions []func(*config.LoadOptions) error
}

// Provider hands out Invokers for Lambda functions. It is safe for
// concurrent use; build it once with New.
type Provider struct {
	maxResponse    int64
	defaultTimeout time.Duration
	userHTTP       aws.HTTPClient
	loadOptions    []func(*config.LoadOptions) error

	mu sync.Mutex
	// clients caches one *lambda.Client per clientKey, counting the
	// invokers that hold it. A mutex, not a sync.Map: it is taken only
	// when an invoker is made or closed, once per function version, never
	// per call. Holding it while a missing client is built also keeps two
	// first invokers of the same credentials from both loading
	// configuration.
	clients map[clientKey]*cachedClient
	// httpClient is shared by every Lambda client. It is set when the
	// first client is built, because the SDK's configuration (a custom CA
	// bundle from AWS_CA_BUNDLE or the shared config) shapes its transport.
	httpClient aws.HTTPClient
	// idle closes the idle connections of the client the Provider built;
	// nil when the client came from Options.
	idle func()
}

// cachedClient is a Lambda client and the number of open invokers using it.
type cachedClient struct {
	client *lambda.Client
	refs   int
}

// clientKey identifies a (region, credentials) pair by a SHA-256 digest,
// so that the cache keeps no secret in clear and map keys are fixed-size.
type clientKey [sha256.Size]byte

// New builds a Provider. Call Close when it is no longer needed.
func New(opts Options) *Provider {
	p := &Provider{
		maxResponse:    opts.MaxResponseBytes,
		defaultTimeout: opts.DefaultTimeout,
		userHTTP:       opts.HTTPClient,
		loadOptions:    opts.LoadOptions,
		clients:        make(map[clientKey]*cachedClient),
	}
	if p.maxResponse <= 0 {
		p.maxResponse = DefaultMaxResponseBytes
	}
	if p.defaultTimeout <= 0 {
		p.defaultTimeout = DefaultTimeout
	}
	return p
}

// newBuildableClient is the SDK's default HTTP client with a pool sized for
// a gateway. It is handed to config.LoadDefaultConfig, which applies any
// custom CA bundle to it (the SDK can do so only to a BuildableClient), and
// is used as is by the credential providers of the default chain.
func newBuildableClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = DefaultMaxIdleConns
		tr.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
		tr.IdleConnTimeout = DefaultIdleConnTimeout
	})
}

// sharedHTTPClient turns the HTTP client of a loaded configuration into the
// one client all Lambda clients share. A BuildableClient cannot be shared
// as it is: each service client copies it, transport and pool included.
// So its configured transport becomes a plain *http.Client, which service
// clients use unchanged.
func sharedHTTPClient(c aws.HTTPClient) (aws.HTTPClient, func()) {
	bc, ok := c.(*awshttp.BuildableClient)
	if !ok {
		return c, nil // set through Options.LoadOptions: the caller owns it
	}
	hc := &http.Client{
		Transport: bc.GetTransport(),
		// Lambda does not redirect; never follow one with signed requests.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return hc, hc.CloseIdleConnections
}

// Close closes the idle connections of the HTTP client the Provider built.
// The Provider stays usable. It returns nil; the error makes Provider an
// io.Closer, which functions.Registry.Close closes.
func (p *Provider) Close() error {
	p.mu.Lock()
	idle := p.idle
	p.mu.Unlock()
	if idle != nil {
		idle()
	}
	return nil
}

var (
	_ functions.Kind = (*Provider)(nil)
	_ io.Closer      = (*invoker)(nil)
)

// Type returns "awslambda".
func (p *Provider) Type() functions.ProviderType { return Type }

// NewConfig returns an empty *Config.
func (p *Provider) NewConfig() functions.Config { return new(Config) }

// Invoker returns the invoker of f, whose configuration c is a *Config
// with an ARN and a region. It uses the static credentials of c when it has
// them and the SDK's default credential chain (environment, shared files,
// web identity, container or instance role) otherwise.
//
// The invoker holds the cached Lambda client of c's region and credentials
// until it is closed (it is an io.Closer): close it when f's configuration
// is replaced, so that the client of credentials no longer used is evicted.
func (p *Provider) Invoker(f functions.Function, c functions.Config) (functions.Invoker, error) {
	cfg, ok := c.(*Config)
	if !ok {
		return nil, fmt.Errorf("awslambda: configuration of type %T is not a Lambda configuration", c)
	}
	return p.invoker(*cfg)
}

func (p *Provider) invoker(fn Config) (*invoker, error) {
	if fn.ARN == "" || fn.Region == "" {
		return nil, errors.New("awslambda: function arn and region are required")
	}
	k := keyOf(fn)
	c, err := p.acquire(k, fn)
	if err != nil {
		return nil, err
	}
	return &invoker{p: p, client: c, key: k, arn: fn.ARN}, nil
}

func keyOf(fn Config) clientKey {
	h := sha256.New()
	for _, s := range []string{fn.Region, fn.AWSAccessKeyID, fn.AWSSecretAccessKey, fn.AWSSessionToken} {
		// Length-prefix each field so that no two tuples hash alike by
		// moving bytes between neighbouring fields.
		_, _ = fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	var k clientKey
	h.Sum(k[:0])
	return k
}

// acquire returns the cached Lambda client for key k, fn's region and
// credentials, building it when no open invoker uses one, and counts one
// more user of it. Each acquire is matched by one release.
func (p *Provider) acquire(k clientKey, fn Config) (*lambda.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc, ok := p.clients[k]; ok {
		cc.refs++
		return cc.client, nil
	}

	opts := []func(*config.LoadOptions) error{
		config.WithRegion(fn.Region),
		config.WithHTTPClient(newBuildableClient()),
		// No SDK retries. Invoke with RequestResponse is not idempotent:
		// the standard retryer resends on connection errors and 5xx that
		// can come after Lambda has started the function, so a retry may
		// run it twice. Its backoff would also spend the caller's deadline
		// in sleeps, and its retry token bucket would make one failing
		// function throttle the retries of all others sharing the client.
		// The gateway reports the failure and the event's sender, which
		// knows whether a repeat is safe, decides. (AWS_MAX_ATTEMPTS cannot
		// turn retries back on: it only caps attempts of this retryer.)
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if fn.AWSAccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(fn.AWSAccessKeyID, fn.AWSSecretAccessKey, fn.AWSSessionToken)))
	}
	opts = append(opts, p.loadOptions...)

	// LoadDefaultConfig reads the environment and shared config files,
	// including the endpoint override (AWS_ENDPOINT_URL_LAMBDA and the
	// like, which lambda.NewFromConfig applies), but makes no network call:
	// credentials resolve on first use. A background context is enough.
	cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("awslambda: load AWS config for region %s: %w", fn.Region, err)
	}
	if p.httpClient == nil {
		var idle func()
		hc := p.userHTTP
		if hc == nil {
			hc, idle = sharedHTTPClient(cfg.HTTPClient)
		}
		// Every response passes through the limit, so an oversized
		// payload is refused while it is read, not after it is in memory.
		p.httpClient, p.idle = limitClient{next: hc, max: p.maxResponse}, idle
	}
	c := lambda.NewFromConfig(cfg, func(o *lambda.Options) {
		o.HTTPClient = p.httpClient
	})
	p.clients[k] = &cachedClient{client: c, refs: 1}
	return c, nil
}

// release counts one user of the client of k less, and evicts the client
// when it was the last. Eviction only forgets the client: calls in flight
// on it hold it and complete.
func (p *Provider) release(k clientKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cc, ok := p.clients[k]
	if !ok {
		return
	}
	if cc.refs--; cc.refs <= 0 {
		delete(p.clients, k)
	}
}

// cached reports how many clients are cached, for tests.
func (p *Provider) cached() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.clients)
}

type invoker struct {
	p      *Provider
	client *lambda.Client
	key    clientKey
	arn    string
	closed sync.Once
}

// Close releases the invoker's hold on its cached client, once however
// often it is called. The invoker stays usable: a call that picked it from
// a routing snapshot just before the snapshot was replaced still runs,
// on a client that may no longer be cached.
func (inv *invoker) Close() error {
	inv.closed.Do(func() { inv.p.release(inv.key) })
	return nil
}

// Invoke runs the function synchronously and returns its response payload.
func (inv *invoker) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, inv.p.defaultTimeout)
		defer cancel()
	}
	out, err := inv.client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   &inv.arn,
		InvocationType: types.InvocationTypeRequestResponse,
		Payload:        payload,
		ClientContext:  clientContext(functions.Hops(ctx) + 1),
	})
	if err != nil {
		switch {
		case errors.Is(err, functions.ErrResponseTooLarge):
			return nil, fmt.Errorf("awslambda: invoke %s: %w", inv.arn, functions.ErrResponseTooLarge)
		case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("%w: awslambda: invoke %s: %w", functions.ErrTimeout, inv.arn, err)
		}
		return nil, fmt.Errorf("awslambda: invoke %s: %w", inv.arn, err)
	}
	if out.FunctionError != nil {
		return nil, fmt.Errorf("%w: awslambda: %s: %s error%s", functions.ErrFunctionFailed,
			inv.arn, *out.FunctionError, errorType(out.Payload))
	}
	if _, prefix := functions.ResponsePrefix(ctx); !prefix && int64(len(out.Payload)) > inv.p.maxResponse {
		// limitClient refuses such a body while reading it; this second
		// check keeps the limit should a future SDK get the body otherwise.
		return nil, fmt.Errorf("awslambda: invoke %s: %w", inv.arn, functions.ErrResponseTooLarge)
	}
	return out.Payload, nil
}

// clientContext is the client context of a call with hop count hops: the
// count as the custom field functions.HopsHeader, which a function that
// calls the gateway back should send as that header (Node:
// context.clientContext.Custom["Event-Gateway-Hops"]). A Lambda function
// cannot be a route of the gateway itself, so only such a function can
// make a loop through it; one that does not forward the count is not
// stopped by -max-hops.
func clientContext(hops int) *string {
	if hops >= 1 && hops < len(clientContexts) {
		return &clientContexts[hops]
	}
	s := encodeClientContext(hops)
	return &s
}

// clientContexts are the client contexts of the usual hop counts, encoded
// once.
var clientContexts = func() (cc [33]string) {
	for n := 1; n < len(cc); n++ {
		cc[n] = encodeClientContext(n)
	}
	return cc
}()

func encodeClientContext(hops int) string {
	return base64.StdEncoding.EncodeToString([]byte(`{"custom":{"` + functions.HopsHeader + `":"` + strconv.Itoa(hops) + `"}}`))
}

// errorType returns " (TYPE)" for the errorType in a Lambda error payload,
// or "". Only the type is kept for logs: errorMessage is the function's own
// text and may carry event data.
func errorType(payload []byte) string {
	var doc struct {
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(payload, &doc) != nil || doc.ErrorType == "" {
		return ""
	}
	t := doc.ErrorType
	if len(t) > 100 {
		t = t[:100]
	}
	return fmt.Sprintf(" (%q)", t)
}

// limitClient sits between the SDK and the HTTP client for two reasons.
//
// It caps response bodies at max bytes: a Lambda Invoke response body is
// the function's payload, and the SDK would otherwise read all of it into
// memory before the Provider could look at its size.
//
// And it gives the transport a request body of its own. After Do returns
// the response headers, smithy-go closes the request body it passed in,
// which races with net/http's writeLoop still finishing that body: when
// the close wins, the write fails, the connection is discarded, and the
// next call dials (and under TLS, handshakes) again. A body owned here is
// not closed under the transport. Having GetBody also lets net/http resend
// the request on a fresh connection when a pooled one turns out to be dead
// before anything was written, which is safe for a non-idempotent Invoke
// and matters because the Provider disables SDK retries.
type limitClient struct {
	next aws.HTTPClient
	max  int64
}

func (c limitClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength > 0 {
		buf := make([]byte, req.ContentLength)
		if _, err := io.ReadFull(req.Body, buf); err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		req = req.WithContext(req.Context()) // shallow copy; smithy keeps its own
		req.Body = io.NopCloser(bytes.NewReader(buf))
		req.GetBody = func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(buf)), nil
		}
	}
	resp, err := c.next.Do(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	if n, ok := functions.ResponsePrefix(req.Context()); ok {
		// The caller wants a prefix: any size is fine, the rest is
		// discarded unread.
		resp.Body = &prefixBody{rc: resp.Body, left: min(n, c.max)}
		resp.ContentLength = -1
		return resp, nil
	}
	b := &limitedBody{rc: resp.Body, left: c.max + 1}
	if resp.ContentLength > c.max {
		b.left = 0 // refuse without reading a byte
	}
	resp.Body = b
	return resp, nil
}

// prefixBody reads the first left bytes of a body, then ends.
type prefixBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *prefixBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *prefixBody) Close() error { return b.rc.Close() }

// limitedBody fails with ErrResponseTooLarge once more than the limit has
// been read; left starts at limit+1 so that one byte over proves excess.
// The error is reported once; later reads see EOF, so that the SDK, which
// drains a body after a failed read to keep its connection, stops at once
// and closes it instead (and does not log a warning). Dropping that one
// connection is cheaper than reading megabytes to keep it.
type limitedBody struct {
	rc       io.ReadCloser
	left     int64
	reported bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.reported {
		return 0, io.EOF
	}
	if b.left <= 0 {
		b.reported = true
		return 0, functions.ErrResponseTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left <= 0 {
		b.reported = true
		return n, functions.ErrResponseTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
