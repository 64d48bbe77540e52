package trail

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/router"
	egjs "github.com/event-gateway/event-gateway/router/jetstream"
)

// cpuTime is the CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTrail measures what the trail adds to accepting and delivering
// an event: each op is one event of 1 or 10 deliveries (a 300-byte
// envelope) enqueued from 32 emitters, delivered to a no-op function by
// the queue's workers, with the trail off and on, in one process with its
// NATS server, as in the gateway; on, with ids of version 4 (stored one
// message per event) and of version 7 (by window). cpu-µs/event is the process's CPU time
// per event, up to the last delivery and the storing of the trail's last
// flush: compare off and on of the same run (-count interleaves them).
// The gateway's HTTP work is not in it, so the share the trail takes of
// the gateway's CPU is smaller than the share here (docs/performance.md).
func BenchmarkTrail(b *testing.B) {
	for _, subs := range []int{1, 10} {
		for _, mode := range []string{"false", "true", "true-v7ids"} {
			on, timeIDs := mode != "false", mode == "true-v7ids"
			b.Run(fmt.Sprintf("subs=%d/trail=%s", subs, mode), func(b *testing.B) {
				nc := connect(b)
				var rec *Recorder
				o := egjs.Options{Conn: nc, Workers: 200}
				if on {
					rec = newRecorder(b, nc, Options{})
					o.Trail = rec
				}
				ctx := context.Background()
				q, err := egjs.New(ctx, o)
				if err != nil {
					b.Fatal(err)
				}
				var delivered atomic.Int64
				want := int64(b.N * subs)
				done := make(chan struct{})
				if err := q.Start(ctx, func(context.Context, router.Delivery) error {
					if delivered.Add(1) == want {
						close(done)
					}
					return nil
				}, nil); err != nil {
					b.Fatal(err)
				}
				defer q.Stop(ctx)
				payload := make([]byte, 300)
				rsubs := make([]router.Subscriber, subs)
				for i := range rsubs {
					rsubs[i] = router.Subscriber{SubscriptionID: fmt.Sprintf("6ba7b810-9dad-11d1-80b4-%012d", i), FunctionID: "fn"}
				}
				var n atomic.Int64
				b.SetParallelism(32)
				b.ReportAllocs()
				began := cpuTime(b)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ds := make([]router.Delivery, subs)
					for pb.Next() {
						var id string
						if timeIDs {
							id = v7(uint64(time.Now().UnixMilli()), int(n.Add(1)))
						} else {
							id = fmt.Sprintf("00000000-0000-4000-8000-%012d", n.Add(1))
						}
						for i := range ds {
							ds[i] = router.Delivery{SubscriptionID: rsubs[i].SubscriptionID, FunctionID: "fn", EventID: id, Event: "user.created", Payload: payload}
						}
						if err := q.Enqueue(ctx, ds); err != nil {
							b.Fatal(err)
						}
						// What Router.Enqueue does once the queue took them.
						if rec != nil {
							rec.Accepted("default", id, "user.created", time.Now(), rsubs)
						}
					}
				})
				<-done
				if rec != nil {
					if err := rec.Close(ctx); err != nil {
						b.Fatal(err)
					}
					s := rec.Stats()
					if s.Dropped > 0 || s.Failed > 0 {
						b.Logf("trail: %+v", s)
					}
					// The server takes a message before the stream stores
					// it: wait for the store, whose CPU is the trail's too.
					for {
						info, err := rec.stream.Info(ctx)
						if err != nil {
							b.Fatal(err)
						}
						if info.State.LastSeq >= s.Messages {
							break
						}
						time.Sleep(time.Millisecond)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64((cpuTime(b)-began).Microseconds())/float64(b.N), "cpu-µs/event")
				if rec != nil {
					b.ReportMetric(float64(rec.Stats().Messages)/float64(b.N), "msgs/event")
				}
			})
		}
	}
}
