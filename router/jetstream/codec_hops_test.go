package jetstream

import (
	"testing"

	"github.com/event-gateway/event-gateway/internal/tracing"

	"github.com/event-gateway/event-gateway/router"
)

// TestRecordKeepsHops: a record of one delivery (a retry, a dead letter)
// keeps the hop count of its event; one without hops has no header for it.
func TestRecordKeepsHops(t *testing.T) {
	d := router.Delivery{SubscriptionID: "s", FunctionID: "f", EventID: "e", Event: "x", Hops: 5, Payload: []byte(`{}`)}
	m := deliveryMsg(&d, "id")
	if got := deliveryOf(m.Header, m.Data); got.Hops != 5 {
		t.Fatalf("hops %d after a round trip, want 5", got.Hops)
	}
	d.Hops = 0
	if m := deliveryMsg(&d, "id"); m.Header.Get(hdrHops) != "" {
		t.Fatalf("a delivery without hops has %s %q", hdrHops, m.Header.Get(hdrHops))
	}
}

// TestRecordKeepsTraceContext: a record of one delivery keeps the trace
// context of its event in the W3C header names; one without has none.
func TestRecordKeepsTraceContext(t *testing.T) {
	d := router.Delivery{SubscriptionID: "s", FunctionID: "f", EventID: "e", Event: "x", Payload: []byte(`{}`),
		Trace: tracing.Carrier{Parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", State: "a=b"}}
	m := deliveryMsg(&d, "id")
	if got := deliveryOf(m.Header, m.Data); got.Trace != d.Trace {
		t.Fatalf("trace context %+v after a round trip, want %+v", got.Trace, d.Trace)
	}
	d.Trace = tracing.Carrier{}
	if m := deliveryMsg(&d, "id"); m.Header.Get(hdrTraceParent) != "" || len(m.Header) != len(deliveryMsg(&router.Delivery{SubscriptionID: "s", FunctionID: "f", EventID: "e", Event: "x"}, "id").Header) {
		t.Fatalf("a delivery without trace context has headers %v", m.Header)
	}
}
