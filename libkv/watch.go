package libkv

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Event is a change to one key.
type Event struct {
	Key string
	// Value is the new value; nil when Deleted.
	Value       []byte
	Deleted     bool
	ModRevision int64
}

// WatchResponse is one batch of changes, all at or below Revision.
type WatchResponse struct {
	Events []Event
	// Revision is the store revision this batch brings the watcher up to.
	Revision int64
	// Err is set on the last response before the channel closes, when the
	// watch ended for a reason other than its context ending. ErrCompacted
	// means the watcher must list again from scratch.
	Err error
}

// Watch streams the changes under prefix from revision rev on (pass the list
// revision plus one to resume exactly after a List). The channel closes when
// ctx ends or the watch fails; a failure is reported in the last response.
//
// While etcd is unreachable the watch waits and resumes by itself from the
// last revision it delivered, so a short outage loses no event.
func (s *Store) Watch(ctx context.Context, prefix string, rev int64) <-chan WatchResponse {
	out := make(chan WatchResponse)
	// RequireLeader ends the watch when its member is cut off from the
	// cluster, instead of silently delivering nothing.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.w.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithProgressNotify())
	go func() {
		defer close(out)
		defer cancel()
		for resp := range wch {
			wr := WatchResponse{Revision: resp.Header.Revision}
			if err := resp.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) || resp.CompactRevision != 0 {
					wr.Err = fmt.Errorf("watch %s from %d: %w (compacted at %d)", prefix, rev, ErrCompacted, resp.CompactRevision)
				} else {
					wr.Err = storeErr("watch "+prefix, err)
				}
				send(ctx, out, wr)
				return
			}
			wr.Events = make([]Event, len(resp.Events))
			for i, ev := range resp.Events {
				e := Event{Key: string(ev.Kv.Key), ModRevision: ev.Kv.ModRevision}
				if ev.Type == mvccpb.DELETE {
					e.Deleted = true
				} else {
					e.Value = ev.Kv.Value
				}
				wr.Events[i] = e
			}
			if !send(ctx, out, wr) {
				return
			}
		}
		// The etcd channel closes without an error response when the
		// context ends, or when the client is closed.
		if ctx.Err() == nil {
			send(ctx, out, WatchResponse{Err: fmt.Errorf("watch %s: %w: channel closed", prefix, ErrUnavailable)})
		}
	}()
	return out
}

func send(ctx context.Context, out chan<- WatchResponse, wr WatchResponse) bool {
	select {
	case out <- wr:
		return true
	case <-ctx.Done():
		return false
	}
}
