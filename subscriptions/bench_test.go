package subscriptions_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// writeOldRoutes stores n GET routes of function fn as the releases before
// the shape index did: the subscription, its uses key and its routes key,
// many per transaction.
func writeOldRoutes(tb testing.TB, f fixture, n int, path func(int) string) {
	tb.Helper()
	const perTxn = 33
	for lo := 0; lo < n; lo += perTxn {
		var ops []libkv.Op
		for i := lo; i < min(lo+perTxn, n); i++ {
			sub := subscriptions.Subscription{Event: subscriptions.EventHTTP, FunctionID: "fn", Method: "GET", Path: path(i)}
			if _, err := sub.Normalize(functions.DefaultSpace); err != nil {
				tb.Fatal(err)
			}
			v, err := json.Marshal(sub)
			if err != nil {
				tb.Fatal(err)
			}
			ops = append(ops,
				libkv.Put(subscriptions.Key(functions.DefaultSpace, sub.ID), v),
				libkv.Put(functions.UseKey(functions.DefaultSpace, "fn", sub.ID), nil),
				libkv.Put(subscriptions.RouteKey(functions.DefaultSpace, "GET", sub.ID), []byte(sub.Path)))
		}
		if _, _, err := f.store.Txn(f.ctx, nil, ops); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkCreateRoute measures the latency of creating an http route
// (and, untimed, deleting it again) with a table of 0, 10,000 and
// 100,000 GET routes that all share the prefix /api/v1/, against a real
// embedded etcd. It reports the median (p50-ms) besides the mean.
func BenchmarkCreateRoute(b *testing.B) {
	for _, n := range []int{0, 10_000, 100_000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			f := newFixture(b, "fn")
			f.ctx = b.Context()
			writeOldRoutes(b, f, n, func(i int) string { return fmt.Sprintf("/api/v1/r%d/:id", i) })
			// The first route pays for indexing the routes stored above.
			start := time.Now()
			warm, err := f.subs.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Path: "/api/v1/warm"})
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%d routes: first create (with indexing) %v", n, time.Since(start).Round(time.Millisecond))
			if err := f.subs.Delete(f.ctx, warm.ID); err != nil {
				b.Fatal(err)
			}
			var lat []time.Duration
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				s, err := f.subs.Create(f.ctx, subscriptions.Subscription{Event: "http", FunctionID: "fn", Method: "GET", Path: fmt.Sprintf("/api/v1/new%d/:id", i)})
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := f.subs.Delete(f.ctx, s.ID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2])/float64(time.Millisecond), "p50-ms")
		})
	}
}
