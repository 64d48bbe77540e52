package spacestate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/functions/awslambda"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/history"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/internal/etcdtest"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/spacestate"
	"github.com/event-gateway/event-gateway/subscriptions"
)

var etcd *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, func(s *etcdtest.Server) { etcd = s }) }

const space = "shop"

var prefixes atomic.Int64

// gateway is what one gateway instance has of the configuration: its
// connection to etcd, the history hook, the services.
type gateway struct {
	plain, recorded *libkv.Store
	hist            *history.Log
	state           *spacestate.Service
	subs            *subscriptions.Service
	fns             *functions.Service
	providers       *functions.Registry
}

// newPrefix returns a key prefix of its own for a test, which several
// gateways of the test share.
func newPrefix(t *testing.T) string {
	return fmt.Sprintf("/spacestate-test/%s-%d/", t.Name(), prefixes.Add(1))
}

func newGateway(t testing.TB, prefix string, opts history.Options) *gateway {
	t.Helper()
	st, err := libkv.Open(libkv.Config{Endpoints: etcd.Endpoints(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	providers := functions.NewRegistry(httpfn.New(httpfn.Options{}), awslambda.New(awslambda.Options{}))
	opts.Providers = providers
	hist := history.New(st, opts)
	rec := st.WithTxnHook(hist.Hook)
	subs := subscriptions.NewService(rec)
	return &gateway{plain: st, recorded: rec, hist: hist, subs: subs, providers: providers,
		state: spacestate.New(rec, providers, subs, hist),
		fns:   functions.NewService(rec, space, providers)}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

const stateA = `{
  "space": "shop",
  "functions": [
    {"functionId": "hello", "provider": {"type": "http", "url": "http://127.0.0.1:9/hello"}},
    {"functionId": "lambda", "provider": {"type": "awslambda", "arn": "arn:aws:lambda:us-east-1:1:function:f", "region": "us-east-1",
      "awsAccessKeyId": "AKIA", "awsSecretAccessKey": "the-secret"}}
  ],
  "eventTypes": [{"name": "user.created", "authorizerId": "hello"}],
  "subscriptions": [
    {"event": "http", "type": "sync", "method": "GET", "path": "/users/:id", "functionId": "hello"},
    {"event": "user.created", "type": "async", "path": "/", "functionId": "lambda"}
  ],
  "cors": [{"method": "GET", "path": "/users/:id", "allowedOrigins": ["https://shop.example"]}]
}`

func actions(p spacestate.Plan) []string {
	var out []string
	for _, c := range p.Changes {
		out = append(out, c.Action+" "+c.Kind+"/"+c.ID)
	}
	return out
}

func keysUnder(t *testing.T, st *libkv.Store, prefix string) []string {
	t.Helper()
	kvs, _, err := st.List(ctx(t), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range kvs {
		out = append(out, kv.Key)
	}
	return out
}

// routeID is the id the subscription GET /users/:id gets in the space.
func routeID(t *testing.T, method, path string) string {
	t.Helper()
	s := subscriptions.Subscription{Event: "http", Type: "sync", Method: method, Path: path, FunctionID: "hello"}
	if _, err := s.Normalize(space); err != nil {
		t.Fatal(err)
	}
	return s.ID
}

func TestApplyCreateChangeDelete(t *testing.T) {
	gw := newGateway(t, newPrefix(t), history.Options{})
	c := ctx(t)

	plan, err := gw.state.Apply(c, space, []byte(stateA), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Changes) != 6 || plan.Unchanged != 0 || plan.DryRun {
		t.Fatalf("plan %v", actions(plan))
	}
	for _, a := range actions(plan) {
		if !strings.HasPrefix(a, "create ") {
			t.Fatalf("first apply plans %q", a)
		}
	}
	// The services see what apply wrote, index keys included: a
	// subscription whose route conflicts with the applied one is refused
	// by the service's own check, which reads the shape index, and the
	// function a subscription uses cannot be deleted (the uses index).
	_, err = gw.subs.In(space).Create(c, subscriptions.Subscription{Event: "http", Method: "GET", Path: "/users/:name", FunctionID: "hello"})
	if errkind.Of(err) != errkind.Conflict || !strings.Contains(err.Error(), "conflicts with /users/:id") {
		t.Fatalf("conflicting route after apply: %v", err)
	}
	if err := gw.fns.Delete(c, "lambda"); errkind.Of(err) != errkind.Conflict {
		t.Fatalf("delete a used function after apply: %v", err)
	}

	// The same state again changes nothing and writes no transaction.
	again, err := gw.state.Apply(c, space, []byte(stateA), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Changes) != 0 || again.Unchanged != 6 || again.Revision != plan.Revision {
		t.Fatalf("second apply: %+v (first at %d)", again, plan.Revision)
	}

	// Change: a function's URL, a route's path; the lambda's secret
	// given as exported (redacted) keeps the stored one.
	stateB := strings.NewReplacer(
		"http://127.0.0.1:9/hello", "http://127.0.0.1:9/hello2",
		`"path": "/users/:id", "functionId"`, `"path": "/people/:id", "functionId"`,
		"the-secret", functions.Redacted,
	).Replace(stateA)
	plan, err = gw.state.Apply(c, space, []byte(stateB), false)
	if err != nil {
		t.Fatal(err)
	}
	newID, oldID := routeID(t, "GET", "/people/:id"), routeID(t, "GET", "/users/:id")
	want := []string{"update functions/hello", "create subscriptions/" + newID, "delete subscriptions/" + oldID}
	if oldID < newID {
		// Plans are ordered by kind, then id.
		want[1], want[2] = want[2], want[1]
	}
	if got := actions(plan); !slices.Equal(got, want) {
		t.Fatalf("plan %q, want %q", got, want)
	}
	kv, err := gw.plain.Get(c, functions.FunctionKey(space, "lambda"))
	if err != nil || !strings.Contains(string(kv.Value), `"the-secret"`) {
		t.Fatalf("lambda after applying its redacted secret: %s %v", kv.Value, err)
	}
	// The old route's index keys are gone: the path it held is free.
	if _, err := gw.subs.In(space).Create(c, subscriptions.Subscription{Event: "http", Method: "GET", Path: "/users/:name", FunctionID: "hello"}); err != nil {
		t.Fatalf("old route still indexed: %v", err)
	}

	// Delete everything: only the history is left in the space.
	plan, err = gw.state.Apply(c, space, []byte(`{"functions": []}`), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Changes) != 7 {
		t.Fatalf("delete-all plan %q", actions(plan))
	}
	for _, k := range keysUnder(t, gw.plain, functions.SpaceRoot(space)) {
		if !strings.HasPrefix(k, history.Prefix(space)) {
			t.Fatalf("key %s left after deleting everything", k)
		}
	}
}

func TestApplyInvalidSaysWhereAndChangesNothing(t *testing.T) {
	gw := newGateway(t, newPrefix(t), history.Options{})
	c := ctx(t)
	if _, err := gw.state.Apply(c, space, []byte(stateA), false); err != nil {
		t.Fatal(err)
	}
	before, err := gw.plain.Revision(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, state, msg string }{
		{"unknown field", strings.Replace(stateA, `"url"`, `"uri"`, 1), `functions[0] (functionId "hello"): unknown field "provider.uri"`},
		{"bad timeout", strings.Replace(stateA, `"functionId": "hello",`, `"functionId": "hello", "timeout": "forever",`, 1), `functions[0] (functionId "hello"): timeout "forever"`},
		{"missing function", strings.Replace(stateA, `"functionId": "lambda"}`, `"functionId": "nope"}`, 1), `subscriptions[1] (user.created / → nope): function "nope" does not exist`},
		{"missing event type", strings.Replace(stateA, `"name": "user.created", `, `"name": "user.deleted", `, 1), `event type "user.created" is not registered`},
		{"conflicting routes", strings.Replace(stateA, `"subscriptions": [`, `"subscriptions": [{"event": "http", "type": "sync", "method": "GET", "path": "/users/*rest", "functionId": "hello"},`, 1), "conflicts with"},
		{"bad cors", strings.Replace(stateA, `"allowedOrigins"`, `"allowedMethods": ["FETCH"], "allowedOrigins"`, 1), `cors[0] (GET /users/:id): allowedMethods: "FETCH"`},
		{"wrong space", strings.Replace(stateA, `"space": "shop"`, `"space": "other"`, 1), `the state is for space "other"`},
		{"unresolved secret", strings.Replace(stateA, `"the-secret"`, `{"fromEnv": "AWS_SECRET"}`, 1), `functions[1].provider.awsSecretAccessKey: {"fromEnv": …} is for the client`},
		{"not json", `{"functions": [`, "state: not a complete JSON object"},
		{"duplicate", strings.Replace(stateA, `"functionId": "lambda", "provider"`, `"functionId": "hello", "provider"`, 1), `functions[1] (functionId "hello"): declared twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, dry := range []bool{true, false} {
				_, err := gw.state.Apply(c, space, []byte(tc.state), dry)
				if k := errkind.Of(err); (k != errkind.Invalid && k != errkind.Conflict) || !strings.Contains(errkind.Message(err), tc.msg) {
					t.Fatalf("dryRun=%v: error %v (kind %v), want one saying %q", dry, err, errkind.Of(err), tc.msg)
				}
			}
		})
	}
	if after, err := gw.plain.Revision(c); err != nil || after != before {
		t.Fatalf("revision %d after invalid applies, was %d (%v)", after, before, err)
	}
}

func TestDryRunPlansWithoutWriting(t *testing.T) {
	gw := newGateway(t, newPrefix(t), history.Options{})
	c := ctx(t)
	if _, err := gw.state.Apply(c, space, []byte(stateA), false); err != nil {
		t.Fatal(err)
	}
	before, _ := gw.plain.Revision(c)
	stateB := strings.Replace(stateA, `"cors": [{"method": "GET", "path": "/users/:id", "allowedOrigins": ["https://shop.example"]}]`, `"cors": []`, 1)
	stateB = strings.Replace(stateB, "http://127.0.0.1:9/hello", "http://127.0.0.1:9/v2", 1)
	plan, err := gw.state.Apply(c, space, []byte(stateB), true)
	if err != nil {
		t.Fatal(err)
	}
	got := actions(plan)
	if !plan.DryRun || plan.Revision != before || len(got) != 2 || got[0] != "update functions/hello" || !strings.HasPrefix(got[1], "delete cors/") || plan.Unchanged != 4 {
		t.Fatalf("dry-run plan %+v", plan)
	}
	if after, _ := gw.plain.Revision(c); after != before {
		t.Fatalf("dry run wrote: revision %d → %d", before, after)
	}
	// The real apply carries out exactly the plan.
	real, err := gw.state.Apply(c, space, []byte(stateB), false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(actions(real), got) {
		t.Fatalf("apply did %q, dry run planned %q", actions(real), got)
	}
}

// racingStore commits, between another apply's read and its commit, an
// apply of its own through a second gateway: the race of two gateways
// made deterministic.
func TestRacingAppliesOneWins(t *testing.T) {
	prefix := newPrefix(t)
	a := newGateway(t, prefix, history.Options{})
	b := newGateway(t, prefix, history.Options{})
	c := ctx(t)
	stateB := strings.Replace(stateA, "http://127.0.0.1:9/hello", "http://127.0.0.1:9/from-b", 1)
	var bPlan spacestate.Plan
	var bErr error
	fired := false
	// Gateway a's store runs b's apply to completion once, just before
	// a's transaction is sent: after a has read the space.
	hooked := a.plain.WithTxnHook(func(ctx context.Context, ops []libkv.Op) ([]libkv.Cond, []libkv.Op, error) {
		if !fired {
			fired = true
			bPlan, bErr = b.state.Apply(ctx, space, []byte(stateB), false)
		}
		return a.hist.Hook(ctx, ops)
	})
	racer := spacestate.New(hooked, a.providers, a.subs, a.hist)
	_, err := racer.Apply(c, space, []byte(stateA), false)
	if bErr != nil {
		t.Fatalf("the first apply failed: %v", bErr)
	}
	if errkind.Of(err) != errkind.Conflict || !strings.Contains(errkind.Message(err), "was changed by another writer after it was read") ||
		!strings.Contains(errkind.Message(err), "nothing was applied") {
		t.Fatalf("the second apply: %v, want a conflict saying why", err)
	}
	// The space is exactly b's: nothing of a's apply was written.
	f, err := a.fns.Get(c, "hello")
	if err != nil || !strings.Contains(string(f.Provider.Config), "from-b") {
		t.Fatalf("hello after the race: %+v %v", f, err)
	}
	entries, _, err := a.hist.List(c, space, 0, 0)
	if err != nil || len(entries) != 1 || entries[0].Revision != bPlan.Revision {
		t.Fatalf("history after the race: %+v %v (b committed at %d)", entries, err, bPlan.Revision)
	}
}

func TestHistoryAndRollbackAfterDelete(t *testing.T) {
	gw := newGateway(t, newPrefix(t), history.Options{})
	c := history.WithOrigin(ctx(t), history.Origin{Actor: history.Actor{Kind: "key", KeyID: "k1", Name: "deployer"}, RequestID: "req-1"})
	plan, err := gw.state.Apply(c, space, []byte(stateA), false)
	if err != nil {
		t.Fatal(err)
	}
	good := plan.Revision
	// Changes through the services, as the API makes them: delete the
	// lambda's subscription, then the lambda itself.
	subID := ""
	subs, err := gw.subs.In(space).List(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if s.FunctionID == "lambda" {
			subID = s.ID
		}
	}
	if err := gw.subs.In(space).Delete(c, subID); err != nil {
		t.Fatal(err)
	}
	if err := gw.fns.Delete(c, "lambda"); err != nil {
		t.Fatal(err)
	}
	entries, _, err := gw.hist.List(c, space, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("%d entries, want 3", len(entries))
	}
	del := entries[0]
	if del.Via != history.ViaAPI || del.Actor.Name != "deployer" || del.RequestID != "req-1" || len(del.Changes) != 1 ||
		del.Changes[0].Action != history.Delete || del.Changes[0].ID != "lambda" {
		t.Fatalf("newest entry %+v", del)
	}
	// Listed entries never show a secret.
	if b, _ := json.Marshal(entries); strings.Contains(string(b), "the-secret") {
		t.Fatalf("history shows the secret: %s", b)
	}
	if entries[2].Via != history.ViaApply || entries[2].Revision != good || len(entries[2].Changes) != 6 {
		t.Fatalf("apply entry %+v", entries[2])
	}

	// Roll back to the apply: the function and its subscription are back,
	// the secret with them, in one recorded transaction.
	dry, err := gw.state.Rollback(c, space, good, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(dry); len(got) != 2 || got[0] != "create functions/lambda" || got[1] != "create subscriptions/"+subID {
		t.Fatalf("rollback plan %q", got)
	}
	rb, err := gw.state.Rollback(c, space, good, false)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := gw.plain.Get(c, functions.FunctionKey(space, "lambda"))
	if err != nil || !strings.Contains(string(kv.Value), `"the-secret"`) {
		t.Fatalf("lambda after rollback: %s %v", kv.Value, err)
	}
	if err := gw.fns.Delete(c, "lambda"); errkind.Of(err) != errkind.Conflict {
		t.Fatalf("the restored subscription does not hold its function: %v", err)
	}
	entries, _, err = gw.hist.List(c, space, 0, 1)
	if err != nil || len(entries) != 1 || entries[0].Via != history.ViaRollback || entries[0].RollbackTo != good || entries[0].Revision != rb.Revision {
		t.Fatalf("rollback entry %+v %v", entries, err)
	}
	// The space is as it was: applying the first state changes nothing.
	if p, err := gw.state.Apply(c, space, []byte(stateA), true); err != nil || len(p.Changes) != 0 {
		t.Fatalf("after rollback, the first state plans %q (%v)", actions(p), err)
	}
	// Before the oldest record there is nothing to roll back to.
	if _, err := gw.state.Rollback(c, space, good-1, true); errkind.Of(err) != errkind.Invalid || !strings.Contains(err.Error(), "older than the history kept") {
		t.Fatalf("rollback before the history: %v", err)
	}
}

func TestHistoryRetention(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	gw := newGateway(t, newPrefix(t), history.Options{MaxEntries: 3, MaxAge: time.Hour,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	c := ctx(t)
	var revs []int64
	for i := range 6 {
		f, err := gw.fns.Create(c, functions.Function{ID: fmt.Sprintf("f%d", i), Provider: functions.Provider{Type: "http", Config: json.RawMessage(`{"url":"http://127.0.0.1:9/"}`)}})
		if err != nil {
			t.Fatal(err, f)
		}
		rev, _ := gw.plain.Revision(c)
		revs = append(revs, rev)
	}
	entries, _, err := gw.hist.List(c, space, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[0].Revision != revs[5] || entries[2].Revision != revs[3] {
		t.Fatalf("kept %d entries (newest %d), want the 3 newest of %v", len(entries), entries[0].Revision, revs)
	}
	// Pages of the kept entries, newest first.
	page, next, err := gw.hist.List(c, space, 0, 2)
	if err != nil || len(page) != 2 || next != revs[4] {
		t.Fatalf("first page %d entries, next %d (%v)", len(page), next, err)
	}
	page, next, err = gw.hist.List(c, space, next, 2)
	if err != nil || len(page) != 1 || page[0].Revision != revs[3] || next != 0 {
		t.Fatalf("second page %+v, next %d (%v)", page, next, err)
	}
	// Two hours later, the next change drops every record older than
	// an hour.
	clock.Add(int64(2 * time.Hour))
	if err := gw.fns.Delete(c, "f0"); err != nil {
		t.Fatal(err)
	}
	entries, _, err = gw.hist.List(c, space, 0, 0)
	if err != nil || len(entries) != 1 || entries[0].Changes[0].Action != history.Delete {
		t.Fatalf("after the age limit: %+v %v", entries, err)
	}
}

// bigState is a space of n functions, each with an http route, and as
// many async subscriptions to one event type; tag changes every URL.
func bigState(n int, tag string) []byte {
	var fns, subs []string
	for i := range n {
		fns = append(fns, fmt.Sprintf(`{"functionId":"f%d","provider":{"type":"http","url":"http://127.0.0.1:9/%s/%d"}}`, i, tag, i))
		subs = append(subs, fmt.Sprintf(`{"event":"http","method":"GET","path":"/r%d/:id","functionId":"f%d"}`, i, i),
			fmt.Sprintf(`{"event":"user.created","type":"async","path":"/","functionId":"f%d"}`, i))
	}
	return []byte(`{"eventTypes":[{"name":"user.created"}],"functions":[` + strings.Join(fns, ",") + `],"subscriptions":[` + strings.Join(subs, ",") + `]}`)
}

// BenchmarkApply measures an apply that changes every function of a
// space of 200 functions and 400 subscriptions (one transaction of about
// 200 writes), and a dry run of it.
func BenchmarkApply(b *testing.B) {
	gw := newGateway(b, fmt.Sprintf("/spacestate-bench/%d/", prefixes.Add(1)), history.Options{})
	c := context.Background()
	if _, err := gw.state.Apply(c, space, bigState(200, "a"), false); err != nil {
		b.Fatal(err)
	}
	states := [][]byte{bigState(200, "b"), bigState(200, "a")}
	b.Run("apply", func(b *testing.B) {
		i := 0
		for b.Loop() {
			p, err := gw.state.Apply(c, space, states[i%2], false)
			if err != nil || len(p.Changes) != 200 {
				b.Fatal(err, len(p.Changes))
			}
			i++
		}
	})
	b.Run("dry-run", func(b *testing.B) {
		for b.Loop() {
			if _, err := gw.state.Apply(c, space, states[0], true); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRollbackOverManyRecords rolls back over more records than the
// history reads at a time.
func TestRollbackOverManyRecords(t *testing.T) {
	gw := newGateway(t, newPrefix(t), history.Options{})
	c := ctx(t)
	var first int64
	for i := range 120 {
		if _, err := gw.fns.Create(c, functions.Function{ID: fmt.Sprintf("f%03d", i), Provider: functions.Provider{Type: "http", Config: json.RawMessage(`{"url":"http://127.0.0.1:9/"}`)}}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first, _ = gw.plain.Revision(c)
		}
	}
	// f000 deleted late: the rollback must find its value before that.
	if err := gw.fns.Delete(c, "f000"); err != nil {
		t.Fatal(err)
	}
	plan, err := gw.state.Rollback(c, space, first, false)
	if err != nil {
		t.Fatal(err)
	}
	got := actions(plan)
	if len(got) != 120 || got[0] != "create functions/f000" || got[1] != "delete functions/f001" || got[119] != "delete functions/f119" {
		t.Fatalf("rollback plan: %d changes, %q … %q", len(got), got[:2], got[len(got)-1])
	}
	fns, err := gw.fns.List(c)
	if err != nil || len(fns) != 1 || fns[0].ID != "f000" {
		t.Fatalf("after the rollback: %+v %v", fns, err)
	}
}
