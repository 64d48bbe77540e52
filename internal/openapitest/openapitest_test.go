package openapitest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/event-gateway/event-gateway/internal/openapitest"
)

// recorder is a testing.TB that keeps its errors and cleanups, to see
// what Register reports when a test ends.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	errors   []string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.TB.Fatalf(format, args...)
}

// end runs the cleanups, as the end of the test would, and returns what
// they reported.
func (r *recorder) end() string {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	return strings.Join(r.errors, "\n")
}

// answer is a server that answers every request with status, Content-Type
// and body (and a 202 with an Event-Id, as the Events API does).
func answer(t *testing.T, status int, contentType, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		if status == http.StatusAccepted {
			// The Events API names the event it accepted.
			w.Header().Set("Event-Id", "e-1")
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

const errorBody = `{"error":"%[1]s","errors":[{"message":"%[1]s"}]}`

// TestTransport checks what the Transport lets through and what it
// refuses, with servers that answer as the gateway does or does not.
func TestTransport(t *testing.T) {
	v := openapitest.MustNew()
	for _, tt := range []struct {
		name                string
		api                 openapitest.API
		method, path, body  string
		status              int
		contentType, answer string
		// wantErr, if set, are the parts of the error (and of the
		// report at the end of the test) that tell what is wrong.
		wantErr []string
	}{
		{"documented", openapitest.ConfigAPI, "GET", "/v1/status", "",
			200, "application/json", `{"status":"ok"}`, nil},
		{"a field the document does not name", openapitest.ConfigAPI, "GET", "/v1/spaces/s/functions/f", "",
			200, "application/json", `{"space":"s","functionId":"f","type":"http","provider":{"url":"http://h/"},"backends":[]}`,
			[]string{"GET /v1/spaces/s/functions/f", "spaceGetFunction", `property "backends" is unsupported`, "components/schemas/SpaceFunction", openapitest.DocumentPath}},
		{"a required field missing", openapitest.ConfigAPI, "GET", "/v1/subscriptions/x", "",
			200, "application/json", `{"subscriptionId":"x","functionId":"f","path":"/"}`,
			[]string{"getSubscription", `property "event" is missing`}},
		{"a value out of its enum", openapitest.ConfigAPI, "GET", "/v1/spaces/s/subscriptions/x", "",
			200, "application/json", `{"space":"s","subscriptionId":"x","type":"sometimes","eventType":"e","functionId":"f","method":"POST","path":"/","envelope":"legacy"}`,
			[]string{"spaceGetSubscription", "/type"}},
		{"an undocumented status", openapitest.ConfigAPI, "POST", "/v1/functions", `{"functionId":"f","provider":{"type":"http","url":"http://h/"}}`,
			201, "application/json", `{"functionId":"f","provider":{"type":"http","url":"http://h/"}}`,
			[]string{"status 201 is not documented", `add responses: "201"`, "createFunction"}},
		{"an error without the error body", openapitest.ConfigAPI, "GET", "/v1/functions/f", "",
			404, "text/plain", "not found", []string{"getFunction"}},
		{"an undocumented route that answers", openapitest.ConfigAPI, "POST", "/v1/spaces/s/not-documented", `{}`,
			200, "application/json", `{}`, []string{"POST /v1/spaces/s/not-documented", "has no operation POST", "describe it in " + openapitest.DocumentPath}},
		{"an undocumented route's own 404", openapitest.ConfigAPI, "GET", "/v1/spaces/s/history/1", "",
			404, "application/json", fmt.Sprintf(errorBody, `change 1 not found`), []string{"has no operation GET"}},
		{"an unknown endpoint", openapitest.ConfigAPI, "GET", "/v1/nope", "",
			404, "application/json", fmt.Sprintf(errorBody, `no endpoint GET /v1/nope`), nil},
		{"an unknown method", openapitest.ConfigAPI, "PATCH", "/v1/functions", "",
			405, "application/json", fmt.Sprintf(errorBody, `method PATCH is not allowed on /v1/functions`), nil},
		{"a request the document refuses, taken", openapitest.ConfigAPI, "POST", "/v1/functions", `{"functionId":"f","provider":{"type":"http","url":"http://h/"},"backends":[]}`,
			200, "application/json", `{"functionId":"f","provider":{"type":"http","url":"http://h/"}}`,
			[]string{"the gateway took the request", "createFunction", "backends"}},
		{"a request the document refuses, refused", openapitest.ConfigAPI, "POST", "/v1/functions", `{"functionId":"f","backends":[]}`,
			400, "application/json", fmt.Sprintf(errorBody, `unknown field backends`), nil},
		{"events: accepted", openapitest.EventsAPI, "POST", "/any/path/at/all", `{}`,
			202, "", "", nil},
		{"events: a function's own answer", openapitest.EventsAPI, "PUT", "/users/42", `x`,
			201, "text/html", "<p>created</p>", nil},
		{"events: the gateway's 404 without the error body", openapitest.EventsAPI, "GET", "/nowhere", "",
			404, "text/plain", "404 page not found", []string{"eventsGet", "GET /nowhere"}},
		{"events: 401 without WWW-Authenticate", openapitest.EventsAPI, "POST", "/", `{}`,
			401, "application/json", fmt.Sprintf(errorBody, `invalid ingest key`), []string{"eventsPost", "WWW-Authenticate"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := answer(t, tt.status, tt.contentType, tt.answer)
			rec := &recorder{TB: t}
			v.Register(rec, srv.URL, tt.api)
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := v.Client(nil).Do(req)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				defer resp.Body.Close()
				if b, _ := io.ReadAll(resp.Body); resp.StatusCode != tt.status || string(b) != tt.answer {
					t.Fatalf("the client got %d %q, want what the server answered: %d %q", resp.StatusCode, b, tt.status, tt.answer)
				}
				if n := v.Checked(srv.URL); n != 1 {
					t.Fatalf("%d exchanges checked, want 1", n)
				}
				if report := rec.end(); report != "" {
					t.Fatalf("reported at the end of the test: %s", report)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("let through")
			}
			report := rec.end()
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
				if !strings.Contains(report, want) {
					t.Errorf("report at the end of the test does not say %q: %s", want, report)
				}
			}
		})
	}
}

// TestUnregisteredAndUnchecked checks that a request to a server that is
// not registered is refused, unless marked Unchecked, and that the
// registration ends with the test.
func TestUnregisteredAndUnchecked(t *testing.T) {
	v := openapitest.MustNew()
	srv := answer(t, 431, "text/plain", "431 Request Header Fields Too Large")
	c := v.Client(nil)
	get := func(ctx context.Context) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Do(req)
	}
	if _, err := get(context.Background()); err == nil || !strings.Contains(err.Error(), "not a registered gateway API") {
		t.Fatalf("unregistered server: %v", err)
	}
	resp, err := get(openapitest.Unchecked(context.Background(), "the HTTP server answers, not the gateway"))
	if err != nil {
		t.Fatalf("unchecked: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 431 {
		t.Fatalf("unchecked: %d", resp.StatusCode)
	}

	rec := &recorder{TB: t}
	v.Register(rec, srv.URL, openapitest.ConfigAPI)
	if _, err := get(context.Background()); err == nil || !strings.Contains(err.Error(), "status 431 is not documented") {
		t.Fatalf("registered: %v", err)
	}
	if report := rec.end(); !strings.Contains(report, "1 exchanges") {
		t.Fatalf("report: %q", report)
	}
	if _, err := get(context.Background()); err == nil || !strings.Contains(err.Error(), "not a registered gateway API") {
		t.Fatalf("after the test that registered it: %v", err)
	}
}

// TestProxy checks the proxy for clients that are not Go: it passes a
// matching exchange through, body and Host included, and answers a
// mismatch 502 with the reason, reported when the test ends.
func TestProxy(t *testing.T) {
	v := openapitest.MustNew()
	var host, got string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		host, got = r.Host, string(b)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/spaces/s/eventtypes":
			w.WriteHeader(201)
			io.WriteString(w, `{"space":"s","name":"e"}`)
		default:
			w.WriteHeader(201)
			io.WriteString(w, `{"space":"s","name":"e","schema":{}}`)
		}
	}))
	t.Cleanup(gw.Close)
	rec := &recorder{TB: t}
	v.Register(rec, gw.URL, openapitest.ConfigAPI)
	proxy := v.Proxy(t, gw.URL)

	req, _ := http.NewRequest("POST", proxy+"/v1/spaces/s/eventtypes", strings.NewReader(`{"name":"e"}`))
	req.Host = "s.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || string(b) != `{"space":"s","name":"e"}` || got != `{"name":"e"}` || host != "s.example.com" {
		t.Fatalf("through the proxy: %d %s; the server got %q with Host %q", resp.StatusCode, b, got, host)
	}

	resp, err = http.Post(proxy+"/v1/spaces/s/eventtypes/e", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "has no operation POST") {
		t.Fatalf("a mismatch through the proxy: %d %s", resp.StatusCode, b)
	}
	if report := rec.end(); !strings.Contains(report, "1 exchanges") || !strings.Contains(report, "has no operation POST") {
		t.Fatalf("report: %q", report)
	}
}

// BenchmarkCheck measures the check of one exchange: a list of 100
// functions of the spaces API, and an accepted event.
func BenchmarkCheck(b *testing.B) {
	v := openapitest.MustNew()
	var list strings.Builder
	list.WriteString(`{"functions":[`)
	for i := range 100 {
		if i > 0 {
			list.WriteString(",")
		}
		fmt.Fprintf(&list, `{"space":"s","functionId":"f%d","type":"http","provider":{"url":"http://127.0.0.1:8080/f"},"metadata":{"team":"blue"}}`, i)
	}
	list.WriteString(`]}`)
	header := http.Header{"Content-Type": {"application/json"}}
	for _, bb := range []struct {
		name       string
		api        openapitest.API
		method     string
		path, body string
		status     int
		header     http.Header
	}{
		{"list of 100 functions", openapitest.ConfigAPI, "GET", "/v1/spaces/s/functions", list.String(), 200, header},
		{"accepted event", openapitest.EventsAPI, "POST", "/", "", 202, http.Header{}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			req := httptest.NewRequest(bb.method, "http://127.0.0.1:1"+bb.path, nil)
			body := []byte(bb.body)
			for b.Loop() {
				if err := v.Check(context.Background(), bb.api, req, nil, bb.status, bb.header, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
