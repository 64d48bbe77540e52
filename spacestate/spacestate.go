// Package spacestate makes a space match a declared state in one etcd
// transaction (a declarative apply), exports a space in the same form, and
// rolls a space back to an earlier revision from its history.
//
// It decides nothing the configuration services do not: each resource is
// validated and normalized by its own package's code (the provider
// registry, Subscription.Normalize, eventtypes.Prepare, cors Normalize),
// the references between resources and the route conflicts are checked by
// the rules the services check one change with, and the writes, index
// keys included, are the services' own (subscriptions.PutOps, …). What it
// adds is the whole-space view: the checks run on the state the space
// would have, and the writes of every change are one transaction, guarded
// by the space not having changed since it was read.
package spacestate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/history"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/internal/plainjson"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions"
	"github.com/event-gateway/event-gateway/subscriptions/cors"
	"github.com/event-gateway/event-gateway/subscriptions/eventtypes"
)

// State is the declared state of a space: everything it holds but its
// access keys. Each resource is in the form of its model, as the store
// holds it; fields derived from others (subscriptionId, corsId) may be
// left out.
type State struct {
	Space         string                       `json:"space,omitempty"`
	Functions     []functions.Function         `json:"functions"`
	Subscriptions []subscriptions.Subscription `json:"subscriptions"`
	EventTypes    []eventtypes.EventType       `json:"eventTypes"`
	CORS          []cors.Config                `json:"cors"`
}

// The kinds of resource a state holds, as their directories in a space
// and their names in a history record.
const (
	KindFunctions     = "functions"
	KindSubscriptions = "subscriptions"
	KindEventTypes    = "eventtypes"
	KindCORS          = "cors"
)

var kinds = [...]string{KindFunctions, KindSubscriptions, KindEventTypes, KindCORS}

func kindPrefix(space, kind string) string { return functions.SpaceRoot(space) + kind + "/" }

// Change is one step of a plan.
type Change struct {
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	Action string `json:"action"` // history.Create, history.Update, history.Delete
}

// Plan is what an apply or a rollback changes, or would change.
type Plan struct {
	Space  string `json:"space"`
	DryRun bool   `json:"dryRun"`
	// Revision is the store revision the change was committed at, or,
	// for a dry run or when nothing changes, the one the space was read
	// at.
	Revision  int64    `json:"revision"`
	Changes   []Change `json:"changes"`
	Unchanged int      `json:"unchanged"`
}

// Service applies, exports and rolls back the state of spaces.
type Service struct {
	kv        *libkv.Store
	providers *functions.Registry
	subs      *subscriptions.Service
	history   *history.Log
}

// New returns a Service writing through kv (the store with the history
// hook, so every change is recorded), accepting the provider types of
// providers, with subs as the subscriptions service (its route index)
// and log as the history rollbacks read.
func New(kv *libkv.Store, providers *functions.Registry, subs *subscriptions.Service, log *history.Log) *Service {
	return &Service{kv: kv, providers: providers, subs: subs, history: log}
}

// current is the stored state of a space, read at one revision.
type current struct {
	rev int64
	kvs map[string]map[string]libkv.KV // kind → id → stored
}

func (s *Service) read(ctx context.Context, space string) (*current, error) {
	cur := &current{kvs: make(map[string]map[string]libkv.KV, len(kinds))}
	for _, kind := range kinds {
		prefix := kindPrefix(space, kind)
		m := make(map[string]libkv.KV)
		rev, err := s.kv.Scan(ctx, prefix, cur.rev, 0, func(kv libkv.KV) error {
			m[strings.TrimPrefix(kv.Key, prefix)] = kv
			return nil
		})
		if err != nil {
			return nil, err
		}
		cur.rev = rev
		cur.kvs[kind] = m
	}
	return cur, nil
}

// Decode reads a state as a client sent it (JSON), strictly: an unknown
// field is an error that says where it is.
func Decode(data []byte) (State, error) {
	var raw struct {
		Space string `json:"space"`
		// Revision is what export says it read at: accepted, and
		// ignored, so an exported state applies as it is.
		Revision      int64             `json:"revision"`
		Functions     []json.RawMessage `json:"functions"`
		Subscriptions []json.RawMessage `json:"subscriptions"`
		EventTypes    []json.RawMessage `json:"eventTypes"`
		CORS          []json.RawMessage `json:"cors"`
	}
	if err := strict(data, &raw); err != nil {
		return State{}, errkind.New(errkind.Invalid, "state: %s", errkind.Message(err))
	}
	var doc any
	if json.Unmarshal(data, &doc) == nil {
		if path, ok := findFromEnv(doc, ""); ok {
			return State{}, errkind.New(errkind.Invalid, "%s: {\"fromEnv\": …} is for the client to resolve (event-gateway apply sets it from the environment): send the value", path)
		}
	}
	st := State{Space: raw.Space}
	if err := decodeList(KindFunctions, raw.Functions, &st.Functions); err != nil {
		return State{}, err
	}
	if err := decodeList(KindSubscriptions, raw.Subscriptions, &st.Subscriptions); err != nil {
		return State{}, err
	}
	if err := decodeList("eventTypes", raw.EventTypes, &st.EventTypes); err != nil {
		return State{}, err
	}
	if err := decodeList(KindCORS, raw.CORS, &st.CORS); err != nil {
		return State{}, err
	}
	return st, nil
}

func decodeList[T any](name string, raws []json.RawMessage, out *[]T) error {
	*out = make([]T, len(raws))
	for i, r := range raws {
		if err := strict(r, &(*out)[i]); err != nil {
			return errkind.New(errkind.Invalid, "%s[%d]: %s", name, i, errkind.Message(err))
		}
	}
	return nil
}

// strict decodes one JSON value, refusing unknown fields and trailing
// data, with messages that name the field.
func strict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var (
			syntax    *json.SyntaxError
			typeError *json.UnmarshalTypeError
		)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return errkind.New(errkind.Invalid, "not a complete JSON object")
		case errors.As(err, &syntax):
			return errkind.New(errkind.Invalid, "not valid JSON at byte %d: %s", syntax.Offset, syntax.Error())
		case errors.As(err, &typeError) && typeError.Field != "":
			return errkind.New(errkind.Invalid, "field %s must be a JSON %s", typeError.Field, errkind.JSONType(typeError.Type.Kind()))
		case errors.As(err, &typeError):
			return errkind.New(errkind.Invalid, "must be a JSON object")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return errkind.New(errkind.Invalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		// A provider's own decoding (functions.Provider) says what is wrong.
		return errkind.Wrap(errkind.Invalid, err, "%s", err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errkind.New(errkind.Invalid, "data after the JSON value")
	}
	return nil
}

// at prefixes the message of a validation error with where it is.
func at(err error, format string, args ...any) error {
	if errkind.Of(err) == errkind.Internal {
		return err
	}
	return errkind.New(errkind.Of(err), "%s: %s", fmt.Sprintf(format, args...), errkind.Message(err))
}

// Apply makes space match the state in data (JSON), or with dryRun only
// says what it would change.
func (s *Service) Apply(ctx context.Context, space string, data []byte, dryRun bool) (Plan, error) {
	if err := functions.ValidateSpace(space); err != nil {
		return Plan{}, err
	}
	st, err := Decode(data)
	if err != nil {
		return Plan{}, err
	}
	if st.Space != "" && st.Space != space {
		return Plan{}, errkind.New(errkind.Invalid, "the state is for space %q, not %q", st.Space, space)
	}
	cur, err := s.read(ctx, space)
	if err != nil {
		return Plan{}, err
	}
	return s.apply(history.WithVia(ctx, history.ViaApply, 0), space, st, cur, dryRun)
}

// ops collects the writes of a plan, one per key: a later write of a key
// replaces an earlier one (etcd refuses a key twice in a transaction), so
// a subscription's delete-then-put leaves the put of the keys it keeps.
type ops struct {
	order []string
	byKey map[string]libkv.Op
}

func (o *ops) add(list ...libkv.Op) {
	if o.byKey == nil {
		o.byKey = make(map[string]libkv.Op)
	}
	for _, op := range list {
		k := op.Key()
		if _, ok := o.byKey[k]; !ok {
			o.order = append(o.order, k)
		}
		o.byKey[k] = op
	}
}

func (o *ops) list() []libkv.Op {
	out := make([]libkv.Op, len(o.order))
	for i, k := range o.order {
		out[i] = o.byKey[k]
	}
	return out
}

// sameJSON reports whether two JSON values are equal as values.
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// apply plans the change from cur to st and, unless dryRun, commits it.
func (s *Service) apply(ctx context.Context, space string, st State, cur *current, dryRun bool) (Plan, error) {
	plan := Plan{Space: space, DryRun: dryRun, Revision: cur.rev, Changes: []Change{}}
	var w ops
	note := func(kind, id string, old libkv.KV, exists bool, val []byte) (changed bool) {
		switch {
		case !exists:
			plan.Changes = append(plan.Changes, Change{kind, id, history.Create})
		case sameJSON(old.Value, val):
			plan.Unchanged++
			return false
		default:
			plan.Changes = append(plan.Changes, Change{kind, id, history.Update})
		}
		return true
	}

	// Functions.
	fns := make(map[string]bool, len(st.Functions))
	for i, f := range st.Functions {
		where := func() string { return fmt.Sprintf("functions[%d] (functionId %q)", i, f.ID) }
		if fns[f.ID] {
			return Plan{}, errkind.New(errkind.Invalid, "%s: declared twice", where())
		}
		old, exists := cur.kvs[KindFunctions][f.ID]
		var nf functions.Function
		var err error
		if exists {
			var stored functions.Function
			if err := json.Unmarshal(old.Value, &stored); err != nil {
				return Plan{}, fmt.Errorf("decode function %q: %w", f.ID, err)
			}
			// A secret given as functions.Redacted (as export shows it)
			// keeps the stored one.
			nf, err = s.providers.Merge(stored, f)
		} else {
			nf, err = s.providers.Validate(f)
		}
		if err != nil {
			return Plan{}, at(err, "%s", where())
		}
		fns[nf.ID] = true
		val, err := plainjson.Marshal(nf)
		if err != nil {
			return Plan{}, fmt.Errorf("encode function: %w", err)
		}
		if note(KindFunctions, nf.ID, old, exists, val) {
			w.add(libkv.Put(functions.FunctionKey(space, nf.ID), val))
		}
	}

	// Event types.
	types := make(map[string]bool, len(st.EventTypes))
	for i, et := range st.EventTypes {
		where := func() string { return fmt.Sprintf("eventTypes[%d] (name %q)", i, et.Name) }
		if et.Space != "" && et.Space != space {
			return Plan{}, errkind.New(errkind.Invalid, "%s: space %q is not %q", where(), et.Space, space)
		}
		et.Space = space
		val, err := eventtypes.Prepare(&et)
		if err != nil {
			return Plan{}, at(err, "%s", where())
		}
		if types[et.Name] {
			return Plan{}, errkind.New(errkind.Invalid, "%s: declared twice", where())
		}
		types[et.Name] = true
		if et.AuthorizerID != "" && !fns[et.AuthorizerID] {
			return Plan{}, errkind.New(errkind.Invalid, "%s: authorizer function %q does not exist", where(), et.AuthorizerID)
		}
		old, exists := cur.kvs[KindEventTypes][et.Name]
		if !note(KindEventTypes, et.Name, old, exists, val) {
			continue
		}
		var prev *eventtypes.EventType
		if exists {
			prev = new(eventtypes.EventType)
			if err := json.Unmarshal(old.Value, prev); err != nil {
				return Plan{}, fmt.Errorf("decode event type %q: %w", et.Name, err)
			}
		}
		w.add(eventtypes.PutOps(space, prev, &et, val)...)
	}

	// Subscriptions.
	subs := make([]subscriptions.Subscription, len(st.Subscriptions))
	segs := make([][]subscriptions.Segment, len(st.Subscriptions))
	for i, sub := range st.Subscriptions {
		where := func() string {
			what := strings.Join(slices.DeleteFunc([]string{sub.Event, sub.Method, sub.Path}, func(s string) bool { return s == "" }), " ")
			return fmt.Sprintf("subscriptions[%d] (%s → %s)", i, what, sub.FunctionID)
		}
		given := sub.ID
		sg, err := sub.Normalize(space)
		if err != nil {
			return Plan{}, at(err, "%s", where())
		}
		if given != "" && given != sub.ID {
			return Plan{}, errkind.New(errkind.Invalid, "%s: subscriptionId %q is not the one derived from it (%s): leave it out", where(), given, sub.ID)
		}
		if !fns[sub.FunctionID] {
			return Plan{}, errkind.New(errkind.Invalid, "%s: function %q does not exist", where(), sub.FunctionID)
		}
		if sub.NeedsEventType() && !types[sub.Event] {
			return Plan{}, errkind.New(errkind.Invalid, "%s: event type %q is not registered in space %q: declare it under eventTypes", where(), sub.Event, space)
		}
		subs[i], segs[i] = sub, sg
	}
	if err := subscriptions.CheckRoutes(space, subs, segs); err != nil {
		return Plan{}, at(err, "subscriptions")
	}
	wantSubs := make(map[string]bool, len(subs))
	routes := false
	for i := range subs {
		sub := &subs[i]
		wantSubs[sub.ID] = true
		val, err := plainjson.Marshal(sub)
		if err != nil {
			return Plan{}, fmt.Errorf("encode subscription: %w", err)
		}
		old, exists := cur.kvs[KindSubscriptions][sub.ID]
		if !note(KindSubscriptions, sub.ID, old, exists, val) {
			continue
		}
		if exists {
			var prev subscriptions.Subscription
			if err := json.Unmarshal(old.Value, &prev); err != nil {
				return Plan{}, fmt.Errorf("decode subscription %q: %w", sub.ID, err)
			}
			w.add(subscriptions.DeleteOps(space, &prev)...)
		}
		w.add(subscriptions.PutOps(space, sub, segs[i], val)...)
		routes = routes || subscriptions.ShapeKey(space, sub) != ""
	}

	// CORS configurations.
	wantCORS := make(map[string]bool, len(st.CORS))
	var corsDone []cors.Config
	for i, c := range st.CORS {
		where := func() string { return fmt.Sprintf("cors[%d] (%s %s)", i, c.Method, c.Path) }
		if c.Space != "" && c.Space != space {
			return Plan{}, errkind.New(errkind.Invalid, "%s: space %q is not %q", where(), c.Space, space)
		}
		sg, err := c.Normalize()
		if err != nil {
			return Plan{}, at(err, "%s", where())
		}
		if err := cors.CheckConflicts(c, sg, corsDone); err != nil {
			return Plan{}, at(err, "%s", where())
		}
		corsDone = append(corsDone, c)
		wantCORS[c.ID] = true
		val, err := c.Encode()
		if err != nil {
			return Plan{}, fmt.Errorf("encode CORS configuration: %w", err)
		}
		old, exists := cur.kvs[KindCORS][c.ID]
		if note(KindCORS, c.ID, old, exists, val) {
			w.add(libkv.Put(cors.Key(space, c.ID), val))
		}
	}

	// Deletions: what is stored and not declared. Subscriptions and
	// event types first, in the order of the plan; in the transaction
	// order does not matter.
	for id, kv := range cur.kvs[KindSubscriptions] {
		if wantSubs[id] {
			continue
		}
		var prev subscriptions.Subscription
		if err := json.Unmarshal(kv.Value, &prev); err != nil {
			return Plan{}, fmt.Errorf("decode subscription %q: %w", id, err)
		}
		plan.Changes = append(plan.Changes, Change{KindSubscriptions, id, history.Delete})
		w.add(subscriptions.DeleteOps(space, &prev)...)
	}
	for name, kv := range cur.kvs[KindEventTypes] {
		if types[name] {
			continue
		}
		var prev eventtypes.EventType
		if err := json.Unmarshal(kv.Value, &prev); err != nil {
			return Plan{}, fmt.Errorf("decode event type %q: %w", name, err)
		}
		plan.Changes = append(plan.Changes, Change{KindEventTypes, name, history.Delete})
		w.add(eventtypes.DeleteOps(space, &prev)...)
	}
	for id := range cur.kvs[KindFunctions] {
		if !fns[id] {
			plan.Changes = append(plan.Changes, Change{KindFunctions, id, history.Delete})
			w.add(libkv.Del(functions.FunctionKey(space, id)))
		}
	}
	for id := range cur.kvs[KindCORS] {
		if !wantCORS[id] {
			plan.Changes = append(plan.Changes, Change{KindCORS, id, history.Delete})
			w.add(libkv.Del(cors.Key(space, id)))
		}
	}
	sortChanges(plan.Changes)

	if dryRun || len(w.order) == 0 {
		return plan, nil
	}
	if routes {
		// Routes stored by earlier releases get their shape keys first,
		// as before any route is created.
		if err := s.subs.EnsureIndexed(ctx); err != nil {
			return Plan{}, err
		}
	}
	// Commit only if nothing in the space changed since it was read: a
	// recorded change adds a history record, and a change by a writer
	// without the history (an older gateway) modifies a resource key.
	conds := []libkv.Cond{libkv.PrefixUnchangedSince(history.Prefix(space), cur.rev)}
	for _, kind := range kinds {
		conds = append(conds, libkv.PrefixUnchangedSince(kindPrefix(space, kind), cur.rev))
	}
	ok, rev, err := s.kv.Txn(ctx, conds, w.list())
	if err != nil {
		return Plan{}, err
	}
	if !ok {
		return Plan{}, errkind.New(errkind.Conflict, "space %q was changed by another writer after it was read at revision %d: nothing was applied; run the apply again to plan against the new state", space, cur.rev)
	}
	plan.Revision = rev
	return plan, nil
}

// sortChanges orders a plan by kind, then id, so plans read the same
// every time.
func sortChanges(cs []Change) {
	rank := map[string]int{KindFunctions: 0, KindEventTypes: 1, KindSubscriptions: 2, KindCORS: 3}
	less := func(a, b Change) int {
		if d := rank[a.Kind] - rank[b.Kind]; d != 0 {
			return d
		}
		return strings.Compare(a.ID, b.ID)
	}
	slices.SortFunc(cs, less)
}

func sortedIDs[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// Export returns the state of space in the form Apply takes, secrets
// redacted (functions.Redacted, which Apply reads as "keep the stored
// secret") and the fields derived from others left out.
func (s *Service) Export(ctx context.Context, space string) (json.RawMessage, error) {
	if err := functions.ValidateSpace(space); err != nil {
		return nil, err
	}
	cur, err := s.read(ctx, space)
	if err != nil {
		return nil, err
	}
	out := struct {
		Space         string            `json:"space"`
		Revision      int64             `json:"revision"`
		Functions     []json.RawMessage `json:"functions"`
		EventTypes    []json.RawMessage `json:"eventTypes"`
		Subscriptions []json.RawMessage `json:"subscriptions"`
		CORS          []json.RawMessage `json:"cors"`
	}{Space: space, Revision: cur.rev, Functions: []json.RawMessage{}, EventTypes: []json.RawMessage{}, Subscriptions: []json.RawMessage{}, CORS: []json.RawMessage{}}
	for _, id := range sortedIDs(cur.kvs[KindFunctions]) {
		var f functions.Function
		if err := json.Unmarshal(cur.kvs[KindFunctions][id].Value, &f); err != nil {
			return nil, fmt.Errorf("decode function %q: %w", id, err)
		}
		b, err := plainjson.Marshal(s.providers.Redact(f))
		if err != nil {
			return nil, err
		}
		out.Functions = append(out.Functions, b)
	}
	for _, id := range sortedIDs(cur.kvs[KindEventTypes]) {
		out.EventTypes = append(out.EventTypes, without(cur.kvs[KindEventTypes][id].Value, "space"))
	}
	for _, id := range sortedIDs(cur.kvs[KindSubscriptions]) {
		out.Subscriptions = append(out.Subscriptions, without(cur.kvs[KindSubscriptions][id].Value, "subscriptionId"))
	}
	for _, id := range sortedIDs(cur.kvs[KindCORS]) {
		out.CORS = append(out.CORS, without(cur.kvs[KindCORS][id].Value, "corsId", "space"))
	}
	return plainjson.Marshal(out)
}

// without returns the JSON object v without the given fields.
func without(v []byte, fields ...string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		return v
	}
	for _, f := range fields {
		delete(m, f)
	}
	b, err := plainjson.Marshal(m)
	if err != nil {
		return v
	}
	return b
}

// Rollback makes space what it was at revision rev, in one transaction
// recorded in its history as a rollback, or with dryRun says what that
// would change. The state at rev is the current one with every recorded
// change after rev undone, so it needs the history from rev on, not
// etcd's own history (which compaction drops).
func (s *Service) Rollback(ctx context.Context, space string, rev int64, dryRun bool) (Plan, error) {
	if err := functions.ValidateSpace(space); err != nil {
		return Plan{}, err
	}
	if rev <= 0 {
		return Plan{}, errkind.New(errkind.Invalid, "revision must be a positive store revision, as the history lists them")
	}
	cur, err := s.read(ctx, space)
	if err != nil {
		return Plan{}, err
	}
	if rev > cur.rev {
		return Plan{}, errkind.New(errkind.Invalid, "revision %d is in the future: the store is at revision %d", rev, cur.rev)
	}
	// The value of each resource at rev: the "before" of its first
	// change after rev, or the current value if none changed it. Changes
	// after the read at cur.rev are left out: the commit's guard refuses
	// the rollback if there are any.
	then := make(map[string]map[string][]byte, len(kinds))
	undone := make(map[string]map[string]bool, len(kinds))
	for _, kind := range kinds {
		then[kind] = make(map[string][]byte)
		undone[kind] = make(map[string]bool)
		for id, kv := range cur.kvs[kind] {
			then[kind][id] = kv.Value
		}
	}
	err = s.history.Since(ctx, space, rev, cur.rev, func(e history.Entry) error {
		for _, c := range e.Changes {
			if then[c.Kind] == nil || undone[c.Kind][c.ID] {
				continue // access keys are not rolled back
			}
			undone[c.Kind][c.ID] = true
			if c.Before == nil {
				delete(then[c.Kind], c.ID)
			} else {
				then[c.Kind][c.ID] = c.Before
			}
		}
		return nil
	})
	if err != nil {
		return Plan{}, err
	}
	for _, kind := range kinds {
		for id, kv := range cur.kvs[kind] {
			if kv.ModRevision > rev && !undone[kind][id] {
				return Plan{}, errkind.New(errkind.Conflict, "%s %q was changed at revision %d without a history record (by a gateway without history?): its value at revision %d is unknown", kind, id, kv.ModRevision, rev)
			}
		}
	}
	st := State{Space: space}
	if err := decodeAll(then[KindFunctions], &st.Functions); err != nil {
		return Plan{}, err
	}
	if err := decodeAll(then[KindSubscriptions], &st.Subscriptions); err != nil {
		return Plan{}, err
	}
	if err := decodeAll(then[KindEventTypes], &st.EventTypes); err != nil {
		return Plan{}, err
	}
	if err := decodeAll(then[KindCORS], &st.CORS); err != nil {
		return Plan{}, err
	}
	return s.apply(history.WithVia(ctx, history.ViaRollback, rev), space, st, cur, dryRun)
}

func decodeAll[T any](vals map[string][]byte, out *[]T) error {
	for _, id := range sortedIDs(vals) {
		var v T
		if err := json.Unmarshal(vals[id], &v); err != nil {
			return fmt.Errorf("decode %s: %w", id, err)
		}
		*out = append(*out, v)
	}
	return nil
}

// History returns the history of space: see history.Log.List.
func (s *Service) History(ctx context.Context, space string, before int64, limit int) ([]history.Entry, int64, error) {
	if err := functions.ValidateSpace(space); err != nil {
		return nil, 0, err
	}
	return s.history.List(ctx, space, before, limit)
}

// findFromEnv returns the path of the first {"fromEnv": …} in v: a secret
// the client should have resolved.
func findFromEnv(v any, path string) (string, bool) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["fromEnv"]; ok && len(v) == 1 {
			return path, true
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if p, ok := findFromEnv(v[k], strings.TrimPrefix(path+"."+k, ".")); ok {
				return p, true
			}
		}
	case []any:
		for i, e := range v {
			if p, ok := findFromEnv(e, fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, true
			}
		}
	}
	return "", false
}
