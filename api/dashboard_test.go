package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/api"
	"github.com/event-gateway/event-gateway/functions"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/instances"
	"github.com/event-gateway/event-gateway/internal/openapitest"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/router/fnstats"
	"github.com/event-gateway/event-gateway/router/tail"
)

func newDashboardServer(t *testing.T, st *libkv.Store, tb *tail.Broadcaster, stats *fnstats.Stats) *httptest.Server {
	return newDashboardServerTimeout(t, st, tb, stats, 0)
}

// newDashboardServerTimeout is newDashboardServer with the server's read
// and write timeouts set to timeout, as cmd/event-gateway sets them.
func newDashboardServerTimeout(t *testing.T, st *libkv.Store, tb *tail.Broadcaster, stats *fnstats.Stats, timeout time.Duration) *httptest.Server {
	t.Helper()
	spaces := api.NewStoreSpaces(st, functions.NewRegistry(httpfn.New(httpfn.Options{})), nil)
	h := api.NewConfig(api.ConfigOptions{
		Functions:     spaces.Functions(functions.DefaultSpace),
		Subscriptions: spaces.Subscriptions(functions.DefaultSpace),
		Spaces:        spaces,
		StoreTimeout:  time.Second,
		Dashboard: api.DashboardSources{
			SpaceNames: spaces.SpaceNames,
			Tail:       tb,
			Stats:      stats,
			Instances:  func(ctx context.Context) ([]instances.Info, error) { return instances.List(ctx, st) },
		},
	})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = timeout, timeout
	srv.Start()
	t.Cleanup(srv.Close)
	validator.Register(t, srv.URL, openapitest.ConfigAPI)
	return srv
}

func TestListSpaces(t *testing.T) {
	st := etcd.Store(t)
	srv := newDashboardServer(t, st, nil, nil)
	check := func(want string) {
		t.Helper()
		r := do(t, srv, "GET", "/v1/spaces", "")
		if r.status != 200 || strings.TrimSpace(r.body) != want {
			t.Fatalf("GET /v1/spaces: %d %s, want %s", r.status, r.body, want)
		}
	}
	check(`{"spaces":["default"]}`)
	for _, sp := range []string{"shop", "billing", "shop-eu"} {
		r := do(t, srv, "POST", "/v1/spaces/"+sp+"/eventtypes", `{"name":"a"}`)
		if r.status != 201 {
			t.Fatalf("create in %s: %d %s", sp, r.status, r.body)
		}
		do(t, srv, "POST", "/v1/spaces/"+sp+"/eventtypes", `{"name":"b"}`)
	}
	// "shop-eu/" sorts before "shop/": each space once, by name.
	check(`{"spaces":["default","billing","shop","shop-eu"]}`)
	do(t, srv, "DELETE", "/v1/spaces/billing/eventtypes/a", "")
	do(t, srv, "DELETE", "/v1/spaces/billing/eventtypes/b", "")
	check(`{"spaces":["default","shop","shop-eu"]}`)
}

func TestTailStream(t *testing.T) {
	st := etcd.Store(t)
	tb := tail.New(1)
	// A stream outlives the server's timeouts.
	const timeout = 300 * time.Millisecond
	srv := newDashboardServerTimeout(t, st, tb, nil, timeout)
	wantError(t, do(t, srv, "GET", "/v1/spaces/bad%20space/tail", ""), 400, "space")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/spaces/shop/tail?types=order.created", nil)
	resp, err := validator.Client(srv.Client()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// One tail at most: the next is refused, and says why.
	r := do(t, srv, "GET", "/v1/spaces/shop/tail", "")
	wantError(t, r, 503, "too many live tails")

	time.Sleep(3 * timeout)
	tb.Publish(tail.Item{Kind: "event", Space: "other", Type: "order.created", ID: "x"})
	tb.Publish(tail.Item{Kind: "event", Space: "shop", Type: "user.created", ID: "filtered"})
	tb.Publish(tail.Item{Kind: "event", Space: "shop", Type: "order.created", ID: "e1"})
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "data: ") {
			break
		}
	}
	var it tail.Item
	last := lines[len(lines)-1]
	if lines[len(lines)-2] != "event: item" || json.Unmarshal([]byte(strings.TrimPrefix(last, "data: ")), &it) != nil || it.ID != "e1" {
		t.Fatalf("stream: %q", lines)
	}
	cancel()
	// The watcher goes with its client.
	deadline := time.Now().Add(5 * time.Second)
	for tb.Watching() {
		if time.Now().After(deadline) {
			t.Fatal("the watcher of a closed stream is still registered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFunctionStats(t *testing.T) {
	st := etcd.Store(t)
	stats := fnstats.New()
	srv := newDashboardServer(t, st, nil, stats)
	wantError(t, do(t, srv, "GET", "/v1/spaces/shop/functions/nope/stats", ""), 404, "not found")
	r := do(t, srv, "POST", "/v1/spaces/shop/functions", `{"functionId":"f","type":"http","provider":{"url":"http://127.0.0.1:9/"}}`)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	stats.Invoked("shop", "f", "http", 2*time.Millisecond, "ok")
	stats.Invoked("shop", "f", "http", 2*time.Millisecond, "failed")
	r = do(t, srv, "GET", "/v1/spaces/shop/functions/f/stats", "")
	var body struct {
		FunctionID string          `json:"functionId"`
		Minutes    []fnstats.Point `json:"minutes"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if last := body.Minutes[len(body.Minutes)-1]; len(body.Minutes) != 60 || last.Calls != 2 || last.Errors != 1 || last.P50 != 2 {
		t.Fatalf("stats %+v", body)
	}
}

func TestInstances(t *testing.T) {
	st := etcd.Store(t)
	srv := newDashboardServer(t, st, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := instances.Register(ctx, st, func() instances.Info {
		return instances.Info{ID: "gw-1", ConfigURL: "http://c", Ready: true, Revision: 7}
	}, instances.Options{TTL: 2 * time.Second, Check: 20 * time.Millisecond, Rewrite: 50 * time.Millisecond})
	var list struct{ Instances []instances.Info }
	deadline := time.Now().Add(5 * time.Second)
	for len(list.Instances) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the instance never listed")
		}
		r := do(t, srv, "GET", "/v1/instances", "")
		json.Unmarshal([]byte(r.body), &list)
		time.Sleep(20 * time.Millisecond)
	}
	if in := list.Instances[0]; in.ID != "gw-1" || !in.Ready || in.Revision != 7 || in.Updated.IsZero() {
		t.Fatalf("instance %+v", in)
	}
	// Stopping removes the entry at once (the lease is revoked).
	cancel()
	<-done
	r := do(t, srv, "GET", "/v1/instances", "")
	if strings.TrimSpace(r.body) != `{"instances":[]}` {
		t.Fatalf("after stop: %s", r.body)
	}
}
