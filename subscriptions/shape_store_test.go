package subscriptions_test

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// naiveConflict is the check before the shape index: the new path against
// every stored one.
func naiveConflict(t *testing.T, stored []string, path string) bool {
	_, segs, err := subscriptions.ParsePath(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range stored {
		_, o, _ := subscriptions.ParsePath(p)
		if subscriptions.Conflict(segs, o) {
			return true
		}
	}
	return false
}

func randomPath(r *rand.Rand) string {
	segs := []string{"a", "b", "a$", ":x", ":y", "*w"}
	var b strings.Builder
	for i := range r.IntN(4) {
		s := segs[r.IntN(len(segs))]
		if s[0] == ':' {
			s += strconv.Itoa(i) // a name once per path
		}
		b.WriteString("/" + s)
		if s[0] == '*' {
			break
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// TestCreateMatchesFullScan creates and deletes random routes and checks
// every outcome against the full scan of the stored routes.
func TestCreateMatchesFullScan(t *testing.T) {
	f := newFixture(t, "fn")
	r := rand.New(rand.NewPCG(7, 14))
	stored := map[string]string{} // path → id
	var conflicts, created, deleted int
	for range 400 {
		if len(stored) > 0 && r.IntN(5) == 0 {
			for p, id := range stored {
				if err := f.subs.Delete(f.ctx, id); err != nil {
					t.Fatal(err)
				}
				delete(stored, p)
				deleted++
				break
			}
			continue
		}
		p := randomPath(r)
		paths := make([]string, 0, len(stored))
		for q := range stored {
			paths = append(paths, q)
		}
		want := naiveConflict(t, paths, p)
		s, err := f.subs.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Path: p})
		switch {
		case want && errkind.Of(err) != errkind.Conflict:
			t.Fatalf("create %s with %q stored: %v, want a conflict", p, paths, err)
		case !want && err != nil:
			t.Fatalf("create %s with %q stored: %v, want success", p, paths, err)
		case err == nil:
			stored[s.Path] = s.ID
			created++
		default:
			conflicts++
		}
	}
	t.Logf("%d created, %d deleted, %d conflicts", created, deleted, conflicts)
}

// TestRoutesOfEarlierReleases: routes stored before the shape index (the
// route index alone) are indexed and conflict-checked; shape keys whose
// routes an earlier release deleted do not block new routes.
func TestRoutesOfEarlierReleases(t *testing.T) {
	f := newFixture(t, "fn")
	old := []string{"/users/:id", "/files/*path", "/a/b"}
	writeOldRoutes(t, f, len(old), func(i int) string { return old[i] })
	// A synchronous subscription to a custom event, stored the same way.
	ev := subscriptions.Subscription{Event: "order.placed", Type: subscriptions.Sync, FunctionID: "fn", Path: "/orders/:id"}
	if _, err := ev.Normalize(functions.DefaultSpace); err != nil {
		t.Fatal(err)
	}
	evRoutes := subscriptions.EventRoutesPrefix(functions.DefaultSpace, "order.placed", "POST")
	if _, err := f.store.Put(f.ctx, evRoutes+ev.ID, []byte(ev.Path)); err != nil {
		t.Fatal(err)
	}
	// A shape key whose route is gone.
	ghost := subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Path: "/ghost/:id"}
	if _, err := ghost.Normalize(functions.DefaultSpace); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Put(f.ctx, subscriptions.ShapeKey(functions.DefaultSpace, &ghost), []byte(ghost.Path)); err != nil {
		t.Fatal(err)
	}

	// A new gateway: it indexes the stored routes before its first route.
	svc := subscriptions.NewService(f.store)
	subs := svc.In(functions.DefaultSpace)
	for _, p := range []string{"/users/me", "/files/x", "/a/:x", "/users/:name"} {
		_, err := subs.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Path: p})
		if errkind.Of(err) != errkind.Conflict || !strings.Contains(err.Error(), "conflicts with") {
			t.Errorf("GET %s: %v, want a conflict with a route of an earlier release", p, err)
		}
	}
	if _, err := subs.Create(f.ctx, subscriptions.Subscription{Event: "order.placed", Type: subscriptions.Sync, FunctionID: "fn", Path: "/orders/new"}); errkind.Of(err) != errkind.Conflict {
		t.Errorf("sync order.placed /orders/new: %v, want a conflict", err)
	}
	if _, err := subs.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Path: "/ghost/me"}); err != nil {
		t.Errorf("GET /ghost/me, conflicting only with a deleted route: %v", err)
	}
	// Indexing again changes nothing.
	st, err := svc.Reindex(f.ctx)
	if err != nil || st.Added != 0 || st.Removed != 0 || st.Routes != 5 {
		t.Fatalf("second Reindex = %+v, %v; want 5 routes, nothing to do", st, err)
	}
	// A route deleted by an earlier release (its route key alone) is
	// found by the conflict check and its shape key dropped.
	users := subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Path: "/users/:id"}
	users.Normalize(functions.DefaultSpace)
	if _, _, err := f.store.Txn(f.ctx, nil, []libkv.Op{
		libkv.Del(subscriptions.Key(functions.DefaultSpace, users.ID)),
		libkv.Del(functions.UseKey(functions.DefaultSpace, "fn", users.ID)),
		libkv.Del(subscriptions.RouteKey(functions.DefaultSpace, "GET", users.ID)),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := subs.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Path: "/users/me"}); err != nil {
		t.Errorf("GET /users/me after /users/:id was deleted by an earlier release: %v", err)
	}
}

// TestConcurrentCreatesAcrossPositions races writers, each a gateway of
// its own, on paths that conflict at different positions: every pair of
// them conflicts, so exactly one may win; and writers on paths that
// conflict with none of them all win.
func TestConcurrentCreatesAcrossPositions(t *testing.T) {
	for round := range 5 {
		f := newFixture(t, "fn")
		conflicting := []string{"/r/:a/x", "/r/:b/y", "/r/s/:c", "/r/*rest", "/r/:d/z", "/r/:a/x"}
		compatible := []string{"/q/:a/x", "/r2/s", "/r2/s2/t/u", "/other/*w"}
		if round%2 == 1 {
			compatible = append(compatible, "/r") // shorter: no conflict
		}
		paths := append(append([]string(nil), conflicting...), compatible...)
		errs := make([]error, len(paths))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, p := range paths {
			svc := subscriptions.NewService(f.store).In(functions.DefaultSpace)
			wg.Go(func() {
				<-start
				_, errs[i] = svc.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Path: p})
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs[:len(conflicting)] {
			switch {
			case err == nil:
				wins++
			case errkind.Of(err) != errkind.Conflict:
				t.Errorf("%s: %v, want a conflict", paths[i], err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d of the mutually conflicting routes were created, want exactly 1 (%v)", round, wins, errs)
		}
		for i, err := range errs[len(conflicting):] {
			if err != nil {
				t.Errorf("%s: %v, want success", paths[len(conflicting)+i], err)
			}
		}
	}
}
