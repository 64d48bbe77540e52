// Package awslambda invokes functions of provider type "awslambda" through
// the AWS SDK for Go v2, synchronously (InvocationType RequestResponse).
//
// One Provider serves every Lambda function of a gateway. It keeps one
// *lambda.Client per distinct (region, credentials) pair, because a client
// is costly to build (configuration loading, credential and endpoint
// resolution) and holds the per-region endpoint and signer state, while all
// clients share one pooled HTTP client so keep-alive connections to the
// Lambda endpoint are reused across functions.
//
// Endpoints come from the SDK's standard configuration: AWS_ENDPOINT_URL_LAMBDA
// (or AWS_ENDPOINT_URL, or endpoint_url in the shared config file) points
// every client at another endpoint, such as a local Lambda emulator.
package awslambda

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/event-gateway/event-gateway/functions"
)

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

	// clients caches one *lambda.Client per clientKey. Reads are lock-free;
	// mu serialises only the building of a missing client, so that two
	// first calls for the same credentials do not both load configuration.
	clients sync.Map // clientKey -> *lambda.Client

	mu sync.Mutex
	// httpClient is shared by every Lambda client. It is set when the
	// first client is built, because the SDK's configuration (a custom CA
	// bundle from AWS_CA_BUNDLE or the shared config) shapes its transport.
	httpClient aws.HTTPClient
	// idle closes the idle connections of the client the Provider built;
	// nil when the client came from Options.
	idle func()
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
// The Provider stays usable.
func (p *Provider) Close() {
	p.mu.Lock()
	idle := p.idle
	p.mu.Unlock()
	if idle != nil {
		idle()
	}
}

// Invoker returns an Invoker for fn, which must be of type awslambda with
// an ARN and region. It uses fn's static credentials when it has them and
// the SDK's default credential chain (environment, shared files, web
// identity, container or instance role) otherwise. The Lambda client behind
// it is cached, so calling Invoker for every call is cheap after the first.
func (p *Provider) Invoker(fn functions.Provider) (functions.Invoker, error) {
	if fn.Type != functions.AWSLambda {
		return nil, fmt.Errorf("awslambda: provider type %q is not %q", fn.Type, functions.AWSLambda)
	}
	if fn.ARN == "" || fn.Region == "" {
		return nil, errors.New("awslambda: function arn and region are required")
	}
	c, err := p.client(fn)
	if err != nil {
		return nil, err
	}
	return &invoker{p: p, client: c, arn: fn.ARN}, nil
}

func keyOf(fn functions.Provider) clientKey {
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

// client returns the cached Lambda client for fn's region and credentials,
// building it on first use.
func (p *Provider) client(fn functions.Provider) (*lambda.Client, error) {
	k := keyOf(fn)
	if c, ok := p.clients.Load(k); ok {
		return c.(*lambda.Client), nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients.Load(k); ok {
		return c.(*lambda.Client), nil
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
	p.clients.Store(k, c)
	return c, nil
}

type invoker struct {
	p      *Provider
	client *lambda.Client
	arn    string
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
	if int64(len(out.Payload)) > inv.p.maxResponse {
		// limitClient refuses such a body while reading it; this second
		// check keeps the limit should a future SDK get the body otherwise.
		return nil, fmt.Errorf("awslambda: invoke %s: %w", inv.arn, functions.ErrResponseTooLarge)
	}
	return out.Payload, nil
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
	b := &limitedBody{rc: resp.Body, left: c.max + 1}
	if resp.ContentLength > c.max {
		b.left = 0 // refuse without reading a byte
	}
	resp.Body = b
	return resp, nil
}

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
