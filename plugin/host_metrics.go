package plugin

import (
	"errors"
	"sync/atomic"
	"time"
)

// Defaults of the metric sinks' batches.
const (
	// DefaultMetricBatch is the most measurements sent in one call.
	DefaultMetricBatch = 256
	// DefaultMetricFlush is the longest a measurement waits for its
	// batch to fill.
	DefaultMetricFlush = time.Second
)

// sink feeds one metric-sink plugin. Measurements wait in a bounded
// buffer: Invoked never blocks, and drops (and counts) what does not fit.
type sink struct {
	p       *proc
	buf     chan Measurement
	batch   int
	flush   time.Duration
	dropped atomic.Int64
}

// HasMetricSinks reports whether any plugin is a metric sink, so the
// gateway can skip telling the host of measurements nobody reads.
func (h *Host) HasMetricSinks() bool { return h != nil && len(h.sinks) > 0 }

// Invoked hands the measurement of a function call to the metric sinks
// (it is a router.Observer). It never blocks.
func (h *Host) Invoked(space, functionID, provider string, d time.Duration, result string) {
	if !h.HasMetricSinks() {
		return
	}
	m := Measurement{Kind: MeasureFunctionCall, Time: time.Now(), Duration: d, Space: space, FunctionID: functionID, Provider: provider, Result: result}
	for _, s := range h.sinks {
		s.add(m)
	}
}

// MeasurementsDropped is the number of measurements the metric sinks did
// not get: their buffer was full, or the batch they were in failed.
func (h *Host) MeasurementsDropped() int64 {
	var n int64
	for _, s := range h.sinks {
		n += s.dropped.Load()
	}
	return n
}

func (s *sink) add(m Measurement) {
	select {
	case s.buf <- m:
	default:
		if n := s.dropped.Add(1); n == 1 || n%1000 == 0 {
			s.p.log.Warn("metric sink buffer full: measurements dropped", "dropped", n)
		}
	}
}

// run sends the buffered measurements in batches: a batch goes when it is
// full or its first measurement has waited flush. While the plugin is
// being restarted the batch waits for it; a batch the plugin failed on
// (crashed, hung) is dropped, so that a measurement that crashes the
// plugin does not crash it forever. On close it sends what is buffered
// until the close's context ends.
func (s *sink) run() {
	batch := make([]Measurement, 0, s.batch)
	timer := time.NewTimer(s.flush)
	timer.Stop()
	for {
		select {
		case m := <-s.buf:
			if len(batch) == 0 {
				timer.Reset(s.flush)
			}
			batch = append(batch, m)
			if len(batch) < s.batch {
				continue
			}
		case <-timer.C:
		case <-s.p.stop:
			timer.Stop()
			s.drain(batch)
			return
		}
		timer.Stop()
		if len(batch) == 0 {
			continue
		}
		if s.send(batch) {
			batch = batch[:0]
		} else {
			timer.Reset(0) // the plugin is down: try again (send waited)
		}
	}
}

// drain sends what is left when the plugin is being stopped, until the
// close's context ends; the rest is dropped and counted.
func (s *sink) drain(batch []Measurement) {
	for s.p.stopCtx.Err() == nil {
	fill:
		for len(batch) < s.batch {
			select {
			case m := <-s.buf:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return
		}
		if !s.send(batch) {
			break // down, and no longer restarted
		}
		batch = batch[:0]
	}
	s.dropped.Add(int64(len(batch) + len(s.buf)))
}

// send makes one call with the batch and reports whether the batch is
// done with: sent or dropped. false means the plugin is down and the batch
// should be tried again; send waits a little first.
func (s *sink) send(batch []Measurement) bool {
	var reply RecordReply
	err := s.p.invoke(func(c *conn) (err error) {
		reply, err = c.metrics.record(batch)
		return err
	})
	switch {
	case errors.Is(err, ErrNotRunning):
		select {
		case <-s.p.stop:
		case <-time.After(restartMin / 2):
		}
		return false
	case err != nil:
		s.dropped.Add(int64(len(batch)))
		s.p.log.Warn("metric sink failed on a batch: dropped", "measurements", len(batch), "error", err)
	case reply.Err != "":
		s.p.log.Warn("metric sink refused a batch", "measurements", len(batch), "error", reply.Err)
	}
	return true
}
