package subscriptions

import (
	"fmt"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in, norm string
		segs     string // kinds and values, e.g. "s:users p:id"
		wantErr  string
	}{
		{in: "", norm: "/", segs: ""},
		{in: "/", norm: "/", segs: ""},
		{in: "users", norm: "/users", segs: "s:users"},
		{in: "/users/", norm: "/users", segs: "s:users"},
		{in: "/users/:id", norm: "/users/:id", segs: "s:users p:id"},
		{in: "/users/:id/posts/*rest", norm: "/users/:id/posts/*rest", segs: "s:users p:id s:posts w:rest"},
		{in: "/a:b/c*d", norm: "/a:b/c*d", segs: "s:a:b s:c*d"},
		{in: "/ünï/😸", norm: "/ünï/😸", segs: "s:ünï s:😸"},
		{in: "/a//b", wantErr: "empty segment"},
		{in: "/a/../b", wantErr: `".." segment`},
		{in: "/a/./b", wantErr: `"." segment`},
		{in: "/users/:", wantErr: "needs a name"},
		{in: "/users/:a-b", wantErr: "needs a name"},
		{in: "/users/*", wantErr: "needs a name"},
		{in: "/users/*rest/more", wantErr: "must be the last segment"},
		{in: "/a/:id/b/:id", wantErr: "twice"},
		{in: "/a?b", wantErr: "cannot appear"},
		{in: "/a#b", wantErr: "cannot appear"},
		{in: "/a b", wantErr: "cannot appear"},
		{in: "/a\x00", wantErr: "cannot appear"},
		{in: "/\xff", wantErr: "UTF-8"},
		{in: "/" + strings.Repeat("a", 2048), wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			norm, segs, err := ParsePath(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePath(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if norm != tt.norm || fmtSegs(segs) != tt.segs {
				t.Fatalf("ParsePath(%q) = %q, %q; want %q, %q", tt.in, norm, fmtSegs(segs), tt.norm, tt.segs)
			}
		})
	}
}

func fmtSegs(segs []Segment) string {
	parts := make([]string, len(segs))
	for i, s := range segs {
		parts[i] = fmt.Sprintf("%c:%s", "spw"[s.Kind], s.Value)
	}
	return strings.Join(parts, " ")
}

func TestConflict(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"/users", "/users", true},
		{"/", "/", true},
		{"/users", "/posts", false},
		{"/users/:id", "/users/foo", true},   // static where another has a parameter
		{"/users/:id", "/users/:name", true}, // differently named parameters
		{"/users/:id", "/users/:id/posts", false},
		{"/users/:id/a", "/users/:id/b", false}, // same parameter, diverging later
		{"/users/:id/a", "/users/foo/b", true},  // the router could not choose
		{"/users/*rest", "/users/foo", true},    // wildcard clashes with anything at its position
		{"/users/*rest", "/users/:id", true},
		{"/users/*rest", "/users/*path", true},
		{"/users/*rest", "/users", false}, // the wildcard needs at least one more segment
		{"/*all", "/", false},
		{"/a/*rest", "/b/*rest", false},
		{"/users", "/users/:id", false},
		{"/users/foo/bar", "/users/foo", false},
	}
	for _, tt := range tests {
		_, a, err := ParsePath(tt.a)
		if err != nil {
			t.Fatal(err)
		}
		_, b, err := ParsePath(tt.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := Conflict(a, b); got != tt.want {
			t.Errorf("Conflict(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := Conflict(b, a); got != tt.want {
			t.Errorf("Conflict(%s, %s) = %v, want %v (not symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}
