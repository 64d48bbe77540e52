package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/etcdtest"
	"github.com/event-gateway/event-gateway/internal/gwproc"
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

// TestMemoryFollowsReceivedBytes: the Events API's memory follows the
// bytes clients send, not those they declare.
func TestMemoryFollowsReceivedBytes(t *testing.T) {
	gw := startDev(t, "")
	fn := newFunction(t, respondJSON(`{}`))
	registerHTTP(t, gw, "sink", fn)
	subscribe(t, gw, `{"functionId":"sink","event":"big"}`)
	waitSubscribers(t, gw, "big", "/", fn)
	host := strings.TrimPrefix(gw.EventsURL, "http://")

	// 20 concurrent 6 MiB custom events.
	body := bytes.Repeat([]byte("x"), 6<<20)
	base := gaugeOf(t, gw.ConfigURL, "go_memstats_heap_inuse_bytes")
	var wg sync.WaitGroup
	var done atomic.Bool
	var mu sync.Mutex
	var peak float64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for !done.Load() {
			// Not gaugeOf: t.Fatal is for the test's goroutine only.
			resp, err := client.Get(gw.ConfigURL + "/metrics")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			v := metric(string(b), "go_memstats_heap_inuse_bytes")
			mu.Lock()
			peak = max(peak, v)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var statuses sync.Map
	for range 20 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", gw.EventsURL+"/", bytes.NewReader(body))
			req.Header.Set("Event", "big")
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			n, _ := statuses.LoadOrStore(resp.StatusCode, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
		})
	}
	wg.Wait()
	for range 5 {
		time.Sleep(100 * time.Millisecond)
		v := gaugeOf(t, gw.ConfigURL, "go_memstats_heap_inuse_bytes")
		mu.Lock()
		peak = max(peak, v)
		mu.Unlock()
	}
	done.Store(true)
	<-sampled
	pk := peak
	statuses.Range(func(k, v any) bool { t.Logf("status %v: %d", k, v.(*atomic.Int32).Load()); return true })
	received := float64(20 * len(body))
	t.Logf("20 × 6 MiB: heap in use peaked %.1f MB above %.1f MB (%.1f× the %.0f MB received)", (pk-base)/1e6, base/1e6, (pk-base)/received, received/1e6)
	// Measured, not checked: the embedded NATS server's copies and the
	// timing of garbage collection make the peak vary from run to run.

	// 400 connections each declare 6 MiB and send 1 byte. On a gateway
	// of its own: the deliveries of the events above, still under way,
	// would count in this one's heap.
	gw = startDev(t, "")
	host = strings.TrimPrefix(gw.EventsURL, "http://")
	const conns = 400
	base = gaugeOf(t, gw.ConfigURL, "go_memstats_heap_inuse_bytes")
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for range conns {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nEvent: big\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\nx", 6<<20)
	}
	pk = 0
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		pk = max(pk, gaugeOf(t, gw.ConfigURL, "go_memstats_heap_inuse_bytes"))
	}
	t.Logf("declared-but-not-sent: heap in use %.1f MB above %.1f MB", (pk-base)/1e6, base/1e6)
	if pk-base > 100<<20 {
		t.Errorf("%d connections that sent 1 byte each hold %.0f MB of heap", conns, (pk-base)/1e6)
	}
	for _, c := range open {
		c.Close()
	}
	open = nil
}

// TestBodyBudget: past -max-body-bytes-in-flight, a request with a body
// gets 503 with Retry-After at once; the budget is given back when the
// requests that held it are answered.
func TestBodyBudget(t *testing.T) {
	gw := startDev(t, "", "-max-body", "1048576", "-max-body-bytes-in-flight", fmt.Sprint(2<<20+32<<10))
	host := strings.TrimPrefix(gw.EventsURL, "http://")
	// Two clients declare 1 MiB each and send 900 KB of it: their
	// buffers take 2 MiB of the budget.
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for range 2 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nEvent: e\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", 1<<20, strings.Repeat("x", 900_000))
	}
	// Probe only once both buffers are whole: a probe admitted while they
	// still grow would take the room one of them needs.
	eventually(t, "two buffers of 1 MiB held", func() bool {
		return gaugeOf(t, gw.ConfigURL, "eventgateway_events_body_bytes_in_flight") >= 2<<20
	})
	body := strings.Repeat("y", 64<<10)
	eventually(t, "503 past the budget", func() bool {
		r := call(t, "POST", gw.EventsURL+"/", body, "Event", "e", "Content-Type", "text/plain")
		if r.status == http.StatusServiceUnavailable {
			if r.header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			return true
		}
		return false
	})
	// A request without a body is not refused.
	expect(t, call(t, "GET", gw.EventsURL+"/nowhere", ""), http.StatusNotFound, "")
	for _, c := range open {
		c.Close()
	}
	open = nil
	eventually(t, "the budget given back", func() bool {
		return call(t, "POST", gw.EventsURL+"/", body, "Event", "e", "Content-Type", "text/plain").status == http.StatusAccepted
	})
}

// TestEtcdOutage: with etcd away, the Configuration API answers 503 within
// the default -db-timeout of 2 s, and the gateway logs the loss of the
// connection once and its return once, not a line per retry.
func TestEtcdOutage(t *testing.T) {
	srv, err := etcdtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ep := srv.Endpoints()[0]
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		ep = u.Host
	}
	proxy := newCutProxy(t, ep)
	gw := start(t, gwproc.Options{Args: []string{"-db-hosts", proxy.ln.Addr().String()}})
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/functions", ""), 200, "")

	proxy.setCut(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 3 {
		begin := time.Now()
		expect(t, call(t, "GET", gw.ConfigURL+"/v1/functions", ""), 503, "")
		if d := time.Since(begin); d > 4500*time.Millisecond {
			t.Fatalf("503 after %v, want about 2s", d)
		}
	}
	if err := gw.WaitLog(ctx, "lost the connection to etcd", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the client retries meanwhile
	proxy.setCut(false)
	if err := gw.WaitLog(ctx, "connection to etcd is back", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "configuration calls answered again", func() bool {
		return call(t, "GET", gw.ConfigURL+"/v1/functions", "").status == 200
	})
	logs := gw.Logs()
	if n := strings.Count(logs, "lost the connection to etcd"); n != 1 {
		t.Errorf("the loss logged %d times, want once", n)
	}
	if n := strings.Count(logs, "connection to etcd is back"); n != 1 {
		t.Errorf("the return logged %d times, want once", n)
	}
}

// TestSmallHoles: control characters in a function's response headers do
// not reach clients; "." and ".." are no ids; function URLs are bounded.
func TestSmallHoles(t *testing.T) {
	gw := startDev(t, "")
	fn := newFunction(t, respondJSON(`{"statusCode":200,"headers":{"X-Bad":"a\u0000b","X-Bell":"\u0007","X-Good":"ok\tfine"},"body":"hi"}`))
	routeHTTP(t, gw, "fn", "GET", "/h", fn)
	conn, err := net.Dial("tcp", strings.TrimPrefix(gw.EventsURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	raw, _ := io.ReadAll(conn)
	head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.1 200") || !strings.Contains(head, "X-Good: ok\tfine") {
		t.Fatalf("response %q", raw)
	}
	if strings.Contains(head, "X-Bad") || strings.Contains(head, "X-Bell") || strings.ContainsRune(head, 0) {
		t.Fatalf("a header with control characters reached the client: %q", head)
	}

	for _, id := range []string{".", ".."} {
		expect(t, call(t, "POST", gw.ConfigURL+"/v1/functions", fmt.Sprintf(`{"functionId":%q,"provider":{"type":"http","url":"http://h"}}`, id)), 400, "not allowed")
		expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Event", id), 400, "not allowed")
		expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "e", "Space", id), 400, "not allowed")
	}
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/functions", `{"functionId":"dots...ok","provider":{"type":"http","url":"http://h"}}`), 200, "")
	long := "http://h/" + strings.Repeat("a", 900<<10)
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/functions", fmt.Sprintf(`{"functionId":"long","provider":{"type":"http","url":%q}}`, long)), 400, "longer than 2048")
}
