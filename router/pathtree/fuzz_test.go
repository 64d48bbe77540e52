package pathtree

import (
	"strings"
	"testing"

	"github.com/event-gateway/event-gateway/subscriptions"
)

// refMatch is a slow, obviously correct matcher: it tries every route on its
// own and keeps the one whose kinds, read left to right, are the most
// specific (static < param < wildcard at the first difference). That is the
// order the tree's backtracking search finds routes in, so the two must
// agree on every path.
func refMatch(routes [][]subscriptions.Segment, path string) (best int, params Params) {
	if path != "" && path[0] != '/' {
		return -1, nil
	}
	path = strings.TrimPrefix(path, "/")
	path = strings.TrimSuffix(path, "/")
	var parts []string
	if path != "" {
		parts = strings.Split(path, "/")
	}
	// "//" trims to "", which is the root; "///" trims to "/", which splits
	// into two empty segments.
	best = -1
	for i, segs := range routes {
		ps, ok := refMatchOne(segs, parts)
		if !ok {
			continue
		}
		if best < 0 || moreSpecific(segs, routes[best]) {
			best, params = i, ps
		}
	}
	return best, params
}

func refMatchOne(segs []subscriptions.Segment, parts []string) (Params, bool) {
	var ps Params
	for i, s := range segs {
		if s.Kind == subscriptions.Wildcard {
			rest := strings.Join(parts[min(i, len(parts)):], "/")
			if i >= len(parts) || rest == "" {
				return nil, false
			}
			return append(ps, Param{Key: s.Value, Value: rest}), true
		}
		if i >= len(parts) {
			return nil, false
		}
		switch s.Kind {
		case subscriptions.Static:
			if parts[i] != s.Value {
				return nil, false
			}
		case subscriptions.Param:
			if parts[i] == "" {
				return nil, false
			}
			ps = append(ps, Param{Key: s.Value, Value: parts[i]})
		}
	}
	return ps, len(segs) == len(parts)
}

func moreSpecific(a, b []subscriptions.Segment) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i].Kind != b[i].Kind {
			return a[i].Kind < b[i].Kind
		}
	}
	return false // two routes matching one path differ in kind somewhere
}

// substitute puts captured values back into a route pattern.
func substitute(segs []subscriptions.Segment, ps Params) string {
	var b strings.Builder
	k := 0
	for _, s := range segs {
		b.WriteByte('/')
		if s.Kind == subscriptions.Static {
			b.WriteString(s.Value)
			continue
		}
		if k < len(ps) {
			b.WriteString(ps[k].Value)
		}
		k++
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

func FuzzLookup(f *testing.F) {
	routes := make([][]subscriptions.Segment, len(testRoutes))
	tree := &Tree[int]{}
	for i, r := range testRoutes {
		_, segs, err := subscriptions.ParsePath(r)
		if err != nil {
			f.Fatal(err)
		}
		routes[i] = segs
		if err := tree.Insert(segs, i); err != nil {
			f.Fatal(err)
		}
	}
	for _, seed := range []string{
		"", "/", "//", "///", "users", "/users", "/users/", "/users//", "/users/new/posts/1",
		"/users/a/b/c", "/files/", "/files//x", "/a/b/e", "/a/b/d/", "/x/y/z", "/x/y/z/",
		"/日本/東京", "/café/a/b", "/p//q", "/\xff/\x00", "/héllo/wörld/",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		ps := make(Params, 0, 2)
		got, ok := tree.Lookup(path, &ps)
		want, wantPs := refMatch(routes, path)
		if !ok {
			if want >= 0 {
				t.Fatalf("Lookup(%q) found nothing; %q matches", path, testRoutes[want])
			}
			if len(ps) != 0 {
				t.Fatalf("Lookup(%q) found nothing but left params %v", path, ps)
			}
			return
		}
		if got != want {
			wantRoute := "nothing"
			if want >= 0 {
				wantRoute = testRoutes[want]
			}
			t.Fatalf("Lookup(%q) = %q, want %s", path, testRoutes[got], wantRoute)
		}
		// Independently of the reference: the captured values, put back
		// into the pattern, must rebuild the path (less one trailing '/').
		segs := routes[got]
		var names []string
		for _, s := range segs {
			if s.Kind != subscriptions.Static {
				names = append(names, s.Value)
			}
		}
		if len(ps) != len(names) {
			t.Fatalf("Lookup(%q) = %q with params %v, want names %v", path, testRoutes[got], ps, names)
		}
		for i, p := range ps {
			if p.Key != names[i] || p.Value == "" {
				t.Fatalf("Lookup(%q) = %q with params %v, want names %v and values", path, testRoutes[got], ps, names)
			}
		}
		norm := path
		if norm == "" {
			norm = "/"
		}
		if len(norm) > 1 && norm[len(norm)-1] == '/' {
			norm = norm[:len(norm)-1]
		}
		if norm == "" {
			norm = "/"
		}
		if back := substitute(segs, ps); back != norm {
			t.Fatalf("Lookup(%q) = %q with params %v, which rebuild %q", path, testRoutes[got], ps, back)
		}
		if len(ps) != len(wantPs) {
			t.Fatalf("Lookup(%q) params %v, reference %v", path, ps, wantPs)
		}
		for i := range ps {
			if ps[i] != wantPs[i] {
				t.Fatalf("Lookup(%q) params %v, reference %v", path, ps, wantPs)
			}
		}
	})
}
