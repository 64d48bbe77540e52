package functions_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/internal/etcdtest"
	"github.com/event-gateway/event-gateway/libkv"
)

var etcd *etcdtest.Server

func TestMain(m *testing.M) { etcdtest.Main(m, func(s *etcdtest.Server) { etcd = s }) }

func newService(t *testing.T) (*functions.Service, *libkv.Store, context.Context) {
	st := etcd.Store(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return functions.NewService(st, functions.DefaultSpace), st, ctx
}

func wantKind(t *testing.T, err error, k errkind.Kind) {
	t.Helper()
	if err == nil || errkind.Of(err) != k {
		t.Fatalf("error = %v (kind %v), want kind %v", err, errkind.Of(err), k)
	}
}

func TestServiceLifecycle(t *testing.T) {
	svc, _, ctx := newService(t)
	f := functions.Function{ID: "hello", Provider: functions.Provider{Type: "http", URL: "http://127.0.0.1:1/hello"}}
	if _, err := svc.Create(ctx, f); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Create(ctx, f)
	wantKind(t, err, errkind.Conflict)

	got, err := svc.Get(ctx, "hello")
	if err != nil || got != f {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	_, err = svc.Get(ctx, "nope")
	wantKind(t, err, errkind.NotFound)
	_, err = svc.Get(ctx, "../etc")
	wantKind(t, err, errkind.NotFound)

	svc.Create(ctx, functions.Function{ID: "a", Provider: f.Provider})
	list, err := svc.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].ID != "hello" {
		t.Fatalf("List = %+v, %v", list, err)
	}

	upd, err := svc.Update(ctx, functions.Function{ID: "hello", Provider: functions.Provider{Type: "http", URL: "https://example.com/v2"}, Timeout: "2s"})
	if err != nil || upd.Provider.URL != "https://example.com/v2" || upd.Timeout != "2s" {
		t.Fatalf("Update = %+v, %v", upd, err)
	}
	_, err = svc.Update(ctx, functions.Function{ID: "nope", Provider: f.Provider})
	wantKind(t, err, errkind.NotFound)
	_, err = svc.Update(ctx, functions.Function{ID: "hello", Provider: functions.Provider{Type: "http"}})
	wantKind(t, err, errkind.Invalid)

	if err := svc.Delete(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, svc.Delete(ctx, "hello"), errkind.NotFound)
	_, err = svc.Get(ctx, "hello")
	wantKind(t, err, errkind.NotFound)
}

func TestDeleteRefusedWhileInUse(t *testing.T) {
	svc, st, ctx := newService(t)
	svc.Create(ctx, functions.Function{ID: "f", Provider: functions.Provider{Type: "http", URL: "http://h"}})
	// What the subscriptions service writes alongside a subscription.
	space := functions.DefaultSpace
	st.Put(ctx, functions.UseKey(space, "f", "sub1"), nil)
	wantKind(t, svc.Delete(ctx, "f"), errkind.Conflict)
	st.Delete(ctx, functions.UseKey(space, "f", "sub1"))
	if err := svc.Delete(ctx, "f"); err != nil {
		t.Fatalf("Delete after the subscription went: %v", err)
	}
}

func TestUpdateKeepsRedactedSecrets(t *testing.T) {
	svc, _, ctx := newService(t)
	p := functions.Provider{Type: "awslambda", ARN: "arn:aws:lambda:us-east-1:1:function:f", Region: "us-east-1",
		AWSAccessKeyID: "AKID", AWSSecretAccessKey: "s3cr3t", AWSSessionToken: "t0k3n"}
	if _, err := svc.Create(ctx, functions.Function{ID: "f", Provider: p}); err != nil {
		t.Fatal(err)
	}
	// A client sends back what GET showed it, with a new region.
	shown := functions.Function{ID: "f", Provider: p}.Redact().Provider
	shown.Region = "eu-west-1"
	if _, err := svc.Update(ctx, functions.Function{ID: "f", Provider: shown}); err != nil {
		t.Fatal(err)
	}
	got, _ := svc.Get(ctx, "f")
	if got.Provider.AWSSecretAccessKey != "s3cr3t" || got.Provider.AWSSessionToken != "t0k3n" || got.Provider.Region != "eu-west-1" {
		t.Fatalf("stored provider = %+v", got.Provider)
	}
	// The marker is never accepted as a new credential.
	p.AWSSecretAccessKey = functions.Redacted
	_, err := svc.Create(ctx, functions.Function{ID: "g", Provider: p})
	wantKind(t, err, errkind.Invalid)
}

func TestConcurrentCreateOneWins(t *testing.T) {
	svc, _, ctx := newService(t)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := svc.Create(ctx, functions.Function{ID: "race", Provider: functions.Provider{Type: "http", URL: "http://h"}})
			switch {
			case err == nil:
				wins.Add(1)
			case errkind.Of(err) != errkind.Conflict:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d creators won, want exactly 1", wins.Load())
	}
}
