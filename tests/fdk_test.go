package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

// fdkDir holds the JavaScript driver and its pinned npm dependencies.
const (
	fdkDir     = "fdk"
	fdkVersion = "0.7.1"
)

// TestFDKClient drives the gateway with the real JavaScript client,
// @serverless/fdk, unmodified from npm: fdk/drive.js registers a function,
// subscribes it, emits an event, invokes it, checks the client's errors and
// removes everything, exiting non-zero on any mismatch. This side checks what
// the function received.
func TestFDKClient(t *testing.T) {
	node := lookTool(t, "node")
	// go test caches a passing result keyed on the files this process
	// reads, and node's reads are not seen: read the driver and the pins
	// here so that a change to them reruns the test.
	for _, f := range []string{"drive.js", "package.json", "package-lock.json"} {
		if _, err := os.ReadFile(filepath.Join(fdkDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	installFDK(t)

	gw := startDev(t, "")
	fn := newFunction(t, respondJSON(`{"hello":"fdk"}`))

	// Record every envelope the function receives, and let the driver ask
	// how many of each event arrived, so that it emits until the
	// subscription is routable instead of sleeping.
	var (
		mu       sync.Mutex
		got      []envelope
		perEvent = map[string]int{}
	)
	done := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case ev := <-fn.received:
				mu.Lock()
				got = append(got, ev)
				perEvent[ev.Event]++
				mu.Unlock()
			case <-done:
				return
			}
		}
	}()
	stop := func() {
		select {
		case <-done:
		default:
			close(done)
			<-drained
		}
	}
	t.Cleanup(stop)
	tally := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(perEvent)
	}))
	t.Cleanup(tally.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "drive.js")
	cmd.Dir = fdkDir
	cmd.Env = append(os.Environ(),
		"EG_EVENTS_URL="+validator.Proxy(t, gw.EventsURL),
		"EG_CONFIG_URL="+validator.Proxy(t, gw.ConfigURL),
		"EG_FUNCTION_URL="+fn.srv.URL,
		"EG_RECEIVED_URL="+tally.URL,
		"EG_FUNCTION_ID=fdk-hello",
	)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("node fdk/drive.js (%v):\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if ctx.Err() != nil {
		t.Fatalf("fdk/drive.js did not finish within 60s")
	}
	if err != nil {
		t.Fatalf("fdk/drive.js failed: %v", err)
	}

	stop()
	mu.Lock()
	defer mu.Unlock()
	var custom, invoked []envelope
	for _, ev := range got {
		switch ev.Event {
		case "user.created":
			custom = append(custom, ev)
		case "invoke":
			invoked = append(invoked, ev)
		default:
			t.Errorf("the function received an unexpected event %+v", ev)
		}
	}
	if len(custom) == 0 {
		t.Fatal("the function received no user.created event")
	}
	for _, ev := range custom {
		checkEnvelope(t, ev, "user.created", `{"name":"Max"}`)
	}
	if len(invoked) != 1 {
		t.Fatalf("the function was invoked %d times, want 1: %+v", len(invoked), invoked)
	}
	checkEnvelope(t, invoked[0], "invoke", `{"greeting":"hi","n":1}`)
}

// checkEnvelope checks an event the FDK sent as JSON: its name, id, time,
// data (compared as JSON values) and dataType.
func checkEnvelope(t *testing.T, ev envelope, event, data string) {
	t.Helper()
	if ev.Event != event || ev.DataType != "application/json" {
		t.Fatalf("envelope %+v, want event %q with dataType application/json", ev, event)
	}
	checkIDAndTime(t, ev)
	var gotData, wantData any
	if err := json.Unmarshal(ev.Data, &gotData); err != nil {
		t.Fatalf("%s data %s: %v", event, ev.Data, err)
	}
	if err := json.Unmarshal([]byte(data), &wantData); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotData, wantData) {
		t.Fatalf("%s data %s, want %s", event, ev.Data, data)
	}
}

// lookTool finds a program the FDK test needs. Without it the test fails in
// CI (CI set), where .ci/run installs it, and is skipped elsewhere.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (%v); CI must install Node.js and npm (.ci/run) for the FDK test", name, err)
	}
	t.Skipf("skipping the FDK client test: %s is not installed (%v); install Node.js and npm to run it", name, err)
	return ""
}

// installFDK runs `npm ci` in fdk/ when its node_modules is missing, so the
// FDK is exactly the version package-lock.json pins, and checks the version.
func installFDK(t *testing.T) {
	t.Helper()
	pkg := filepath.Join(fdkDir, "node_modules", "@serverless", "fdk", "package.json")
	if _, err := os.Stat(pkg); errors.Is(err, os.ErrNotExist) {
		npm := lookTool(t, "npm")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = fdkDir
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("npm ci in tests/%s: %v\n%s", fdkDir, err, out)
		}
		t.Logf("installed the FDK with npm ci in %v", time.Since(start).Round(time.Millisecond))
	} else if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct{ Version string }
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatalf("%s: %v", pkg, err)
	}
	if meta.Version != fdkVersion {
		t.Fatalf("tests/%s has @serverless/fdk %s, want %s; run npm ci in tests/%s", fdkDir, meta.Version, fdkVersion, fdkDir)
	}
}
