// Command metrics is an Event Gateway metric-sink plugin: it appends each
// batch of measurements to a file of JSON lines (its path in
// METRICS_FILE), one line per measurement, as a shipper to a metrics
// system would.
//
//	go build -o /tmp/metrics ./plugin/examples/metrics
//	METRICS_FILE=/var/log/event-gateway/metrics.jsonl event-gateway -plugin /tmp/metrics
package main

import (
	"bufio"
	"encoding/json"
	"os"

	"github.com/event-gateway/event-gateway/plugin"
)

type fileSink struct{ f *os.File }

type line struct {
	Kind       string  `json:"kind"`
	Time       string  `json:"time"`
	DurationMS float64 `json:"durationMs"`
	Space      string  `json:"space"`
	FunctionID string  `json:"functionId"`
	Provider   string  `json:"provider"`
	Result     string  `json:"result"`
	Batch      int     `json:"batch"`
}

func (s fileSink) Record(batch []plugin.Measurement) error {
	w := bufio.NewWriter(s.f)
	enc := json.NewEncoder(w)
	for _, m := range batch {
		if err := enc.Encode(line{Kind: m.Kind, Time: m.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), DurationMS: float64(m.Duration.Microseconds()) / 1000,
			Space: m.Space, FunctionID: m.FunctionID, Provider: m.Provider, Result: m.Result, Batch: len(batch)}); err != nil {
			return err
		}
	}
	return w.Flush()
}

func main() {
	f, err := os.OpenFile(os.Getenv("METRICS_FILE"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	plugin.ServeKinds(plugin.Kinds{Metrics: fileSink{f: f}})
}
