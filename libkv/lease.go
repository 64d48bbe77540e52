package libkv

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Lease is an etcd lease kept alive in the background: keys put with it
// disappear when it is closed, or when its holder stops renewing it (its
// process died, or lost etcd for longer than the TTL).
type Lease struct {
	s  *Store
	ss *concurrency.Session
}

// NewLease grants a lease of ttl (at least a second) and keeps it alive
// until Close, or until it is lost: see Done.
func (s *Store) NewLease(ctx context.Context, ttl time.Duration) (*Lease, error) {
	ss, err := concurrency.NewSession(s.cli, concurrency.WithTTL(max(1, int(ttl.Seconds()))), concurrency.WithContext(ctx))
	if err != nil {
		return nil, storeErr("grant lease", err)
	}
	return &Lease{s: s, ss: ss}, nil
}

// Put writes key, bound to the lease.
func (l *Lease) Put(ctx context.Context, key string, value []byte) error {
	_, err := l.s.kv.Put(ctx, key, string(value), clientv3.WithLease(l.ss.Lease()))
	return storeErr("put "+key, err)
}

// Done is closed when the lease is lost or closed.
func (l *Lease) Done() <-chan struct{} { return l.ss.Done() }

// Close revokes the lease, deleting its keys.
func (l *Lease) Close() error { return l.ss.Close() }
