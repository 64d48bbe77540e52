// Package emulator invokes functions of provider type "emulator": functions
// run by the Serverless Framework's local emulator (@serverless/emulator),
// which `serverless run` starts beside the gateway.
//
// Provider is the functions.Kind of type "emulator": register it in the
// gateway's functions.Registry. Its configuration is Config,
// {"emulatorUrl": "http://localhost:4002", "apiVersion": "v0"}, as
// serverless@1.28.0 registers its functions.
//
// A call is POST {emulatorUrl}/v0/emulator/api/functions/invoke with the
// body {"functionId": <id>, "payload": <event envelope>}. The emulator runs
// the handler and answers 200 with its result as JSON, or 500 with the
// error as text, which is a function failure.
//
// One Provider serves every emulator function of a gateway through one
// pooled transport.
package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/event-gateway/event-gateway/functions"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/internal/errkind"
)

// Type is the provider type this package serves.
const Type functions.ProviderType = "emulator"

// APIVersion is the one version of the emulator's API this package speaks,
// and the default of Config.APIVersion.
const APIVersion = "v0"

// invokePath is where the v0 API invokes a function, below emulatorUrl.
const invokePath = "v0/emulator/api/functions/invoke"

// Config is the configuration of an emulator function: where the emulator
// listens and the version of its API. It has no secret.
type Config struct {
	EmulatorURL string `json:"emulatorUrl"`
	APIVersion  string `json:"apiVersion"`
}

// Provider returns c as the provider of a Function, for code (and tests)
// that build functions without going through the API.
func (c Config) Provider() functions.Provider {
	b, _ := json.Marshal(c) // a struct of strings always encodes
	return functions.Provider{Type: Type, Config: b}
}

// Validate checks that EmulatorURL is an absolute http or https URL
// without credentials, and sets APIVersion to "v0" when it is empty: the
// only version there is.
func (c *Config) Validate() error {
	if c.EmulatorURL == "" {
		return errkind.New(errkind.Invalid, "provider.emulatorUrl is required for type emulator")
	}
	if err := httpfn.ValidateURL("provider.emulatorUrl", c.EmulatorURL); err != nil {
		return err
	}
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.APIVersion != APIVersion {
		return errkind.New(errkind.Invalid, "provider.apiVersion %q is not supported (use %q)", c.APIVersion, APIVersion)
	}
	return nil
}

// Redact does nothing: an emulator function's configuration has no secret.
func (c *Config) Redact() {}

// KeepSecrets does nothing: an emulator function's configuration has no
// secret.
func (c *Config) KeepSecrets(functions.Config) error { return nil }

// Defaults for Options fields left at their zero value: those of the http
// provider, whose calls these are too.
const (
	DefaultMaxResponseBytes = httpfn.DefaultMaxResponseBytes
	// DefaultTimeout bounds a call whose context has no deadline. The
	// router always sets one (the function's timeout); this is a
	// backstop.
	DefaultTimeout     = httpfn.DefaultTimeout
	DefaultDialTimeout = httpfn.DefaultDialTimeout
)

// maxErrorBytes is how much of a failure's text is kept in the error.
const maxErrorBytes = 4 << 10

// Options configures a Provider. The zero value is usable.
type Options struct {
	// MaxResponseBytes caps a function's result. Default 6 MiB.
	MaxResponseBytes int64
	// DefaultTimeout bounds a call whose context has no deadline.
	// Default 60s.
	DefaultTimeout time.Duration
	// Transport replaces the pooled transport the Provider builds.
	Transport http.RoundTripper
}

// Provider invokes emulator functions. It is safe for concurrent use;
// build it once with New.
type Provider struct {
	// rt is called directly, as in functions/http: a function call
	// follows no redirect.
	rt             http.RoundTripper
	maxResponse    int64
	defaultTimeout time.Duration
	header         http.Header // read-only, shared by every request
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
		dialer := &net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}
		rt = &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			MaxIdleConnsPerHost: 64,
		}
	}
	return &Provider{
		rt:             rt,
		maxResponse:    opts.MaxResponseBytes,
		defaultTimeout: opts.DefaultTimeout,
		header:         http.Header{"Content-Type": {"application/json"}},
	}
}

// Close closes the Provider's idle connections. It returns nil; the error
// makes Provider an io.Closer, which functions.Registry.Close closes.
func (p *Provider) Close() error {
	if c, ok := p.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return nil
}

var _ functions.Kind = (*Provider)(nil)

// Type returns "emulator".
func (p *Provider) Type() functions.ProviderType { return Type }

// NewConfig returns an empty *Config.
func (p *Provider) NewConfig() functions.Config { return new(Config) }

// Invoker returns the invoker of f, whose configuration c is a *Config.
func (p *Provider) Invoker(f functions.Function, c functions.Config) (functions.Invoker, error) {
	cfg, ok := c.(*Config)
	if !ok {
		return nil, fmt.Errorf("emulator: configuration of type %T is not an emulator configuration", c)
	}
	if v := cfg.APIVersion; v != "" && v != APIVersion {
		return nil, fmt.Errorf("emulator: apiVersion %q is not supported", v)
	}
	u, err := url.Parse(cfg.EmulatorURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("emulator: emulatorUrl %q is not an absolute http or https URL", cfg.EmulatorURL)
	}
	id, _ := json.Marshal(f.ID) // a string always encodes
	u = u.JoinPath(invokePath)
	if !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path // JoinPath keeps an empty base path relative
	}
	u.RawPath = ""
	return &invoker{p: p, u: u, id: id}, nil
}

type invoker struct {
	p  *Provider
	u  *url.URL // the invoke endpoint, shared read-only by requests
	id []byte   // the function id as a JSON string
}

// Invoke asks the emulator to run the function with payload, the event
// envelope, and returns the handler's result.
func (inv *invoker) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	p := inv.p
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.defaultTimeout)
		defer cancel()
	}
	body := make([]byte, 0, len(`{"functionId":,"payload":}`)+len(inv.id)+len(payload))
	body = append(body, `{"functionId":`...)
	body = append(body, inv.id...)
	body = append(body, `,"payload":`...)
	switch {
	case len(bytes.TrimSpace(payload)) == 0:
		body = append(body, "null"...)
	case json.Valid(payload):
		body = append(body, payload...)
	default:
		// Envelopes are JSON; anything else goes as a string rather
		// than as a request the emulator cannot read.
		s, _ := json.Marshal(string(payload))
		body = append(body, s...)
	}
	body = append(body, '}')

	req := (&http.Request{
		Method:        http.MethodPost,
		URL:           inv.u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        p.header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Host:          inv.u.Host,
	}).WithContext(ctx)
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }

	resp, err := p.rt.RoundTrip(req)
	if err != nil {
		return nil, classify(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// 500 is the handler's failure, with its error as text; any
		// other status is the emulator's own (an unknown function).
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		return nil, fmt.Errorf("%w: emulator answered %d: %s", functions.ErrFunctionFailed, resp.StatusCode, errorText(b))
	}
	if resp.ContentLength > p.maxResponse {
		return nil, functions.ErrResponseTooLarge
	}
	out, err := io.ReadAll(io.LimitReader(resp.Body, p.maxResponse+1))
	if err != nil {
		return nil, classify(ctx, fmt.Errorf("read response: %w", err))
	}
	if int64(len(out)) > p.maxResponse {
		return nil, functions.ErrResponseTooLarge
	}
	return serializeBody(payload, out), nil
}

// errorText makes a failure's text fit on one log line.
func errorText(b []byte) string {
	s := strings.TrimSpace(string(b))
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if s == "" {
		return "(no error text)"
	}
	return strings.Join(strings.Fields(s), " ")
}

// classify is httpfn.Classify for calls to the emulator.
func classify(ctx context.Context, err error) error { return httpfn.Classify(ctx, err, "emulator") }

// serializeBody returns the result of a call for an http event with its
// body as a string, as the response object's contract has it: the
// emulator parses the body of a handler's result whose Content-Type is
// application/json, so it arrives as an object. Any other result is
// returned as it is.
func serializeBody(payload, out []byte) []byte {
	// Cheap checks first: only a JSON object with a body member can need
	// a change.
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) == 0 || trimmed[0] != '{' || !bytes.Contains(trimmed, []byte(`"body"`)) {
		return out
	}
	var resp map[string]json.RawMessage
	if json.Unmarshal(trimmed, &resp) != nil {
		return out
	}
	body, ok := resp["body"]
	if !ok || len(body) == 0 || body[0] == '"' || string(body) == "null" {
		return out
	}
	if !isHTTPEvent(payload) {
		return out
	}
	var compact bytes.Buffer
	if json.Compact(&compact, body) != nil {
		return out
	}
	s, err := json.Marshal(compact.String())
	if err != nil {
		return out
	}
	resp["body"] = s
	b, err := json.Marshal(resp)
	if err != nil {
		return out
	}
	return b
}

// isHTTPEvent reports whether an envelope is that of an http event: the
// seed's ("event": "http") or a CloudEvent of type http.request.
func isHTTPEvent(payload []byte) bool {
	var env struct {
		Event string `json:"event"`
		Type  string `json:"type"`
	}
	if json.Unmarshal(payload, &env) != nil {
		return false
	}
	return env.Event == "http" || env.Type == "http.request"
}
