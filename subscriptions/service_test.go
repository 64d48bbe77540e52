package subscriptions_test

import (
	"context"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/internal/etcdtest"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions"
)

var etcd *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, func(s *etcdtest.Server) { etcd = s }) }

type fixture struct {
	subs  *subscriptions.Space
	fns   *functions.Service
	store *libkv.Store
	ctx   context.Context
}

func newFixture(t testing.TB, fnIDs ...string) fixture {
	st := etcd.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	f := fixture{
		store: st,
		subs:  subscriptions.NewService(st).In(functions.DefaultSpace),
		fns:   functions.NewService(st, functions.DefaultSpace, functions.NewRegistry(httpfn.New(httpfn.Options{}))),
		ctx:   ctx,
	}
	for _, id := range fnIDs {
		if _, err := f.fns.Create(ctx, functions.Function{ID: id, Provider: httpfn.Config{URL: "http://127.0.0.1:1/"}.Provider()}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestCreateValidation(t *testing.T) {
	f := newFixture(t, "fn")
	tests := []struct {
		name    string
		sub     subscriptions.Subscription
		kind    errkind.Kind
		wantErr string
	}{
		{"no event", subscriptions.Subscription{FunctionID: "fn"}, errkind.Invalid, "event is required"},
		{"bad event", subscriptions.Subscription{Event: "user created", FunctionID: "fn"}, errkind.Invalid, "event"},
		{"no function id", subscriptions.Subscription{Event: "e"}, errkind.Invalid, "functionId is required"},
		{"missing function", subscriptions.Subscription{Event: "e", FunctionID: "ghost"}, errkind.Invalid, "does not exist"},
		{"http without method", subscriptions.Subscription{Event: "http", FunctionID: "fn", Path: "/a"}, errkind.Invalid, "method is required"},
		{"http bad method", subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "TRACE", Path: "/a"}, errkind.Invalid, "not one of"},
		{"http bad path", subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Path: "/a/*x/b"}, errkind.Invalid, "last segment"},
		{"custom with method", subscriptions.Subscription{Event: "e", FunctionID: "fn", Method: "GET"}, errkind.Invalid, "http subscriptions only"},
		{"custom with cors", subscriptions.Subscription{Event: "e", FunctionID: "fn", CORS: &subscriptions.CORS{}}, errkind.Invalid, "cors applies"},
		{"custom with params", subscriptions.Subscription{Event: "e", FunctionID: "fn", Path: "/a/:id"}, errkind.Invalid, "cannot have parameters"},
		{"cors empty origins", subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", CORS: &subscriptions.CORS{Origins: []string{}}}, errkind.Invalid, "cors.origins is an empty list"},
		{"cors empty methods", subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", CORS: &subscriptions.CORS{Methods: []string{}}}, errkind.Invalid, "cors.methods is an empty list"},
		{"cors empty headers", subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", CORS: &subscriptions.CORS{Headers: []string{}}}, errkind.Invalid, "cors.headers is an empty list"},
		{"cors bad method", subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", CORS: &subscriptions.CORS{Methods: []string{"FETCH"}}}, errkind.Invalid, "cors.methods"},
		{"retry on http", subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Retry: &subscriptions.Retry{MaxAttempts: 3}}, errkind.Invalid, "synchronous"},
		{"retry on invoke", subscriptions.Subscription{Event: "invoke", FunctionID: "fn", Retry: &subscriptions.Retry{MaxAttempts: 3}}, errkind.Invalid, "synchronous"},
		{"retry too many", subscriptions.Subscription{Event: "e", FunctionID: "fn", Retry: &subscriptions.Retry{MaxAttempts: 101}}, errkind.Invalid, "maxAttempts"},
		{"retry bad backoff", subscriptions.Subscription{Event: "e", FunctionID: "fn", Retry: &subscriptions.Retry{InitialBackoff: "soon"}}, errkind.Invalid, "initialBackoff"},
		{"retry inverted", subscriptions.Subscription{Event: "e", FunctionID: "fn", Retry: &subscriptions.Retry{InitialBackoff: "1m", MaxBackoff: "1s"}}, errkind.Invalid, "longer than"},
		{"cors credentials with any origin", subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", CORS: &subscriptions.CORS{AllowCredentials: true}}, errkind.Invalid, "allowCredentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.subs.Create(f.ctx, tt.sub)
			if err == nil || errkind.Of(err) != tt.kind || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Create = %v (kind %v); want kind %v with %q", err, errkind.Of(err), tt.kind, tt.wantErr)
			}
		})
	}
}

func TestCreateNormalizes(t *testing.T) {
	f := newFixture(t, "fn")
	s, err := f.subs.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "get", Path: "users/", CORS: &subscriptions.CORS{}})
	if err != nil {
		t.Fatal(err)
	}
	want := subscriptions.CORS{Origins: []string{"*"}, Methods: []string{"HEAD", "GET", "POST"}, Headers: []string{"Origin", "Accept", "Content-Type"}}
	if s.Method != "GET" || s.Path != "/users" || fmt.Sprint(*s.CORS) != fmt.Sprint(want) {
		t.Fatalf("created %+v, cors %+v", s, s.CORS)
	}
	if url.PathEscape(s.ID) != s.ID || s.ID == "" {
		t.Fatalf("subscription id %q is not URL-safe", s.ID)
	}
	c, err := f.subs.Create(f.ctx, subscriptions.Subscription{Event: "user.created", FunctionID: "fn", Method: "post", Retry: &subscriptions.Retry{MaxAttempts: 5, InitialBackoff: "100ms", MaxBackoff: "1m"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != "/" || c.Method != "" || c.Retry == nil || c.Retry.MaxAttempts != 5 {
		t.Fatalf("custom subscription stored as %+v; want path / and no method", c)
	}
	got, err := f.subs.Get(f.ctx, s.ID)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, s)
	}
	list, err := f.subs.List(f.ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

func TestCreateConflicts(t *testing.T) {
	f := newFixture(t, "fn", "other")
	mk := func(method, path string) error {
		_, err := f.subs.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: method, Path: path})
		return err
	}
	for _, p := range []string{"/users/:id", "/files/*path", "/a/b"} {
		if err := mk("GET", p); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	for _, tt := range []struct {
		method, path string
		conflict     bool
	}{
		{"GET", "/users/:id", true},
		{"get", "/users/:id/", true}, // same after normalization
		{"GET", "/users/me", true},
		{"GET", "/users/:name", true},
		{"GET", "/files/x", true},
		{"GET", "/files/:f", true},
		{"GET", "/a/:x", true},
		{"POST", "/users/me", false}, // other method
		{"GET", "/users/:id/posts", false},
		{"GET", "/users", false},
		{"GET", "/a/b/c", false},
	} {
		err := mk(tt.method, tt.path)
		if tt.conflict && errkind.Of(err) != errkind.Conflict {
			t.Errorf("%s %s: got %v, want a conflict", tt.method, tt.path, err)
		}
		if !tt.conflict && err != nil {
			t.Errorf("%s %s: got %v, want success", tt.method, tt.path, err)
		}
	}
	// An http route is unique per method and path whatever the function.
	_, err := f.subs.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "other", Method: "GET", Path: "/a/b"})
	if errkind.Of(err) != errkind.Conflict {
		t.Fatalf("second function on GET /a/b: %v, want conflict", err)
	}
	// A custom event subscription is unique per event, function and path.
	ev := subscriptions.Subscription{Event: "user.created", FunctionID: "fn", Path: "/team"}
	if _, err := f.subs.Create(f.ctx, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := f.subs.Create(f.ctx, ev); errkind.Of(err) != errkind.Conflict {
		t.Fatalf("duplicate custom subscription: %v, want conflict", err)
	}
	ev.FunctionID = "other"
	if _, err := f.subs.Create(f.ctx, ev); err != nil {
		t.Fatalf("second subscriber of the same event: %v", err)
	}
}

func TestDeleteAndFunctionInUse(t *testing.T) {
	f := newFixture(t, "fn")
	s, err := f.subs.Create(f.ctx, subscriptions.Subscription{Event: "e", FunctionID: "fn"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.fns.Delete(f.ctx, "fn"); errkind.Of(err) != errkind.Conflict {
		t.Fatalf("deleting a function in use: %v, want conflict", err)
	}
	if err := f.subs.Delete(f.ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.subs.Delete(f.ctx, s.ID); errkind.Of(err) != errkind.NotFound {
		t.Fatalf("second delete: %v, want not found", err)
	}
	if err := f.subs.Delete(f.ctx, "not-a-uuid"); errkind.Of(err) != errkind.NotFound {
		t.Fatalf("delete of a malformed id: %v, want not found", err)
	}
	if err := f.fns.Delete(f.ctx, "fn"); err != nil {
		t.Fatalf("deleting the function once unused: %v", err)
	}
	// With the function gone, a subscription to it is refused.
	if _, err := f.subs.Create(f.ctx, subscriptions.Subscription{Event: "e", FunctionID: "fn"}); errkind.Of(err) != errkind.Invalid {
		t.Fatalf("subscribing a deleted function: %v, want invalid", err)
	}
}

// TestConcurrentConflictingCreates races 20 writers on paths that all
// conflict with each other: exactly one may win.
func TestConcurrentConflictingCreates(t *testing.T) {
	f := newFixture(t, "fn")
	paths := make([]string, 20)
	for i := range paths {
		switch i % 4 {
		case 0:
			paths[i] = fmt.Sprintf("/race/:p%d", i) // differently named parameters
		case 1:
			paths[i] = fmt.Sprintf("/race/s%d", i) // static where others have a parameter
		case 2:
			paths[i] = fmt.Sprintf("/race/*w%d", i) // wildcards
		default:
			paths[i] = "/race/:p0" // the same path
		}
	}
	// Static paths do not conflict with each other, so keep only one.
	for i := range paths {
		if i%4 == 1 && i != 1 {
			paths[i] = "/race/s1"
		}
	}
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, p := range paths {
		// A service each, as if every writer were another gateway: they
		// share nothing but etcd.
		svc := subscriptions.NewService(f.store).In(functions.DefaultSpace)
		wg.Go(func() {
			<-start
			_, errs[i] = svc.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Path: p})
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errkind.Of(err) != errkind.Conflict || !(strings.Contains(err.Error(), "conflicts with") || strings.Contains(err.Error(), "already exists")):
			t.Errorf("%s: %v, want a path conflict", paths[i], err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d conflicting subscriptions were created, want exactly 1", wins)
	}
	list, _ := f.subs.List(f.ctx)
	if len(list) != 1 {
		t.Fatalf("store holds %d subscriptions, want 1", len(list))
	}
}

// TestConcurrentDeleteFunctionAndSubscribe races deleting a function with
// subscribing to it: either the subscription exists and the function too,
// or neither.
func TestConcurrentDeleteFunctionAndSubscribe(t *testing.T) {
	for i := range 10 {
		f := newFixture(t, "fn")
		var wg sync.WaitGroup
		var subErr, delErr error
		wg.Go(func() {
			_, subErr = f.subs.Create(f.ctx, subscriptions.Subscription{Event: "e", FunctionID: "fn", Path: fmt.Sprintf("/%d", i)})
		})
		wg.Go(func() { delErr = f.fns.Delete(f.ctx, "fn") })
		wg.Wait()
		if (subErr == nil) == (delErr == nil) {
			t.Fatalf("round %d: subscribe err %v, delete err %v: exactly one must win", i, subErr, delErr)
		}
		_, getErr := f.fns.Get(f.ctx, "fn")
		list, _ := f.subs.List(f.ctx)
		if subErr == nil && (getErr != nil || len(list) != 1) {
			t.Fatalf("round %d: subscription created but function gone (%v)", i, getErr)
		}
	}
}

// TestConcurrentCompatibleCreates: many gateways adding routes that do not
// conflict all succeed, with custom-event subscriptions created meanwhile.
func TestConcurrentCompatibleCreates(t *testing.T) {
	f := newFixture(t, "fn")
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := range 5 {
		svc := subscriptions.NewService(f.store).In(functions.DefaultSpace)
		for i := range 20 {
			wg.Go(func() {
				_, err := svc.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "PUT", Path: fmt.Sprintf("/g%d/r%d/:id", g, i)})
				errs <- err
			})
			wg.Go(func() {
				_, err := svc.Create(f.ctx, subscriptions.Subscription{Event: fmt.Sprintf("e%d", i), FunctionID: "fn", Path: fmt.Sprintf("/g%d", g)})
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	list, _ := f.subs.List(f.ctx)
	if len(list) != 200 {
		t.Fatalf("%d subscriptions stored, want 200", len(list))
	}
}
