package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/history"
	"github.com/event-gateway/event-gateway/internal/etcdtest"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/router/pathtree"
	"github.com/event-gateway/event-gateway/subscriptions"
	"github.com/event-gateway/event-gateway/subscriptions/eventtypes"
)

var etcd *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, func(s *etcdtest.Server) { etcd = s }) }

// invoker records the payloads it is called with.
type invoker struct {
	id    string
	calls atomic.Int64
}

func (i *invoker) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	i.calls.Add(1)
	return []byte(`"` + i.id + `"`), nil
}

type env struct {
	queue *recordingQueue
	store *libkv.Store
	fns   *functions.Service
	subs  *subscriptions.Space
	r     *router.Router
	ctx   context.Context
}

// newEnv runs a router over a real etcd. wrap, when set, wraps the store the
// router reads, to inject watch failures.
func newEnv(t *testing.T, wrap func(router.Store) router.Store, opts ...func(*router.Options)) *env {
	t.Helper()
	st := etcd.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	var rs router.Store = st
	if wrap != nil {
		rs = wrap(st)
	}
	e := &env{
		queue: &recordingQueue{},
		store: st,
		fns:   functions.NewService(st, functions.DefaultSpace, functions.NewRegistry(httpfn.New(httpfn.Options{}))),
		subs:  subscriptions.NewService(st).In(functions.DefaultSpace),
		ctx:   ctx,
	}
	o := router.Options{
		Store: rs,
		Invokers: func(f functions.Function) (functions.Invoker, error) {
			return &invoker{id: f.ID + "@" + urlOf(f)}, nil
		},
		Queue:          e.queue,
		DefaultTimeout: time.Second,
	}
	for _, f := range opts {
		f(&o)
	}
	e.r = router.New(o)
	done := make(chan struct{})
	go func() {
		e.r.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// urlOf returns the url of an http function.
func urlOf(f functions.Function) string {
	var c httpfn.Config
	_ = json.Unmarshal(f.Provider.Config, &c)
	return c.URL
}

func (e *env) fn(t *testing.T, id, url string) {
	t.Helper()
	if _, err := e.fns.Create(e.ctx, functions.Function{ID: id, Provider: httpfn.Config{URL: url}.Provider()}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) sub(t *testing.T, s subscriptions.Subscription) string {
	t.Helper()
	s, err := e.subs.Create(e.ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// until waits for the snapshot to satisfy cond.
func (e *env) until(t *testing.T, what string, cond func(*router.Space) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(e.r.Snapshot().Space(functions.DefaultSpace)) {
		if time.Now().After(deadline) {
			t.Fatalf("snapshot never showed %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func hasRoute(method, path string) func(*router.Space) bool {
	return func(s *router.Space) bool { _, ok := s.MatchHTTP(method, path, nil); return ok }
}

func TestSnapshotFollowsStore(t *testing.T) {
	e := newEnv(t, nil)
	// Written before the router's first list.
	e.fn(t, "a", "http://127.0.0.1:1/a")
	select {
	case <-e.r.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("router never became ready")
	}
	e.until(t, "function a", func(s *router.Space) bool { return s.Function("a") != nil })

	// Written after: arrives through the watch.
	e.fn(t, "b", "http://127.0.0.1:1/b")
	httpID := e.sub(t, subscriptions.Subscription{Event: "http", FunctionID: "b", Method: "GET", Path: "/users/:id"})
	evID := e.sub(t, subscriptions.Subscription{Event: "user.created", FunctionID: "a", Path: "/team"})
	e.sub(t, subscriptions.Subscription{Event: "user.created", FunctionID: "b", Path: "/team"})
	e.sub(t, subscriptions.Subscription{Event: "invoke", FunctionID: "a"})
	e.until(t, "GET /users/:id", hasRoute("GET", "/users/7"))

	s := e.r.Snapshot().Space(functions.DefaultSpace)
	var ps pathtree.Params
	route, _ := s.MatchHTTP("GET", "/users/7/", &ps)
	if route == nil || route.Target.Function.ID != "b" || len(ps) != 1 || ps[0].Value != "7" {
		t.Fatalf("route %+v params %v", route, ps)
	}
	if _, ok := s.MatchHTTP("POST", "/users/7", nil); ok {
		t.Fatal("route matched another method")
	}
	e.until(t, "two subscribers", func(s *router.Space) bool { return len(s.Subscribers("user.created", "/team")) == 2 })
	if len(s.Subscribers("user.created", "/other")) != 0 || len(s.Subscribers("user.deleted", "/team")) != 0 {
		t.Fatal("subscribers on the wrong event or path")
	}
	e.until(t, "invoke a", func(s *router.Space) bool { _, ok := s.InvokeTarget("/", "a"); return ok })
	if _, ok := e.r.Snapshot().Space(functions.DefaultSpace).InvokeTarget("/", "b"); ok {
		t.Fatal("invoke allowed without a subscription")
	}

	// Updates and deletes apply.
	if _, err := e.fns.Update(e.ctx, functions.Function{ID: "b", Provider: httpfn.Config{URL: "http://127.0.0.1:1/b2"}.Provider(), Timeout: "250ms"}); err != nil {
		t.Fatal(err)
	}
	e.until(t, "updated b", func(s *router.Space) bool {
		t := s.Function("b")
		return t != nil && urlOf(t.Function) == "http://127.0.0.1:1/b2" && t.Timeout == 250*time.Millisecond
	})
	route, _ = e.r.Snapshot().Space(functions.DefaultSpace).MatchHTTP("GET", "/users/7", nil)
	if urlOf(route.Target.Function) != "http://127.0.0.1:1/b2" {
		t.Fatal("the http route still calls the old function")
	}
	if err := e.subs.Delete(e.ctx, httpID); err != nil {
		t.Fatal(err)
	}
	if err := e.subs.Delete(e.ctx, evID); err != nil {
		t.Fatal(err)
	}
	e.until(t, "route gone", func(s *router.Space) bool { _, ok := s.MatchHTTP("GET", "/users/7", nil); return !ok })
	e.until(t, "one subscriber", func(s *router.Space) bool { return len(s.Subscribers("user.created", "/team")) == 1 })
}

// flakyStore is the real store whose first watches fail at once, as when
// the watched revision was compacted.
type flakyStore struct {
	router.Store
	failures atomic.Int64
	hold     chan struct{}
}

func (f *flakyStore) Watch(ctx context.Context, prefix string, rev int64) <-chan libkv.WatchResponse {
	if f.failures.Add(-1) >= 0 {
		ch := make(chan libkv.WatchResponse, 1)
		// Let the test change the store while the router has no watch.
		<-f.hold
		ch <- libkv.WatchResponse{Err: fmt.Errorf("injected: %w", libkv.ErrCompacted)}
		close(ch)
		return ch
	}
	return f.Store.Watch(ctx, prefix, rev)
}

// TestResyncAfterWatchFailure: changes made while the watch is broken are
// all applied by the re-list, deletes included, without duplicates.
func TestResyncAfterWatchFailure(t *testing.T) {
	fs := &flakyStore{hold: make(chan struct{})}
	fs.failures.Store(1)
	e := newEnv(t, func(s router.Store) router.Store { fs.Store = s; return fs })
	<-e.r.Ready()

	// The router listed an empty store and is now waiting for its watch.
	e.fn(t, "a", "http://127.0.0.1:1/a")
	e.fn(t, "gone", "http://127.0.0.1:1/gone")
	subID := e.sub(t, subscriptions.Subscription{Event: "ev", FunctionID: "a", Path: "/"})
	e.sub(t, subscriptions.Subscription{Event: "ev", FunctionID: "gone", Path: "/"})
	e.sub(t, subscriptions.Subscription{Event: "http", FunctionID: "a", Method: "GET", Path: "/x"})
	subs, _ := e.subs.List(e.ctx)
	for _, s := range subs {
		if s.FunctionID == "gone" {
			e.subs.Delete(e.ctx, s.ID)
		}
	}
	e.fns.Delete(e.ctx, "gone")
	close(fs.hold)

	e.until(t, "resynced", func(s *router.Space) bool { return s.Function("a") != nil })
	s := e.r.Snapshot().Space(functions.DefaultSpace)
	if s.Function("gone") != nil {
		t.Fatal("a function deleted during the outage is still routed")
	}
	got := s.Subscribers("ev", "/")
	if len(got) != 1 || got[0].SubscriptionID != subID {
		t.Fatalf("subscribers after resync: %+v", got)
	}
	if _, ok := s.MatchHTTP("GET", "/x", nil); !ok {
		t.Fatal("http route missing after resync")
	}
	// And the new watch works.
	e.fn(t, "later", "http://127.0.0.1:1/later")
	e.until(t, "later", func(s *router.Space) bool { return s.Function("later") != nil })
}

func TestDeliverSkipsDeletedSubscription(t *testing.T) {
	e := newEnv(t, nil)
	e.fn(t, "a", "http://127.0.0.1:1/a")
	id := e.sub(t, subscriptions.Subscription{Event: "ev", FunctionID: "a", Path: "/"})
	e.until(t, "subscriber", func(s *router.Space) bool { return len(s.Subscribers("ev", "/")) == 1 })
	inv := e.r.Snapshot().Space(functions.DefaultSpace).Function("a").Invoker.(*invoker)

	d := router.Delivery{SubscriptionID: id, FunctionID: "a", Payload: []byte(`{}`)}
	if err := e.r.Deliver(e.ctx, d); err != nil || inv.calls.Load() != 1 {
		t.Fatalf("deliver: %v, calls %d", err, inv.calls.Load())
	}
	e.subs.Delete(e.ctx, id)
	e.until(t, "no subscriber", func(s *router.Space) bool { return !s.HasSubscription(id) })
	if err := e.r.Deliver(e.ctx, d); !errors.Is(err, router.ErrSubscriptionGone) || inv.calls.Load() != 1 {
		t.Fatalf("a delivery for a deleted subscription: %v, calls %d; want ErrSubscriptionGone and no call", err, inv.calls.Load())
	}
	// A delivery accepted at a revision this router has not reached is
	// retried, not dropped.
	ahead := router.Delivery{SubscriptionID: "not-seen-yet", FunctionID: "a", Revision: e.r.Snapshot().Revision + 100}
	actx, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
	defer cancel()
	if err := e.r.Deliver(actx, ahead); err == nil || errors.Is(err, router.ErrSubscriptionGone) {
		t.Fatalf("a delivery from the future: %v; want a retryable error", err)
	}
}

// heldStore is the real store whose first Scan waits for hold, as when
// etcd is slow to answer an instance that has just started.
type heldStore struct {
	router.Store
	hold chan struct{}
	once sync.Once
}

// wait holds the router's first read of the store until hold is closed.
func (h *heldStore) wait(ctx context.Context) {
	h.once.Do(func() {
		select {
		case <-h.hold:
		case <-ctx.Done():
		}
	})
}

func (h *heldStore) NextKey(ctx context.Context, from, end string, rev int64) (string, bool, int64, error) {
	h.wait(ctx)
	return h.Store.NextKey(ctx, from, end, rev)
}

func (h *heldStore) Scan(ctx context.Context, prefix string, rev, page int64, fn func(libkv.KV) error) (int64, error) {
	h.wait(ctx)
	return h.Store.Scan(ctx, prefix, rev, page, fn)
}

// TestDeliverWaitsForConfiguration: a delivery pulled before the
// configuration is loaded (records left from before a restart) waits for
// it, rather than failing the attempt or taking the subscription for gone.
func TestDeliverWaitsForConfiguration(t *testing.T) {
	hs := &heldStore{hold: make(chan struct{})}
	e := newEnv(t, func(s router.Store) router.Store { hs.Store = s; return hs })
	e.fn(t, "a", "http://127.0.0.1:1/a")
	id := e.sub(t, subscriptions.Subscription{Event: "ev", FunctionID: "a", Path: "/"})

	done := make(chan error, 1)
	go func() {
		done <- e.r.Deliver(e.ctx, router.Delivery{SubscriptionID: id, FunctionID: "a", Revision: 1, Payload: []byte(`{}`)})
	}()
	select {
	case err := <-done:
		t.Fatalf("Deliver returned %v before the configuration was loaded", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(hs.hold)
	if err := <-done; err != nil {
		t.Fatalf("Deliver once loaded: %v", err)
	}
	if n := e.r.Snapshot().Space(functions.DefaultSpace).Function("a").Invoker.(*invoker).calls.Load(); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}

	// One accepted at a revision not seen yet waits for the watch.
	id2 := e.sub(t, subscriptions.Subscription{Event: "other", FunctionID: "a", Path: "/"})
	_, rev, err := e.store.List(e.ctx, "nothing/")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.r.Deliver(e.ctx, router.Delivery{SubscriptionID: id2, FunctionID: "a", Revision: rev, Payload: []byte(`{}`)}); err != nil {
		t.Fatalf("Deliver of a subscription newer than the snapshot: %v", err)
	}
}

func TestEmitAcceptsForEverySubscriber(t *testing.T) {
	e := newEnv(t, nil)
	e.fn(t, "a", "http://127.0.0.1:1/a")
	e.fn(t, "b", "http://127.0.0.1:1/b")
	e.sub(t, subscriptions.Subscription{Event: "ev", FunctionID: "a", Path: "/p"})
	e.sub(t, subscriptions.Subscription{Event: "ev", FunctionID: "b", Path: "/p"})
	e.until(t, "subscribers", func(s *router.Space) bool { return len(s.Subscribers("ev", "/p")) == 2 })
	ev, _ := event.New("ev", []byte(`{"k":1}`), "application/json", time.Now())
	n, err := e.r.Emit(e.ctx, functions.DefaultSpace, &ev, "/p/")
	if err != nil || n != 2 {
		t.Fatalf("Emit = %d, %v; want 2 deliveries", n, err)
	}
	q := e.queue
	if len(q.ds) != 2 || q.ds[0].EventID != ev.ID || q.ds[0].Revision < 1 || q.ds[0].FunctionID == q.ds[1].FunctionID || string(q.ds[0].Payload) != string(ev.AppendJSON(nil)) {
		t.Fatalf("deliveries %+v", q.ds)
	}
	n, err = e.r.Emit(e.ctx, functions.DefaultSpace, &ev, "/nobody")
	if err != nil || n != 0 {
		t.Fatalf("Emit to no subscriber = %d, %v", n, err)
	}
}

// BenchmarkPropagation measures the time from a write through the
// Configuration API's service to the route being in this router's snapshot.
func BenchmarkPropagation(b *testing.B) {
	st := etcd.Store(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := router.New(router.Options{Store: st, Queue: &recordingQueue{},
		Invokers: func(functions.Function) (functions.Invoker, error) { return &invoker{}, nil }})
	go r.Run(ctx)
	<-r.Ready()
	fns := functions.NewService(st, functions.DefaultSpace, functions.NewRegistry(httpfn.New(httpfn.Options{})))
	subs := subscriptions.NewService(st).In(functions.DefaultSpace)
	fns.Create(ctx, functions.Function{ID: "f", Provider: httpfn.Config{URL: "http://127.0.0.1:1/"}.Provider()})
	i := 0
	for b.Loop() {
		i++
		path := fmt.Sprintf("/p%d", i)
		if _, err := subs.Create(ctx, subscriptions.Subscription{Event: "http", FunctionID: "f", Method: "GET", Path: path}); err != nil {
			b.Fatal(err)
		}
		for {
			if _, ok := r.Snapshot().Space(functions.DefaultSpace).MatchHTTP("GET", path, nil); ok {
				break
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// BenchmarkSnapshotBuild10000 measures rebuilding a snapshot of 10,000
// http routes, which every configuration change costs.
func BenchmarkSnapshotBuild10000(b *testing.B) {
	st := etcd.Store(b)
	ctx := context.Background()
	fns := functions.NewService(st, functions.DefaultSpace, functions.NewRegistry(httpfn.New(httpfn.Options{})))
	fns.Create(ctx, functions.Function{ID: "f", Provider: httpfn.Config{URL: "http://127.0.0.1:1/"}.Provider()})
	space := functions.DefaultSpace
	for i := range 10000 {
		// Written directly: the conflict check of 10,000 creates is not
		// what this measures.
		s := subscriptions.Subscription{Event: "http", FunctionID: "f", Method: "GET", Path: fmt.Sprintf("/r%d/:id/x%d", i, i%7)}
		s.Normalize(functions.DefaultSpace)
		v, _ := json.Marshal(s)
		st.Put(ctx, subscriptions.Key(space, s.ID), v)
	}
	for b.Loop() {
		r := router.New(router.Options{Store: st, Queue: &recordingQueue{},
			Invokers: func(functions.Function) (functions.Invoker, error) { return &invoker{}, nil }})
		rctx, cancel := context.WithCancel(ctx)
		go r.Run(rctx)
		<-r.Ready()
		cancel()
	}
}

// BenchmarkScale100k loads 100,000 http subscriptions into a router and
// reports the heap they take per subscription and the time to load them.
func BenchmarkScale100k(b *testing.B) {
	const n = 100_000
	st := etcd.Store(b)
	ctx := context.Background()
	fns := functions.NewService(st, functions.DefaultSpace, functions.NewRegistry(httpfn.New(httpfn.Options{})))
	fns.Create(ctx, functions.Function{ID: "f", Provider: httpfn.Config{URL: "http://127.0.0.1:1/"}.Provider()})
	space := functions.DefaultSpace
	var ops []libkv.Op
	for i := range n {
		s := subscriptions.Subscription{Event: "http", FunctionID: "f", Method: "GET", Path: fmt.Sprintf("/r%d/:id/x%d", i, i%7)}
		s.Normalize(functions.DefaultSpace)
		v, _ := json.Marshal(s)
		ops = append(ops, libkv.Put(subscriptions.Key(space, s.ID), v))
		if len(ops) == 100 {
			if _, _, err := st.Txn(ctx, nil, ops); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	// The embedded etcd lives in this process: read the keys once, so its
	// own memory does not count, and serve them from memory.
	kvs, rev, err := st.List(ctx, functions.SpaceRoot(space))
	if err != nil {
		b.Fatal(err)
	}
	fixed := fixedStore{kvs: kvs, rev: rev}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		begin := time.Now()
		r := router.New(router.Options{Store: fixed, Queue: &recordingQueue{},
			Invokers: func(functions.Function) (functions.Invoker, error) { return &invoker{}, nil }})
		rctx, cancel := context.WithCancel(ctx)
		go r.Run(rctx)
		<-r.Ready()
		took := time.Since(begin)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heapB/sub")
		cancel()
		b.ReportMetric(took.Seconds(), "load-s")
		var ps pathtree.Params
		lookups := 0
		lb := time.Now()
		for i := 0; i < 1_000_000; i++ {
			if _, ok := r.Snapshot().Space(functions.DefaultSpace).MatchHTTP("GET", "/r77777/abc/x0", &ps); ok {
				lookups++
			}
		}
		b.ReportMetric(float64(time.Since(lb).Nanoseconds())/1e6, "lookup-ns")
		runtime.KeepAlive(r)
	}
}

// fixedStore serves a list read beforehand and a watch that reports
// nothing: for measuring the router alone.
type fixedStore struct {
	kvs []libkv.KV
	rev int64
}

func (f fixedStore) Scan(_ context.Context, prefix string, _, _ int64, fn func(libkv.KV) error) (int64, error) {
	for _, kv := range f.kvs {
		if !strings.HasPrefix(kv.Key, prefix) {
			continue
		}
		if err := fn(kv); err != nil {
			return 0, err
		}
	}
	return f.rev, nil
}

func (f fixedStore) NextKey(_ context.Context, from, end string, _ int64) (string, bool, int64, error) {
	for _, kv := range f.kvs { // sorted, as etcd lists them
		if kv.Key >= from && kv.Key < end {
			return kv.Key, true, f.rev, nil
		}
	}
	return "", false, f.rev, nil
}

func (f fixedStore) Watch(ctx context.Context, _ string, _ int64) <-chan libkv.WatchResponse {
	return make(chan libkv.WatchResponse)
}

// recordingQueue keeps what the router enqueues, for tests of Emit.
type recordingQueue struct {
	mu sync.Mutex
	ds []router.Delivery
}

func (q *recordingQueue) Enqueue(_ context.Context, ds []router.Delivery) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ds = append(q.ds, ds...)
	return nil
}

// closingInvoker counts its Close calls.
type closingInvoker struct {
	invoker
	closed atomic.Int64
}

func (c *closingInvoker) Close() error { c.closed.Add(1); return nil }

// TestSpacesStayApart: two spaces with the same function ids, paths and
// events route each to its own functions; a change in one space leaves the
// other's table as it was; an invoker replaced by an update is closed.
func TestSpacesStayApart(t *testing.T) {
	st := etcd.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	made := map[string]*closingInvoker{}
	r := router.New(router.Options{Store: st, Queue: &recordingQueue{},
		Invokers: func(f functions.Function) (functions.Invoker, error) {
			mu.Lock()
			defer mu.Unlock()
			inv := &closingInvoker{invoker: invoker{id: urlOf(f)}}
			made[urlOf(f)] = inv
			return inv, nil
		}})
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	<-r.Ready()

	subs := subscriptions.NewService(st)
	registry := functions.NewRegistry(httpfn.New(httpfn.Options{}))
	for _, space := range []string{"a", "b"} {
		fns := functions.NewService(st, space, registry)
		if _, err := fns.Create(ctx, functions.Function{ID: "f", Provider: httpfn.Config{URL: "http://127.0.0.1:1/" + space}.Provider()}); err != nil {
			t.Fatal(err)
		}
		for _, s := range []subscriptions.Subscription{
			{Event: "http", FunctionID: "f", Method: "GET", Path: "/users/:id"},
			{Event: "user.created", FunctionID: "f", Path: "/"},
		} {
			if _, err := subs.In(space).Create(ctx, s); err != nil {
				t.Fatalf("space %s: %v", space, err)
			}
		}
	}
	wait := func(what string, cond func(*router.Snapshot) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond(r.Snapshot()) {
			if time.Now().After(deadline) {
				t.Fatalf("snapshot never showed %s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	wait("both spaces", func(s *router.Snapshot) bool {
		return len(s.Space("a").Subscribers("user.created", "/")) == 1 && len(s.Space("b").Subscribers("user.created", "/")) == 1
	})
	snap := r.Snapshot()
	for _, space := range []string{"a", "b"} {
		route, ok := snap.Space(space).MatchHTTP("GET", "/users/1", nil)
		if !ok || urlOf(route.Target.Function) != "http://127.0.0.1:1/"+space || route.Target.Space != space {
			t.Fatalf("space %s: GET /users/1 routes to %+v", space, route)
		}
	}
	if snap.Space("a").Subscribers("user.created", "/")[0].SubscriptionID == snap.Space("b").Subscribers("user.created", "/")[0].SubscriptionID {
		t.Fatal("the same subscription in two spaces has one id")
	}
	if snap.Space("default") != nil || snap.Space("c").Function("f") != nil {
		t.Fatal("a space with nothing in it routes something")
	}

	// Update a's function: b's table is reused as it is, and a's old
	// invoker is closed once the new snapshot is in.
	before := r.Snapshot()
	if _, err := functions.NewService(st, "a", registry).Update(ctx, functions.Function{ID: "f", Provider: httpfn.Config{URL: "http://127.0.0.1:1/a2"}.Provider()}); err != nil {
		t.Fatal(err)
	}
	wait("a updated", func(s *router.Snapshot) bool {
		return urlOf(s.Space("a").Function("f").Function) == "http://127.0.0.1:1/a2"
	})
	if r.Snapshot().Space("b") != before.Space("b") {
		t.Fatal("a change in space a rebuilt space b")
	}
	mu.Lock()
	closedA, closedB := made["http://127.0.0.1:1/a"].closed.Load(), made["http://127.0.0.1:1/b"].closed.Load()
	mu.Unlock()
	if closedA != 1 || closedB != 0 {
		t.Fatalf("closed: old invoker of a %d times, b's %d times; want 1 and 0", closedA, closedB)
	}
}

// countingStore counts the router's key probes.
type countingStore struct {
	router.Store
	nextKeys atomic.Int64
}

func (c *countingStore) NextKey(ctx context.Context, from, end string, rev int64) (string, bool, int64, error) {
	c.nextKeys.Add(1)
	return c.Store.NextKey(ctx, from, end, rev)
}

// TestResyncJumpsOverIndexKeys: reading the configuration costs a key
// probe per space, however many index keys sort before its resources
// (eventroutes/ sorts before functions/).
func TestResyncJumpsOverIndexKeys(t *testing.T) {
	st := etcd.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	registry := functions.NewRegistry(httpfn.New(httpfn.Options{}))
	subs := subscriptions.NewService(st)
	types := eventtypes.NewService(st)
	for _, space := range []string{"a", "b"} {
		if _, err := functions.NewService(st, space, registry).Create(ctx, functions.Function{ID: "f", Provider: httpfn.Config{URL: "http://127.0.0.1:1/"}.Provider()}); err != nil {
			t.Fatal(err)
		}
		if _, err := types.In(space).Create(ctx, eventtypes.EventType{Name: "e"}); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			s := subscriptions.Subscription{Type: subscriptions.Sync, Event: "e", FunctionID: "f", Method: "POST", Path: fmt.Sprintf("/p%d", i)}
			if _, err := subs.In(space).Create(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	cs := &countingStore{Store: st}
	r := router.New(router.Options{Store: cs, Queue: &recordingQueue{}, Invokers: registry.Invoker})
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	<-r.Ready()
	if n := cs.nextKeys.Load(); n > 3 {
		t.Fatalf("%d key probes to read 2 spaces, want at most 3", n)
	}
	for _, space := range []string{"a", "b"} {
		if _, ok := r.Snapshot().Space(space).MatchEvent("e", "POST", "/p7", nil); !ok {
			t.Fatalf("space %s: synchronous route missing after the read", space)
		}
	}
}

// TestHistoryRecordsAreNotRouting: the configuration history keeps its
// records under spaces/<space>/history/, beside the resources; the router
// reads only the directories of the kinds it routes by, so a record (here
// shaped like a function, to be tempting) is neither loaded nor watched
// into a snapshot.
func TestHistoryRecordsAreNotRouting(t *testing.T) {
	e := newEnv(t, nil)
	record := []byte(`{"functionId":"ghost","provider":{"type":"http","url":"http://127.0.0.1:9/"}}`)
	if _, err := e.store.Put(e.ctx, history.Prefix("quiet")+"0001", record); err != nil {
		t.Fatal(err)
	}
	e.fn(t, "real", "http://127.0.0.1:9/real")
	e.until(t, "function real", func(s *router.Space) bool { return s.Function("real") != nil })
	// Written while the router watches, in the default space too.
	if _, err := e.store.Put(e.ctx, history.Prefix(functions.DefaultSpace)+"0002", record); err != nil {
		t.Fatal(err)
	}
	e.fn(t, "later", "http://127.0.0.1:9/later")
	e.until(t, "function later", func(s *router.Space) bool { return s.Function("later") != nil })
	snap := e.r.Snapshot()
	if snap.Space("quiet") != nil || snap.Space(functions.DefaultSpace).Function("ghost") != nil || snap.Space(functions.DefaultSpace).Function("0002") != nil {
		t.Fatal("a history record was read as routing data")
	}
}
