package plugin

import (
	"net/rpc"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
)

// The kinds of Measurement.
const (
	// MeasureFunctionCall is one call of a function, synchronous or one
	// attempt of an asynchronous delivery.
	MeasureFunctionCall = "function.call"
)

// Measurement is one thing the gateway measured.
type Measurement struct {
	// Kind says what was measured (Measure*).
	Kind string
	// Time is when it ended.
	Time time.Time
	// Duration is how long it took.
	Duration time.Duration
	// Space, FunctionID and Provider name the function called.
	Space, FunctionID, Provider string
	// Result is "ok", "timeout" or "failed".
	Result string
}

// MetricSink receives every measurement the gateway makes, in batches,
// never on a request's path: while it is slow or down, the gateway's
// buffer fills and then measurements are dropped and counted.
type MetricSink interface {
	// Record takes one batch, in the order measured. An error is logged;
	// the batch is not sent again.
	Record(batch []Measurement) error
}

// RecordReply carries the sink's error, an answer rather than a transport
// failure.
type RecordReply struct{ Err string }

type metricsPlugin struct{ impl MetricSink }

func (p *metricsPlugin) Server(*goplugin.MuxBroker) (any, error) {
	return &metricsServer{impl: p.impl}, nil
}

func (p *metricsPlugin) Client(_ *goplugin.MuxBroker, c *rpc.Client) (any, error) {
	return &metricsClient{c: c}, nil
}

type metricsServer struct{ impl MetricSink }

func (s *metricsServer) Record(batch []Measurement, out *RecordReply) error {
	if err := s.impl.Record(batch); err != nil {
		out.Err = err.Error()
	}
	return nil
}

type metricsClient struct{ c *rpc.Client }

func (c *metricsClient) record(batch []Measurement) (RecordReply, error) {
	var out RecordReply
	err := c.c.Call("Plugin.Record", batch, &out)
	return out, err
}
