package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// sdkDir holds the drivers for the published JavaScript SDK and its npm
// dependencies: every tested release installed side by side under an alias.
const sdkDir = "sdk"

// sdkReleases are the @serverless/event-gateway-sdk releases that must work
// unchanged against the gateway, each with its npm alias in
// sdk/package.json and its driver script.
var sdkReleases = []struct{ version, alias string }{
	{"0.2.0", "sdk020"},
	{"0.3.0", "sdk030"},
	{"0.10.2", "sdk0102"},
	{"0.11.0", "sdk0110"},
}

// TestSDKClients runs, for every SDK release, sdk/run-<version>.js against
// a fresh gateway started with -dev. The script makes every public call of
// that release (the 0.11 connections API excepted: it talks to a separate
// service) through the unmodified client, checks what each returns and
// what the functions received, and prints "ok <call>" or "FAIL <call>:
// <reason>" per call and "N passed, M failed" last. sdk/CALLS.md describes
// what each release sends.
func TestSDKClients(t *testing.T) {
	node := sdkTool(t, "node")
	// go test caches a passing result keyed on the files this process
	// reads; node's reads are not seen. Read the scripts and pins here so
	// that a change to them reruns the test.
	files := []string{"lib.js", "gen06.js", "gen09.js", "package.json", "package-lock.json"}
	for _, r := range sdkReleases {
		files = append(files, "run-"+r.version+".js")
	}
	for _, f := range files {
		if _, err := os.ReadFile(filepath.Join(sdkDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range sdkReleases {
		checkSDKInstalled(t, r.alias, r.version)
	}

	for _, r := range sdkReleases {
		t.Run(r.version, func(t *testing.T) {
			// The hosted-mode clients name their space in the host.
			gw := startDev(t, "", "-space-domain", "slsgateway.com")
			fns := newSDKFunctions(t)
			script := "run-" + r.version + ".js"

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, script)
			cmd.Dir = sdkDir
			cmd.Env = append(os.Environ(),
				"EVENTS_URL="+validator.Proxy(t, gw.EventsURL),
				"CONFIG_URL="+validator.Proxy(t, gw.ConfigURL),
				"FUNCTIONS_URL="+fns.srv.URL+"/fn/",
				"RECEIVED_URL="+fns.srv.URL+"/received/",
			)
			var out bytes.Buffer
			cmd.Stdout = &out
			cmd.Stderr = &out
			start := time.Now()
			err := cmd.Run()
			summary := sdkSummary(out.String())
			t.Logf("node %s (%v): %s", script, time.Since(start).Round(time.Millisecond), summary)
			if ctx.Err() != nil {
				t.Fatalf("%s did not finish within 3 minutes:\n%s", script, out.String())
			}
			if err != nil || !strings.HasSuffix(summary, " passed, 0 failed") {
				t.Fatalf("SDK %s is not compatible (%v): %s\n%s", r.version, err, summary, out.String())
			}
		})
	}
}

// sdkSummary returns the script's last line, "N passed, M failed", or a
// note that it is missing.
func sdkSummary(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	last := lines[len(lines)-1]
	if regexp.MustCompile(`^\d+ passed, \d+ failed$`).MatchString(last) {
		return last
	}
	return "no summary line (the script stopped early)"
}

// sdkTool finds a program the SDK test needs. Without it the test fails in
// CI (CI set), where .ci/run installs it, and is skipped elsewhere.
func sdkTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (%v); CI must install Node.js (.ci/run) for the SDK test", name, err)
	}
	t.Skipf("skipping the SDK client test: %s is not installed (%v)", name, err)
	return ""
}

// checkSDKInstalled checks that sdk/node_modules holds the release under
// its alias. Without node_modules the test is skipped, except in CI, where
// .ci/run installs it with npm ci.
func checkSDKInstalled(t *testing.T, alias, version string) {
	t.Helper()
	pkg := filepath.Join(sdkDir, "node_modules", alias, "package.json")
	b, err := os.ReadFile(pkg)
	if errors.Is(err, os.ErrNotExist) {
		if os.Getenv("CI") != "" {
			t.Fatalf("tests/%s has no %s; CI must run npm ci --prefix tests/%s (.ci/run)", pkg, alias, sdkDir)
		}
		t.Skipf("skipping the SDK client test: tests/%s is missing; run npm ci --prefix tests/%s", pkg, sdkDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	var meta struct{ Name, Version string }
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatalf("%s: %v", pkg, err)
	}
	if meta.Name != "@serverless/event-gateway-sdk" || meta.Version != version {
		t.Fatalf("tests/%s is %s %s, want @serverless/event-gateway-sdk %s; run npm ci in tests/%s",
			pkg, meta.Name, meta.Version, version, sdkDir)
	}
}

// sdkFunctions is one loopback server standing for any number of HTTP
// functions: POST /fn/<name> records the request and answers
// {"fn":"<name>"}, except that sync-<name> answers as a sync subscription's
// function ({statusCode, headers, body} with body {"fn":"sync-<name>"}) and
// authz-<name> as an authorizer that allows; GET /received/<name> answers the requests function
// <name> received so far, oldest first.
type sdkFunctions struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string][]sdkRequest
}

type sdkRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Host    string            `json:"host"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

func newSDKFunctions(t *testing.T) *sdkFunctions {
	t.Helper()
	f := &sdkFunctions{got: map[string][]sdkRequest{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/fn/{name}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := sdkRequest{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: map[string]string{}, Body: string(b)}
		for k := range r.Header {
			req.Headers[strings.ToLower(k)] = r.Header.Get(k)
		}
		name := r.PathValue("name")
		f.mu.Lock()
		f.got[name] = append(f.got[name], req)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasPrefix(name, "sync-"):
			// The answer a sync subscription's function gives to shape
			// the HTTP response.
			b, _ := json.Marshal(map[string]string{"fn": name})
			json.NewEncoder(w).Encode(map[string]any{
				"statusCode": 200,
				"headers":    map[string]string{"content-type": "application/json"},
				"body":       string(b),
			})
		case strings.HasPrefix(name, "authz-"):
			// An event type authorizer's answer: authorized.
			json.NewEncoder(w).Encode(map[string]any{
				"authorization": map[string]any{"principalId": "sdk-user", "context": map[string]string{"by": name}},
			})
		default:
			json.NewEncoder(w).Encode(map[string]string{"fn": name})
		}
	})
	mux.HandleFunc("GET /received/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		got := append([]sdkRequest{}, f.got[r.PathValue("name")]...)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(got)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}
