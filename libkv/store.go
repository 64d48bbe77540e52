// Package libkv is the gateway's configuration store: typed access to etcd
// with revisions, atomic conditional transactions and a resumable prefix
// watch. It is the only package that talks to the etcd client; everything
// above it sees keys, values and revisions.
package libkv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/event-gateway/event-gateway/internal/errkind"
)

// Errors returned by the store. Callers test them with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("key not found")
	// ErrUnavailable: etcd could not be reached in time.
	ErrUnavailable = &errkind.Error{Kind: errkind.Unavailable, Msg: "configuration store unavailable, try again later"}
	// ErrCompacted: a watch asked for a revision that etcd has compacted away;
	// the watcher must list again.
	ErrCompacted = errors.New("watch revision compacted")
)

// KV is a key, its value and the revision that last modified it.
type KV struct {
	Key         string
	Value       []byte
	ModRevision int64
}

// Config configures a Store.
type Config struct {
	// Endpoints are the etcd client URLs or host:port pairs.
	Endpoints []string
	// Prefix is prepended to every key, so several gateways can share one etcd.
	Prefix string
	// DialTimeout bounds the initial connection attempt of each call.
	DialTimeout time.Duration
	// Username and Password authenticate to etcd when set.
	Username, Password string
	// CertFile and KeyFile are a client certificate for etcd's TLS; CAFile
	// is the CA that signed etcd's server certificates. Setting any of
	// them connects with TLS.
	CertFile, KeyFile, CAFile string
}

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "/event-gateway/"

// Store is an etcd-backed key-value store. It is safe for concurrent use.
type Store struct {
	cli *clientv3.Client
	kv  clientv3.KV
	w   clientv3.Watcher
	// hook, when set, adds to every transaction this Store sends
	// (WithTxnHook).
	hook TxnHook
}

// TxnHook extends a transaction before it is sent: given its writes, it
// returns more conditions and writes, committed with them or not at all.
// The configuration history uses it to record every change in the
// transaction that makes it.
type TxnHook func(ctx context.Context, ops []Op) ([]Cond, []Op, error)

// WithTxnHook returns a view of the store, on the same connection, whose
// writes (Put, Delete, Create, CompareAndSwap, Txn) all go through one
// transaction extended by hook. Close the original Store, not the view.
func (s *Store) WithTxnHook(hook TxnHook) *Store {
	v := *s
	v.hook = hook
	return &v
}

// Open creates a Store. It does not wait for etcd to be reachable: calls made
// while etcd is away fail with ErrUnavailable once their context ends.
func Open(cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("libkv: no etcd endpoints")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	var tlsConfig *tls.Config
	if cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CAFile != "" {
		if (cfg.CertFile == "") != (cfg.KeyFile == "") {
			return nil, errors.New("libkv: a client certificate needs both a certificate and a key file")
		}
		info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}
		var err error
		if tlsConfig, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("libkv: etcd TLS: %w", err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		TLS:                  tlsConfig,
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Username:             cfg.Username,
		Password:             cfg.Password,
		// The client logs every reconnect attempt at warn level through zap;
		// the gateway reports store health itself, through slog.
		Logger: nopLogger(),
		// gRPC's default reconnect backoff grows to two minutes: after an
		// etcd outage a gateway would keep answering 503 long after etcd
		// is back. Retry at least every two seconds instead.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("libkv: create etcd client: %w", err)
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Store{
		cli: cli,
		kv:  namespace.NewKV(cli.KV, prefix),
		w:   namespace.NewWatcher(cli.Watcher, prefix),
	}, nil
}

// Close releases the connection to etcd.
func (s *Store) Close() error { return s.cli.Close() }

// Ping checks that etcd answers, with a linearizable read of one key.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.kv.Get(ctx, "health", clientv3.WithCountOnly())
	return storeErr("ping", err)
}

// Get returns the value of key, or ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (KV, error) {
	resp, err := s.kv.Get(ctx, key)
	if err != nil {
		return KV{}, storeErr("get "+key, err)
	}
	if len(resp.Kvs) == 0 {
		return KV{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	kv := resp.Kvs[0]
	return KV{Key: key, Value: kv.Value, ModRevision: kv.ModRevision}, nil
}

// List returns every key under prefix, in key order, and the store revision
// the list was read at, so a watch can resume exactly after it.
func (s *Store) List(ctx context.Context, prefix string) ([]KV, int64, error) {
	resp, err := s.kv.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, storeErr("list "+prefix, err)
	}
	out := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = KV{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision}
	}
	return out, resp.Header.Revision, nil
}

// Scan calls fn for every key under prefix, in key order, reading them in
// pages of pageSize at revision rev (0: the current one), which it returns.
// Unlike List it never holds more than a page of a large prefix in memory.
// Pass the returned revision to further Scans to read several prefixes as
// of one moment.
func (s *Store) Scan(ctx context.Context, prefix string, rev, pageSize int64, fn func(KV) error) (int64, error) {
	if pageSize <= 0 {
		pageSize = 1000
	}
	end := clientv3.GetPrefixRangeEnd(prefix)
	key := prefix
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(pageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.kv.Get(ctx, key, opts...)
		if err != nil {
			return 0, storeErr("scan "+prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(KV{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision}); err != nil {
				return 0, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		// The next page starts just after the last key of this one.
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// NextKey returns the first key in [from, end) as of revision rev (0: the
// current one), whether there is one, and the revision it read at. It
// reads the key alone, not its value: it lets a reader jump over whole
// ranges of keys it does not need.
func (s *Store) NextKey(ctx context.Context, from, end string, rev int64) (key string, ok bool, readRev int64, err error) {
	opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(1), clientv3.WithKeysOnly()}
	if rev != 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := s.kv.Get(ctx, from, opts...)
	if err != nil {
		return "", false, 0, storeErr("read key after "+from, err)
	}
	if rev == 0 {
		rev = resp.Header.Revision
	}
	if len(resp.Kvs) == 0 {
		return "", false, rev, nil
	}
	return string(resp.Kvs[0].Key), true, rev, nil
}

// Revision returns the store's current revision: every change committed
// before the call has this revision or an earlier one.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	resp, err := s.kv.Get(ctx, "revision", clientv3.WithCountOnly())
	if err != nil {
		return 0, storeErr("read revision", err)
	}
	return resp.Header.Revision, nil
}

// PrefixEnd returns the end of the range of keys that start with prefix.
func PrefixEnd(prefix string) string { return clientv3.GetPrefixRangeEnd(prefix) }

// Put writes key unconditionally and returns the new store revision.
func (s *Store) Put(ctx context.Context, key string, value []byte) (int64, error) {
	if s.hook != nil {
		_, rev, err := s.Txn(ctx, nil, []Op{Put(key, value)})
		return rev, err
	}
	resp, err := s.kv.Put(ctx, key, string(value))
	if err != nil {
		return 0, storeErr("put "+key, err)
	}
	return resp.Header.Revision, nil
}

// Delete removes key. It returns ErrNotFound when there was no such key.
func (s *Store) Delete(ctx context.Context, key string) error {
	if s.hook != nil {
		ok, _, err := s.Txn(ctx, []Cond{Exists(key)}, []Op{Del(key)})
		if err == nil && !ok {
			err = fmt.Errorf("delete %s: %w", key, ErrNotFound)
		}
		return err
	}
	resp, err := s.kv.Delete(ctx, key)
	if err != nil {
		return storeErr("delete "+key, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	return nil
}

// Create writes key only if it does not exist yet. It reports whether it did.
func (s *Store) Create(ctx context.Context, key string, value []byte) (bool, error) {
	ok, _, err := s.Txn(ctx, []Cond{Absent(key)}, []Op{Put(key, value)})
	return ok, err
}

// CompareAndSwap writes key only if it was last modified at modRevision. It
// reports whether it did.
func (s *Store) CompareAndSwap(ctx context.Context, key string, value []byte, modRevision int64) (bool, error) {
	ok, _, err := s.Txn(ctx, []Cond{ModRevisionIs(key, modRevision)}, []Op{Put(key, value)})
	return ok, err
}

// Txn applies ops atomically if every condition holds, in one etcd
// transaction. It reports whether the conditions held (and so the ops were
// applied) and the store revision after the transaction.
func (s *Store) Txn(ctx context.Context, conds []Cond, ops []Op) (bool, int64, error) {
	if s.hook != nil && len(ops) > 0 {
		moreConds, moreOps, err := s.hook(ctx, ops)
		if err != nil {
			return false, 0, err
		}
		conds = append(conds[:len(conds):len(conds)], moreConds...)
		ops = append(ops[:len(ops):len(ops)], moreOps...)
	}
	cmps := make([]clientv3.Cmp, len(conds))
	for i, c := range conds {
		cmps[i] = c.cmp
	}
	eops := make([]clientv3.Op, len(ops))
	for i, o := range ops {
		eops[i] = o.op
	}
	resp, err := s.kv.Txn(ctx).If(cmps...).Then(eops...).Commit()
	if err != nil {
		return false, 0, storeErr("txn", err)
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

// Cond is a condition of a transaction.
type Cond struct{ cmp clientv3.Cmp }

// Absent holds when key does not exist.
func Absent(key string) Cond {
	return Cond{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
}

// Exists holds when key exists.
func Exists(key string) Cond {
	return Cond{clientv3.Compare(clientv3.CreateRevision(key), ">", 0)}
}

// ModRevisionIs holds when key was last modified at rev.
func ModRevisionIs(key string, rev int64) Cond {
	return Cond{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}
}

// PrefixEmpty holds when no key exists under prefix.
func PrefixEmpty(prefix string) Cond {
	// Over a range with no keys etcd compares against a zero key, whose
	// create revision is 0; over a non-empty range every key must match.
	return Cond{clientv3.Compare(clientv3.CreateRevision(prefix), "=", 0).WithPrefix()}
}

// PrefixUnchangedSince holds when no key under prefix was created or
// modified after revision rev. Deletions are not seen: use it to guard a
// decision that more keys could invalidate but fewer keys cannot.
func PrefixUnchangedSince(prefix string, rev int64) Cond {
	return Cond{clientv3.Compare(clientv3.ModRevision(prefix), "<", rev+1).WithPrefix()}
}

// Op is a write inside a transaction.
type Op struct{ op clientv3.Op }

// Put writes key.
func Put(key string, value []byte) Op { return Op{clientv3.OpPut(key, string(value))} }

// Del deletes key.
func Del(key string) Op { return Op{clientv3.OpDelete(key)} }

// Key returns the key an operation writes.
func (o Op) Key() string { return string(o.op.KeyBytes()) }

// Value returns the value a Put writes (nil for a Del).
func (o Op) Value() []byte { return o.op.ValueBytes() }

// IsDelete reports whether the operation is a Del.
func (o Op) IsDelete() bool { return o.op.IsDelete() }

// storeErr turns an etcd client error into one of the store's errors.
func storeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTimeout) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) || errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) {
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
	if errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) {
		// etcd's --max-txn-ops or --max-request-bytes: the change is too
		// big for one transaction, however often it is retried.
		return fmt.Errorf("%s: %w", op, errkind.Wrap(errkind.TooLarge, err,
			"the change is too large for one etcd transaction (%s): split it, or raise etcd's --max-txn-ops / --max-request-bytes", rpctypes.ErrorDesc(err)))
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Range is the keys from Start (included) to End (excluded).
type Range struct{ Start, End string }

// maxReadsPerTxn bounds the reads of one transaction (etcd allows 128
// operations by default).
const maxReadsPerTxn = 64

// FirstInRanges returns, for each range, its first key and value (a zero
// KV when the range is empty), all read as of one revision, which it
// returns. It reads at most one key per range, so it costs the same
// whatever the number of keys in them.
func (s *Store) FirstInRanges(ctx context.Context, ranges []Range) ([]KV, int64, error) {
	out := make([]KV, len(ranges))
	var rev int64
	for lo := 0; lo < len(ranges); lo += maxReadsPerTxn {
		hi := min(lo+maxReadsPerTxn, len(ranges))
		ops := make([]clientv3.Op, 0, hi-lo)
		for _, r := range ranges[lo:hi] {
			opts := []clientv3.OpOption{clientv3.WithRange(r.End), clientv3.WithLimit(1)}
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			ops = append(ops, clientv3.OpGet(r.Start, opts...))
		}
		resp, err := s.kv.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, 0, storeErr("read ranges", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for i, r := range resp.Responses {
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
				out[lo+i] = KV{Key: string(kvs[0].Key), Value: kvs[0].Value, ModRevision: kvs[0].ModRevision}
			}
		}
	}
	return out, rev, nil
}

// RangeUnchangedSince holds when no key of r was created or modified after
// revision rev: PrefixUnchangedSince for any range.
func RangeUnchangedSince(r Range, rev int64) Cond {
	return Cond{clientv3.Compare(clientv3.ModRevision(r.Start), "<", rev+1).WithRange(r.End)}
}

// ListAfter calls keep for the keys under prefix that come after
// prefix+after ("" for the first key), in key order, all read at one
// revision in pages, until keep has accepted limit of them (0: no limit).
// It reports whether keys remain after the last one read: a reader can
// continue after that one. keep returns whether the key counts toward
// limit (a filter may refuse it).
func (s *Store) ListAfter(ctx context.Context, prefix, after string, limit int, keep func(KV) (bool, error)) (more bool, err error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	key := prefix
	if after != "" {
		key = prefix + after + "\x00"
	}
	pageSize := int64(1000)
	if limit > 0 && limit < 1000 {
		// One more than asked, to see whether more remain.
		pageSize = int64(limit) + 1
	}
	var rev int64
	kept := 0
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(pageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.kv.Get(ctx, key, opts...)
		if err != nil {
			return false, storeErr("list "+prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for i, kv := range resp.Kvs {
			if limit > 0 && kept == limit {
				return true, nil
			}
			ok, err := keep(KV{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision})
			if err != nil {
				return false, err
			}
			if ok {
				kept++
			}
			if limit > 0 && kept == limit && i == len(resp.Kvs)-1 {
				return resp.More, nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return false, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// ListByRevision returns up to limit keys under prefix (0: all), ordered by
// the revision that last modified them: newest first, those modified at
// or before bound (0: any), or oldest first, those modified at or after
// bound (0: any). keysOnly leaves the values out. etcd sorts the whole
// prefix for it: use it on prefixes of bounded size.
func (s *Store) ListByRevision(ctx context.Context, prefix string, newestFirst, keysOnly bool, bound, limit int64) ([]KV, error) {
	order := clientv3.SortAscend
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithLimit(limit)}
	if keysOnly {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	if newestFirst {
		order = clientv3.SortDescend
		if bound > 0 {
			opts = append(opts, clientv3.WithMaxModRev(bound))
		}
	} else if bound > 0 {
		opts = append(opts, clientv3.WithMinModRev(bound))
	}
	opts = append(opts, clientv3.WithSort(clientv3.SortByModRevision, order))
	resp, err := s.kv.Get(ctx, prefix, opts...)
	if err != nil {
		return nil, storeErr("list "+prefix, err)
	}
	out := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = KV{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision}
	}
	return out, nil
}

// Read is one read of ReadTxn.
type Read struct {
	key  string
	opts []clientv3.OpOption
}

// ReadKey reads one key.
func ReadKey(key string) Read { return Read{key: key} }

// ReadCount counts the keys under prefix.
func ReadCount(prefix string) Read {
	return Read{prefix, []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}}
}

// ReadOldestKeys reads the keys, without their values, of the limit keys
// under prefix modified longest ago. etcd sorts the whole prefix for it:
// use it on prefixes of bounded size.
func ReadOldestKeys(prefix string, limit int64) Read {
	return Read{prefix, []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(limit),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend)}}
}

// ReadResult is what one Read found: the keys read (none for a key that
// does not exist) and, for ReadCount, their number.
type ReadResult struct {
	KVs   []KV
	Count int64
}

// ReadTxn makes several reads as of one revision, which it returns, in as
// few round trips as etcd's limit of operations per transaction allows.
func (s *Store) ReadTxn(ctx context.Context, reads []Read) ([]ReadResult, int64, error) {
	out := make([]ReadResult, len(reads))
	var rev int64
	for lo := 0; lo < len(reads); lo += maxReadsPerTxn {
		hi := min(lo+maxReadsPerTxn, len(reads))
		ops := make([]clientv3.Op, 0, hi-lo)
		for _, r := range reads[lo:hi] {
			opts := r.opts
			if rev != 0 {
				opts = append(opts[:len(opts):len(opts)], clientv3.WithRev(rev))
			}
			ops = append(ops, clientv3.OpGet(r.key, opts...))
		}
		resp, err := s.kv.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, 0, storeErr("read", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for i, r := range resp.Responses {
			rr := r.GetResponseRange()
			res := ReadResult{Count: rr.GetCount()}
			for _, kv := range rr.GetKvs() {
				res.KVs = append(res.KVs, KV{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision})
			}
			out[lo+i] = res
		}
	}
	return out, rev, nil
}
