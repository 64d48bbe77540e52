package jetstream

import (
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/router"
)

// Headers of a delivery message (and of a dead letter).
const (
	hdrSubscription = "Eg-Subscription-Id"
	hdrFunction     = "Eg-Function-Id"
	hdrEventID      = "Eg-Event-Id"
	hdrEvent        = "Eg-Event"
	hdrSystem       = "Eg-System"
	hdrRevision     = "Eg-Revision"
	// Dead letters only.
	hdrAttempts = "Eg-Attempts"
	hdrError    = "Eg-Last-Error"
	hdrFailedAt = "Eg-Failed-At"
)

// Headers of a retry record: the attempts made before it, and when the
// next one is due (Unix milliseconds).
const (
	hdrPriorAttempts = "Eg-Prior-Attempts"
	hdrNotBefore     = "Eg-Not-Before"
)

// deliveryHeader returns the headers that describe d, with room for extra
// more.
func deliveryHeader(d *router.Delivery, extra int) nats.Header {
	h := make(nats.Header, 6+extra)
	h[hdrSubscription] = []string{d.SubscriptionID}
	if d.Revision > 0 {
		h[hdrRevision] = []string{strconv.FormatInt(d.Revision, 10)}
	}
	h[hdrFunction] = []string{d.FunctionID}
	h[hdrEventID] = []string{d.EventID}
	h[hdrEvent] = []string{d.Event}
	if d.System {
		h[hdrSystem] = []string{"true"}
	}
	return h
}

// deliveryOf reads a delivery back from a message.
func deliveryOf(h nats.Header, data []byte) router.Delivery {
	rev, _ := strconv.ParseInt(h.Get(hdrRevision), 10, 64)
	return router.Delivery{
		Revision:       rev,
		SubscriptionID: h.Get(hdrSubscription),
		FunctionID:     h.Get(hdrFunction),
		EventID:        h.Get(hdrEventID),
		Event:          h.Get(hdrEvent),
		System:         h.Get(hdrSystem) == "true",
		Payload:        data,
	}
}

// token makes s one subject token: the bytes a token cannot hold ('.',
// '*', '>', spaces and control bytes) and '%' are percent-encoded, and ""
// is "%". Subscription ids (UUIDs) come out as they are; function ids may
// hold dots.
func token(s string) string {
	if s == "" {
		return "%"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func needsEscape(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' || c == '%'
}

// retryRecord is a delivery of a batch that failed attempt attempt, as a
// record of its own, due at next.
func retryRecord(d *router.Delivery, attempt int, next time.Time) *nats.Msg {
	h := deliveryHeader(d, 3)
	h[hdrPriorAttempts] = []string{strconv.Itoa(attempt)}
	h[hdrNotBefore] = []string{strconv.FormatInt(next.UnixMilli(), 10)}
	h[jetstream.ExpectedStreamHeader] = []string{DeliveriesStream}
	return &nats.Msg{Subject: deliveriesPrefix + token(d.SubscriptionID), Header: h, Data: d.Payload}
}
