package subscriptions

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/event-gateway/event-gateway/libkv"
)

const testShapes = "spaces/default/shapes/routes/GET/"

func inRanges(key string, rs []libkv.Range) bool {
	for _, r := range rs {
		if r.Start <= key && key < r.End {
			return true
		}
	}
	return false
}

// checkShapePair checks the shape index against Conflict for one pair: b's
// key lies in a's conflict ranges exactly when the two conflict, and in
// a's guard ranges whenever it lies in the read ones.
func checkShapePair(t *testing.T, a, b string) {
	t.Helper()
	_, as, err := ParsePath(a)
	if err != nil {
		t.Fatal(err)
	}
	_, bs, err := ParsePath(b)
	if err != nil {
		t.Fatal(err)
	}
	read, guard := conflictRanges(testShapes, as)
	key := shapeKey(testShapes, bs, "0b1d2c3e-0000-5000-8000-000000000000")
	if got, want := inRanges(key, read), Conflict(as, bs); got != want {
		t.Fatalf("new %s, stored %s: shape index says conflict=%v, Conflict says %v (key %q, ranges %q)", a, b, got, want, key, read)
	}
	if inRanges(key, read) && !inRanges(key, guard) {
		t.Fatalf("new %s, stored %s: conflicting key %q is not guarded", a, b, key)
	}
}

// shapeAlphabet makes segments whose encodings are prefixes of each other
// and hold the index's own marker characters.
var shapeAlphabet = []string{"a", "a$", "p", "pa", ":a", ":ab", ":b", "*a", "*w"}

// TestShapeIndexExhaustive checks every pair of paths of up to three
// segments of shapeAlphabet.
func TestShapeIndexExhaustive(t *testing.T) {
	paths := []string{"/"}
	level := []string{""}
	for range 3 {
		var next []string
		for _, p := range level {
			if strings.Contains(p, "/*") {
				continue // a wildcard is last
			}
			for _, s := range shapeAlphabet {
				q := p + "/" + s
				if _, _, err := ParsePath(q); err == nil {
					next = append(next, q)
				}
			}
		}
		paths = append(paths, next...)
		level = next
	}
	for _, a := range paths {
		for _, b := range paths {
			checkShapePair(t, a, b)
		}
	}
	t.Logf("%d paths, %d pairs", len(paths), len(paths)*len(paths))
}

// TestShapeIndexDeep checks paths deeper than the guarded levels.
func TestShapeIndexDeep(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gen := func() string {
		n := maxGuardedLevels - 3 + r.IntN(8)
		var b strings.Builder
		for i := range n {
			switch x := r.IntN(20); {
			case x == 0 && i == n-1:
				b.WriteString("/*w")
			case x == 1:
				fmt.Fprintf(&b, "/:p%d", i)
			case x == 2:
				fmt.Fprintf(&b, "/:q%d", i)
			default:
				b.WriteString("/s")
			}
		}
		return b.String()
	}
	for range 20000 {
		checkShapePair(t, gen(), gen())
	}
}

// FuzzShapeIndex: for any two paths, the shape index agrees with Conflict.
func FuzzShapeIndex(f *testing.F) {
	f.Add("/users/:id", "/users/me")
	f.Add("/a/*rest", "/a")
	f.Add("/a$/:x", "/a$/:xy/b")
	f.Fuzz(func(t *testing.T, a, b string) {
		if _, _, err := ParsePath(a); err != nil {
			return
		}
		if _, _, err := ParsePath(b); err != nil {
			return
		}
		checkShapePair(t, a, b)
	})
}
