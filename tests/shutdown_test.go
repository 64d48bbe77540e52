package tests

import (
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/gwproc"
)

// TestShutdownWithinTimeout: a slow async plugin with a full buffer (100
// events of 500ms) does not hold the shutdown past -shutdown-timeout; what
// it was not given is counted and logged.
func TestShutdownWithinTimeout(t *testing.T) {
	gw, _ := startWithPlugins(t, testPlugin, []string{"-plugin-buffer", "100", "-shutdown-timeout", "3s"}, "slowpoke")
	fn := newFunction(t, respondJSON(`{}`))
	go drain(fn.received)
	routeHTTP(t, gw, "fn", "GET", "/fn", fn)
	for range 100 {
		expect(t, call(t, "GET", gw.EventsURL+"/fn", ""), 200, "")
	}
	began := time.Now()
	code, err := gw.Stop(40 * time.Second)
	took := time.Since(began)
	t.Logf("SIGTERM to exit with -shutdown-timeout 3s and 100 events of 500ms buffered for a plugin: %v", took)
	if err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	// 3s, and room for closing the stores and a loaded machine.
	if took > 8*time.Second {
		t.Fatalf("shutdown took %v with -shutdown-timeout 3s", took)
	}
	if !strings.Contains(gw.Logs(), "async system events left undelivered") {
		t.Fatalf("what the plugin was not given is not logged")
	}
}

// TestGracefulRestartRedeliversAtOnce: a delivery cut short by a graceful
// shutdown (its call outlasted -shutdown-timeout) is handed back to the
// store at once: the next start makes it without waiting for
// -delivery-ack-wait.
func TestGracefulRestartRedeliversAtOnce(t *testing.T) {
	dir := t.TempDir()
	args := devArgs(filepath.Join(dir, "etcd"), "-nats-data-dir", filepath.Join(dir, "nats"), "-shutdown-timeout", "2s", "-delivery-ack-wait", "60s")
	gw := start(t, gwproc.Options{Args: args})
	var hang atomic.Bool
	hang.Store(true)
	var calls atomic.Int64
	release := make(chan struct{})
	got := make(chan string, 100)
	fn := newFunction(t, func(w http.ResponseWriter, ev envelope) {
		calls.Add(1)
		if hang.Load() && strings.Contains(string(ev.Data), "slow") {
			select {
			case <-release:
			case <-time.After(time.Minute):
			}
		}
		got <- string(ev.Data)
		w.Write([]byte(`{}`))
	})
	t.Cleanup(func() { close(release) }) // before the server closes
	go drain(fn.received)
	registerHTTP(t, gw, "fn", fn)
	subscribe(t, gw, `{"functionId":"fn","event":"job"}`)
	untilLive(t, gw, "job", `"probe"`, func() bool { return calls.Load() > 0 })
	expect(t, call(t, "POST", gw.EventsURL+"/", `"slow"`, "Event", "job", "Content-Type", "application/json"), 202, "")
	eventually(t, "the slow call in progress", func() bool { return calls.Load() >= 2 })
	if code, err := gw.Stop(20 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	hang.Store(false)
	for len(got) > 0 {
		<-got
	}
	began := time.Now()
	start(t, gwproc.Options{Args: args})
	for {
		select {
		case data := <-got:
			if data != `"slow"` {
				continue
			}
			took := time.Since(began)
			t.Logf("delivery cut short by a graceful shutdown made again %v after the restart", took)
			// Well under -delivery-ack-wait (60s).
			if took > 20*time.Second {
				t.Fatalf("made again after %v", took)
			}
			return
		case <-time.After(45 * time.Second):
			t.Fatal("the delivery cut short by the shutdown was not made again within 45s (it waited for -delivery-ack-wait)")
		}
	}
}
