package filter

import (
	"os"
	"strconv"
	"testing"
)

// TestCountMatch runs Match FILTER_CG_N times with the BenchmarkMatch
// pattern FILTER_CG_PATTERN on its 1 KiB event, and nothing else, for
// counting instructions under valgrind --tool=callgrind
// --toggle-collect='*filter.(*Filter).Match' (see docs/performance.md).
// Without the variables it does nothing.
func TestCountMatch(t *testing.T) {
	name, n := os.Getenv("FILTER_CG_PATTERN"), os.Getenv("FILTER_CG_N")
	if name == "" || n == "" {
		t.Skip("FILTER_CG_PATTERN and FILTER_CG_N not set")
	}
	count, err := strconv.Atoi(n)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range benchPatterns {
		if p.name != name {
			continue
		}
		f, ev := MustCompile(p.pattern), padded(1<<10)
		for range count {
			f.Match(ev)
		}
		return
	}
	t.Fatalf("no pattern %q", name)
}
