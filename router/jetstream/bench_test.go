package jetstream

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/event-gateway/event-gateway/router"
)

// BenchmarkEnqueue measures accepting events: each op is one event of 1 or
// 10 deliveries (a 300-byte envelope) stored in JetStream, from many
// concurrent emitters as under HTTP load, with fsync before the ack off
// and on. events/s is the rate of accepted events.
func BenchmarkEnqueue(b *testing.B) {
	for _, sync := range []bool{false, true} {
		for _, subs := range []int{1, 10} {
			b.Run(fmt.Sprintf("subs=%d/sync=%v", subs, sync), func(b *testing.B) {
				e := startServer(b, b.TempDir(), sync)
				defer e.Close()
				nc := connect(b, e)
				defer nc.Close()
				q := newQueue(b, nc, Options{})
				payload := make([]byte, 300)
				for i := range payload {
					payload[i] = 'x'
				}
				subIDs := make([]string, subs)
				for i := range subIDs {
					subIDs[i] = fmt.Sprintf("6ba7b810-9dad-11d1-80b4-%012d", i)
				}
				var n atomic.Int64
				ctx := context.Background()
				b.SetParallelism(32)
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ds := make([]router.Delivery, subs)
					for pb.Next() {
						id := fmt.Sprintf("00000000-0000-4000-8000-%012d", n.Add(1))
						for i := range ds {
							ds[i] = router.Delivery{SubscriptionID: subIDs[i], FunctionID: "fn", EventID: id, Event: "user.created", Payload: payload}
						}
						if err := q.Enqueue(ctx, ds); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkDeliver measures making deliveries: b.N deliveries are queued
// first (not timed), then pulled, handed to a no-op deliver func and acked
// by 32 workers. deliveries/s is the rate at which the queue drains.
func BenchmarkDeliver(b *testing.B) {
	e := startServer(b, b.TempDir(), false)
	defer e.Close()
	nc := connect(b, e)
	defer nc.Close()
	q := newQueue(b, nc, Options{Workers: 32})
	payload := make([]byte, 300)
	ctx := context.Background()
	const batch = 100
	ds := make([]router.Delivery, 0, batch)
	for i := range b.N {
		ds = append(ds, router.Delivery{SubscriptionID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", FunctionID: "fn", EventID: fmt.Sprintf("ev-%d", i), Event: "user.created", Payload: payload})
		if len(ds) == batch || i == b.N-1 {
			if err := q.Enqueue(ctx, ds); err != nil {
				b.Fatal(err)
			}
			ds = ds[:0]
		}
	}
	var n atomic.Int64
	done := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	err := q.Start(ctx, func(context.Context, router.Delivery) error {
		if n.Add(1) == int64(b.N) {
			close(done)
		}
		return nil
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	if err := q.Stop(ctx); err != nil {
		b.Fatal(err)
	}
}
