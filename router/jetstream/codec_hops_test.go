package jetstream

import (
	"testing"

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
