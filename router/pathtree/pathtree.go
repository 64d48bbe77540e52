// Package pathtree is the route table behind HTTP event routing. It exists as
// its own package so the matching rules (static beats parameter beats
// wildcard, with backtracking) live in one place that can be fuzzed and
// benchmarked on its own, apart from the router's locking and reloads.
//
// A Tree is built once from a snapshot of subscriptions and then only read, so
// it needs no locks: the router swaps in a new tree when subscriptions change
// rather than mutating one that requests are reading.
package pathtree

import (
	"strings"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// mapThreshold is the number of static children above which a node switches
// from a slice scan to a map. A scan over a handful of short strings is
// faster than hashing and costs no per-node map, which matters when most of
// the 100,000 routes a table may hold end in nodes with one or two children;
// a map keeps a node with thousands of siblings O(1) per segment.
const mapThreshold = 8

// Tree maps subscription paths to values. The zero value is an empty tree.
// Insert must not run concurrently with anything else; once building is done
// any number of goroutines may call Lookup at once.
type Tree[V any] struct {
	root node[V]
	n    int
}

// node is one path segment. It is kept small because a large table has
// hundreds of thousands of them: V is stored inline (so it should be a
// pointer or a small value), and the map is only built for wide nodes.
type node[V any] struct {
	// label is the static text that leads to this node, or the name of the
	// parameter or wildcard it stands for; one field serves both because a
	// node is only ever one of the three kinds.
	label string
	// statics holds the static children while there are few of them; once
	// index exists statics is nil, so the two never need to agree.
	statics []*node[V]
	index   map[string]*node[V]
	param   *node[V]
	wild    *node[V]
	val     V
	has     bool
}

// Param is one parameter or wildcard value captured by Lookup. It is the
// event package's type, so the parameters of a match go into an http
// event as they are.
type Param = event.Param

// Params is owned by the caller so one slice can be reused across requests:
// Lookup appends into it instead of allocating a fresh slice or map per
// request.
type Params []Param

// Len returns the number of routes, so the router can report table size
// without keeping a separate count that might drift.
func (t *Tree[V]) Len() int { return t.n }

// Insert adds a route. The router validates subscriptions (including
// subscriptions.Conflict) before building, so an error here means that
// validation and the tree disagree; it is reported rather than letting one
// route silently shadow another. A failed Insert leaves the tree unchanged,
// so a caller may skip the bad route and keep building.
func (t *Tree[V]) Insert(segs []subscriptions.Segment, v V) error {
	if err := t.check(segs); err != nil {
		return err
	}
	n := &t.root
	for _, s := range segs {
		switch s.Kind {
		case subscriptions.Static:
			c := n.child(s.Value)
			if c == nil {
				c = &node[V]{label: s.Value}
				n.addStatic(c)
			}
			n = c
		case subscriptions.Param:
			if n.param == nil {
				n.param = &node[V]{label: s.Value}
			}
			n = n.param
		case subscriptions.Wildcard:
			if n.wild == nil {
				n.wild = &node[V]{label: s.Value}
			}
			n = n.wild
		}
	}
	n.val, n.has = v, true
	t.n++
	return nil
}

// check does every test Insert can fail before anything is changed, so that
// a rejected route leaves no empty nodes behind: an orphaned parameter node
// would otherwise make a later, valid route with another name look ambiguous.
// A malformed route is reported as such even where it would also clash.
func (t *Tree[V]) check(segs []subscriptions.Segment) error {
	for i, s := range segs {
		switch s.Kind {
		case subscriptions.Static:
			if s.Value == "" || strings.IndexByte(s.Value, '/') >= 0 {
				return errkind.New(errkind.Invalid, "path segment %d: static text %q can never match a single segment", i, s.Value)
			}
		case subscriptions.Param, subscriptions.Wildcard:
			if s.Value == "" {
				return errkind.New(errkind.Invalid, "path segment %d: parameter or wildcard without a name", i)
			}
			if s.Kind == subscriptions.Wildcard && i != len(segs)-1 {
				return errkind.New(errkind.Invalid, "path segment %d: wildcard %q must be the last segment", i, s.Value)
			}
			for _, p := range segs[:i] {
				if p.Kind != subscriptions.Static && p.Value == s.Value {
					return errkind.New(errkind.Invalid, "path uses the name %q twice", s.Value)
				}
			}
		default:
			return errkind.New(errkind.Invalid, "path segment %d has unknown kind %d", i, s.Kind)
		}
	}
	n := &t.root
	for _, s := range segs {
		switch s.Kind {
		case subscriptions.Static:
			n = n.child(s.Value)
		case subscriptions.Param:
			if n.param != nil && n.param.label != s.Value {
				return errkind.New(errkind.Conflict, "parameter %q is ambiguous with parameter %q at the same position", s.Value, n.param.label)
			}
			n = n.param
		case subscriptions.Wildcard:
			if n.wild != nil && n.wild.label != s.Value {
				return errkind.New(errkind.Conflict, "wildcard %q is ambiguous with wildcard %q at the same position", s.Value, n.wild.label)
			}
			n = n.wild
		}
		if n == nil {
			return nil // the rest of the route is new
		}
	}
	if n.has {
		return errkind.New(errkind.Conflict, "path is already routed")
	}
	return nil
}

// addStatic switches to a map once the slice scan would get slow; the slice
// is dropped then so wide nodes do not pay for both.
func (n *node[V]) addStatic(c *node[V]) {
	if n.index != nil {
		n.index[c.label] = c
		return
	}
	if len(n.statics) < mapThreshold {
		n.statics = append(n.statics, c)
		return
	}
	n.index = make(map[string]*node[V], len(n.statics)+1)
	for _, s := range n.statics {
		n.index[s.label] = s
	}
	n.index[c.label] = c
	n.statics = nil
}

func (n *node[V]) child(seg string) *node[V] {
	if n.index != nil {
		return n.index[seg]
	}
	for _, c := range n.statics {
		if c.label == seg {
			return c
		}
	}
	return nil
}

// Lookup finds the route for a request path, such as r.URL.Path. A trailing
// '/' is ignored so that "/users/" reaches "/users", as clients and proxies
// add one inconsistently. An empty path is treated as "/" (as net/http does
// for clients); any other path that does not start with '/' matches nothing.
//
// *ps is truncated and the route's parameter and wildcard values are
// appended to it in path order; the values are substrings of path, so
// nothing is copied and a Params with spare capacity means no allocation.
// ps may be nil when the caller does not need the values.
func (t *Tree[V]) Lookup(path string, ps *Params) (v V, ok bool) {
	if ps == nil {
		var discard Params
		ps = &discard
	}
	*ps = (*ps)[:0]
	if len(path) > 0 {
		if path[0] != '/' {
			return v, false
		}
		if path[len(path)-1] == '/' {
			path = path[:len(path)-1]
		}
		if path == "/" { // "//" is the root with a trailing '/'
			path = ""
		}
	}
	// An empty path ends the walk at the root.
	n := t.root.match(path, 0, ps)
	if n == nil {
		*ps = (*ps)[:0]
		return v, false
	}
	return n.val, true
}

// match walks path from i, where path[i] is the '/' before the next segment
// or i is len(path). It tries static, then parameter, then wildcard, and
// falls back to the next kind when a branch fails deeper down, so a more
// specific route never hides a less specific one that would match.
//
// Backtracking cannot blow up: a tree node sits at one depth and the request
// has one segment per depth, so each node is visited at most once per
// lookup, and the cost is bounded by the size of the tree, not exponential
// in the path length. Recursion depth is bounded by the longest route.
func (n *node[V]) match(path string, i int, ps *Params) *node[V] {
	if i == len(path) {
		if n.has {
			return n
		}
		return nil
	}
	start := i + 1
	end := strings.IndexByte(path[start:], '/')
	if end < 0 {
		end = len(path)
	} else {
		end += start
	}
	seg := path[start:end]
	if c := n.child(seg); c != nil {
		if r := c.match(path, end, ps); r != nil {
			return r
		}
	}
	if n.param != nil && seg != "" {
		k := len(*ps)
		*ps = append(*ps, Param{Key: n.param.label, Value: seg})
		if r := n.param.match(path, end, ps); r != nil {
			return r
		}
		*ps = (*ps)[:k]
	}
	if n.wild != nil && start < len(path) {
		*ps = append(*ps, Param{Key: n.wild.label, Value: path[start:]})
		return n.wild
	}
	return nil
}
