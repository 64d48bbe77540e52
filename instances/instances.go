// Package instances registers each gateway of a cluster in the store, so
// that any of them can list them all: a key per instance under
// instances/, outside the spaces/ tree the router reads, bound to a lease
// the instance keeps alive. An instance that dies leaves the list within
// the lease's TTL.
package instances

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"time"

	"github.com/event-gateway/event-gateway/libkv"
)

// Root is the directory of the instances' keys.
const Root = "instances/"

// Info is what an instance says of itself.
type Info struct {
	ID        string    `json:"id"`
	ConfigURL string    `json:"configUrl"`
	EventsURL string    `json:"eventsUrl"`
	Version   string    `json:"version"`
	Started   time.Time `json:"started"`
	// Ready and Revision are the instance's readiness and the store
	// revision its routing reflects, as of Updated (the revision is
	// rewritten at most every ten seconds).
	Ready    bool      `json:"ready"`
	Revision int64     `json:"revision"`
	Updated  time.Time `json:"updated"`
}

// Store is what the registry needs of the store.
type Store interface {
	NewLease(ctx context.Context, ttl time.Duration) (*libkv.Lease, error)
	List(ctx context.Context, prefix string) ([]libkv.KV, int64, error)
}

// Options configures Register.
type Options struct {
	// TTL of the lease: how long a dead instance stays listed. Default 15s.
	TTL time.Duration
	// Check is how often the instance's figures are read. Default 1s.
	Check time.Duration
	// Rewrite is the shortest time between two writes for a change of
	// revision alone. Default 10s. A change of readiness is written at
	// once.
	Rewrite time.Duration
	Logger  *slog.Logger
}

// Register keeps the instance's key in the store until ctx ends, then
// removes it. It returns at once; the key is (re)written in the
// background, and a lease lost while etcd was away is granted again when
// it is back.
//
// Every write outside spaces/ moves the store's revision without the
// routers hearing of it, so the key is written only when what it says
// changes: at registration, when the readiness changes, and when the
// revision changed, at most every Rewrite. The lease's keepalives, which
// write nothing, say that the instance lives; an idle cluster writes
// nothing.
func Register(ctx context.Context, st Store, info func() Info, o Options) (done <-chan struct{}) {
	if o.TTL <= 0 {
		o.TTL = 15 * time.Second
	}
	if o.Check <= 0 {
		o.Check = time.Second
	}
	if o.Rewrite <= 0 {
		o.Rewrite = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for ctx.Err() == nil {
			run(ctx, st, info, o)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return ch
}

// run holds one lease until it is lost or ctx ends.
func run(ctx context.Context, st Store, info func() Info, o Options) {
	// Not ctx itself: the lease must still be revoked once ctx ends.
	lease, err := st.NewLease(context.WithoutCancel(ctx), o.TTL)
	if err != nil {
		if ctx.Err() == nil {
			o.Logger.Warn("instance not registered in the store yet", "error", err)
		}
		return
	}
	defer lease.Close() // revokes: the key goes at once on shutdown
	t := time.NewTicker(o.Check)
	defer t.Stop()
	var last Info
	written := false
	for {
		in := info()
		due := !written || in.Ready != last.Ready || in.Revision != last.Revision && time.Since(last.Updated) >= o.Rewrite
		if due {
			in.Updated = time.Now().UTC()
			b, _ := json.Marshal(in)
			pctx, cancel := context.WithTimeout(ctx, o.TTL/3)
			err := lease.Put(pctx, Root+in.ID, b)
			cancel()
			switch {
			case err == nil:
				last, written = in, true
			case ctx.Err() == nil:
				o.Logger.Warn("instance registration not written", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-lease.Done():
			o.Logger.Warn("instance registration lease lost: registering again")
			return
		case <-t.C:
		}
	}
}

// List returns the instances registered, by id.
func List(ctx context.Context, st Store) ([]Info, error) {
	kvs, _, err := st.List(ctx, Root)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(kvs))
	for _, kv := range kvs {
		var in Info
		if json.Unmarshal(kv.Value, &in) == nil {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
