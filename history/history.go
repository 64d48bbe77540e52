// Package history records every change to the configuration of a space:
// when, by whom (the name of the token or key, never its value), what
// changed (each resource before and after) and at which etcd revision.
//
// A record is written in the same etcd transaction as the change it
// describes, by a libkv transaction hook (Log.Hook) on the store the
// configuration services write through: a change cannot be committed
// without its record, nor a record without its change, and no elected
// writer or watch is needed. Its key is
//
//	spaces/<space>/history/<time-ordered id>
//
// and the revision of the change is the key's own ModRevision (the record
// is never rewritten), so lists are ordered by revision exactly.
//
// Records keep the resources as stored, secrets included, since a
// rollback (package spacestate) restores them from the records, which
// survive etcd's compaction; the access keys' digests are left out, as
// keys are never rolled back. Entries are shown to clients redacted.
package history

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/libkv"
)

// Dir is the directory of the history records in a space. The router
// reads only the directories of the kinds it routes by, so it ignores it.
const Dir = "history/"

// Prefix is the prefix of the history records of a space.
func Prefix(space string) string { return functions.SpaceRoot(space) + Dir }

// recorded reports whether changes to the resources of a directory of a
// space are recorded: those of every kind the Configuration API writes.
func recorded(kind string) bool {
	switch kind {
	case "functions", "subscriptions", "eventtypes", "cors", "keys":
		return true
	}
	return false
}

// Actions of a change.
const (
	Create = "create"
	Update = "update"
	Delete = "delete"
)

// Change is what happened to one resource.
type Change struct {
	// Kind is the resource's directory: functions, subscriptions,
	// eventtypes, cors or keys.
	Kind   string          `json:"kind"`
	ID     string          `json:"id"`
	Action string          `json:"action"`
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// Actor is who made a change: the credential its request carried.
type Actor struct {
	// Kind is "token" (the gateway's -config-token), "key" (a
	// configuration key of the space) or "none" (the API was open).
	Kind  string `json:"kind"`
	KeyID string `json:"keyId,omitempty"`
	// Name is the key's name, or "config-token" for the gateway's token.
	Name string `json:"name,omitempty"`
}

// Ways a change was made.
const (
	ViaAPI      = "api"
	ViaApply    = "apply"
	ViaRollback = "rollback"
)

// Entry is one recorded change of a space: one transaction.
type Entry struct {
	ID        string    `json:"id"`
	Revision  int64     `json:"revision"`
	Time      time.Time `json:"time"`
	Actor     Actor     `json:"actor"`
	RequestID string    `json:"requestId,omitempty"`
	// Via is how the change was made: ViaAPI, ViaApply or ViaRollback.
	Via string `json:"via"`
	// RollbackTo is the revision a rollback restored.
	RollbackTo int64    `json:"rollbackTo,omitempty"`
	Changes    []Change `json:"changes"`
}

// Origin is what the request that makes a change says about it.
type Origin struct {
	Actor      Actor
	RequestID  string
	Via        string
	RollbackTo int64
}

type originKey struct{}

// WithOrigin returns ctx carrying the origin of the changes made with it.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginOf returns the origin ctx carries; without one, an actor "none"
// through the API.
func OriginOf(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	if o.Actor.Kind == "" {
		o.Actor.Kind = "none"
	}
	if o.Via == "" {
		o.Via = ViaAPI
	}
	return o
}

// WithVia returns ctx with the origin it carries changed to via.
func WithVia(ctx context.Context, via string, rollbackTo int64) context.Context {
	o := OriginOf(ctx)
	o.Via, o.RollbackTo = via, rollbackTo
	return WithOrigin(ctx, o)
}

// Options configures a Log.
type Options struct {
	// MaxEntries bounds the records kept per space: writing one more
	// deletes the oldest. Default DefaultMaxEntries.
	MaxEntries int
	// MaxAge drops records older than this when a space changes. 0 keeps
	// them until MaxEntries pushes them out.
	MaxAge time.Duration
	// Providers redacts the secrets of functions in listed entries.
	Providers *functions.Registry
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultMaxEntries is the default of Options.MaxEntries.
const DefaultMaxEntries = 1000

// maxPrunePerTxn bounds the old records one change deletes, so the
// transaction stays small; further ones go with the next changes.
const maxPrunePerTxn = 16

// Log writes and reads the history of every space.
type Log struct {
	kv   *libkv.Store
	opts Options
}

// New returns the Log of store kv, which must be the store without the
// hook (the hook reads through it).
func New(kv *libkv.Store, opts Options) *Log {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Log{kv: kv, opts: opts}
}

// resourceKey splits spaces/<space>/<kind>/<id> for the recorded kinds.
func resourceKey(key string) (space, kind, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, functions.SpacesRoot)
	if !ok {
		return "", "", "", false
	}
	space, rest, ok = strings.Cut(rest, "/")
	if !ok || space == "" {
		return "", "", "", false
	}
	kind, id, ok = strings.Cut(rest, "/")
	if !ok || id == "" || strings.Contains(id, "/") || !recorded(kind) {
		return "", "", "", false
	}
	return space, kind, id, true
}

// Hook is the libkv.TxnHook that records a transaction's changes to
// resources: for each space it touches, one record, and the conditions
// that the resources are still as read (so each "before" is exact), and
// the deletion of the records retention drops.
func (l *Log) Hook(ctx context.Context, ops []libkv.Op) ([]libkv.Cond, []libkv.Op, error) {
	type touched struct {
		space, kind, id string
		op              libkv.Op
	}
	var ts []touched
	for _, op := range ops {
		if space, kind, id, ok := resourceKey(op.Key()); ok {
			ts = append(ts, touched{space, kind, id, op})
		}
	}
	if len(ts) == 0 {
		return nil, nil, nil
	}
	// One read, at one revision, of every resource as it is before the
	// change and of each space's records, for retention.
	reads := make([]libkv.Read, 0, len(ts)+2)
	for _, t := range ts {
		reads = append(reads, libkv.ReadKey(t.op.Key()))
	}
	var spaces []string
	seen := make(map[string]bool)
	for _, t := range ts {
		if !seen[t.space] {
			seen[t.space] = true
			spaces = append(spaces, t.space)
			reads = append(reads, libkv.ReadCount(Prefix(t.space)), libkv.ReadOldestKeys(Prefix(t.space), maxPrunePerTxn))
		}
	}
	res, _, err := l.kv.ReadTxn(ctx, reads)
	if err != nil {
		return nil, nil, err
	}
	befores := make([]libkv.KV, len(ts))
	for i := range ts {
		if kvs := res[i].KVs; len(kvs) > 0 {
			befores[i] = kvs[0]
		}
	}
	retention := make(map[string][2]libkv.ReadResult, len(spaces))
	for i, space := range spaces {
		retention[space] = [2]libkv.ReadResult{res[len(ts)+2*i], res[len(ts)+2*i+1]}
	}
	origin := OriginOf(ctx)
	now := l.opts.Now().UTC()
	var conds []libkv.Cond
	bySpace := make(map[string]*Entry)
	for i, t := range ts {
		before := befores[i]
		key := t.op.Key()
		if before.Key == "" {
			conds = append(conds, libkv.Absent(key))
		} else {
			conds = append(conds, libkv.ModRevisionIs(key, before.ModRevision))
		}
		c := Change{Kind: t.kind, ID: t.id}
		switch {
		case t.op.IsDelete() && before.Key == "":
			continue // nothing to delete
		case t.op.IsDelete():
			c.Action, c.Before = Delete, recordValue(t.kind, before.Value)
		case before.Key == "":
			c.Action, c.After = Create, recordValue(t.kind, t.op.Value())
		case string(before.Value) == string(t.op.Value()):
			continue // written as it was
		default:
			c.Action, c.Before, c.After = Update, recordValue(t.kind, before.Value), recordValue(t.kind, t.op.Value())
		}
		e := bySpace[t.space]
		if e == nil {
			e = &Entry{Time: now, Actor: origin.Actor, RequestID: origin.RequestID, Via: origin.Via, RollbackTo: origin.RollbackTo}
			bySpace[t.space] = e
		}
		e.Changes = append(e.Changes, c)
	}
	var more []libkv.Op
	for _, space := range spaces {
		e := bySpace[space]
		if e == nil {
			continue // nothing changed in it
		}
		val, err := json.Marshal(e)
		if err != nil {
			return nil, nil, fmt.Errorf("encode history record: %w", err)
		}
		more = append(more, libkv.Put(Prefix(space)+newID(now), val))
		r := retention[space]
		more = append(more, l.prune(space, r[0].Count, r[1].KVs, now)...)
	}
	return conds, more, nil
}

// recordValue is a resource's value as a record keeps it: as stored,
// but an access key without its digest.
func recordValue(kind string, v []byte) json.RawMessage {
	if kind != "keys" {
		return json.RawMessage(v)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		return nil
	}
	delete(m, "sha256")
	b, _ := json.Marshal(m)
	return b
}

// newID returns a record id that sorts by time: the nanoseconds since the
// epoch in hex, then random bits against collisions between gateways.
func newID(now time.Time) string {
	var r [4]byte
	rand.Read(r[:])
	return fmt.Sprintf("%016x-%s", now.UnixNano(), hex.EncodeToString(r[:]))
}

// idTime returns the time an id was made.
func idTime(id string) (time.Time, bool) {
	ts, _, ok := strings.Cut(id, "-")
	if !ok {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(ts, 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// prune returns the deletions of the records of space that retention
// drops once one more is written, given the number of records n and the
// keys of the oldest ones: the oldest beyond MaxEntries, and those older
// than MaxAge. A change deletes at most maxPrunePerTxn; the next ones
// delete the rest.
func (l *Log) prune(space string, n int64, oldest []libkv.KV, now time.Time) []libkv.Op {
	prefix := Prefix(space)
	excess := int(n) + 1 - l.opts.MaxEntries
	var ops []libkv.Op
	for i, kv := range oldest {
		t, ok := idTime(strings.TrimPrefix(kv.Key, prefix))
		old := l.opts.MaxAge > 0 && ok && now.Sub(t) > l.opts.MaxAge
		if i < excess || old {
			ops = append(ops, libkv.Del(kv.Key))
		}
	}
	return ops
}

// decode reads a record.
func decode(prefix string, kv libkv.KV) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(kv.Value, &e); err != nil {
		return Entry{}, fmt.Errorf("decode history record %s: %w", kv.Key, err)
	}
	e.ID = strings.TrimPrefix(kv.Key, prefix)
	e.Revision = kv.ModRevision
	return e, nil
}

// List returns up to limit entries of space (0: all kept), newest first,
// those of revisions before before (0: from the newest), redacted for
// clients, and the revision to continue before (0 at the end).
func (l *Log) List(ctx context.Context, space string, before int64, limit int) ([]Entry, int64, error) {
	prefix := Prefix(space)
	bound := int64(0)
	if before > 0 {
		bound = before - 1
		if bound == 0 {
			return []Entry{}, 0, nil
		}
	}
	ask := int64(0)
	if limit > 0 {
		ask = int64(limit) + 1 // one more, to see whether more remain
	}
	kvs, err := l.kv.ListByRevision(ctx, prefix, true, false, bound, ask)
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if limit > 0 && len(kvs) > limit {
		kvs = kvs[:limit]
		next = kvs[limit-1].ModRevision
	}
	out := make([]Entry, 0, len(kvs))
	for _, kv := range kvs {
		e, err := decode(prefix, kv)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, l.redact(e))
	}
	return out, next, nil
}

// redact replaces the secrets of the functions of an entry.
func (l *Log) redact(e Entry) Entry {
	for i, c := range e.Changes {
		if c.Kind != "functions" || l.opts.Providers == nil {
			continue
		}
		red := func(v json.RawMessage) json.RawMessage {
			if v == nil {
				return nil
			}
			var f functions.Function
			if json.Unmarshal(v, &f) != nil {
				return nil
			}
			b, err := json.Marshal(l.opts.Providers.Redact(f))
			if err != nil {
				return nil
			}
			return b
		}
		e.Changes[i].Before, e.Changes[i].After = red(c.Before), red(c.After)
	}
	return e
}

// sincePage is how many records Since reads at a time.
const sincePage = 50

// Since calls fn with each entry of space after revision rev and up to
// revision upTo, oldest first, as recorded (secrets included): what a
// rollback to rev undoes. It reads the records a page at a time, so a
// long history of large records is never held at once. It fails when
// retention may have dropped some of them: when the oldest record kept
// is after rev.
func (l *Log) Since(ctx context.Context, space string, rev, upTo int64, fn func(Entry) error) error {
	prefix := Prefix(space)
	oldest, err := l.kv.ListByRevision(ctx, prefix, false, true, 0, 1)
	if err != nil {
		return err
	}
	if len(oldest) == 0 || oldest[0].ModRevision > rev {
		first := int64(0)
		if len(oldest) > 0 {
			first = oldest[0].ModRevision
		}
		return errkind.New(errkind.Invalid, "revision %d is older than the history kept for space %q (its oldest change is at revision %d): roll back to a revision it lists", rev, space, first)
	}
	from := rev + 1
	for from <= upTo {
		kvs, err := l.kv.ListByRevision(ctx, prefix, false, false, from, sincePage)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			if kv.ModRevision > upTo {
				return nil
			}
			e, err := decode(prefix, kv)
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(kvs) < sincePage {
			return nil
		}
		from = kvs[len(kvs)-1].ModRevision + 1
	}
	return nil
}
