// Package tests runs the event-gateway binary, built from this repository,
// as a user would, and drives it over HTTP.
package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/gwproc"
	"github.com/event-gateway/event-gateway/internal/openapitest"
)

// The gateway is built once for all tests of this package, on first use:
// inside a test, so that go test sees the sources the build read and does
// not answer from its cache after they change.
var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testing.Verbose() {
		fmt.Printf("openapitest: %d exchanges with the gateways' APIs checked against the OpenAPI document\n", validator.Total())
	}
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary returns the path of the gateway binary, building it if needed.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "eg-e2e-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binPath, buildErr = gwproc.Build(ctx, buildDir, false)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// startDev runs a gateway with an embedded etcd in dataDir (a new temporary
// directory when empty), all on random loopback ports.
func startDev(t *testing.T, dataDir string, extra ...string) *gwproc.Process {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	return start(t, gwproc.Options{Args: devArgs(dataDir, extra...)})
}

// devArgs are the flags of a -dev gateway with an embedded etcd in
// dataDir, all on random loopback ports, followed by extra.
func devArgs(dataDir string, extra ...string) []string {
	return append([]string{"-dev", "-embed-data-dir", dataDir,
		"-embed-cli-addr", "http://127.0.0.1:0", "-embed-peer-addr", "http://127.0.0.1:0"}, extra...)
}

func start(t *testing.T, o gwproc.Options) *gwproc.Process {
	t.Helper()
	p, err := gwproc.Start(binary(t), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("gateway logs:\n%s", p.Logs())
		}
	})
	checkAPIs(t, p)
	return p
}

// validator checks every exchange of client with a gateway against the
// OpenAPI document (api/openapi/openapi.yaml).
var validator = openapitest.MustNew()

// checkAPIs has the exchanges of client with gateway p checked, until t
// ends.
func checkAPIs(t *testing.T, p *gwproc.Process) {
	validator.Register(t, p.ConfigURL, openapitest.ConfigAPI)
	validator.Register(t, p.EventsURL, openapitest.EventsAPI)
}

type response struct {
	status int
	header http.Header
	body   string
}

// client checks each exchange against the OpenAPI document (validator).
var client = validator.Client(&http.Client{Timeout: 30 * time.Second})

func call(t *testing.T, method, url, body string, headers ...string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// expect checks the status, and for errors the JSON error body in both
// shapes with a message containing msg.
func expect(t *testing.T, r response, status int, msg string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if status < 400 {
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error with Content-Type %q, want application/json: %s", ct, r.body)
	}
	var e struct {
		Error  string
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" || len(e.Errors) != 1 || e.Errors[0].Message != e.Error {
		t.Fatalf("error body %q is not {error, errors:[{message}]}", r.body)
	}
	if !strings.Contains(e.Error, msg) {
		t.Fatalf("error %q does not mention %q", e.Error, msg)
	}
}

func decode(t *testing.T, r response, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}
