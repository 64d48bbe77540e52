package httpfn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/event-gateway/event-gateway/functions"
)

// TestHopsHeader: every call carries one hop more than the request that
// caused it, and a gateway's 508 is a loop, not a function failure.
func TestHopsHeader(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get(functions.HopsHeader)
		if r.Header.Get(functions.HopsHeader) == "41" {
			w.Header().Set(functions.HopsHeader, "41")
			w.WriteHeader(http.StatusLoopDetected)
		}
	}))
	defer srv.Close()
	p := New(Options{})
	defer p.Close()
	inv := p.URLInvoker(srv.URL)
	for _, tt := range []struct {
		hops int
		want string
	}{{0, "1"}, {3, "4"}, {sharedHopHeaders, "33"}} {
		ctx := context.Background()
		if tt.hops > 0 {
			ctx = functions.WithHops(ctx, tt.hops)
		}
		if _, err := inv.Invoke(ctx, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if h := <-got; h != tt.want {
			t.Errorf("hops %d: sent %q, want %q", tt.hops, h, tt.want)
		}
	}
	_, err := inv.Invoke(functions.WithHops(context.Background(), 40), []byte(`{}`))
	<-got
	if !errors.Is(err, functions.ErrLoopDetected) {
		t.Fatalf("a gateway's 508: %v, want ErrLoopDetected", err)
	}
}
