package instances

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/etcdtest"
)

var etcd *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, func(s *etcdtest.Server) { etcd = s }) }

// The key is written when what it says changes, and not otherwise: every
// write moves the store's revision.
func TestRegisterWritesOnChange(t *testing.T) {
	st := etcd.Store(t)
	var mu sync.Mutex
	cur := Info{ID: "gw-1", Ready: false, Revision: 1}
	info := func() Info { mu.Lock(); defer mu.Unlock(); return cur }
	set := func(f func(*Info)) { mu.Lock(); f(&cur); mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	done := Register(ctx, st, info, Options{TTL: 2 * time.Second, Check: 10 * time.Millisecond, Rewrite: 300 * time.Millisecond})

	modRev := func() int64 {
		kv, err := st.Get(context.Background(), Root+"gw-1")
		if err != nil {
			return 0
		}
		return kv.ModRevision
	}
	until := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	listed := func() Info {
		list, err := List(context.Background(), st)
		if err != nil || len(list) != 1 {
			return Info{}
		}
		return list[0]
	}
	until("registered", func() bool { return listed().ID == "gw-1" })
	first := modRev()
	time.Sleep(100 * time.Millisecond) // ten checks
	if modRev() != first {
		t.Fatal("rewritten with nothing changed")
	}
	set(func(in *Info) { in.Ready = true })
	until("readiness written", func() bool { return listed().Ready })
	second := modRev()
	set(func(in *Info) { in.Revision = 2 })
	set(func(in *Info) { in.Revision = 3 })
	until("revision written", func() bool { return listed().Revision == 3 })
	if modRev() != second+1 {
		t.Fatalf("two changes of revision within Rewrite made %d writes, want 1", modRev()-second)
	}
	cancel()
	<-done
	if in := listed(); in.ID != "" {
		t.Fatalf("still listed after stop: %+v", in)
	}
}
