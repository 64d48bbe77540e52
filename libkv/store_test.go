package libkv_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/internal/etcdtest"
	"github.com/event-gateway/event-gateway/libkv"
)

var etcd *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, func(s *etcdtest.Server) { etcd = s }) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestGetPutListDelete(t *testing.T) {
	s := etcd.Store(t)
	c := ctx(t)
	if _, err := s.Get(c, "a"); !errors.Is(err, libkv.ErrNotFound) {
		t.Fatalf("Get missing: got %v, want ErrNotFound", err)
	}
	rev, err := s.Put(c, "dir/a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(c, "dir/b", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(c, "other", []byte("3")); err != nil {
		t.Fatal(err)
	}
	kv, err := s.Get(c, "dir/a")
	if err != nil || string(kv.Value) != "1" || kv.ModRevision != rev {
		t.Fatalf("Get = %+v, %v; want value 1 at revision %d", kv, err, rev)
	}
	kvs, listRev, err := s.List(c, "dir/")
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs) != 2 || kvs[0].Key != "dir/a" || kvs[1].Key != "dir/b" {
		t.Fatalf("List = %+v; want dir/a, dir/b (keys relative to the prefix)", kvs)
	}
	if listRev < rev+2 {
		t.Fatalf("list revision %d is older than the writes (%d)", listRev, rev+2)
	}
	if err := s.Delete(c, "dir/a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(c, "dir/a"); !errors.Is(err, libkv.ErrNotFound) {
		t.Fatalf("second Delete: got %v, want ErrNotFound", err)
	}
}

func TestPrefixIsolation(t *testing.T) {
	a, b := etcd.Store(t), etcd.Store(t)
	c := ctx(t)
	if _, err := a.Put(c, "k", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(c, "k"); !errors.Is(err, libkv.ErrNotFound) {
		t.Fatalf("a store with another prefix sees the key: %v", err)
	}
}

func TestCreateAndCompareAndSwap(t *testing.T) {
	s := etcd.Store(t)
	c := ctx(t)
	ok, err := s.Create(c, "k", []byte("1"))
	if err != nil || !ok {
		t.Fatalf("first Create = %v, %v", ok, err)
	}
	ok, err = s.Create(c, "k", []byte("2"))
	if err != nil || ok {
		t.Fatalf("second Create = %v, %v; want false", ok, err)
	}
	kv, _ := s.Get(c, "k")
	if ok, err := s.CompareAndSwap(c, "k", []byte("3"), kv.ModRevision-1); err != nil || ok {
		t.Fatalf("CAS with a stale revision = %v, %v; want false", ok, err)
	}
	if ok, err := s.CompareAndSwap(c, "k", []byte("3"), kv.ModRevision); err != nil || !ok {
		t.Fatalf("CAS = %v, %v; want true", ok, err)
	}
	if kv, _ := s.Get(c, "k"); string(kv.Value) != "3" {
		t.Fatalf("value after CAS = %q", kv.Value)
	}
}

func TestTxnConditions(t *testing.T) {
	s := etcd.Store(t)
	c := ctx(t)
	// PrefixEmpty: true on an empty range, false once a key is in it.
	if ok, _, err := s.Txn(c, []libkv.Cond{libkv.PrefixEmpty("uses/f/")}, []libkv.Op{libkv.Put("x", nil)}); err != nil || !ok {
		t.Fatalf("PrefixEmpty on empty range = %v, %v", ok, err)
	}
	s.Put(c, "uses/f/1", nil)
	s.Put(c, "uses/fg/1", nil) // a sibling prefix must not count
	if ok, _, err := s.Txn(c, []libkv.Cond{libkv.PrefixEmpty("uses/f/")}, nil); err != nil || ok {
		t.Fatalf("PrefixEmpty on non-empty range = %v, %v", ok, err)
	}
	if ok, _, err := s.Txn(c, []libkv.Cond{libkv.PrefixEmpty("uses/g/")}, nil); err != nil || !ok {
		t.Fatalf("PrefixEmpty on another empty range = %v, %v", ok, err)
	}

	// PrefixUnchangedSince: a write under the prefix after rev fails it.
	_, rev, _ := s.List(c, "subs/")
	if ok, _, err := s.Txn(c, []libkv.Cond{libkv.PrefixUnchangedSince("subs/", rev)}, nil); err != nil || !ok {
		t.Fatalf("unchanged prefix = %v, %v", ok, err)
	}
	s.Put(c, "subs/1", nil)
	if ok, _, err := s.Txn(c, []libkv.Cond{libkv.PrefixUnchangedSince("subs/", rev)}, nil); err != nil || ok {
		t.Fatalf("changed prefix = %v, %v; want false", ok, err)
	}
	s.Put(c, "unrelated", nil)
	_, rev, _ = s.List(c, "subs/")
	s.Put(c, "unrelated", nil)
	if ok, _, err := s.Txn(c, []libkv.Cond{libkv.PrefixUnchangedSince("subs/", rev)}, nil); err != nil || !ok {
		t.Fatalf("a write outside the prefix failed the condition: %v, %v", ok, err)
	}

	// Exists / Absent, and ops apply together or not at all.
	ok, _, err := s.Txn(c, []libkv.Cond{libkv.Exists("nope")}, []libkv.Op{libkv.Put("a", nil), libkv.Put("b", nil)})
	if err != nil || ok {
		t.Fatalf("Exists on a missing key = %v, %v", ok, err)
	}
	if _, err := s.Get(c, "a"); !errors.Is(err, libkv.ErrNotFound) {
		t.Fatal("ops of a failed transaction were applied")
	}
	ok, _, err = s.Txn(c, []libkv.Cond{libkv.Exists("x"), libkv.Absent("a")}, []libkv.Op{libkv.Put("a", nil), libkv.Del("x")})
	if err != nil || !ok {
		t.Fatalf("Txn = %v, %v", ok, err)
	}
	if _, err := s.Get(c, "x"); !errors.Is(err, libkv.ErrNotFound) {
		t.Fatal("Del in a transaction did not apply")
	}
}

func TestWatchResumesFromRevision(t *testing.T) {
	s := etcd.Store(t)
	c := ctx(t)
	s.Put(c, "w/a", []byte("1"))
	_, rev, err := s.List(c, "w/")
	if err != nil {
		t.Fatal(err)
	}
	// Written after the list, before the watch starts: must not be missed.
	s.Put(c, "w/b", []byte("2"))
	s.Delete(c, "w/a")
	s.Put(c, "x/ignored", nil)

	wctx, cancel := context.WithCancel(c)
	defer cancel()
	ch := s.Watch(wctx, "w/", rev+1)
	s.Put(c, "w/c", []byte("3"))

	var got []string
	for len(got) < 3 {
		select {
		case wr := <-ch:
			if wr.Err != nil {
				t.Fatal(wr.Err)
			}
			for _, ev := range wr.Events {
				got = append(got, fmt.Sprintf("%s:%v:%s", ev.Key, ev.Deleted, ev.Value))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out; got %v", got)
		}
	}
	want := []string{"w/b:false:2", "w/a:true:", "w/c:false:3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	cancel()
	for range ch {
	}
}

func TestWatchCompacted(t *testing.T) {
	s := etcd.Store(t)
	c := ctx(t)
	rev, _ := s.Put(c, "k", []byte("1"))
	last, _ := s.Put(c, "k", []byte("2"))

	raw, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Compact(c, last); err != nil {
		t.Fatal(err)
	}
	select {
	case wr, ok := <-s.Watch(c, "k", rev):
		if !ok || !errors.Is(wr.Err, libkv.ErrCompacted) {
			t.Fatalf("watch from a compacted revision: %+v, open %v; want ErrCompacted", wr, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no response from a watch on a compacted revision")
	}
}

func TestUnavailable(t *testing.T) {
	// Nothing listens on port 1 of loopback.
	s, err := libkv.Open(libkv.Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = s.Get(c, "k")
	if !errors.Is(err, libkv.ErrUnavailable) || errkind.Of(err) != errkind.Unavailable {
		t.Fatalf("Get with etcd away: %v; want ErrUnavailable", err)
	}
}

func TestTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	certs, err := etcdtest.WriteCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	emb, err := libkv.StartEmbedded(c, libkv.EmbedConfig{
		DataDir:   filepath.Join(dir, "data"),
		ClientURL: "https://127.0.0.1:0",
		PeerURL:   "http://127.0.0.1:0",
		ClientTLS: libkv.EmbedTLS{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CAFile: certs.CA, ClientCertAuth: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()

	open := func(cfg libkv.Config) *libkv.Store {
		cfg.Endpoints = emb.Endpoints()
		cfg.DialTimeout = 5 * time.Second
		s, err := libkv.Open(cfg)
		if err != nil {
			t.Fatalf("open %+v: %v", cfg, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	tlsCfg := libkv.Config{CertFile: certs.ClientCert, KeyFile: certs.ClientKey, CAFile: certs.CA}
	s := open(tlsCfg)
	if _, err := s.Put(c, "k", []byte("v")); err != nil {
		t.Fatalf("put over TLS: %v", err)
	}
	short, cancel := context.WithTimeout(c, 500*time.Millisecond)
	defer cancel()
	if _, err := open(libkv.Config{CAFile: certs.CA}).Get(short, "k"); err == nil {
		t.Fatal("a client without a certificate was served")
	}

	// Turn on etcd's authentication, then only the right password works.
	raw, err := clientv3.New(clientv3.Config{Endpoints: emb.Endpoints(), TLS: mustTLS(t, certs)})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.UserAdd(c, "root", "rootpw"); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.UserGrantRole(c, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.AuthEnable(c); err != nil {
		t.Fatal(err)
	}
	withPw := tlsCfg
	withPw.Username, withPw.Password = "root", "rootpw"
	if kv, err := open(withPw).Get(c, "k"); err != nil || string(kv.Value) != "v" {
		t.Fatalf("get with the password: %v", err)
	}
	if _, err := open(tlsCfg).Get(c, "k"); err == nil {
		t.Fatal("read without a password once auth is on")
	}
}

func mustTLS(t *testing.T, c etcdtest.Certs) *tls.Config {
	t.Helper()
	cfg, err := (transport.TLSInfo{CertFile: c.ClientCert, KeyFile: c.ClientKey, TrustedCAFile: c.CA}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestScanPages(t *testing.T) {
	s := etcd.Store(t)
	c := ctx(t)
	for i := range 25 {
		s.Put(c, fmt.Sprintf("scan/%02d", i), []byte{byte(i)})
	}
	s.Put(c, "scan0", nil) // outside the prefix
	var keys []string
	rev, err := s.Scan(c, "scan/", 0, 4, func(kv libkv.KV) error {
		keys = append(keys, kv.Key)
		if len(keys) == 1 {
			// Written during the scan: not seen, since pages share a revision.
			s.Put(c, "scan/99", nil)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 25 || keys[0] != "scan/00" || keys[24] != "scan/24" {
		t.Fatalf("scanned %v", keys)
	}
	if _, listRev, _ := s.List(c, "scan/"); rev >= listRev {
		t.Fatalf("scan revision %d not before the write made during it (%d)", rev, listRev)
	}
	// A second scan at the first one's revision does not see it either.
	n := 0
	if _, err := s.Scan(c, "scan/", rev, 100, func(libkv.KV) error { n++; return nil }); err != nil || n != 25 {
		t.Fatalf("scan at revision %d: %d keys, %v", rev, n, err)
	}
}

func TestListAfterAndFirstInRanges(t *testing.T) {
	s := etcd.Store(t)
	c := ctx(t)
	for i := range 12 {
		if _, err := s.Put(c, fmt.Sprintf("p/k%02d", i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Put(c, "q/other", nil)
	page := func(after string, limit int, keep func(libkv.KV) bool) ([]string, bool) {
		var got []string
		more, err := s.ListAfter(c, "p/", after, limit, func(kv libkv.KV) (bool, error) {
			if keep != nil && !keep(kv) {
				return false, nil
			}
			got = append(got, kv.Key)
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got, more
	}
	if got, more := page("", 0, nil); len(got) != 12 || more {
		t.Fatalf("no limit: %q, more %v", got, more)
	}
	if got, more := page("", 5, nil); len(got) != 5 || !more || got[4] != "p/k04" {
		t.Fatalf("limit 5: %q, more %v", got, more)
	}
	if got, more := page("k04", 5, nil); len(got) != 5 || !more || got[0] != "p/k05" {
		t.Fatalf("after k04: %q, more %v", got, more)
	}
	if got, more := page("k09", 2, nil); len(got) != 2 || more {
		t.Fatalf("last page: %q, more %v", got, more)
	}
	even := func(kv libkv.KV) bool { return kv.Value[0]%2 == 0 }
	if got, more := page("", 3, even); fmt.Sprint(got) != "[p/k00 p/k02 p/k04]" || !more {
		t.Fatalf("filtered: %q, more %v", got, more)
	}
	if got, more := page("k10", 3, even); len(got) != 0 || more {
		t.Fatalf("filtered past the end: %q, more %v", got, more)
	}

	firsts, rev, err := s.FirstInRanges(c, []libkv.Range{{Start: "p/k03", End: "p/k05"}, {Start: "p/z", End: "q/"}, {Start: "q/", End: "r/"}})
	if err != nil {
		t.Fatal(err)
	}
	if firsts[0].Key != "p/k03" || firsts[1].Key != "" || firsts[2].Key != "q/other" {
		t.Fatalf("FirstInRanges = %+v", firsts)
	}
	cond := libkv.RangeUnchangedSince(libkv.Range{Start: "p/k03", End: "p/k05"}, rev)
	if ok, _, err := s.Txn(c, []libkv.Cond{cond}, nil); err != nil || !ok {
		t.Fatalf("unchanged range: %v, %v", ok, err)
	}
	s.Put(c, "p/k99", nil) // outside the range
	if ok, _, _ := s.Txn(c, []libkv.Cond{cond}, nil); !ok {
		t.Fatal("a put outside the range failed the condition")
	}
	s.Put(c, "p/k04x", nil)
	if ok, _, _ := s.Txn(c, []libkv.Cond{cond}, nil); ok {
		t.Fatal("a put inside the range did not fail the condition")
	}
}

func TestTxnHookSeesEveryWrite(t *testing.T) {
	s := etcd.Store(t)
	c := ctx(t)
	var seen []string
	h := s.WithTxnHook(func(_ context.Context, ops []libkv.Op) ([]libkv.Cond, []libkv.Op, error) {
		for _, op := range ops {
			if op.IsDelete() {
				seen = append(seen, "del "+op.Key())
			} else {
				seen = append(seen, "put "+op.Key()+"="+string(op.Value()))
			}
		}
		// Each write also writes a record of itself.
		return nil, []libkv.Op{libkv.Put(fmt.Sprintf("log/%d", len(seen)), nil)}, nil
	})
	if _, err := h.Put(c, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Create(c, "b", []byte("2")); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := h.Delete(c, "a"); err != nil {
		t.Fatal(err)
	}
	if err := h.Delete(c, "a"); !errors.Is(err, libkv.ErrNotFound) {
		t.Fatalf("delete of a missing key through the hook: %v", err)
	}
	want := []string{"put a=1", "put b=2", "del a", "del a"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("hook saw %q, want %q", seen, want)
	}
	// The records of the writes made, not that of the failed delete.
	res, _, err := s.ReadTxn(c, []libkv.Read{libkv.ReadCount("log/"), libkv.ReadOldestKeys("log/", 2), libkv.ReadKey("b"), libkv.ReadKey("a")})
	if err != nil || res[0].Count != 3 || len(res[1].KVs) != 2 || res[1].KVs[0].Key != "log/1" || res[1].KVs[1].Key != "log/2" ||
		string(res[2].KVs[0].Value) != "2" || len(res[3].KVs) != 0 {
		t.Fatalf("read of the records: %+v %v", res, err)
	}
	newest, err := s.ListByRevision(c, "log/", true, true, 0, 1)
	if err != nil || len(newest) != 1 || newest[0].Key != "log/3" {
		t.Fatalf("newest record %v %v", newest, err)
	}
}

func TestTooLargeTxnIsTooLarge(t *testing.T) {
	s := etcd.Store(t)
	ops := make([]libkv.Op, libkv.EmbeddedMaxTxnOps+1)
	for i := range ops {
		ops[i] = libkv.Put(fmt.Sprintf("k%d", i), nil)
	}
	_, _, err := s.Txn(ctx(t), nil, ops)
	if errkind.Of(err) != errkind.TooLarge || !strings.Contains(errkind.Message(err), "--max-txn-ops") {
		t.Fatalf("a transaction over the limit: %v (kind %v), want TooLarge naming --max-txn-ops", err, errkind.Of(err))
	}
	if _, _, err := s.Txn(ctx(t), nil, ops[:libkv.EmbeddedMaxTxnOps]); err != nil {
		t.Fatalf("a transaction at the limit: %v", err)
	}
}
