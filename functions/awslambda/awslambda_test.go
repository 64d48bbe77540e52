package awslambda

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/lambdatest"
)

const (
	region = "us-east-1"
	arn    = "arn:aws:lambda:us-east-1:123456789012:function:"
)

// isolate keeps the SDK away from the machine's AWS configuration and from
// the network: no shared config files, no instance metadata service, and
// dummy credentials in the environment for the default chain. The tests
// use t.Setenv and so cannot run in parallel.
func isolate(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CA_BUNDLE":               "",
		"AWS_ACCESS_KEY_ID":           "AKIDENV",
		"AWS_SECRET_ACCESS_KEY":       "env-secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  region,
		"AWS_PROFILE":                 "",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_LAMBDA":     "",
		"AWS_MAX_ATTEMPTS":            "",
		"AWS_RETRY_MODE":              "",
		"HTTP_PROXY":                  "",
		"HTTPS_PROXY":                 "",
		"http_proxy":                  "",
		"https_proxy":                 "",
	} {
		t.Setenv(k, v)
	}
}

type echoIn struct {
	Name string `json:"name"`
}

type echoOut struct {
	Greeting string `json:"greeting"`
}

type myError struct{ msg string }

func (e *myError) Error() string { return e.msg }

// setup starts a stand-in Lambda with a few handlers and a Provider whose
// clients talk to it through config.WithBaseEndpoint.
func setup(t *testing.T, opts Options) (*lambdatest.Server, *Provider) {
	t.Helper()
	isolate(t)
	srv := lambdatest.New()
	t.Cleanup(srv.Close)
	srv.Register("hello", func(_ context.Context, in echoIn) (echoOut, error) {
		return echoOut{Greeting: "hello " + in.Name}, nil
	})
	srv.Register("fails", func(context.Context, echoIn) (echoOut, error) {
		return echoOut{}, &myError{msg: "user 42 not found"}
	})
	srv.Register("slow", func(ctx context.Context, _ echoIn) (echoOut, error) {
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
		return echoOut{}, nil
	})
	srv.Register("big", func(_ context.Context, n int) (string, error) {
		return strings.Repeat("x", n), nil
	})
	opts.LoadOptions = append([]func(*config.LoadOptions) error{config.WithBaseEndpoint(srv.URL())}, opts.LoadOptions...)
	p := New(opts)
	t.Cleanup(func() { p.Close() })
	return srv, p
}

func fn(name string) Config {
	return Config{ARN: arn + name, Region: region}
}

func invoke(t *testing.T, p *Provider, f Config, payload string) ([]byte, error) {
	t.Helper()
	inv, err := p.invoker(f)
	if err != nil {
		t.Fatalf("Invoker: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return inv.Invoke(ctx, []byte(payload))
}

func TestInvokeSuccess(t *testing.T) {
	srv, p := setup(t, Options{})
	out, err := invoke(t, p, fn("hello"), `{"name":"ada"}`)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var got echoOut
	if err := json.Unmarshal(out, &got); err != nil || got.Greeting != "hello ada" {
		t.Fatalf("payload = %s (%v), want greeting \"hello ada\"", out, err)
	}
	if n := srv.Calls("hello"); n != 1 {
		t.Fatalf("Calls(hello) = %d, want 1", n)
	}
	inv := srv.Invocations()
	if len(inv) != 1 || inv[0].FunctionName != arn+"hello" || string(inv[0].Payload) != `{"name":"ada"}` {
		t.Fatalf("Invocations = %+v", inv)
	}
	// No static keys on the function: the default chain found the env's.
	if inv[0].AccessKeyID != "AKIDENV" || inv[0].Region != region {
		t.Fatalf("signed with %q in %q, want AKIDENV in %s", inv[0].AccessKeyID, inv[0].Region, region)
	}
}

func TestFunctionErrorIsFunctionFailed(t *testing.T) {
	_, p := setup(t, Options{})
	out, err := invoke(t, p, fn("fails"), `{}`)
	if !errors.Is(err, functions.ErrFunctionFailed) {
		t.Fatalf("err = %v, want ErrFunctionFailed", err)
	}
	if out != nil {
		t.Errorf("payload = %s, want nil", out)
	}
	msg := err.Error()
	if !strings.Contains(msg, "Unhandled") || !strings.Contains(msg, "myError") {
		t.Errorf("error %q should name the function error and its type", msg)
	}
	if strings.Contains(msg, "user 42") {
		t.Errorf("error %q repeats the function's error message", msg)
	}
}

func TestUnknownFunction(t *testing.T) {
	srv, p := setup(t, Options{})
	_, err := invoke(t, p, fn("nope"), `{}`)
	if err == nil || errors.Is(err, functions.ErrFunctionFailed) || errors.Is(err, functions.ErrTimeout) {
		t.Fatalf("err = %v, want a plain error", err)
	}
	if !strings.Contains(err.Error(), "ResourceNotFoundException") {
		t.Errorf("error %q does not name ResourceNotFoundException", err)
	}
	// No SDK retries: one request only.
	if n := len(srv.Invocations()); n != 1 {
		t.Errorf("server saw %d requests, want 1 (no retries)", n)
	}
}

func TestStaticCredentials(t *testing.T) {
	srv, p := setup(t, Options{})
	f := fn("hello")
	f.AWSAccessKeyID, f.AWSSecretAccessKey, f.AWSSessionToken = "AKIDSTATIC", "static-secret", "static-token"
	if _, err := invoke(t, p, f, `{"name":"x"}`); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	inv := srv.Invocations()
	if len(inv) != 1 {
		t.Fatalf("%d invocations, want 1", len(inv))
	}
	if inv[0].AccessKeyID != "AKIDSTATIC" || inv[0].SessionToken != "static-token" {
		t.Fatalf("signed with key %q token %q, want the function's static credentials", inv[0].AccessKeyID, inv[0].SessionToken)
	}
}

func TestClientCache(t *testing.T) {
	_, p := setup(t, Options{})
	client := func(f Config) *lambda.Client {
		t.Helper()
		inv, err := p.invoker(f)
		if err != nil {
			t.Fatal(err)
		}
		return inv.client
	}
	withKeys := func(f Config, id, secret, token string) Config {
		f.AWSAccessKeyID, f.AWSSecretAccessKey, f.AWSSessionToken = id, secret, token
		return f
	}
	a := withKeys(fn("hello"), "AKID1", "s1", "")
	if client(a) != client(a) {
		t.Error("same credentials gave different clients")
	}
	if client(a) != client(withKeys(fn("fails"), "AKID1", "s1", "")) {
		t.Error("another function with the same credentials got a different client")
	}
	others := []Config{
		withKeys(fn("hello"), "AKID2", "s1", ""),
		withKeys(fn("hello"), "AKID1", "s2", ""),
		withKeys(fn("hello"), "AKID1", "s1", "tok"),
		fn("hello"), // default chain
	}
	r := a
	r.Region = "eu-west-1"
	others = append(others, r)
	seen := map[*lambda.Client]bool{client(a): true}
	for _, o := range others {
		c := client(o)
		if seen[c] {
			t.Errorf("credentials %s/%s region %s share a client with another set", o.AWSAccessKeyID, o.AWSSessionToken, o.Region)
		}
		seen[c] = true
	}
	// Moving bytes between fields must not collide.
	if keyOf(withKeys(fn("x"), "AB", "C", "")) == keyOf(withKeys(fn("x"), "A", "BC", "")) {
		t.Error("cache keys collide across field boundaries")
	}
}

func TestClientCacheConcurrent(t *testing.T) {
	srv, p := setup(t, Options{})
	var wg sync.WaitGroup
	clients := make([]*lambda.Client, 16)
	errs := make([]error, 16)
	for i := range clients {
		wg.Go(func() {
			f := fn("hello")
			f.AWSAccessKeyID, f.AWSSecretAccessKey = "AKIDC", "sc"
			inv, err := p.invoker(f)
			if err != nil {
				errs[i] = err
				return
			}
			clients[i] = inv.client
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, errs[i] = inv.Invoke(ctx, fmt.Appendf(nil, `{"name":"%d"}`, i))
		})
	}
	wg.Wait()
	for i := range clients {
		if errs[i] != nil {
			t.Fatalf("worker %d: %v", i, errs[i])
		}
		if clients[i] != clients[0] {
			t.Fatal("concurrent first use built more than one client")
		}
	}
	if n := srv.Calls("hello"); n != len(clients) {
		t.Fatalf("Calls = %d, want %d", n, len(clients))
	}
}

func TestEndpointFromEnvironment(t *testing.T) {
	isolate(t)
	srv := lambdatest.New()
	t.Cleanup(srv.Close)
	srv.Register("hello", func(_ context.Context, in echoIn) (echoOut, error) {
		return echoOut{Greeting: "hi " + in.Name}, nil
	})
	t.Setenv("AWS_ENDPOINT_URL_LAMBDA", srv.URL())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")

	p := New(Options{}) // no LoadOptions: only the SDK's standard config
	t.Cleanup(func() { p.Close() })
	out, err := invoke(t, p, fn("hello"), `{"name":"env"}`)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if !bytes.Contains(out, []byte("hi env")) {
		t.Fatalf("payload = %s", out)
	}
	inv := srv.Invocations()
	if len(inv) != 1 || inv[0].AccessKeyID != "AKIDFROMENV" {
		t.Fatalf("Invocations = %+v, want one signed with AKIDFROMENV", inv)
	}
}

func TestGenericEndpointFromEnvironment(t *testing.T) {
	isolate(t)
	srv := lambdatest.New()
	t.Cleanup(srv.Close)
	srv.Register("hello", func(context.Context) (string, error) { return "ok", nil })
	t.Setenv("AWS_ENDPOINT_URL", srv.URL())

	p := New(Options{})
	t.Cleanup(func() { p.Close() })
	if _, err := invoke(t, p, fn("hello"), `{}`); err != nil {
		t.Fatalf("Invoke via AWS_ENDPOINT_URL: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	_, p := setup(t, Options{})
	inv, err := p.invoker(fn("slow"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = inv.Invoke(ctx, []byte(`{}`))
	if !errors.Is(err, functions.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Invoke took %v after a 200ms deadline", d)
	}
}

func TestDefaultTimeoutWithoutDeadline(t *testing.T) {
	_, p := setup(t, Options{DefaultTimeout: 200 * time.Millisecond})
	inv, err := p.invoker(fn("slow"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Invoke(context.Background(), []byte(`{}`)); !errors.Is(err, functions.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestResponseTooLarge(t *testing.T) {
	const limit = 1000
	_, p := setup(t, Options{MaxResponseBytes: limit})
	// The handler returns a JSON string: n bytes plus two quotes.
	if _, err := invoke(t, p, fn("big"), fmt.Sprint(limit-2)); err != nil {
		t.Fatalf("response of exactly the limit: %v", err)
	}
	_, err := invoke(t, p, fn("big"), fmt.Sprint(limit-1))
	if !errors.Is(err, functions.ErrResponseTooLarge) {
		t.Fatalf("err = %v, want ErrResponseTooLarge", err)
	}
}

func TestInvokerRejectsWrongProvider(t *testing.T) {
	p := New(Options{})
	for _, c := range []functions.Config{
		&Config{Region: region},
		&Config{ARN: arn + "x"},
		otherConfig{},
	} {
		if _, err := p.Invoker(functions.Function{ID: "f"}, c); err == nil {
			t.Errorf("Invoker(%+v) succeeded", c)
		}
	}
}

func TestDefaultMaxResponseBytes(t *testing.T) {
	if got := New(Options{}).maxResponse; got != 6<<20 {
		t.Fatalf("default MaxResponseBytes = %d, want 6 MiB", got)
	}
}

// TestCABundleAndTLS runs the default HTTP client over HTTPS to a stand-in
// whose self-signed certificate is trusted only through AWS_CA_BUNDLE, as a
// private Lambda endpoint or a TLS-inspecting proxy would need.
func TestCABundleAndTLS(t *testing.T) {
	isolate(t)
	srv := lambdatest.NewTLS()
	t.Cleanup(srv.Close)
	srv.Register("hello", func(context.Context) (string, error) { return "tls", nil })
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bundle, srv.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_LAMBDA", srv.URL())

	// Without the bundle the certificate is not trusted.
	p := New(Options{})
	t.Cleanup(func() { p.Close() })
	if _, err := invoke(t, p, fn("hello"), `{}`); err == nil {
		t.Fatal("Invoke trusted a self-signed certificate without AWS_CA_BUNDLE")
	}

	t.Setenv("AWS_CA_BUNDLE", bundle)
	p = New(Options{})
	t.Cleanup(func() { p.Close() })
	out, err := invoke(t, p, fn("hello"), `{}`)
	if err != nil {
		t.Fatalf("Invoke with AWS_CA_BUNDLE: %v", err)
	}
	if string(out) != `"tls"` {
		t.Fatalf("payload = %s", out)
	}
}

// TestSharedConnectionPool checks that Lambda clients for different
// credentials and regions share one HTTP connection pool.
func TestSharedConnectionPool(t *testing.T) {
	srv, p := setup(t, Options{})
	for i := range 30 {
		f := fn("hello")
		f.AWSAccessKeyID, f.AWSSecretAccessKey = fmt.Sprintf("AKID%d", i%3), "s"
		f.Region = []string{"us-east-1", "eu-west-1"}[i%2]
		if _, err := invoke(t, p, f, `{"name":"pool"}`); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := srv.Conns(); n != 1 {
		t.Fatalf("30 sequential calls through 6 clients opened %d connections, want 1", n)
	}
}

// TestCallerHTTPClient checks that Options.HTTPClient carries the calls.
func TestCallerHTTPClient(t *testing.T) {
	var calls atomic.Int64
	hc := doerFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})
	_, p := setup(t, Options{HTTPClient: hc})
	if _, err := invoke(t, p, fn("hello"), `{}`); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Fatalf("Options.HTTPClient made %d calls, want 1", calls.Load())
	}
}

type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// otherConfig is the configuration of another provider type.
type otherConfig struct{}

func (otherConfig) Validate() error                    { return nil }
func (otherConfig) Redact()                            {}
func (otherConfig) KeepSecrets(functions.Config) error { return nil }

// TestClientEvictedWithLastInvoker checks the reference counting of cached
// clients: closing an invoker twice counts once, the client goes from the
// cache with the last invoker of its credentials, and a call in flight on
// it (or made on a closed invoker) still completes.
func TestClientEvictedWithLastInvoker(t *testing.T) {
	srv, p := setup(t, Options{})
	started, release := make(chan struct{}, 1), make(chan struct{})
	srv.Register("gate", func(ctx context.Context) (string, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "done", nil
	})
	f := fn("gate")
	f.AWSAccessKeyID, f.AWSSecretAccessKey = "AKIDEVICT", "evict-secret"
	other := fn("hello") // default chain: another key, which must stay
	keep, err := p.invoker(other)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()

	a, err := p.invoker(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.invoker(f)
	if err != nil {
		t.Fatal(err)
	}
	if a.client != b.client {
		t.Fatal("two invokers of the same credentials got different clients")
	}
	if n := p.cached(); n != 2 {
		t.Fatalf("%d clients cached, want 2", n)
	}

	type result struct {
		out []byte
		err error
	}
	inFlight := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := a.Invoke(ctx, []byte(`{}`))
		inFlight <- result{out, err}
	}()
	<-started

	a.Close()
	a.Close() // idempotent: must not release b's hold too
	if n := p.cached(); n != 2 {
		t.Fatalf("after closing one of two invokers %d clients cached, want 2", n)
	}
	b.Close()
	if n := p.cached(); n != 1 {
		t.Fatalf("after closing the last invoker %d clients cached, want 1", n)
	}

	close(release)
	if r := <-inFlight; r.err != nil || string(r.out) != `"done"` {
		t.Fatalf("call in flight during eviction = %s, %v; want \"done\"", r.out, r.err)
	}
	if _, err := invoke(t, p, other, `{"name":"x"}`); err != nil {
		t.Fatalf("the other credentials' client: %v", err)
	}
	// A closed invoker still calls, on its evicted client.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := a.Invoke(ctx, []byte(`{}`)); err != nil || string(out) != `"done"` {
		t.Fatalf("call on a closed invoker = %s, %v", out, err)
	}

	c, err := p.invoker(f)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.client == a.client {
		t.Fatal("an evicted client was handed out again")
	}
}

// TestResponsePrefix: a caller that asks for a prefix (an async delivery)
// gets it, however large the response, with no error.
func TestResponsePrefix(t *testing.T) {
	const limit = 1000
	_, p := setup(t, Options{MaxResponseBytes: limit})
	inv, err := p.invoker(fn("big"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := inv.Invoke(functions.WithResponsePrefix(ctx, 10), []byte(fmt.Sprint(10*limit)))
	if err != nil {
		t.Fatalf("err = %v, want none", err)
	}
	if len(out) != 10 || out[0] != '"' {
		t.Fatalf("got %q, want the first 10 bytes of the response", out)
	}
}
