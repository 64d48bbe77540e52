package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// emitRow is one custom-event emit measurement.
type emitRow struct {
	// label names the subscriber's pipeline in the transform section;
	// empty in the emit section.
	label       string
	subscribers int
	fsync       bool // the gateway ran with -nats-sync
	load        loadResult
	accepted    uint64 // 202 answers
	other       uint64 // any other answer or error
	delivered   int64  // deliveries counted by the backend
	unique      int64  // distinct ones: (event id, subscriber) pairs
	acceptedPS  float64
	deliveredPS float64
	drained     bool          // unique deliveries reached accepted × subscribers
	drainTook   time.Duration // from the end of the emit run to the last delivery
	otherCPU    float64       // cores used by other processes meanwhile
	cpuPerEvent time.Duration // the gateway's CPU per accepted event, deliveries included
	who         string        // which
}

func (e emitRow) expected() int64 { return int64(e.accepted) * int64(e.subscribers) }

// persisted says how durable a 202 was in this row.
func (e emitRow) persisted() string {
	if e.fsync {
		return "fsync (`-nats-sync`)"
	}
	return "OS cache (default)"
}

// emitTests emits custom events with one and with ten subscribers. fsync
// says the gateway runs with -nats-sync, for the report.
func (r *report) emitTests(ctx context.Context, g *gateway, backend string, fsync bool) error {
	for _, t := range []struct {
		subs        int
		event, path string
	}{{1, "bench.one", "/one"}, {10, "bench.ten", "/ten"}} {
		progress("emit, %d subscriber(s): closed loop, %d connections, %v, then wait for every delivery", t.subs, r.cfg.conns, r.cfg.duration)
		row, err := emit(ctx, g, backend, t.subs, t.event, t.path, r.cfg)
		if err != nil {
			return err
		}
		row.fsync = fsync
		r.emits = append(r.emits, row)
	}
	return nil
}

// transformScript is the transform of the bench's transformed subscriber:
// a small one (rename a field, add one, drop one), as issue 15 measures.
const transformScript = `function transform(event, context) {
  event.data.user.fullName = event.data.user.name;
  delete event.data.user.name;
  delete event.data.user.id;
  event.data.space = context.space;
  return event;
}`

// transformTests emits custom events to one subscriber without a
// pipeline and to one with transformScript, alternately, twice each, so
// that both see the same machine.
func (r *report) transformTests(ctx context.Context, g *gateway, backend string) error {
	for round := range 2 {
		for _, t := range []struct{ label, event, path string }{{"none", "bench.one", "/one"}, {"transform", "bench.tx", "/tx"}} {
			progress("transform, round %d, subscriber with %s: closed loop, %d connections, %v, then wait for every delivery", round+1, t.label, r.cfg.conns, r.cfg.duration)
			row, err := emit(ctx, g, backend, 1, t.event, t.path, r.cfg)
			if err != nil {
				return err
			}
			row.label = t.label
			r.transforms = append(r.transforms, row)
		}
	}
	return nil
}

func deliveryCount(ctx context.Context, backend string) (deliveries, error) {
	var d deliveries
	code, b, err := get(ctx, backend+"/count")
	if err != nil {
		return d, err
	}
	if code != http.StatusOK {
		return d, fmt.Errorf("backend /count: %d %s", code, b)
	}
	return d, json.Unmarshal(b, &d)
}

// emit sends events in a closed loop for the configured duration, then
// waits until the backend has received accepted × subscribers distinct
// deliveries,
// or until none arrived for five seconds, or drainMax has passed.
// delivered/s is the deliveries divided by the time from the first emit to
// the last delivery.
func emit(ctx context.Context, g *gateway, backend string, subs int, event, path string, c config) (emitRow, error) {
	row := emitRow{subscribers: subs}
	tgt := target("POST", g.events+path, []byte(`{"user":{"id":42,"name":"Max"}}`),
		http.Header{"Event": {event}, "Content-Type": {"application/json"}})
	before, err := deliveryCount(ctx, backend)
	if err != nil {
		return row, err
	}
	cpu0 := snapCPU()
	own0, _ := procCPU(g.pid(), false)
	start := time.Now()
	row.load = closedLoop(ctx, tgt, c.conns, c.duration)
	emitted := time.Now()
	if ctx.Err() != nil {
		return row, ctx.Err()
	}
	row.accepted = row.load.count(http.StatusAccepted)
	row.other = row.load.Requests - row.accepted
	if row.load.Elapsed > 0 {
		row.acceptedPS = float64(row.accepted) / row.load.Elapsed.Seconds()
	}

	deadline := emitted.Add(c.drainMax)
	var last deliveries
	lastChange := time.Now()
	for {
		d, err := deliveryCount(ctx, backend)
		if err != nil {
			return row, err
		}
		if d.Count != last.Count {
			lastChange = time.Now()
		}
		last = d
		if d.Unique-before.Unique >= row.expected() {
			// Wait a little longer: a retried delivery would be counted twice.
			time.Sleep(200 * time.Millisecond)
			if last, err = deliveryCount(ctx, backend); err != nil {
				return row, err
			}
			break
		}
		if time.Since(lastChange) > 5*time.Second || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return row, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	own1, _ := procCPU(g.pid(), false)
	row.cpuPerEvent = cpuPer(own1-own0, row.accepted)
	cpu1 := snapCPU()
	row.otherCPU, row.who = othersCores(cpu0, cpu1), disturbers(cpu0, cpu1)
	row.delivered = last.Count - before.Count
	row.unique = last.Unique - before.Unique
	row.drained = row.unique >= row.expected()
	if row.delivered > 0 {
		end := time.Unix(0, last.Last)
		row.deliveredPS = float64(row.delivered) / end.Sub(start).Seconds()
		row.drainTook = max(0, end.Sub(emitted))
	}
	return row, nil
}
