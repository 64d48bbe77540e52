package functions_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/functions/awslambda"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
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
	return functions.NewService(st, functions.DefaultSpace, registry(t)), st, ctx
}

func wantKind(t *testing.T, err error, k errkind.Kind) {
	t.Helper()
	if err == nil || errkind.Of(err) != k {
		t.Fatalf("error = %v (kind %v), want kind %v", err, errkind.Of(err), k)
	}
}

func TestServiceLifecycle(t *testing.T) {
	svc, _, ctx := newService(t)
	f := fn(t, "hello", `{"type":"http","url":"http://127.0.0.1:1/hello"}`)
	if _, err := svc.Create(ctx, f); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Create(ctx, f)
	wantKind(t, err, errkind.Conflict)

	got, err := svc.Get(ctx, "hello")
	if b, _ := json.Marshal(got); err != nil || string(b) != `{"functionId":"hello","provider":{"type":"http","url":"http://127.0.0.1:1/hello"}}` {
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

	upd := fn(t, "hello", `{"type":"http","url":"https://example.com/v2"}`)
	upd.Timeout = "2s"
	upd, err = svc.Update(ctx, upd)
	if err != nil || string(upd.Provider.Config) != `{"url":"https://example.com/v2"}` || upd.Timeout != "2s" {
		t.Fatalf("Update = %+v, %v", upd, err)
	}
	_, err = svc.Update(ctx, functions.Function{ID: "nope", Provider: f.Provider})
	wantKind(t, err, errkind.NotFound)
	_, err = svc.Update(ctx, fn(t, "hello", `{"type":"http"}`))
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
	svc.Create(ctx, fn(t, "f", `{"type":"http","url":"http://h"}`))
	// What the subscriptions service writes alongside a subscription.
	st.Put(ctx, functions.UseKey(functions.DefaultSpace, "f", "sub1"), nil)
	wantKind(t, svc.Delete(ctx, "f"), errkind.Conflict)
	st.Delete(ctx, functions.UseKey(functions.DefaultSpace, "f", "sub1"))
	if err := svc.Delete(ctx, "f"); err != nil {
		t.Fatalf("Delete after the subscription went: %v", err)
	}
}

func TestUpdateKeepsRedactedSecrets(t *testing.T) {
	svc, st, ctx := newService(t)
	c := awslambda.Config{ARN: "arn:aws:lambda:us-east-1:1:function:f", Region: "us-east-1",
		AWSAccessKeyID: "AKID", AWSSecretAccessKey: "s3cr3t", AWSSessionToken: "t0k3n"}
	if _, err := svc.Create(ctx, functions.Function{ID: "f", Provider: c.Provider()}); err != nil {
		t.Fatal(err)
	}
	// A client sends back what GET showed it, with a new region.
	got, _ := svc.Get(ctx, "f")
	var shown awslambda.Config
	if err := json.Unmarshal(svc.Redact(got).Provider.Config, &shown); err != nil || shown.AWSSecretAccessKey != functions.Redacted {
		t.Fatalf("shown = %+v, %v", shown, err)
	}
	shown.Region = "eu-west-1"
	if _, err := svc.Update(ctx, functions.Function{ID: "f", Provider: shown.Provider()}); err != nil {
		t.Fatal(err)
	}
	kv, err := st.Get(ctx, functions.FunctionKey(functions.DefaultSpace, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"functionId":"f","provider":{"type":"awslambda","arn":"arn:aws:lambda:us-east-1:1:function:f","region":"eu-west-1","awsAccessKeyId":"AKID","awsSecretAccessKey":"s3cr3t","awsSessionToken":"t0k3n"}}`; string(kv.Value) != want {
		t.Fatalf("stored %s\nwant   %s", kv.Value, want)
	}
	// The marker is never accepted as a new credential.
	c.AWSSecretAccessKey = functions.Redacted
	_, err = svc.Create(ctx, functions.Function{ID: "g", Provider: c.Provider()})
	wantKind(t, err, errkind.Invalid)
}

func TestConcurrentCreateOneWins(t *testing.T) {
	svc, _, ctx := newService(t)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := svc.Create(ctx, functions.Function{ID: "race", Provider: httpfn.Config{URL: "http://h"}.Provider()})
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
