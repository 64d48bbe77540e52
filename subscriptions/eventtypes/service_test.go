package eventtypes_test

import (
	"context"
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
	"github.com/event-gateway/event-gateway/subscriptions/eventtypes"
)

var etcd *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, func(s *etcdtest.Server) { etcd = s }) }

type fixture struct {
	store *libkv.Store
	svc   *eventtypes.Service
	types *eventtypes.Space
	fns   *functions.Service
	ctx   context.Context
}

const space = "myspace"

func newFixture(t *testing.T, fnIDs ...string) fixture {
	t.Helper()
	st := etcd.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	svc := eventtypes.NewService(st)
	f := fixture{store: st, svc: svc, types: svc.In(space), fns: functions.NewService(st, space, functions.NewRegistry(httpfn.New(httpfn.Options{}))), ctx: ctx}
	for _, id := range fnIDs {
		if _, err := f.fns.Create(ctx, functions.Function{ID: id, Provider: httpfn.Config{URL: "http://127.0.0.1:1/"}.Provider()}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func wantErr(t *testing.T, what string, err error, kind errkind.Kind, msg string) {
	t.Helper()
	if err == nil || errkind.Of(err) != kind || !strings.Contains(errkind.Message(err), msg) {
		t.Fatalf("%s = %v (kind %v); want kind %v with %q", what, err, errkind.Of(err), kind, msg)
	}
}

func TestCRUD(t *testing.T) {
	f := newFixture(t, "auth")
	created, err := f.types.Create(f.ctx, eventtypes.EventType{Space: "ignored", Name: "user.created", AuthorizerID: "auth", Metadata: map[string]string{"service": "users"}})
	if err != nil {
		t.Fatal(err)
	}
	want := eventtypes.EventType{Space: space, Name: "user.created", AuthorizerID: "auth", Metadata: map[string]string{"service": "users"}}
	if !reflect.DeepEqual(created, want) {
		t.Fatalf("Create = %+v; want %+v", created, want)
	}
	got, err := f.types.Get(f.ctx, "user.created")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, want)
	}
	// The space is not stored: it comes from the key.
	kv, err := f.store.Get(f.ctx, eventtypes.Key(space, "user.created"))
	if err != nil || strings.Contains(string(kv.Value), "space") {
		t.Fatalf("stored %s, %v; want no space in the value", kv.Value, err)
	}

	updated, err := f.types.Update(f.ctx, "user.created", eventtypes.EventType{Metadata: map[string]string{"service": "accounts"}})
	if err != nil {
		t.Fatal(err)
	}
	want = eventtypes.EventType{Space: space, Name: "user.created", Metadata: map[string]string{"service": "accounts"}}
	if !reflect.DeepEqual(updated, want) {
		t.Fatalf("Update = %+v; want %+v", updated, want)
	}
	if got, err := f.types.Get(f.ctx, "user.created"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Get after update = %+v, %v; want %+v", got, err, want)
	}
	// The authorizer was dropped: its use key went with it, so the
	// function can be deleted.
	if err := f.fns.Delete(f.ctx, "auth"); err != nil {
		t.Fatalf("delete former authorizer: %v", err)
	}

	list, err := f.types.List(f.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The built-in http.request exists without being stored, but lists
	// show only what is stored.
	if names := names(list); !reflect.DeepEqual(names, []string{"user.created"}) {
		t.Fatalf("List = %v", names)
	}

	if err := f.types.Delete(f.ctx, "user.created"); err != nil {
		t.Fatal(err)
	}
	_, err = f.types.Get(f.ctx, "user.created")
	wantErr(t, "Get after delete", err, errkind.NotFound, `event type "user.created" not found`)
	wantErr(t, "second Delete", f.types.Delete(f.ctx, "user.created"), errkind.NotFound, "not found")
}

func names(ets []eventtypes.EventType) []string {
	out := make([]string, len(ets))
	for i, et := range ets {
		out[i] = et.Name
	}
	return out
}

func TestCreateDuplicate(t *testing.T) {
	f := newFixture(t)
	if _, err := f.types.Create(f.ctx, eventtypes.EventType{Name: "a.b"}); err != nil {
		t.Fatal(err)
	}
	_, err := f.types.Create(f.ctx, eventtypes.EventType{Name: "a.b", Metadata: map[string]string{"x": "y"}})
	wantErr(t, "duplicate Create", err, errkind.Conflict, `event type "a.b" already exists`)
}

func TestNotFound(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"nope", "", "bad name", "a/b", "gateway.event.received"} {
		_, err := f.types.Get(f.ctx, name)
		wantErr(t, "Get "+name, err, errkind.NotFound, "not found")
		_, err = f.types.Update(f.ctx, name, eventtypes.EventType{})
		wantErr(t, "Update "+name, err, errkind.NotFound, "not found")
		wantErr(t, "Delete "+name, f.types.Delete(f.ctx, name), errkind.NotFound, "not found")
	}
}

func TestValidation(t *testing.T) {
	f := newFixture(t, "auth")
	many := map[string]string{}
	for i := range functions.MaxMetadataKeys + 1 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	for _, tt := range []struct {
		name string
		et   eventtypes.EventType
		kind errkind.Kind
		msg  string
	}{
		{"no name", eventtypes.EventType{}, errkind.Invalid, "name is required"},
		{"bad name", eventtypes.EventType{Name: "user created"}, errkind.Invalid, `name "user created" may contain only letters, digits`},
		{"long name", eventtypes.EventType{Name: strings.Repeat("a", 257)}, errkind.Invalid, "name is longer than 256 characters"},
		{"reserved", eventtypes.EventType{Name: "gateway.event.received"}, errkind.Invalid, `event type names starting with "gateway." are reserved for system events`},
		{"bad authorizer", eventtypes.EventType{Name: "e", AuthorizerID: "no/such"}, errkind.Invalid, `authorizerId "no/such" may contain only`},
		{"missing authorizer", eventtypes.EventType{Name: "e", AuthorizerID: "ghost"}, errkind.Invalid, `authorizer function "ghost" does not exist`},
		{"too many metadata", eventtypes.EventType{Name: "e", Metadata: many}, errkind.Invalid, "metadata has 65 keys, more than 64"},
		{"empty metadata key", eventtypes.EventType{Name: "e", Metadata: map[string]string{"": "v"}}, errkind.Invalid, "metadata has an empty key"},
		{"long metadata key", eventtypes.EventType{Name: "e", Metadata: map[string]string{strings.Repeat("k", 257): "v"}}, errkind.Invalid, "is longer than 256 bytes"},
		{"long metadata value", eventtypes.EventType{Name: "e", Metadata: map[string]string{"k": strings.Repeat("v", 1025)}}, errkind.Invalid, "metadata.k is longer than 1024 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.types.Create(f.ctx, tt.et)
			wantErr(t, "Create", err, tt.kind, tt.msg)
		})
	}
	// Nothing was stored by the refused creations.
	if list, err := f.types.List(f.ctx, nil); err != nil || len(list) != 0 {
		t.Fatalf("List = %v, %v; want nothing", names(list), err)
	}

	// The same rules on update.
	if _, err := f.types.Create(f.ctx, eventtypes.EventType{Name: "e"}); err != nil {
		t.Fatal(err)
	}
	_, err := f.types.Update(f.ctx, "e", eventtypes.EventType{Name: "f"})
	wantErr(t, "Update renaming", err, errkind.Invalid, `the name of an event type cannot be changed ("f" in the body, "e" in the URL)`)
	_, err = f.types.Update(f.ctx, "e", eventtypes.EventType{AuthorizerID: "ghost"})
	wantErr(t, "Update with missing authorizer", err, errkind.Invalid, `authorizer function "ghost" does not exist`)
	_, err = f.types.Update(f.ctx, "e", eventtypes.EventType{Metadata: many})
	wantErr(t, "Update with too much metadata", err, errkind.Invalid, "more than 64")
	if got, err := f.types.Update(f.ctx, "e", eventtypes.EventType{Name: "e", AuthorizerID: "auth"}); err != nil || got.AuthorizerID != "auth" {
		t.Fatalf("Update with the same name = %+v, %v", got, err)
	}
}

func TestListFilter(t *testing.T) {
	f := newFixture(t)
	for name, md := range map[string]map[string]string{
		"a": {"service": "users", "tier": "gold"},
		"b": {"service": "users"},
		"c": {"service": "orders"},
		"d": nil,
	} {
		if _, err := f.types.Create(f.ctx, eventtypes.EventType{Name: name, Metadata: md}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		filter map[string]string
		want   []string
	}{
		{nil, []string{"a", "b", "c", "d"}},
		{map[string]string{}, []string{"a", "b", "c", "d"}},
		{map[string]string{"service": "users"}, []string{"a", "b"}},
		{map[string]string{"service": "users", "tier": "gold"}, []string{"a"}},
		{map[string]string{"service": "nobody"}, []string{}},
		{map[string]string{"tier": ""}, []string{}},
	} {
		list, err := f.types.List(f.ctx, tt.filter)
		if err != nil || !reflect.DeepEqual(names(list), tt.want) {
			t.Errorf("List(%v) = %v, %v; want %v", tt.filter, names(list), err, tt.want)
		}
	}
}

func TestParseFilter(t *testing.T) {
	got, err := functions.ParseFilter(url.Values{"metadata.service": {"users"}, "metadata.a.b": {""}})
	if err != nil || !reflect.DeepEqual(got, map[string]string{"service": "users", "a.b": ""}) {
		t.Fatalf("ParseFilter = %v, %v", got, err)
	}
	if got, err := functions.ParseFilter(nil); err != nil || len(got) != 0 {
		t.Fatalf("ParseFilter(nil) = %v, %v", got, err)
	}
	_, err = functions.ParseFilter(url.Values{"service": {"users"}})
	wantErr(t, "ParseFilter without prefix", err, errkind.Invalid, `query parameter "service" is not a filter`)
	_, err = functions.ParseFilter(url.Values{"metadata.": {"x"}})
	wantErr(t, "ParseFilter with empty key", err, errkind.Invalid, "is not a filter")
	_, err = functions.ParseFilter(url.Values{"metadata.x": {"1", "2"}})
	wantErr(t, "ParseFilter twice", err, errkind.Invalid, `filter "metadata.x" is given 2 times`)
}

func TestAuthorizerInUse(t *testing.T) {
	f := newFixture(t, "auth", "auth2")
	if _, err := f.types.Create(f.ctx, eventtypes.EventType{Name: "e", AuthorizerID: "auth"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete authorizer in use", f.fns.Delete(f.ctx, "auth"), errkind.Conflict, "is the authorizer of event type")

	// Moving the authorizer moves the guard.
	if _, err := f.types.Update(f.ctx, "e", eventtypes.EventType{AuthorizerID: "auth2"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete new authorizer", f.fns.Delete(f.ctx, "auth2"), errkind.Conflict, "is the authorizer of event type")
	if err := f.fns.Delete(f.ctx, "auth"); err != nil {
		t.Fatalf("delete former authorizer: %v", err)
	}
	// Deleting the event type releases it.
	if err := f.types.Delete(f.ctx, "e"); err != nil {
		t.Fatal(err)
	}
	if err := f.fns.Delete(f.ctx, "auth2"); err != nil {
		t.Fatalf("delete authorizer after its event type: %v", err)
	}
	kvs, _, err := f.store.List(f.ctx, functions.SpaceRoot(space))
	if err != nil || len(kvs) != 0 {
		t.Fatalf("left in the space: %v, %v", kvs, err)
	}
}

func TestAuthorizerRacesFunctionDelete(t *testing.T) {
	// Of an event type naming an authorizer and the deletion of that
	// function, exactly one wins: never an event type whose authorizer
	// is gone.
	for i := range 10 {
		f := newFixture(t, "auth")
		var wg sync.WaitGroup
		var createErr, deleteErr error
		wg.Go(func() {
			_, createErr = f.types.Create(f.ctx, eventtypes.EventType{Name: "e", AuthorizerID: "auth"})
		})
		wg.Go(func() { deleteErr = f.fns.Delete(f.ctx, "auth") })
		wg.Wait()
		if (createErr == nil) == (deleteErr == nil) {
			t.Fatalf("round %d: create %v, delete %v; want exactly one to succeed", i, createErr, deleteErr)
		}
		if createErr != nil {
			wantErr(t, "create", createErr, errkind.Invalid, "does not exist")
		}
	}
}

func TestDeleteRefusedWhileUsed(t *testing.T) {
	f := newFixture(t)
	if _, err := f.types.Create(f.ctx, eventtypes.EventType{Name: "user.created"}); err != nil {
		t.Fatal(err)
	}
	// A subscription of the type, as the subscriptions service records it.
	use := eventtypes.UseKey(space, "user.created", "7a6e0f3c-7e0b-5c4e-9d7b-0d5e1f2a3b4c")
	if _, err := f.store.Put(f.ctx, use, nil); err != nil {
		t.Fatal(err)
	}
	// A use of another type whose name extends this one does not count.
	if _, err := f.store.Put(f.ctx, eventtypes.UseKey(space, "user.created.v2", "x"), nil); err != nil {
		t.Fatal(err)
	}
	err := f.types.Delete(f.ctx, "user.created")
	wantErr(t, "Delete in use", err, errkind.Invalid, `event type "user.created" is used by a subscription: delete its subscriptions first`)
	if _, err := f.types.Get(f.ctx, "user.created"); err != nil {
		t.Fatalf("Get after refused delete: %v", err)
	}
	if err := f.store.Delete(f.ctx, use); err != nil {
		t.Fatal(err)
	}
	if err := f.types.Delete(f.ctx, "user.created"); err != nil {
		t.Fatalf("Delete after the subscription went: %v", err)
	}
}

func TestHTTPRequestBuiltin(t *testing.T) {
	f := newFixture(t, "auth")
	builtin := eventtypes.EventType{Space: space, Name: eventtypes.HTTPRequest}
	if got, err := f.types.Get(f.ctx, "http.request"); err != nil || !reflect.DeepEqual(got, builtin) {
		t.Fatalf("Get built-in = %+v, %v", got, err)
	}
	wantErr(t, "Delete built-in", f.types.Delete(f.ctx, "http.request"), errkind.Invalid, `event type "http.request" is built in and cannot be deleted`)
	if list, err := f.types.List(f.ctx, map[string]string{"a": "b"}); err != nil || len(list) != 0 {
		t.Fatalf("filtered List = %v, %v; the built-in has no metadata", list, err)
	}

	// Updating it stores it, with an authorizer; the stored one wins.
	withAuth := eventtypes.EventType{Space: space, Name: "http.request", AuthorizerID: "auth", Metadata: map[string]string{"k": "v"}}
	if got, err := f.types.Update(f.ctx, "http.request", eventtypes.EventType{AuthorizerID: "auth", Metadata: map[string]string{"k": "v"}}); err != nil || !reflect.DeepEqual(got, withAuth) {
		t.Fatalf("Update built-in = %+v, %v", got, err)
	}
	if got, err := f.types.Get(f.ctx, "http.request"); err != nil || !reflect.DeepEqual(got, withAuth) {
		t.Fatalf("Get stored built-in = %+v, %v", got, err)
	}
	list, err := f.types.List(f.ctx, nil)
	if err != nil || !reflect.DeepEqual(list, []eventtypes.EventType{withAuth}) {
		t.Fatalf("List = %+v, %v; want the stored built-in once", list, err)
	}
	if list, err := f.types.List(f.ctx, map[string]string{"k": "v"}); err != nil || len(list) != 1 {
		t.Fatalf("filtered List = %+v, %v", list, err)
	}
	_, err = f.types.Create(f.ctx, eventtypes.EventType{Name: "http.request"})
	wantErr(t, "Create stored built-in", err, errkind.Conflict, "already exists")
	wantErr(t, "delete its authorizer", f.fns.Delete(f.ctx, "auth"), errkind.Conflict, "is the authorizer of event type \"http.request\"")

	// Subscriptions of http.request do not hold back deleting the stored
	// version: the built-in remains.
	if _, err := f.store.Put(f.ctx, eventtypes.UseKey(space, "http.request", "sub"), nil); err != nil {
		t.Fatal(err)
	}
	if err := f.types.Delete(f.ctx, "http.request"); err != nil {
		t.Fatalf("Delete stored built-in: %v", err)
	}
	if got, err := f.types.Get(f.ctx, "http.request"); err != nil || !reflect.DeepEqual(got, builtin) {
		t.Fatalf("Get after deleting the stored built-in = %+v, %v", got, err)
	}
	if err := f.fns.Delete(f.ctx, "auth"); err != nil {
		t.Fatalf("delete the former authorizer: %v", err)
	}

	// Creating it when not stored is allowed too.
	if got, err := f.types.Create(f.ctx, eventtypes.EventType{Name: "http.request", Metadata: map[string]string{"a": "b"}}); err != nil || got.Metadata["a"] != "b" {
		t.Fatalf("Create built-in = %+v, %v", got, err)
	}
}

func TestSpacesApart(t *testing.T) {
	f := newFixture(t, "auth")
	other := f.svc.In("other")
	if _, err := f.types.Create(f.ctx, eventtypes.EventType{Name: "e", AuthorizerID: "auth", Metadata: map[string]string{"s": "1"}}); err != nil {
		t.Fatal(err)
	}
	// The authorizer must exist in the event type's own space.
	_, err := other.Create(f.ctx, eventtypes.EventType{Name: "e", AuthorizerID: "auth"})
	wantErr(t, "Create with another space's authorizer", err, errkind.Invalid, `authorizer function "auth" does not exist`)
	if got, err := other.Create(f.ctx, eventtypes.EventType{Name: "e", Metadata: map[string]string{"s": "2"}}); err != nil || got.Space != "other" {
		t.Fatalf("Create same name in other space = %+v, %v", got, err)
	}
	a, _ := f.types.Get(f.ctx, "e")
	b, _ := other.Get(f.ctx, "e")
	if a.Space != space || a.Metadata["s"] != "1" || b.Space != "other" || b.Metadata["s"] != "2" || b.AuthorizerID != "" {
		t.Fatalf("spaces mixed: %+v, %+v", a, b)
	}
	if got, err := other.Get(f.ctx, "http.request"); err != nil || got.Space != "other" {
		t.Fatalf("built-in in other space = %+v, %v", got, err)
	}
	// A use in one space does not block a delete in the other.
	if _, err := f.store.Put(f.ctx, eventtypes.UseKey(space, "e", "sub"), nil); err != nil {
		t.Fatal(err)
	}
	if err := other.Delete(f.ctx, "e"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.types.Get(f.ctx, "e"); err != nil {
		t.Fatalf("deleting in one space removed the other's: %v", err)
	}
}

func TestRacingCreates(t *testing.T) {
	f := newFixture(t, "auth")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Separate services, as separate gateways would have.
			_, errs[i] = eventtypes.NewService(f.store).In(space).Create(f.ctx, eventtypes.EventType{Name: "race", AuthorizerID: "auth"})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			wantErr(t, "losing Create", err, errkind.Conflict, "already exists")
		}
	}
	if won != 1 {
		t.Fatalf("%d creations won; want exactly 1 (%v)", won, errs)
	}
}

func TestRacingUpdates(t *testing.T) {
	// Concurrent updates all apply, one after another, and the authorizer
	// index ends in step with the stored authorizer.
	f := newFixture(t, "a1", "a2", "a3", "a4")
	if _, err := f.types.Create(f.ctx, eventtypes.EventType{Name: "e"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	auths := []string{"a1", "a2", "a3", "a4"}
	for _, a := range auths {
		wg.Go(func() {
			if _, err := f.types.Update(f.ctx, "e", eventtypes.EventType{AuthorizerID: a}); err != nil {
				t.Errorf("Update %s: %v", a, err)
			}
		})
	}
	wg.Wait()
	got, err := f.types.Get(f.ctx, "e")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range auths {
		_, err := f.store.Get(f.ctx, eventtypes.AuthorizerUseKey(space, a, "e"))
		if inUse := err == nil; inUse != (a == got.AuthorizerID) {
			t.Errorf("use key of %s present = %v, authorizer is %s", a, inUse, got.AuthorizerID)
		}
	}
}
