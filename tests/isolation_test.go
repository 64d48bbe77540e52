package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// gaugeOf reads one gauge of the gateway's /metrics.
func gaugeOf(t *testing.T, configURL, series string) float64 {
	t.Helper()
	r := call(t, "GET", configURL+"/metrics", "")
	expect(t, r, 200, "")
	v := metric(r.body, series)
	if v < 0 {
		t.Fatalf("no %s in /metrics", series)
	}
	return v
}

// TestLoopDetected: an http function whose URL is the gateway's own route
// calls the gateway again and again. Each call carries one more hop; past
// -max-hops the gateway answers 508 instead of calling on, so one request
// makes a bounded number of nested calls, goroutines and memory.
func TestLoopDetected(t *testing.T) {
	gw := startDev(t, "", "-max-hops", "4")
	register(t, gw, "self", fmt.Sprintf(`{"functionId":"self","provider":{"type":"http","url":%q}}`, gw.EventsURL+"/loop"))
	subscribe(t, gw, `{"functionId":"self","event":"http","method":"POST","path":"/loop"}`)
	eventually(t, "POST /loop routable", func() bool {
		return call(t, "POST", gw.EventsURL+"/loop", `{}`, "Content-Type", "application/json").status != 404
	})

	r := call(t, "POST", gw.EventsURL+"/loop", `{"n":1}`, "Content-Type", "application/json")
	expect(t, r, http.StatusLoopDetected, "loop")
	n, rss := gaugeOf(t, gw.ConfigURL, "go_goroutines"), gaugeOf(t, gw.ConfigURL, "process_resident_memory_bytes")
	t.Logf("after one looping request: %v goroutines, RSS %.0f MB", n, rss/1e6)
	if n > 400 {
		t.Fatalf("%v goroutines after one looping request", n)
	}
	if rss > 300<<20 {
		t.Fatalf("RSS %.0f MB after one looping request", rss/1e6)
	}
	// Requests sent with the hop header past the bound are refused at
	// once, a custom event too: nothing is enqueued.
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "e", "Event-Gateway-Hops", "5"), http.StatusLoopDetected, "loop")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "e", "Event-Gateway-Hops", "4"), http.StatusAccepted, "")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "e", "Event-Gateway-Hops", "x"), http.StatusBadRequest, "Event-Gateway-Hops")

	// Asynchronous: the function's URL is an async http subscription of
	// itself. Each delivery carries the hops of its event; the one whose
	// call the gateway answers 508 is dead-lettered at once, not retried.
	register(t, gw, "echo", fmt.Sprintf(`{"functionId":"echo","provider":{"type":"http","url":%q}}`, gw.EventsURL+"/echo"))
	sub := subscribe(t, gw, `{"functionId":"echo","event":"http","method":"POST","path":"/echo","type":"async"}`)
	eventually(t, "POST /echo routable", func() bool {
		return call(t, "POST", gw.EventsURL+"/echo", `{}`, "Content-Type", "application/json", "Event-Gateway-Hops", "9").status != 404
	})
	expect(t, call(t, "POST", gw.EventsURL+"/echo", `{}`, "Content-Type", "application/json"), http.StatusAccepted, "")
	var list struct {
		DeadLetters []deadLetter `json:"deadletters"`
	}
	eventually(t, "the looping delivery dead-lettered", func() bool {
		decode(t, call(t, "GET", gw.ConfigURL+"/v1/deadletters?subscriptionId="+sub, ""), &list)
		return len(list.DeadLetters) > 0
	})
	time.Sleep(500 * time.Millisecond)
	decode(t, call(t, "GET", gw.ConfigURL+"/v1/deadletters?subscriptionId="+sub, ""), &list)
	if len(list.DeadLetters) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(list.DeadLetters), list.DeadLetters)
	}
	if d := list.DeadLetters[0]; d.Attempts != 1 || !strings.Contains(d.LastError, "loop") {
		t.Fatalf("dead letter %+v: want 1 attempt and a loop as the reason", d)
	}
}
