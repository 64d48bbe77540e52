package tail

import (
	"context"
	"errors"
	"testing"

	"github.com/event-gateway/event-gateway/plugin"
)

const received = `{"event":"gateway.event.received","id":"s1","receivedAt":1700000000000,"data":{"space":"shop","event":{"eventType":"order.created","eventID":"e1","data":{}},"path":"/orders","headers":{}},"dataType":"application/json"}`
const failed = `{"event":"gateway.function.invocationFailed","id":"s2","receivedAt":1700000000001,"data":{"space":"shop","event":{"specversion":"1.0","type":"order.created","id":"e1"},"functionId":"bill","error":"boom"},"dataType":"application/json"}`

func TestIdleBroadcasterWantsNothing(t *testing.T) {
	b := New(4)
	if b.Wants(plugin.EventReceived) || b.Watching() {
		t.Fatal("a broadcaster nobody watches wants system events")
	}
	w, _ := b.Watch("shop", 1)
	if !b.Wants(plugin.EventReceived) || b.Wants("user.created") {
		t.Fatal("a watched broadcaster must want the system events it shows, and nothing else")
	}
	w.Close()
	w.Close() // twice is harmless
	if b.Wants(plugin.EventReceived) {
		t.Fatal("still wants after the last watcher left")
	}
}

func TestReactMakesItemsForTheSpace(t *testing.T) {
	b := New(4)
	shop, _ := b.Watch("shop", 8)
	defer shop.Close()
	other, _ := b.Watch("other", 8)
	defer other.Close()
	ctx := context.Background()
	if err := b.React(ctx, plugin.EventReceived, []byte(received)); err != nil {
		t.Fatal(err)
	}
	if err := b.React(ctx, plugin.FunctionInvocationFailed, []byte(failed)); err != nil {
		t.Fatal(err)
	}
	b.React(ctx, plugin.EventReceived, []byte(`not json`)) // shown nowhere, refused never
	got := []Item{<-shop.C(), <-shop.C()}
	if it := got[0]; it.Kind != "event" || it.Type != "order.created" || it.ID != "e1" || it.Path != "/orders" || it.Time != 1700000000000 {
		t.Fatalf("received item %+v", it)
	}
	if it := got[1]; it.Kind != "system" || it.Type != plugin.FunctionInvocationFailed || it.ID != "e1" || it.FunctionID != "bill" || it.Error != "boom" {
		t.Fatalf("failure item %+v", it)
	}
	select {
	case it := <-shop.C():
		t.Fatalf("unexpected item %+v", it)
	case it := <-other.C():
		t.Fatalf("another space's watcher got %+v", it)
	default:
	}
}

func TestSlowWatcherDropsAndIsTold(t *testing.T) {
	b := New(4)
	w, _ := b.Watch("s", 2)
	defer w.Close()
	for range 5 {
		b.Publish(Item{Space: "s", Type: "x"})
	}
	if n := w.Dropped(); n != 3 {
		t.Fatalf("dropped %d, want 3", n)
	}
	if n := w.Dropped(); n != 0 {
		t.Fatalf("Dropped did not reset: %d", n)
	}
	if len(w.C()) != 2 {
		t.Fatalf("buffer holds %d, want 2", len(w.C()))
	}
}

func TestWatchersAreBounded(t *testing.T) {
	b := New(2)
	w1, ok1 := b.Watch("s", 1)
	_, ok2 := b.Watch("s", 1)
	if _, ok := b.Watch("s", 1); !ok1 || !ok2 || ok {
		t.Fatal("a third watcher was let in past the maximum of 2")
	}
	w1.Close()
	if _, ok := b.Watch("s", 1); !ok {
		t.Fatal("no room after a watcher left")
	}
}

type refusing struct{ wants bool }

func (r refusing) Wants(string) bool { return r.wants }
func (r refusing) React(context.Context, string, []byte) error {
	return &plugin.VetoError{Msg: "no"}
}

func TestJoinKeepsPluginRefusals(t *testing.T) {
	b := New(1)
	if Join(nil, b) != Reacters(b) {
		t.Fatal("Join without plugins should be the broadcaster alone")
	}
	j := Join(refusing{wants: true}, b)
	if !j.Wants(plugin.EventReceived) {
		t.Fatal("joined reacters must want what the plugins want")
	}
	w, _ := b.Watch("shop", 1)
	defer w.Close()
	var v *plugin.VetoError
	if err := j.React(context.Background(), plugin.EventReceived, []byte(received)); !errors.As(err, &v) {
		t.Fatalf("plugin refusal lost: %v", err)
	}
	if len(w.C()) != 0 {
		t.Fatal("a refused event reached the tail")
	}
}

// BenchmarkWants is the tail's cost on the request path when nobody
// watches (one atomic load), against a watched one.
func BenchmarkWants(b *testing.B) {
	b.Run("idle", func(b *testing.B) {
		t := New(1)
		for b.Loop() {
			if t.Wants(plugin.EventReceived) {
				b.Fatal("wants")
			}
		}
	})
	b.Run("watched-react", func(b *testing.B) {
		t := New(1)
		w, _ := t.Watch("shop", 1)
		defer w.Close()
		b.ReportAllocs()
		for b.Loop() {
			t.React(context.Background(), plugin.EventReceived, []byte(received))
			select {
			case <-w.C():
			default:
			}
		}
	})
}
