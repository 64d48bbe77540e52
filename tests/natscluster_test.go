package tests

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/internal/gwproc"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/router/jetstream"
)

// startNATSCluster runs n nats-servers with JetStream in this process,
// clustered over loopback, and waits until JetStream has a leader. It
// returns the servers and their client URLs.
func startNATSCluster(t *testing.T, n int) ([]*server.Server, []string) {
	t.Helper()
	dir := t.TempDir()
	clientPorts, routePorts := make([]int, n), make([]int, n)
	var routes []string
	for i := range n {
		clientPorts[i], routePorts[i] = freePort(t), freePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]))
	}
	servers := make([]*server.Server, n)
	urls := make([]string, n)
	for i := range n {
		srv, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("nats-%d", i),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprint(i)),
			MaxPayload: jetstream.DefaultMaxPayload,
			Cluster:    server.ClusterOpts{Name: "event-gateway-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
			NoSigs:     true,
			NoLog:      true,
		})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		if !srv.ReadyForConnections(20 * time.Second) {
			t.Fatalf("nats-%d did not start", i)
		}
		servers[i], urls[i] = srv, srv.ClientURL()
	}
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return servers, urls
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream cluster not ready within 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNATSClusterLosesNothing: two gateways store deliveries in streams of
// three replicas on a cluster of three NATS servers. Under emit load, the
// server that leads the delivery stream is shut down: every event answered
// 202 is delivered, and emitters see 503s (then 202s) for a short while
// only.
func TestNATSClusterLosesNothing(t *testing.T) {
	servers, urls := startNATSCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	etcdSrv, err := libkv.StartEmbedded(ctx, libkv.EmbedConfig{DataDir: filepath.Join(t.TempDir(), "etcd"), ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcdSrv.Close)
	args := []string{"-db-hosts", etcdSrv.Endpoints()[0], "-nats-url", strings.Join(urls, ","), "-nats-replicas", "3", "-delivery-ack-wait", "2s"}
	gws := []*gwproc.Process{start(t, gwproc.Options{Args: args}), start(t, gwproc.Options{Args: args})}

	tl, fn := newTally(t)
	registerHTTP(t, gws[0], "durable", fn)
	subscribe(t, gws[0], `{"functionId":"durable","event":"order","retry":{"maxAttempts":100,"initialBackoff":"50ms","maxBackoff":"500ms"}}`)
	for i, gw := range gws {
		untilLive(t, gw, "order", fmt.Sprintf(`{"n":%d}`, 100000+i), func() bool { return tl.count() > i })
	}

	// The stream's leader is the server whose loss hurts most.
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := natsjs.New(nc)
	st, err := js.Stream(ctx, jetstream.DeliveriesStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %+v, %v", info, err)
	}
	if got := len(info.Cluster.Replicas) + 1; got != 3 {
		t.Fatalf("delivery stream has %d replicas, want 3", got)
	}
	victim := -1
	for i, s := range servers {
		if s.Name() == info.Cluster.Leader {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("stream leader %q is none of the servers", info.Cluster.Leader)
	}
	nc.Close()

	const n = 3000
	var (
		next, accepted, unavailable, otherErrs atomic.Int64
		lastAccept                             atomic.Int64 // unix nanos
		maxGap, maxWait                        atomic.Int64 // nanos
		killed                                 = make(chan struct{})
		killOnce                               sync.Once
	)
	raise := func(v *atomic.Int64, d int64) {
		for old := v.Load(); d > old && !v.CompareAndSwap(old, d); old = v.Load() {
		}
	}
	lastAccept.Store(time.Now().UnixNano())
	client := validator.Client(&http.Client{Timeout: 15 * time.Second})
	deadline := time.Now().Add(45 * time.Second)
	var wg sync.WaitGroup
	for e := range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				first := time.Now()
				for {
					if time.Now().After(deadline) {
						t.Errorf("event %d not accepted in time", i)
						return
					}
					gw := gws[(i+e)%len(gws)]
					req, _ := http.NewRequest("POST", gw.EventsURL+"/", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
					req.Header.Set("Event", "order")
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == 202 {
							break
						}
					}
					if err == nil && resp.StatusCode == 503 {
						unavailable.Add(1)
					} else {
						otherErrs.Add(1)
					}
					time.Sleep(20 * time.Millisecond)
				}
				now := time.Now()
				raise(&maxGap, now.UnixNano()-lastAccept.Swap(now.UnixNano()))
				raise(&maxWait, int64(now.Sub(first)))
				if accepted.Add(1) == n/3 {
					killOnce.Do(func() {
						servers[victim].Shutdown()
						t.Logf("shut down %s, the delivery stream's leader, after %d accepted events", servers[victim].Name(), n/3)
						close(killed)
					})
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatal("the NATS server was never shut down")
	}
	t.Logf("emitting: %d events accepted, %d answers 503, %d other failures; longest gap between two 202s %v, longest wait of one event %v",
		accepted.Load(), unavailable.Load(), otherErrs.Load(), time.Duration(maxGap.Load()).Round(time.Millisecond), time.Duration(maxWait.Load()).Round(time.Millisecond))
	if w := time.Duration(maxWait.Load()); w > 20*time.Second {
		t.Errorf("an event waited %v to be accepted: emitters were refused for too long", w)
	}
	if m := tl.waitAll(n, 40*time.Second); len(m) > 0 {
		t.Fatalf("%d accepted events never delivered, e.g. %v", len(m), m[:min(10, len(m))])
	}
	t.Logf("all %d accepted events delivered (%d subscriber calls)", n, tl.calls.Load())
}
