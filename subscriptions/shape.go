package subscriptions

import (
	"context"
	"fmt"

	"strings"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/libkv"
)

// The shape index: every route of a route index (routes/<METHOD>/ or
// eventroutes/<eventType>/<METHOD>/) has a second key, under
// shapes/<the same route index>, that spells out its path's segments:
//
//	spaces/<space>/shapes/routes/<METHOD>/<seg>/<seg>/…/$<subscriptionId>   (value: the path)
//
// where each <seg> is its kind and text: "s" and the text of a static
// segment, "p" and the name of a parameter, "w" and the name of a
// wildcard. Segments never contain '/', so the encoding is unambiguous,
// and the keys of all routes that start with the same segments share a
// key prefix. '$' ends the path; it sorts before every kind letter.
//
// By Conflict's rules, route b conflicts with a new route a exactly when
// they are the same path, or at the first position d where they differ
// both have a segment and these are not two static ones. So the routes
// that conflict with a are, for each position d of a, those that share
// a's first d segments (one key prefix) and have at d:
//
//	a static segment at d  → a parameter or a wildcard (keys "p…", "w…")
//	a parameter :n at d    → anything but the end or :n (keys "p…" but "pn/…", "s…", "w…")
//	a wildcard at d        → anything but the end
//
// plus a's own path (the prefix of a's key up to '$'). These are at most
// two key ranges per segment and one more: conflictRanges lists them. The
// conflict check reads the first key of each, and the write is guarded by
// none of them changing since, however many routes the method has.
const (
	shapesDir = "shapes/"
	endMarker = "$"
	// afterEnd sorts just after endMarker and before every kind letter:
	// a range starting there holds the routes that go on past a position.
	afterEnd = "%"
)

// maxGuardedLevels bounds the segments guarded by exact ranges, so a
// transaction stays within etcd's 128 operations: the conflicts of deeper
// segments are guarded, more coarsely, by the prefix of the first
// maxGuardedLevels segments.
const maxGuardedLevels = 48

// shapesPrefix returns the shape index of a route index prefix.
func shapesPrefix(space, routes string) string {
	root := functions.SpaceRoot(space)
	return root + shapesDir + strings.TrimPrefix(routes, root)
}

// encodeSegment appends the index form of one segment to b.
func encodeSegment(b *strings.Builder, s Segment) {
	b.WriteByte("spw"[s.Kind])
	b.WriteString(s.Value)
	b.WriteByte('/')
}

// shapeKey returns the shape index key of a route.
func shapeKey(shapes string, segs []Segment, id string) string {
	var b strings.Builder
	b.WriteString(shapes)
	for _, s := range segs {
		encodeSegment(&b, s)
	}
	b.WriteString(endMarker)
	b.WriteString(id)
	return b.String()
}

// ShapeKey returns the shape index key of a normalized subscription, or ""
// for a subscription without a route. Tools that write subscriptions
// directly (the scale benchmark) use it to store them as the
// Configuration API does.
func ShapeKey(space string, sub *Subscription) string {
	routes := routesPrefix(space, sub)
	if routes == "" {
		return ""
	}
	_, segs, err := ParsePath(sub.Path)
	if err != nil {
		return ""
	}
	return shapeKey(shapesPrefix(space, routes), segs, sub.ID)
}

// shapeID returns the subscription id at the end of a shape key.
func shapeID(key string) string { return key[strings.LastIndex(key, endMarker)+1:] }

// conflictRanges returns the key ranges of the shape index under shapes
// that hold exactly the routes that conflict with segs (read), and the
// ranges whose changes must fail a write that found them empty (guard):
// the same ranges for the first maxGuardedLevels segments, then one
// prefix that covers all deeper ones.
func conflictRanges(shapes string, segs []Segment) (read, guard []libkv.Range) {
	var b strings.Builder
	b.WriteString(shapes)
	for d, s := range segs {
		p := b.String()
		end := libkv.PrefixEnd(p)
		if d == maxGuardedLevels {
			// Every range from here on lies under p.
			guard = append(read[:len(read):len(read)], libkv.Range{Start: p, End: end})
		}
		switch s.Kind {
		case Static:
			read = append(read, libkv.Range{Start: p + "p", End: p + "q"}, libkv.Range{Start: p + "w", End: p + "x"})
		case Param:
			same := p + "p" + s.Value + "/"
			read = append(read, libkv.Range{Start: p + "p", End: same}, libkv.Range{Start: libkv.PrefixEnd(same), End: end})
		case Wildcard:
			read = append(read, libkv.Range{Start: p + afterEnd, End: end})
		}
		encodeSegment(&b, s)
	}
	same := b.String() + endMarker
	read = append(read, libkv.Range{Start: same, End: libkv.PrefixEnd(same)})
	if guard == nil {
		guard = read
	}
	return read, guard
}

// EnsureIndexed runs Reindex once per Service, until it succeeds: before
// the Service creates its first route, so that routes stored by earlier
// releases are checked against, and at a gateway's start, so that the
// first route need not wait for it.
func (s *Service) EnsureIndexed(ctx context.Context) error {
	s.indexMu.Lock()
	defer s.indexMu.Unlock()
	if s.indexed {
		return nil
	}
	if _, err := s.Reindex(ctx); err != nil {
		return fmt.Errorf("index the routes for conflict checks: %w", err)
	}
	s.indexed = true
	return nil
}

// ReindexStats counts what Reindex changed.
type ReindexStats struct {
	Routes  int // routes in the route indexes
	Added   int // shape keys written for routes that had none
	Removed int // shape keys removed, their route gone
}

// Reindex brings the shape index of every space up to date with the route
// indexes, which earlier releases wrote alone: it adds the shape key of
// every route that has none, and removes those whose route is gone. It is
// idempotent and safe while other gateways create and delete routes: each
// change is a transaction conditional on the route key as read. A Service
// runs it before it creates its first route; a gateway runs it at start.
func (s *Service) Reindex(ctx context.Context) (ReindexStats, error) {
	var st ReindexStats
	const spaces = "spaces/"
	from := spaces
	for {
		k, ok, _, err := s.kv.NextKey(ctx, from, libkv.PrefixEnd(spaces), 0)
		if err != nil || !ok {
			return st, err
		}
		space, _, _ := strings.Cut(strings.TrimPrefix(k, spaces), "/")
		if err := s.reindexSpace(ctx, space, &st); err != nil {
			return st, err
		}
		from = libkv.PrefixEnd(spaces + space + "/")
	}
}

// reindexTxnRoutes bounds the routes of one transaction of Reindex.
const reindexTxnRoutes = 50

func (s *Service) reindexSpace(ctx context.Context, space string, st *ReindexStats) error {
	root := functions.SpaceRoot(space)
	type route struct {
		key, path string
		rev       int64
	}
	want := make(map[string]route) // by shape key
	collect := func(kv libkv.KV) error {
		st.Routes++
		routes := kv.Key[:strings.LastIndexByte(kv.Key, '/')+1]
		_, segs, err := ParsePath(string(kv.Value))
		if err != nil {
			return nil // stored paths were validated; never block on one
		}
		want[shapeKey(shapesPrefix(space, routes), segs, kv.Key[len(routes):])] = route{kv.Key, string(kv.Value), kv.ModRevision}
		return nil
	}
	rev, err := s.kv.Scan(ctx, root+"routes/", 0, 0, collect)
	if err != nil {
		return err
	}
	if _, err := s.kv.Scan(ctx, root+"eventroutes/", rev, 0, collect); err != nil {
		return err
	}
	var stale []string
	if _, err := s.kv.Scan(ctx, root+shapesDir, rev, 0, func(kv libkv.KV) error {
		if _, ok := want[kv.Key]; ok {
			delete(want, kv.Key)
		} else {
			stale = append(stale, kv.Key)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, key := range stale {
		// The route key of a shape key: the same route index, without
		// the shapes/ directory and the segments.
		rel := strings.TrimPrefix(key, root+shapesDir)
		n := 2 // routes/<METHOD>/
		if strings.HasPrefix(rel, "eventroutes/") {
			n = 3 // eventroutes/<type>/<METHOD>/
		}
		parts := strings.SplitN(rel, "/", n+1)
		if len(parts) <= n {
			continue
		}
		routeKey := root + strings.Join(parts[:n], "/") + "/" + shapeID(key)
		ok, _, err := s.kv.Txn(ctx, []libkv.Cond{libkv.Absent(routeKey)}, []libkv.Op{libkv.Del(key)})
		if err != nil {
			return err
		}
		if ok {
			st.Removed++
		}
	}
	// Add the missing ones, many per transaction; a batch that fails
	// (a route changed meanwhile) is done again one route at a time.
	batch := make([]string, 0, reindexTxnRoutes)
	flush := func() error {
		conds := make([]libkv.Cond, 0, len(batch))
		ops := make([]libkv.Op, 0, len(batch))
		for _, k := range batch {
			r := want[k]
			conds = append(conds, libkv.ModRevisionIs(r.key, r.rev))
			ops = append(ops, libkv.Put(k, []byte(r.path)))
		}
		ok, _, err := s.kv.Txn(ctx, conds, ops)
		if err != nil {
			return err
		}
		if ok {
			st.Added += len(batch)
		} else {
			for i := range batch {
				ok, _, err := s.kv.Txn(ctx, conds[i:i+1], ops[i:i+1])
				if err != nil {
					return err
				}
				if ok {
					st.Added++
				}
			}
		}
		batch = batch[:0]
		return nil
	}
	for k := range want {
		batch = append(batch, k)
		if len(batch) == reindexTxnRoutes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if len(batch) > 0 {
		return flush()
	}
	return nil
}
