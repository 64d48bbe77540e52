package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/api"
	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/functions/awslambda"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/internal/etcdtest"
	"github.com/event-gateway/event-gateway/internal/openapitest"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions"
)

var etcd *etcdtest.Server

// validator checks every exchange of do against the OpenAPI document; a
// test server must be registered with it.
var validator = openapitest.MustNew()

func TestMain(m *testing.M) { etcdtest.Main(m, func(s *etcdtest.Server) { etcd = s }) }

func newConfigServer(t *testing.T, st *libkv.Store) *httptest.Server {
	t.Helper()
	h := api.NewConfig(api.ConfigOptions{
		Functions:     functions.NewService(st, functions.DefaultSpace, functions.NewRegistry(httpfn.New(httpfn.Options{}), awslambda.New(awslambda.Options{}))),
		Subscriptions: subscriptions.NewService(st).In(functions.DefaultSpace),
		StoreTimeout:  500 * time.Millisecond,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	validator.Register(t, srv.URL, openapitest.ConfigAPI)
	return srv
}

type result struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, srv *httptest.Server, method, path, body string) result {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := validator.Client(srv.Client()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

// wantError checks the status and that the body is a JSON error in both
// shapes clients parse, with the same message, containing msg.
func wantError(t *testing.T, r result, status int, msg string) {
	t.Helper()
	var e struct {
		Error  string `json:"error"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	wantJSON(t, r, status, &e)
	if e.Error == "" || len(e.Errors) != 1 || e.Errors[0].Message != e.Error {
		t.Fatalf("error body %s does not carry both shapes", r.body)
	}
	if !strings.Contains(e.Error, msg) {
		t.Fatalf("error %q does not mention %q", e.Error, msg)
	}
}

func wantJSON(t *testing.T, r result, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.body), v); err != nil {
			t.Fatalf("body is not the expected JSON: %v: %s", err, r.body)
		}
	}
}

func TestFunctionsEndpoints(t *testing.T) {
	srv := newConfigServer(t, etcd.Store(t))

	var f functions.Function
	wantJSON(t, do(t, srv, "POST", "/v1/functions", `{"functionId":"hello","provider":{"type":"http","url":"http://127.0.0.1:9/hello"}}`), 200, &f)
	if f.ID != "hello" || string(f.Provider.Config) != `{"url":"http://127.0.0.1:9/hello"}` {
		t.Fatalf("created %+v", f)
	}
	wantError(t, do(t, srv, "POST", "/v1/functions", `{"functionId":"hello","provider":{"type":"http","url":"http://127.0.0.1:9/hello"}}`), 409, "already exists")

	lambda := `{"functionId":"lam","provider":{"type":"awslambda","arn":"arn:aws:lambda:us-east-1:1:function:f","region":"us-east-1","awsAccessKeyId":"AKID","awsSecretAccessKey":"s3cr3t","awsSessionToken":"t0k3n"}}`
	r := do(t, srv, "POST", "/v1/functions", lambda)
	wantJSON(t, r, 200, nil)
	if strings.Contains(r.body, "s3cr3t") || strings.Contains(r.body, "t0k3n") {
		t.Fatalf("POST response shows a secret: %s", r.body)
	}

	var list struct{ Functions []functions.Function }
	r = do(t, srv, "GET", "/v1/functions", "")
	wantJSON(t, r, 200, &list)
	if len(list.Functions) != 2 {
		t.Fatalf("list %s", r.body)
	}
	if strings.Contains(r.body, "s3cr3t") || strings.Contains(r.body, "t0k3n") {
		t.Fatalf("GET list shows a secret: %s", r.body)
	}
	r = do(t, srv, "GET", "/v1/functions/lam", "")
	wantJSON(t, r, 200, &f)
	var lc awslambda.Config
	if err := json.Unmarshal(f.Provider.Config, &lc); err != nil || lc.AWSSecretAccessKey != functions.Redacted || lc.AWSAccessKeyID != "AKID" {
		t.Fatalf("GET shows %+v", f.Provider)
	}
	wantError(t, do(t, srv, "GET", "/v1/functions/nope", ""), 404, "not found")

	wantJSON(t, do(t, srv, "PUT", "/v1/functions/hello", `{"provider":{"type":"http","url":"https://example.com/v2"}}`), 200, &f)
	if string(f.Provider.Config) != `{"url":"https://example.com/v2"}` {
		t.Fatalf("updated %+v", f)
	}
	wantJSON(t, do(t, srv, "PUT", "/v1/functions/hello", `{"functionId":"hello","provider":{"type":"http","url":"https://example.com/v3"}}`), 200, nil)
	wantError(t, do(t, srv, "PUT", "/v1/functions/hello", `{"functionId":"other","provider":{"type":"http","url":"https://example.com"}}`), 400, "cannot be renamed")
	wantError(t, do(t, srv, "PUT", "/v1/functions/hello", `{}`), 400, "provider is required")
	wantError(t, do(t, srv, "PUT", "/v1/functions/hello", `{"provider":{"type":"http","url":"nope"}}`), 400, "absolute")
	wantError(t, do(t, srv, "PUT", "/v1/functions/nope", `{"provider":{"type":"http","url":"https://example.com"}}`), 404, "not found")

	wantError(t, do(t, srv, "DELETE", "/v1/functions/nope", ""), 404, "not found")
	r = do(t, srv, "DELETE", "/v1/functions/hello", "")
	if r.status != 204 || r.body != "" {
		t.Fatalf("DELETE = %d %q, want 204 and no body", r.status, r.body)
	}
	wantError(t, do(t, srv, "GET", "/v1/functions/hello", ""), 404, "not found")
}

func TestFunctionValidationErrors(t *testing.T) {
	srv := newConfigServer(t, etcd.Store(t))
	for _, tt := range []struct{ body, msg string }{
		{`{"provider":{"type":"http","url":"http://h"}}`, "functionId is required"},
		{`{"functionId":"a/b","provider":{"type":"http","url":"http://h"}}`, "may contain only"},
		{`{"functionId":"f"}`, "provider.type is required"},
		{`{"functionId":"f","provider":{"type":"gcf"}}`, "not supported"},
		{`{"functionId":"f","provider":{"type":"http","url":"localhost:80"}}`, "absolute http"},
		{`{"functionId":"f","provider":{"type":"awslambda","region":"us-east-1"}}`, "arn is required"},
		{`{"functionId":"f","provider":{"type":"awslambda","arn":"a"}}`, "region is required"},
		{`{"functionId":"f","provider":{"type":"http","url":"http://h"},"extra":1}`, `unknown field "extra"`},
		{`{"functionId":"f","provider":{"type":"http","url":"http://h","arn":"x"}}`, `unknown field "provider.arn"`},
		{`{"functionId":"f","provider":{"type":"http","url":42}}`, "field provider.url must be a JSON string"},
		{`{"functionId":"f","provider":{"type":42}}`, "field provider.type must be a JSON string"},
		{`{"functionId":"f","provider":"http"}`, "field provider must be a JSON object"},
		{`{"functionId":42}`, "functionId must be a JSON string"},
		{`[1,2]`, "must be a JSON object"},
		{`{"functionId":"f"`, "not valid JSON"},
		{`{"functionId":"f",}`, "not valid JSON"},
		{`{"functionId":"f","provider":{"type":"http","url":"http://h"}} {}`, "after the JSON value"},
		{``, "empty"},
	} {
		t.Run(tt.body, func(t *testing.T) {
			wantError(t, do(t, srv, "POST", "/v1/functions", tt.body), 400, tt.msg)
		})
	}
}

func TestSubscriptionsEndpoints(t *testing.T) {
	srv := newConfigServer(t, etcd.Store(t))
	wantJSON(t, do(t, srv, "POST", "/v1/functions", `{"functionId":"fn","provider":{"type":"http","url":"http://127.0.0.1:9/"}}`), 200, nil)

	var s subscriptions.Subscription
	wantJSON(t, do(t, srv, "POST", "/v1/subscriptions", `{"functionId":"fn","event":"http","method":"get","path":"users/:id","cors":{}}`), 200, &s)
	if s.ID == "" || s.Method != "GET" || s.Path != "/users/:id" || s.CORS == nil || len(s.CORS.Origins) != 1 {
		t.Fatalf("created %+v", s)
	}
	wantError(t, do(t, srv, "POST", "/v1/subscriptions", `{"functionId":"fn","event":"http","method":"GET","path":"/users/:id"}`), 409, "already exists")
	wantError(t, do(t, srv, "POST", "/v1/subscriptions", `{"functionId":"fn","event":"http","method":"GET","path":"/users/me"}`), 409, "conflicts")
	wantError(t, do(t, srv, "POST", "/v1/subscriptions", `{"functionId":"fn","event":"http","method":"GET","path":"/users/:name"}`), 409, "conflicts")
	wantError(t, do(t, srv, "POST", "/v1/subscriptions", `{"functionId":"fn","event":"http","path":"/x"}`), 400, "method is required")
	wantError(t, do(t, srv, "POST", "/v1/subscriptions", `{"functionId":"ghost","event":"e"}`), 400, "does not exist")
	wantError(t, do(t, srv, "POST", "/v1/subscriptions", `{"functionId":"fn","event":"http","method":"GET","path":"/c","cors":{"origins":[]}}`), 400, "empty list")
	wantError(t, do(t, srv, "POST", "/v1/subscriptions", `{"subscriptionId":"x","functionId":"fn","event":"e"}`), 400, "assigned by the gateway")

	var c subscriptions.Subscription
	wantJSON(t, do(t, srv, "POST", "/v1/subscriptions", `{"functionId":"fn","event":"user.created","path":"/myteam"}`), 200, &c)
	wantError(t, do(t, srv, "POST", "/v1/subscriptions", `{"functionId":"fn","event":"user.created","path":"/myteam"}`), 409, "already subscribed")

	var list struct{ Subscriptions []subscriptions.Subscription }
	wantJSON(t, do(t, srv, "GET", "/v1/subscriptions", ""), 200, &list)
	if len(list.Subscriptions) != 2 {
		t.Fatalf("list = %+v", list)
	}
	var got subscriptions.Subscription
	wantJSON(t, do(t, srv, "GET", "/v1/subscriptions/"+c.ID, ""), 200, &got)
	if got.ID != c.ID || got.Event != "user.created" {
		t.Fatalf("GET = %+v", got)
	}
	wantError(t, do(t, srv, "DELETE", "/v1/functions/fn", ""), 409, "used by a subscription")
	if r := do(t, srv, "DELETE", "/v1/subscriptions/"+c.ID, ""); r.status != 204 {
		t.Fatalf("DELETE = %d %s", r.status, r.body)
	}
	wantError(t, do(t, srv, "DELETE", "/v1/subscriptions/"+c.ID, ""), 404, "not found")
	wantError(t, do(t, srv, "GET", "/v1/subscriptions/"+c.ID, ""), 404, "not found")
	wantError(t, do(t, srv, "GET", "/v1/subscriptions/..%2f..%2fetc", ""), 404, "")
}

func TestProtocolErrors(t *testing.T) {
	srv := newConfigServer(t, etcd.Store(t))
	wantJSON(t, do(t, srv, "GET", "/v1/status", ""), 200, nil)
	wantError(t, do(t, srv, "GET", "/v1/nothing", ""), 404, "no endpoint")
	wantError(t, do(t, srv, "GET", "/", ""), 404, "no endpoint")
	wantError(t, do(t, srv, "PATCH", "/v1/functions", ""), 405, "not allowed")
	wantError(t, do(t, srv, "POST", "/v1/functions/x", "{}"), 405, "not allowed")

	big := `{"functionId":"f","provider":{"type":"http","url":"http://h/` + strings.Repeat("a", 1<<20) + `"}}`
	wantError(t, do(t, srv, "POST", "/v1/functions", big), 413, "larger than")
	wantError(t, do(t, srv, "POST", "/v1/subscriptions", big), 413, "larger than")
}

func TestStoreUnavailable(t *testing.T) {
	st, err := libkv.Open(libkv.Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := newConfigServer(t, st)
	start := time.Now()
	r := do(t, srv, "GET", "/v1/functions", "")
	wantError(t, r, 503, "unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if strings.Contains(r.body, "127.0.0.1") || strings.Contains(r.body, "rpc") {
		t.Fatalf("503 leaks internal detail: %s", r.body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("answered after %v: the store timeout is not applied", d)
	}
	wantError(t, do(t, srv, "POST", "/v1/functions", `{"functionId":"f","provider":{"type":"http","url":"http://h"}}`), 503, "unavailable")
}
