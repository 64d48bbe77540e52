package cors_test

import (
	"context"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/internal/etcdtest"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions/cors"
)

var etcd *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, func(s *etcdtest.Server) { etcd = s }) }

const space = "myspace"

type fixture struct {
	store *libkv.Store
	svc   *cors.Service
	cors  *cors.Space
	ctx   context.Context
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	st := etcd.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	svc := cors.NewService(st)
	return fixture{store: st, svc: svc, cors: svc.In(space), ctx: ctx}
}

func wantErr(t *testing.T, what string, err error, kind errkind.Kind, msg string) {
	t.Helper()
	if err == nil || errkind.Of(err) != kind || !strings.Contains(errkind.Message(err), msg) {
		t.Fatalf("%s = %v (kind %v); want kind %v with %q", what, err, errkind.Of(err), kind, msg)
	}
}

func TestCRUD(t *testing.T) {
	f := newFixture(t)
	methods := []string{"get", "post"}
	created, err := f.cors.Create(f.ctx, cors.Config{Space: "ignored", Method: "get", Path: "hello/", AllowedMethods: methods, Metadata: map[string]string{"service": "users"}})
	if err != nil {
		t.Fatal(err)
	}
	want := cors.Config{
		Space: space, ID: cors.NewID("GET", "/hello"), Method: "GET", Path: "/hello",
		AllowedOrigins: []string{"*"}, AllowedMethods: []string{"GET", "POST"},
		AllowedHeaders: []string{"Origin", "Accept", "Content-Type"},
		Metadata:       map[string]string{"service": "users"},
	}
	if !reflect.DeepEqual(created, want) {
		t.Fatalf("Create = %+v; want %+v", created, want)
	}
	if methods[0] != "get" {
		t.Fatalf("Create changed the caller's slice: %v", methods)
	}
	if url.PathEscape(created.ID) != created.ID || strings.ContainsAny(created.ID, "/%") {
		t.Fatalf("corsId %q is not URL-path-safe", created.ID)
	}
	if got, err := f.cors.Get(f.ctx, created.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, want)
	}
	kv, err := f.store.Get(f.ctx, cors.Key(space, created.ID))
	if err != nil || strings.Contains(string(kv.Value), "space") {
		t.Fatalf("stored %s, %v; want no space in the value", kv.Value, err)
	}

	// Update replaces the rules; method and path may be repeated in any
	// form that normalizes to the stored ones, or left out.
	upd, err := f.cors.Update(f.ctx, created.ID, cors.Config{Method: "get", Path: "/hello/", AllowedOrigins: []string{"https://*.example.com"}, AllowCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	want = cors.Config{
		Space: space, ID: created.ID, Method: "GET", Path: "/hello",
		AllowedOrigins: []string{"https://*.example.com"}, AllowedMethods: []string{"HEAD", "GET", "POST"},
		AllowedHeaders: []string{"Origin", "Accept", "Content-Type"}, AllowCredentials: true,
	}
	if !reflect.DeepEqual(upd, want) {
		t.Fatalf("Update = %+v; want %+v", upd, want)
	}
	if got, err := f.cors.Get(f.ctx, created.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Get after update = %+v, %v; want %+v", got, err, want)
	}
	if upd, err := f.cors.Update(f.ctx, created.ID, cors.Config{ID: created.ID, AllowedHeaders: []string{"X-Api-Key"}}); err != nil || upd.Path != "/hello" || upd.AllowedHeaders[0] != "X-Api-Key" || upd.AllowCredentials {
		t.Fatalf("Update leaving out method and path = %+v, %v", upd, err)
	}

	if list, err := f.cors.List(f.ctx, nil); err != nil || len(list) != 1 || list[0].ID != created.ID {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := f.cors.Delete(f.ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.cors.Get(f.ctx, created.ID)
	wantErr(t, "Get after delete", err, errkind.NotFound, "not found")
	wantErr(t, "second Delete", f.cors.Delete(f.ctx, created.ID), errkind.NotFound, "not found")
	// Deleted, it can be created again.
	if _, err := f.cors.Create(f.ctx, cors.Config{Method: "GET", Path: "/hello"}); err != nil {
		t.Fatalf("create again after delete: %v", err)
	}
}

func TestDuplicateAndConflicts(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/users/:id", "/files/*path", "/a/b"} {
		if _, err := f.cors.Create(f.ctx, cors.Config{Method: "GET", Path: p}); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	_, err := f.cors.Create(f.ctx, cors.Config{Method: "get", Path: "/users/:id/", AllowedOrigins: []string{"https://x"}})
	wantErr(t, "duplicate Create", err, errkind.Conflict, "a CORS configuration for GET /users/:id already exists (corsId "+cors.NewID("GET", "/users/:id")+")")
	_, err = f.cors.Create(f.ctx, cors.Config{Method: "GET", Path: "/users/me"})
	wantErr(t, "conflicting path", err, errkind.Conflict, "path /users/me conflicts with /users/:id of CORS configuration")
	_, err = f.cors.Create(f.ctx, cors.Config{Method: "GET", Path: "/files/x/y"})
	wantErr(t, "conflicting wildcard", err, errkind.Conflict, "conflicts with /files/*path")
	for _, c := range []cors.Config{
		{Method: "POST", Path: "/users/me"}, // other method
		{Method: "GET", Path: "/users"},     // shorter
		{Method: "GET", Path: "/a/c"},       // diverges on fixed text
		{Method: "GET"},                     // the root
	} {
		if _, err := f.cors.Create(f.ctx, c); err != nil {
			t.Errorf("create %s %s: %v", c.Method, c.Path, err)
		}
	}
}

func TestNotFound(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{cors.NewID("GET", "/nope"), "", "GET%2Fhello", "not-a-uuid", strings.ToUpper(cors.NewID("GET", "/"))} {
		_, err := f.cors.Get(f.ctx, id)
		wantErr(t, "Get "+id, err, errkind.NotFound, "not found")
		_, err = f.cors.Update(f.ctx, id, cors.Config{})
		wantErr(t, "Update "+id, err, errkind.NotFound, "not found")
		wantErr(t, "Delete "+id, f.cors.Delete(f.ctx, id), errkind.NotFound, "not found")
	}
}

func TestValidation(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("x", cors.MaxEntryLen+1)
	many := make([]string, cors.MaxListEntries+1)
	for i := range many {
		many[i] = "X-H"
	}
	for _, tt := range []struct {
		name string
		c    cors.Config
		msg  string
	}{
		{"no method", cors.Config{Path: "/a"}, "method is required"},
		{"bad method", cors.Config{Method: "TRACE", Path: "/a"}, `method "TRACE" is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS`},
		{"bad path", cors.Config{Method: "GET", Path: "/a/*x/b"}, "must be the last segment"},
		{"path with query", cors.Config{Method: "GET", Path: "/a?b"}, "cannot appear in a path"},
		{"wrong id", cors.Config{ID: "x", Method: "GET", Path: "/a"}, `corsId "x" does not match method and path`},
		{"empty origins", cors.Config{Method: "GET", AllowedOrigins: []string{}}, "allowedOrigins is an empty list: leave it out for the defaults"},
		{"empty methods", cors.Config{Method: "GET", AllowedMethods: []string{}}, "allowedMethods is an empty list"},
		{"empty headers", cors.Config{Method: "GET", AllowedHeaders: []string{}}, "allowedHeaders is an empty list"},
		{"blank entry", cors.Config{Method: "GET", AllowedHeaders: []string{" "}}, "allowedHeaders has an empty entry"},
		{"long entry", cors.Config{Method: "GET", AllowedOrigins: []string{long}}, "allowedOrigins has an entry longer than 1024 bytes"},
		{"many entries", cors.Config{Method: "GET", AllowedHeaders: many}, "allowedHeaders has 101 entries, more than 100"},
		{"control character", cors.Config{Method: "GET", AllowedHeaders: []string{"X-A\r\nSet-Cookie: a=b"}}, "contains a control character"},
		{"bad allowed method", cors.Config{Method: "GET", AllowedMethods: []string{"FETCH"}}, `allowedMethods: "FETCH" is not one of`},
		{"credentials with any origin", cors.Config{Method: "GET", AllowCredentials: true}, `allowCredentials needs explicit allowedOrigins, not "*"`},
		{"credentials with a listed wildcard", cors.Config{Method: "GET", AllowCredentials: true, AllowedOrigins: []string{"https://a", "*"}}, "allowCredentials needs explicit allowedOrigins"},
		{"metadata", cors.Config{Method: "GET", Metadata: map[string]string{"": "v"}}, "metadata has an empty key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.cors.Create(f.ctx, tt.c)
			wantErr(t, "Create", err, errkind.Invalid, tt.msg)
		})
	}
	if list, err := f.cors.List(f.ctx, nil); err != nil || len(list) != 0 {
		t.Fatalf("List = %+v, %v; refused creations stored something", list, err)
	}

	c, err := f.cors.Create(f.ctx, cors.Config{Method: "GET", Path: "/a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		c    cors.Config
		msg  string
	}{
		{"other method", cors.Config{Method: "POST"}, "method and path of a CORS configuration cannot be changed (it is for GET /a)"},
		{"other path", cors.Config{Path: "/b"}, "cannot be changed"},
		{"bad path", cors.Config{Path: "/a/../b"}, `has a ".." segment`},
		{"other id", cors.Config{ID: cors.NewID("GET", "/b")}, "corsId " + `"` + cors.NewID("GET", "/b") + `" in the body is not`},
		{"credentials with any origin", cors.Config{AllowCredentials: true}, "allowCredentials needs explicit allowedOrigins"},
		{"empty origins", cors.Config{AllowedOrigins: []string{}}, "allowedOrigins is an empty list"},
	} {
		t.Run("update "+tt.name, func(t *testing.T) {
			_, err := f.cors.Update(f.ctx, c.ID, tt.c)
			wantErr(t, "Update", err, errkind.Invalid, tt.msg)
		})
	}
	if got, err := f.cors.Get(f.ctx, c.ID); err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("refused updates changed %+v into %+v, %v", c, got, err)
	}
}

func TestListFilter(t *testing.T) {
	f := newFixture(t)
	for path, md := range map[string]map[string]string{
		"/a": {"service": "users", "tier": "gold"},
		"/b": {"service": "users"},
		"/c": {"service": "orders"},
		"/d": nil,
	} {
		if _, err := f.cors.Create(f.ctx, cors.Config{Method: "POST", Path: path, Metadata: md}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.cors.Create(f.ctx, cors.Config{Method: "GET", Path: "/a"}); err != nil {
		t.Fatal(err)
	}
	paths := func(cs []cors.Config) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.Method + " " + c.Path
		}
		return out
	}
	for _, tt := range []struct {
		filter map[string]string
		want   []string
	}{
		{nil, []string{"GET /a", "POST /a", "POST /b", "POST /c", "POST /d"}},
		{map[string]string{"service": "users"}, []string{"POST /a", "POST /b"}},
		{map[string]string{"service": "users", "tier": "gold"}, []string{"POST /a"}},
		{map[string]string{"service": "nobody"}, []string{}},
	} {
		list, err := f.cors.List(f.ctx, tt.filter)
		if err != nil || !reflect.DeepEqual(paths(list), tt.want) {
			t.Errorf("List(%v) = %v, %v; want %v", tt.filter, paths(list), err, tt.want)
		}
	}
}

func TestSpacesApart(t *testing.T) {
	f := newFixture(t)
	other := f.svc.In("other")
	a, err := f.cors.Create(f.ctx, cors.Config{Method: "GET", Path: "/x", AllowedHeaders: []string{"A"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := other.Create(f.ctx, cors.Config{Method: "GET", Path: "/x", AllowedHeaders: []string{"B"}})
	if err != nil {
		t.Fatalf("same method and path in another space: %v", err)
	}
	if a.ID != b.ID || a.Space != space || b.Space != "other" {
		t.Fatalf("created %+v and %+v", a, b)
	}
	if err := other.Delete(f.ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := f.cors.Get(f.ctx, a.ID); err != nil || got.AllowedHeaders[0] != "A" || got.Space != space {
		t.Fatalf("Get in the first space after deleting in the other = %+v, %v", got, err)
	}
	if list, err := other.List(f.ctx, nil); err != nil || len(list) != 0 {
		t.Fatalf("other List = %+v, %v", list, err)
	}
}

func TestRacingCreates(t *testing.T) {
	f := newFixture(t)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Separate services, as separate gateways would have; the
			// paths differ but conflict, or are the same.
			path := "/race/:id"
			if i%2 == 1 {
				path = "/race/:name"
			}
			_, errs[i] = cors.NewService(f.store).In(space).Create(f.ctx, cors.Config{Method: "GET", Path: path})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if errkind.Of(err) != errkind.Conflict {
			t.Errorf("losing Create = %v; want a Conflict", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creations won; want exactly 1 (%v)", won, errs)
	}
	if list, err := f.cors.List(f.ctx, nil); err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

func TestRacingUpdates(t *testing.T) {
	f := newFixture(t)
	c, err := f.cors.Create(f.ctx, cors.Config{Method: "GET", Path: "/u"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			h := []string{"X-" + string(rune('A'+i))}
			if _, err := cors.NewService(f.store).In(space).Update(f.ctx, c.ID, cors.Config{AllowedHeaders: h}); err != nil {
				t.Errorf("Update %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got, err := f.cors.Get(f.ctx, c.ID); err != nil || len(got.AllowedHeaders) != 1 || !strings.HasPrefix(got.AllowedHeaders[0], "X-") {
		t.Fatalf("Get after racing updates = %+v, %v", got, err)
	}
}
