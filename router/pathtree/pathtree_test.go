package pathtree

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// testRoutes exercise every kind at shared nodes, so that lookups must
// choose and backtrack between them.
var testRoutes = []string{
	"/",
	"/users",
	"/users/new",
	"/users/:id",
	"/users/:id/posts",
	"/users/:id/posts/:post",
	"/users/:id/settings",
	"/users/*rest",
	"/files/readme",
	"/files/*path",
	"/a/b/c",
	"/a/:x/d",
	"/:root/b/e",
	"/p/:id/q",
	"/héllo/wörld",
	"/日本/:name",
	"/café/*rest",
	"/x/:a/:b/:c",
	"/x/y/z/*tail",
}

// mustTree builds a tree whose values are the routes' normalized patterns,
// so a test can see which route matched.
func mustTree(tb testing.TB, routes []string) *Tree[string] {
	tb.Helper()
	t := &Tree[string]{}
	for _, r := range routes {
		norm, segs, err := subscriptions.ParsePath(r)
		if err != nil {
			tb.Fatalf("ParsePath(%q): %v", r, err)
		}
		if err := t.Insert(segs, norm); err != nil {
			tb.Fatalf("Insert(%q): %v", r, err)
		}
	}
	return t
}

func TestLookup(t *testing.T) {
	tree := mustTree(t, testRoutes)
	if got, want := tree.Len(), len(testRoutes); got != want {
		t.Fatalf("Len() = %d, want %d", got, want)
	}
	type P = Params
	tests := []struct {
		name, path string
		route      string // "" means no match
		params     Params
	}{
		{"root", "/", "/", nil},
		{"empty path is root", "", "/", nil},
		{"double slash is root with trailing slash", "//", "/", nil},
		{"static", "/users", "/users", nil},
		{"static trailing slash", "/users/", "/users", nil},
		{"static beats param", "/users/new", "/users/new", nil},
		{"static beats param trailing slash", "/users/new/", "/users/new", nil},
		{"param", "/users/42", "/users/:id", P{{Key: "id", Value: "42"}}},
		{"param trailing slash", "/users/42/", "/users/:id", P{{Key: "id", Value: "42"}}},
		{"param then static", "/users/42/posts", "/users/:id/posts", P{{Key: "id", Value: "42"}}},
		{"two params", "/users/42/posts/7", "/users/:id/posts/:post", P{{Key: "id", Value: "42"}, {Key: "post", Value: "7"}}},
		{"backtrack from static to param", "/users/new/posts", "/users/:id/posts", P{{Key: "id", Value: "new"}}},
		{"backtrack from static to param, two params", "/users/new/posts/9", "/users/:id/posts/:post", P{{Key: "id", Value: "new"}, {Key: "post", Value: "9"}}},
		{"backtrack from param to wildcard", "/users/42/other", "/users/*rest", P{{Key: "rest", Value: "42/other"}}},
		{"backtrack from static and param to wildcard", "/users/new/other/x", "/users/*rest", P{{Key: "rest", Value: "new/other/x"}}},
		{"wildcard keeps inner slashes", "/users/group1/user1", "/users/*rest", P{{Key: "rest", Value: "group1/user1"}}},
		{"wildcard past a full param route", "/users/42/posts/7/comments", "/users/*rest", P{{Key: "rest", Value: "42/posts/7/comments"}}},
		{"wildcard drops trailing slash", "/files/a/b/", "/files/*path", P{{Key: "path", Value: "a/b"}}},
		{"wildcard single segment", "/files/x", "/files/*path", P{{Key: "path", Value: "x"}}},
		{"wildcard keeps inner empty segment", "/files/a//b", "/files/*path", P{{Key: "path", Value: "a//b"}}},
		{"wildcard of slashes", "/files///", "/files/*path", P{{Key: "path", Value: "/"}}},
		{"static beats wildcard", "/files/readme", "/files/readme", nil},
		{"wildcard below a static that only has children", "/files/readme/more", "/files/*path", P{{Key: "path", Value: "readme/more"}}},
		{"deep static", "/a/b/c", "/a/b/c", nil},
		{"backtrack one level to param", "/a/b/d", "/a/:x/d", P{{Key: "x", Value: "b"}}},
		{"backtrack to root param, params truncated", "/a/b/e", "/:root/b/e", P{{Key: "root", Value: "a"}}},
		{"root param", "/zzz/b/e", "/:root/b/e", P{{Key: "root", Value: "zzz"}}},
		{"three params", "/x/1/2/3", "/x/:a/:b/:c", P{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "c", Value: "3"}}},
		{"static wildcard beats params", "/x/y/z/w", "/x/y/z/*tail", P{{Key: "tail", Value: "w"}}},
		{"no match after exhausting static, param and wildcard", "/x/y/z", "", nil},
		{"unicode static", "/héllo/wörld", "/héllo/wörld", nil},
		{"unicode static trailing slash", "/héllo/wörld/", "/héllo/wörld", nil},
		{"unicode param value", "/日本/東京", "/日本/:name", P{{Key: "name", Value: "東京"}}},
		{"unicode wildcard", "/café/crème/brûlée", "/café/*rest", P{{Key: "rest", Value: "crème/brûlée"}}},
		{"unicode is not normalized", "/he\u0301llo/wörld", "", nil},

		{"no match unknown", "/nope", "", nil},
		{"no match intermediate node", "/a/b", "", nil},
		{"no match too deep", "/a/b/c/d", "", nil},
		{"no match without leading slash", "users", "", nil},
		{"no match wildcard needs a segment", "/files", "", nil},
		{"no match wildcard needs a segment, trailing slash", "/files/", "", nil},
		{"no match empty segment for wildcard", "/files//", "", nil},
		{"no match param is never empty", "/p//q", "", nil},
		{"no match empty segment after static", "/users//", "", nil},
		{"no match case sensitive", "/USERS", "", nil},
		{"no match prefix of static", "/user", "", nil},
		{"no match extension of static", "/usersx", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := Params{{Key: "stale", Value: "value"}}
			got, ok := tree.Lookup(tc.path, &ps)
			if tc.route == "" {
				if ok {
					t.Fatalf("Lookup(%q) = %q, %v; want no match", tc.path, got, ps)
				}
				if len(ps) != 0 {
					t.Fatalf("Lookup(%q) left params %v after no match", tc.path, ps)
				}
				return
			}
			if !ok || got != tc.route {
				t.Fatalf("Lookup(%q) = %q, %v; want %q", tc.path, got, ok, tc.route)
			}
			if len(ps) != len(tc.params) || (len(ps) > 0 && !slices.Equal(ps, tc.params)) {
				t.Fatalf("Lookup(%q) params = %v, want %v", tc.path, ps, tc.params)
			}
		})
	}
}

func TestLookupEmptyTree(t *testing.T) {
	var tree Tree[int]
	for _, p := range []string{"", "/", "/a", "/a/b/"} {
		if v, ok := tree.Lookup(p, nil); ok {
			t.Errorf("empty tree: Lookup(%q) = %d, true", p, v)
		}
	}
	if tree.Len() != 0 {
		t.Errorf("empty tree: Len() = %d", tree.Len())
	}
}

func TestLookupNilParams(t *testing.T) {
	tree := mustTree(t, testRoutes)
	if v, ok := tree.Lookup("/users/42/posts/7", nil); !ok || v != "/users/:id/posts/:post" {
		t.Fatalf("Lookup with nil params = %q, %v", v, ok)
	}
}

func TestRootOnlyMatchesRoot(t *testing.T) {
	tree := mustTree(t, []string{"/", "/:p", "/*w"})
	for path, want := range map[string]string{"/": "/", "": "/", "/a": "/:p", "/a/b": "/*w", "/a/": "/:p"} {
		if got, ok := tree.Lookup(path, nil); !ok || got != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", path, got, ok, want)
		}
	}
	// Without the root route, "/" must not fall through to the param or
	// wildcard: both need a non-empty segment.
	tree = mustTree(t, []string{"/:p", "/*w"})
	if got, ok := tree.Lookup("/", nil); ok {
		t.Errorf("Lookup(\"/\") = %q without a root route", got)
	}
}

func TestInsertErrors(t *testing.T) {
	st := func(v string) subscriptions.Segment {
		return subscriptions.Segment{Kind: subscriptions.Static, Value: v}
	}
	pa := func(v string) subscriptions.Segment {
		return subscriptions.Segment{Kind: subscriptions.Param, Value: v}
	}
	wc := func(v string) subscriptions.Segment {
		return subscriptions.Segment{Kind: subscriptions.Wildcard, Value: v}
	}
	parse := func(p string) []subscriptions.Segment {
		_, segs, err := subscriptions.ParsePath(p)
		if err != nil {
			t.Fatalf("ParsePath(%q): %v", p, err)
		}
		return segs
	}
	tests := []struct {
		name string
		segs []subscriptions.Segment
		kind errkind.Kind // errkind.Internal means no error
	}{
		{"duplicate root", parse("/"), errkind.Conflict},
		{"duplicate static", parse("/users/new"), errkind.Conflict},
		{"duplicate param", parse("/users/:id/posts"), errkind.Conflict},
		{"duplicate wildcard", parse("/users/*rest"), errkind.Conflict},
		{"param renamed", parse("/users/:uid"), errkind.Conflict},
		{"param renamed deeper", parse("/users/:uid/other"), errkind.Conflict},
		{"param renamed at root", parse("/:other/b/e"), errkind.Conflict},
		{"wildcard renamed", parse("/users/*other"), errkind.Conflict},
		{"first wildcard at root is allowed", []subscriptions.Segment{wc("w")}, errkind.Internal},
		{"second wildcard at root", []subscriptions.Segment{wc("v")}, errkind.Conflict},
		{"wildcard not last", []subscriptions.Segment{st("a"), wc("w"), st("b")}, errkind.Invalid},
		{"empty static", []subscriptions.Segment{st("a"), st("")}, errkind.Invalid},
		{"static with slash", []subscriptions.Segment{st("a/b")}, errkind.Invalid},
		{"unnamed param", []subscriptions.Segment{st("a"), pa("")}, errkind.Invalid},
		{"unnamed wildcard", []subscriptions.Segment{wc("")}, errkind.Invalid},
		{"name used twice", []subscriptions.Segment{pa("n"), st("a"), pa("n")}, errkind.Invalid},
		{"param and wildcard share a name", []subscriptions.Segment{st("q"), pa("n"), wc("n")}, errkind.Invalid},
		{"unknown kind", []subscriptions.Segment{{Kind: 9, Value: "a"}}, errkind.Invalid},
		{"static beside param is allowed", parse("/users/me"), errkind.Internal},
		{"new param below static is allowed", parse("/users/new/:thing"), errkind.Internal},
		{"same param name, new child", parse("/users/:id/likes"), errkind.Internal},
		{"wildcard beside param is allowed", parse("/a/*rest"), errkind.Internal},
	}
	tree := mustTree(t, testRoutes)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tree.Len()
			err := tree.Insert(tc.segs, "new")
			if tc.kind == errkind.Internal {
				if err != nil {
					t.Fatalf("Insert: %v", err)
				}
				if tree.Len() != before+1 {
					t.Fatalf("Len() = %d after insert, want %d", tree.Len(), before+1)
				}
				return
			}
			if err == nil {
				t.Fatalf("Insert succeeded, want a %v error", tc.kind)
			}
			if got := errkind.Of(err); got != tc.kind {
				t.Fatalf("Insert error %q has kind %v, want %v", err, got, tc.kind)
			}
			if tree.Len() != before {
				t.Fatalf("Len() = %d after failed insert, want %d", tree.Len(), before)
			}
		})
	}
	// The failures must not have disturbed the routes already there.
	for _, r := range []string{"/", "/users", "/users/new", "/a/b/c", "/héllo/wörld"} {
		if got, ok := tree.Lookup(r, nil); !ok || got != r {
			t.Errorf("Lookup(%q) = %q, %v after failed inserts", r, got, ok)
		}
	}
	if got, ok := tree.Lookup("/users/1/posts/2", nil); !ok || got != "/users/:id/posts/:post" {
		t.Errorf("Lookup(/users/1/posts/2) = %q, %v after failed inserts", got, ok)
	}
}

// A failed Insert must leave no half-built branch behind: an orphaned ":a"
// node would make the valid ":b" route below look ambiguous.
func TestInsertFailureLeavesNoTrace(t *testing.T) {
	var tree Tree[int]
	bad := []subscriptions.Segment{
		{Kind: subscriptions.Static, Value: "new"},
		{Kind: subscriptions.Param, Value: "a"},
		{Kind: subscriptions.Wildcard, Value: "w"},
		{Kind: subscriptions.Static, Value: "x"},
	}
	if err := tree.Insert(bad, 1); err == nil {
		t.Fatal("Insert of a wildcard in the middle succeeded")
	}
	_, good, err := subscriptions.ParsePath("/new/:b")
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Insert(good, 2); err != nil {
		t.Fatalf("Insert after a failed insert: %v", err)
	}
	if tree.root.child("new").param.label != "b" || tree.Len() != 1 {
		t.Fatalf("tree has leftovers from the failed insert")
	}
}

// Wide nodes switch to a map; every sibling must stay reachable across the
// switch, and narrow nodes must not pay for a map.
func TestManySiblings(t *testing.T) {
	const n = 10000
	var tree Tree[int]
	for i := range n {
		_, segs, err := subscriptions.ParsePath(fmt.Sprintf("/wide/s%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(segs, i); err != nil {
			t.Fatal(err)
		}
	}
	_, segs, _ := subscriptions.ParsePath("/wide/:p/x")
	if err := tree.Insert(segs, -1); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p := fmt.Sprintf("/wide/s%d", i)
		if v, ok := tree.Lookup(p, nil); !ok || v != i {
			t.Fatalf("Lookup(%q) = %d, %v; want %d", p, v, ok, i)
		}
	}
	var ps Params
	if v, ok := tree.Lookup("/wide/s5/x", &ps); !ok || v != -1 || ps[0] != (Param{Key: "p", Value: "s5"}) {
		t.Fatalf("backtracking out of a map node: %d, %v, %v", v, ok, ps)
	}
	wide := tree.root.child("wide")
	if wide.index == nil || wide.statics != nil {
		t.Errorf("node with %d children: index=%v, len(statics)=%d; want a map only", n, wide.index != nil, len(wide.statics))
	}
	if tree.root.index != nil {
		t.Errorf("root with one static child has a map")
	}
	for _, s := range []string{"wide/s" + fmt.Sprint(n), "wide/s-1", "wide/"} {
		if v, ok := tree.Lookup("/"+s+"/y", nil); ok {
			t.Errorf("Lookup(%q) = %d, want no match", s, v)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tree := benchTree(t, 10000)
	ps := make(Params, 0, 8)
	for _, path := range []string{benchStaticPath, benchParamPath, benchWildcardPath, "/p/g4/u3334/42/posts", "/nope/nope", "/s/g3/h33/"} {
		allocs := testing.AllocsPerRun(200, func() {
			tree.Lookup(path, &ps)
		})
		if allocs != 0 {
			t.Errorf("Lookup(%q) allocates %v times per call", path, allocs)
		}
	}
}

// Lookups share the tree without locks; run them in parallel so the race
// detector can check that Lookup really only reads.
func TestConcurrentLookup(t *testing.T) {
	tree := mustTree(t, testRoutes)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var ps Params
			for i := range 500 {
				path := fmt.Sprintf("/users/%d/posts/%d", g, i)
				v, ok := tree.Lookup(path, &ps)
				if !ok || v != "/users/:id/posts/:post" || ps[1].Value != fmt.Sprint(i) {
					t.Errorf("Lookup(%q) = %q, %v, %v", path, v, ok, ps)
					return
				}
			}
		})
	}
	wg.Wait()
}

// The route table is budgeted at 1 KiB per route for everything; the tree
// should use a small part of it.
func TestMemoryPerRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 100,000 routes")
	}
	const n = 100000
	paths := benchPaths(n)
	segs := make([][]subscriptions.Segment, n)
	for i, p := range paths {
		var err error
		if _, segs[i], err = subscriptions.ParsePath(p); err != nil {
			t.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tree := &Tree[*int]{}
	for i, s := range segs {
		if err := tree.Insert(s, new(int)); err != nil {
			t.Fatalf("Insert(%q): %v", paths[i], err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perRoute := float64(after.HeapAlloc-before.HeapAlloc) / n
	runtime.KeepAlive(tree)
	runtime.KeepAlive(segs)
	t.Logf("tree of %d routes: %.0f bytes per route (values and nodes; segment text is shared with the caller)", n, perRoute)
	if perRoute > 512 {
		t.Errorf("tree uses %.0f bytes per route, want at most 512 of the 1 KiB budget", perRoute)
	}
}
