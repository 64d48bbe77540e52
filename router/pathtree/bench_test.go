package pathtree

import (
	"fmt"
	"testing"

	"github.com/event-gateway/event-gateway/subscriptions"
)

// benchPaths returns n routes, a third each static, parameter and wildcard,
// four to six levels deep, spread so that some nodes have a few children and
// others hundreds (which puts them over mapThreshold).
func benchPaths(n int) []string {
	paths := make([]string, n)
	for i := range n {
		switch i % 3 {
		case 0:
			paths[i] = fmt.Sprintf("/s/g%d/h%d/r%d", i%10, i%100, i)
		case 1:
			paths[i] = fmt.Sprintf("/p/g%d/u%d/:id/posts/:post", i%10, i)
		case 2:
			paths[i] = fmt.Sprintf("/w/g%d/b%d/*rest", i%10, i)
		}
	}
	return paths
}

// Paths that hit route 3333 (static), 3334 (param) and 3335 (wildcard).
const (
	benchStaticPath   = "/s/g3/h33/r3333"
	benchParamPath    = "/p/g4/u3334/42/posts/7"
	benchWildcardPath = "/w/g5/b3335/some/deep/file.txt"
)

func benchTree(tb testing.TB, n int) *Tree[int] {
	tb.Helper()
	t := &Tree[int]{}
	for i, p := range benchPaths(n) {
		_, segs, err := subscriptions.ParsePath(p)
		if err != nil {
			tb.Fatal(err)
		}
		if err := t.Insert(segs, i); err != nil {
			tb.Fatal(err)
		}
	}
	return t
}

func benchLookup(b *testing.B, path string, want, wantParams int) {
	tree := benchTree(b, 10000)
	ps := make(Params, 0, 8)
	if v, ok := tree.Lookup(path, &ps); !ok || v != want || len(ps) != wantParams {
		b.Fatalf("Lookup(%q) = %d, %v, %v; want route %d", path, v, ok, ps, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		tree.Lookup(path, &ps)
	}
}

func BenchmarkLookupStatic(b *testing.B)   { benchLookup(b, benchStaticPath, 3333, 0) }
func BenchmarkLookupParam(b *testing.B)    { benchLookup(b, benchParamPath, 3334, 2) }
func BenchmarkLookupWildcard(b *testing.B) { benchLookup(b, benchWildcardPath, 3335, 1) }

// BenchmarkBuild10000 times building from already-parsed segments, as the
// router does on every reload; B/op divided by 10,000 is the allocation per
// route, including slices and maps that growth leaves as garbage.
func BenchmarkBuild10000(b *testing.B) {
	paths := benchPaths(10000)
	segs := make([][]subscriptions.Segment, len(paths))
	for i, p := range paths {
		var err error
		if _, segs[i], err = subscriptions.ParsePath(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		var t Tree[int]
		for i, s := range segs {
			if err := t.Insert(s, i); err != nil {
				b.Fatal(err)
			}
		}
	}
}
