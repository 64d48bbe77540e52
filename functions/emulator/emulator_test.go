package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
)

// emulatorServer serves the emulator's invoke endpoint with h, after
// checking the request's method, path, content type and body shape.
func emulatorServer(t *testing.T, h func(w http.ResponseWriter, functionID string, payload json.RawMessage)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v0/emulator/api/functions/invoke" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			http.Error(w, "content-type "+ct, http.StatusUnsupportedMediaType)
			return
		}
		var req struct {
			FunctionID string          `json:"functionId"`
			Payload    json.RawMessage `json:"payload"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		h(w, req.FunctionID, req.Payload)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func invokerOf(t *testing.T, p *Provider, emulatorURL, id string) functions.Invoker {
	t.Helper()
	reg := functions.NewRegistry(p)
	f, err := reg.Validate(functions.Function{ID: id, Provider: functions.Provider{Type: Type, Config: json.RawMessage(`{"emulatorUrl":"` + emulatorURL + `","apiVersion":"v0"}`)}})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	inv, err := reg.Invoker(f)
	if err != nil {
		t.Fatalf("Invoker: %v", err)
	}
	return inv
}

func newProvider(t *testing.T, opts Options) *Provider {
	t.Helper()
	p := New(opts)
	t.Cleanup(func() { p.Close() })
	return p
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestInvokeReturnsResult(t *testing.T) {
	t.Parallel()
	srv := emulatorServer(t, func(w http.ResponseWriter, id string, payload json.RawMessage) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"functionId": id, "got": payload})
	})
	p := newProvider(t, Options{})
	in := `{"event":"user.created","functionId":"svc-hello","data":{"id":7}}`
	out, err := invokerOf(t, p, srv.URL, "svc-hello").Invoke(ctxTimeout(t, 5*time.Second), []byte(in))
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var got struct {
		FunctionID string          `json:"functionId"`
		Got        json.RawMessage `json:"got"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("result %q: %v", out, err)
	}
	if got.FunctionID != "svc-hello" || string(got.Got) != in {
		t.Fatalf("emulator got function %q and payload %s; want svc-hello and %s", got.FunctionID, got.Got, in)
	}
}

func TestInvokeEmulatorURLWithPath(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prefix/v0/emulator/api/functions/invoke" {
			http.Error(w, r.URL.Path, http.StatusNotFound)
			return
		}
		io.WriteString(w, `"ok"`)
	}))
	t.Cleanup(srv.Close)
	out, err := invokerOf(t, newProvider(t, Options{}), srv.URL+"/prefix/", "f").Invoke(ctxTimeout(t, 5*time.Second), []byte(`{}`))
	if err != nil || string(out) != `"ok"` {
		t.Fatalf("Invoke = %q, %v", out, err)
	}
}

func TestInvoke500IsFunctionFailedWithText(t *testing.T) {
	t.Parallel()
	srv := emulatorServer(t, func(w http.ResponseWriter, _ string, _ json.RawMessage) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "Error: boom\n    at handler (handler.js:3:9)\n")
	})
	_, err := invokerOf(t, newProvider(t, Options{}), srv.URL, "f").Invoke(ctxTimeout(t, 5*time.Second), []byte(`{}`))
	if !errors.Is(err, functions.ErrFunctionFailed) {
		t.Fatalf("err = %v, want ErrFunctionFailed", err)
	}
	if !strings.Contains(err.Error(), "Error: boom at handler (handler.js:3:9)") || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %q, want the status and the error text on one line", err)
	}
}

func TestInvokeOtherStatusIsFunctionFailed(t *testing.T) {
	t.Parallel()
	srv := emulatorServer(t, func(w http.ResponseWriter, _ string, _ json.RawMessage) {
		w.WriteHeader(http.StatusNotFound)
	})
	_, err := invokerOf(t, newProvider(t, Options{}), srv.URL, "f").Invoke(ctxTimeout(t, 5*time.Second), []byte(`{}`))
	if !errors.Is(err, functions.ErrFunctionFailed) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v, want ErrFunctionFailed naming 404", err)
	}
}

func TestInvokeHTTPResponseObjectBodySerialized(t *testing.T) {
	t.Parallel()
	// What the emulator answers for a handler that returned
	// {statusCode, headers: {"Content-Type": "application/json"}, body: JSON.stringify(...)}.
	result := `{"statusCode":201,"headers":{"Content-Type":"application/json"},"body":{"message": "hello", "n": [1, 2]}}`
	srv := emulatorServer(t, func(w http.ResponseWriter, _ string, _ json.RawMessage) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, result)
	})
	inv := invokerOf(t, newProvider(t, Options{}), srv.URL, "f")
	for _, tc := range []struct {
		name, payload string
		serialized    bool
	}{
		{"seed http event", `{"event":"http","functionId":"f","data":{"path":"/hello"}}`, true},
		{"http.request CloudEvent", `{"specversion":"1.0","type":"http.request","id":"1","source":"x"}`, true},
		{"custom event", `{"event":"user.created","functionId":"f","data":{}}`, false},
	} {
		out, err := inv.Invoke(ctxTimeout(t, 5*time.Second), []byte(tc.payload))
		if err != nil {
			t.Fatalf("%s: Invoke: %v", tc.name, err)
		}
		if !tc.serialized {
			if string(out) != result {
				t.Fatalf("%s: result changed to %s", tc.name, out)
			}
			continue
		}
		var resp struct {
			StatusCode int               `json:"statusCode"`
			Headers    map[string]string `json:"headers"`
			Body       string            `json:"body"`
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("%s: result %s: %v", tc.name, out, err)
		}
		if resp.StatusCode != 201 || resp.Headers["Content-Type"] != "application/json" || resp.Body != `{"message":"hello","n":[1,2]}` {
			t.Fatalf("%s: result %s, want the body as a compact JSON string", tc.name, out)
		}
	}
}

func TestInvokeHTTPResponseStringBodyUnchanged(t *testing.T) {
	t.Parallel()
	result := `{"statusCode":200,"body":"hi"}`
	srv := emulatorServer(t, func(w http.ResponseWriter, _ string, _ json.RawMessage) { io.WriteString(w, result) })
	out, err := invokerOf(t, newProvider(t, Options{}), srv.URL, "f").Invoke(ctxTimeout(t, 5*time.Second), []byte(`{"event":"http"}`))
	if err != nil || string(out) != result {
		t.Fatalf("Invoke = %s, %v; want %s", out, err, result)
	}
}

func TestInvokeTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := emulatorServer(t, func(w http.ResponseWriter, _ string, _ json.RawMessage) { <-release })
	t.Cleanup(func() { close(release) })
	start := time.Now()
	_, err := invokerOf(t, newProvider(t, Options{}), srv.URL, "f").Invoke(ctxTimeout(t, 100*time.Millisecond), []byte(`{}`))
	if !errors.Is(err, functions.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timed out after %v", d)
	}
}

func TestInvokeDefaultTimeoutWithoutDeadline(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := emulatorServer(t, func(w http.ResponseWriter, _ string, _ json.RawMessage) { <-release })
	t.Cleanup(func() { close(release) })
	_, err := invokerOf(t, newProvider(t, Options{DefaultTimeout: 100 * time.Millisecond}), srv.URL, "f").Invoke(context.Background(), []byte(`{}`))
	if !errors.Is(err, functions.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestInvokeUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := invokerOf(t, newProvider(t, Options{}), url, "f").Invoke(ctxTimeout(t, 5*time.Second), []byte(`{}`))
	if err == nil || errors.Is(err, functions.ErrFunctionFailed) || errors.Is(err, functions.ErrTimeout) {
		t.Fatalf("err = %v, want a connection error", err)
	}
}

func TestInvokeResponseTooLarge(t *testing.T) {
	t.Parallel()
	srv := emulatorServer(t, func(w http.ResponseWriter, _ string, _ json.RawMessage) {
		io.WriteString(w, `"`+strings.Repeat("x", 100)+`"`)
	})
	_, err := invokerOf(t, newProvider(t, Options{MaxResponseBytes: 50}), srv.URL, "f").Invoke(ctxTimeout(t, 5*time.Second), []byte(`{}`))
	if !errors.Is(err, functions.ErrResponseTooLarge) {
		t.Fatalf("err = %v, want ErrResponseTooLarge", err)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	reg := functions.NewRegistry(New(Options{}))
	for _, tc := range []struct {
		provider string
		want     string // canonical stored form, or the error
		err      bool
	}{
		{`{"type":"emulator","emulatorUrl":"http://localhost:4002","apiVersion":"v0"}`, `{"type":"emulator","emulatorUrl":"http://localhost:4002","apiVersion":"v0"}`, false},
		{`{"type":"emulator","emulatorUrl":"http://localhost:4002"}`, `{"type":"emulator","emulatorUrl":"http://localhost:4002","apiVersion":"v0"}`, false},
		{`{"type":"emulator"}`, "provider.emulatorUrl is required for type emulator", true},
		{`{"type":"emulator","emulatorUrl":"localhost:4002"}`, "must be an absolute http or https URL", true},
		{`{"type":"emulator","emulatorUrl":"ftp://localhost"}`, "must be an absolute http or https URL", true},
		{`{"type":"emulator","emulatorUrl":"http://u:p@localhost"}`, "must not carry credentials", true},
		{`{"type":"emulator","emulatorUrl":"http://localhost","apiVersion":"v1"}`, `provider.apiVersion "v1" is not supported`, true},
		{`{"type":"emulator","emulatorUrl":"http://localhost","url":"x"}`, `unknown field "provider.url"`, true},
		{`{"type":"emulator","emulatorUrl":7}`, "field provider.emulatorUrl must be a JSON string", true},
	} {
		var f functions.Function
		if err := json.Unmarshal([]byte(`{"functionId":"f","provider":`+tc.provider+`}`), &f); err != nil {
			t.Fatal(err)
		}
		got, err := reg.Validate(f)
		if tc.err {
			if err == nil || errkind.Of(err) != errkind.Invalid || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: err = %v, want Invalid containing %q", tc.provider, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.provider, err)
			continue
		}
		b, _ := json.Marshal(got.Provider)
		if string(b) != tc.want {
			t.Errorf("%s: stored as %s, want %s", tc.provider, b, tc.want)
		}
	}
}
