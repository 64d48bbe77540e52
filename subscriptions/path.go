package subscriptions

import (
	"strings"
	"unicode/utf8"

	"github.com/event-gateway/event-gateway/internal/errkind"
)

// SegmentKind is the kind of one path segment.
type SegmentKind uint8

// The segment kinds, in the order the router prefers them.
const (
	Static   SegmentKind = iota // matches its text exactly
	Param                       // ":name" matches any one segment
	Wildcard                    // "*name" matches the rest of the path; last only
)

// Segment is one segment of a subscription path.
type Segment struct {
	Kind SegmentKind
	// Value is the text of a static segment, or the name of a parameter or
	// wildcard (without its ':' or '*').
	Value string
}

// maxPathLen bounds subscription paths, which become part of etcd values.
const maxPathLen = 2048

// ParsePath normalizes a subscription path and splits it into segments. The
// normal form starts with '/' and has no trailing '/' (except the root).
func ParsePath(p string) (string, []Segment, error) {
	if len(p) > maxPathLen {
		return "", nil, errkind.New(errkind.Invalid, "path is longer than %d characters", maxPathLen)
	}
	if !utf8.ValidString(p) {
		return "", nil, errkind.New(errkind.Invalid, "path is not valid UTF-8")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '?' || r == '#' || r == ' ' {
			return "", nil, errkind.New(errkind.Invalid, "path %q contains %q, which cannot appear in a path", p, r)
		}
	}
	p = "/" + strings.Trim(p, "/")
	if p == "/" {
		return p, nil, nil
	}
	parts := strings.Split(p[1:], "/")
	segs := make([]Segment, len(parts))
	names := make(map[string]bool)
	for i, part := range parts {
		switch {
		case part == "":
			return "", nil, errkind.New(errkind.Invalid, "path %q has an empty segment", p)
		case part == "." || part == "..":
			return "", nil, errkind.New(errkind.Invalid, "path %q has a %q segment", p, part)
		case part[0] == ':' || part[0] == '*':
			kind, what := Param, "parameter"
			if part[0] == '*' {
				kind, what = Wildcard, "wildcard"
				if i != len(parts)-1 {
					return "", nil, errkind.New(errkind.Invalid, "path %q: wildcard %q must be the last segment", p, part)
				}
			}
			name := part[1:]
			if !validName(name) {
				return "", nil, errkind.New(errkind.Invalid, "path %q: %s %q needs a name of letters, digits and '_'", p, what, part)
			}
			if names[name] {
				return "", nil, errkind.New(errkind.Invalid, "path %q uses the name %q twice", p, name)
			}
			names[name] = true
			segs[i] = Segment{Kind: kind, Value: name}
		default:
			segs[i] = Segment{Kind: Static, Value: part}
		}
	}
	return p, segs, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// IsStatic reports whether every segment is static.
func IsStatic(segs []Segment) bool {
	for _, s := range segs {
		if s.Kind != Static {
			return false
		}
	}
	return true
}

// Conflict reports whether two http paths on the same method cannot both be
// routed unambiguously: they are the same path, or at the first position
// where they differ one has a parameter and the other a static segment, the
// two have differently named parameters, or either has a wildcard.
func Conflict(a, b []Segment) bool {
	for i := 0; ; i++ {
		if i == len(a) || i == len(b) {
			// One is a prefix of the other: only the same length clashes.
			return len(a) == len(b)
		}
		sa, sb := a[i], b[i]
		if sa.Kind == Wildcard || sb.Kind == Wildcard {
			return true
		}
		if sa.Kind != sb.Kind {
			return true
		}
		if sa.Kind == Static && sa.Value != sb.Value {
			return false // the paths diverge on fixed text: no request matches both
		}
		if sa.Kind == Param && sa.Value != sb.Value {
			return true
		}
	}
}
