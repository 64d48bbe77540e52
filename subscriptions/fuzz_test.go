package subscriptions

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/event-gateway/event-gateway/functions"
)

// FuzzParsePath: any string either parses to a normal form that parses to
// itself, made of the segments returned, or is refused; never a panic.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"", "/", "users", "/users/:id/files/*rest", "//a", "/a/../b", "/:", "/*x/y", "/a b", "/\xff", "/ü/😸"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		norm, segs, err := ParsePath(p)
		if err != nil {
			return
		}
		again, segs2, err := ParsePath(norm)
		if err != nil || again != norm || len(segs2) != len(segs) {
			t.Fatalf("normal form %q of %q does not parse to itself: %q, %v", norm, p, again, err)
		}
		var b strings.Builder
		for _, s := range segs {
			b.WriteByte('/')
			switch s.Kind {
			case Param:
				b.WriteByte(':')
			case Wildcard:
				b.WriteByte('*')
			}
			b.WriteString(s.Value)
		}
		if rebuilt := b.String(); rebuilt != norm && !(norm == "/" && rebuilt == "") {
			t.Fatalf("segments of %q rebuild %q", norm, rebuilt)
		}
		if Conflict(segs, segs) != true {
			t.Fatalf("%q does not conflict with itself", norm)
		}
	})
}

// FuzzNormalize: any subscription decoded from JSON is either refused or
// normalized to a form that normalizes to itself with the same id.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		`{"event":"http","functionId":"f","method":"get","path":"/a/:b","cors":{}}`,
		`{"event":"user.created","functionId":"f","path":"team"}`,
		`{"event":"e","functionId":"f","retry":{"maxAttempts":3,"initialBackoff":"1s","maxBackoff":"1m"}}`,
		`{"event":"http","functionId":"f","method":"GET","cors":{"origins":[]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Subscription
		if json.Unmarshal(data, &s) != nil {
			return
		}
		if _, err := s.Normalize(functions.DefaultSpace); err != nil {
			return
		}
		again := s
		if _, err := again.Normalize(functions.DefaultSpace); err != nil || again.ID != s.ID || again.Path != s.Path || again.Method != s.Method {
			t.Fatalf("normalized %+v normalizes to %+v, %v", s, again, err)
		}
	})
}
