package jetstream

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/event-gateway/event-gateway/internal/tracing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/router"
)

// Records of one delivery (an event's delivery stored alone, a retry
// record, a replayed dead letter) and dead letters carry the delivery in
// headers and its envelope as the data. Batch records have a binary
// encoding of their own (codec_batch.go).

// Subjects. A record of one delivery is stored on
// eg.deliveries.<space>.<subscriptionID>, a dead letter on
// eg.deadletters.<space>.<functionID>.<subscriptionID>, each part one
// token (see token), so dead letters can be listed by any of the three
// with a subject filter. Batch records are on eg.deliveries._batch: one
// token fewer than any record of one delivery, so no space or
// subscription can have that subject.
const (
	deliveriesPrefix  = "eg.deliveries."
	deadLettersPrefix = "eg.deadletters."
)

// defaultSpace is the space of a delivery whose Space is "": that of the
// first-generation API (/v1/functions, /v1/subscriptions).
const defaultSpace = "default"

// Headers of a record of one delivery, and of a dead letter.
const (
	hdrSpace        = "Eg-Space"
	hdrSubscription = "Eg-Subscription-Id"
	hdrFunction     = "Eg-Function-Id"
	hdrEventID      = "Eg-Event-Id"
	hdrEvent        = "Eg-Event"
	hdrSystem       = "Eg-System"
	hdrRevision     = "Eg-Revision"
	hdrHops         = "Eg-Hops"
	// The W3C trace context of the request that brought the event, with
	// the names W3C gives its headers.
	hdrTraceParent = "Traceparent"
	hdrTraceState  = "Tracestate"

	// Retry records only: the attempts made before it, and when the next
	// one is due (Unix milliseconds).
	hdrPriorAttempts = "Eg-Prior-Attempts"
	hdrNotBefore     = "Eg-Not-Before"

	// Dead letters only.
	hdrAttempts = "Eg-Attempts"
	hdrError    = "Eg-Last-Error"
	hdrFailedAt = "Eg-Failed-At"
)

// maxErrorLen bounds the error text kept with a dead letter.
const maxErrorLen = 2048

// spaceOf is the space a delivery is stored in: s, or the default space
// for "".
func spaceOf(s string) string {
	if s == "" {
		return defaultSpace
	}
	return s
}

// deliverySubject is the subject of a record holding d alone.
func deliverySubject(d *router.Delivery) string {
	return deliveriesPrefix + token(spaceOf(d.Space)) + "." + token(d.SubscriptionID)
}

// deadLetterSubject is the subject filter of the dead letters of a space,
// a function and a subscription, any of them "" for all.
func deadLetterSubject(space, functionID, subscriptionID string) string {
	sp, fn, sub := "*", "*", "*"
	if space != "" {
		sp = token(space)
	}
	if functionID != "" {
		fn = token(functionID)
	}
	if subscriptionID != "" {
		sub = token(subscriptionID)
	}
	return deadLettersPrefix + sp + "." + fn + "." + sub
}

// deliveryHeader returns the headers that describe d, with room for extra
// more.
func deliveryHeader(d *router.Delivery, extra int) nats.Header {
	h := make(nats.Header, 7+extra)
	h[hdrSpace] = []string{spaceOf(d.Space)}
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
	if d.Hops > 0 {
		h[hdrHops] = []string{strconv.Itoa(d.Hops)}
	}
	if d.Trace.Parent != "" {
		h[hdrTraceParent] = []string{d.Trace.Parent}
		if d.Trace.State != "" {
			h[hdrTraceState] = []string{d.Trace.State}
		}
	}
	return h
}

// deliveryOf reads a delivery back from a record's headers and data. A
// record without a space header can only have been written before spaces
// were stored, when every delivery was of the default space.
func deliveryOf(h nats.Header, data []byte) router.Delivery {
	rev, _ := strconv.ParseInt(h.Get(hdrRevision), 10, 64)
	hops, _ := strconv.Atoi(h.Get(hdrHops))
	return router.Delivery{
		Hops:           max(hops, 0),
		Space:          spaceOf(h.Get(hdrSpace)),
		Revision:       rev,
		SubscriptionID: h.Get(hdrSubscription),
		FunctionID:     h.Get(hdrFunction),
		EventID:        h.Get(hdrEventID),
		Event:          h.Get(hdrEvent),
		System:         h.Get(hdrSystem) == "true",
		Trace:          tracing.Carrier{Parent: h.Get(hdrTraceParent), State: h.Get(hdrTraceState)},
		Payload:        data,
	}
}

// deliveryMsg is a record of d alone. msgID is its message id, by which
// the stream drops a second publish of it within the dedupe window.
func deliveryMsg(d *router.Delivery, msgID string) *nats.Msg {
	h := deliveryHeader(d, 2)
	h[jetstream.MsgIDHeader] = []string{msgID}
	h[jetstream.ExpectedStreamHeader] = []string{DeliveriesStream}
	return &nats.Msg{Subject: deliverySubject(d), Header: h, Data: d.Payload}
}

// deliveryMsgID is the message id of the record of d stored by Enqueue: a
// retried Enqueue of the same event stores it once.
func deliveryMsgID(d *router.Delivery) string {
	return spaceOf(d.Space) + "/" + d.EventID + "/" + d.SubscriptionID
}

// retryRecord is a delivery of a batch that failed attempt attempt, as a
// record of its own, due at next.
func retryRecord(d *router.Delivery, attempt int, next time.Time) *nats.Msg {
	h := deliveryHeader(d, 3)
	h[hdrPriorAttempts] = []string{strconv.Itoa(attempt)}
	h[hdrNotBefore] = []string{strconv.FormatInt(next.UnixMilli(), 10)}
	h[jetstream.ExpectedStreamHeader] = []string{DeliveriesStream}
	return &nats.Msg{Subject: deliverySubject(d), Header: h, Data: d.Payload}
}

// deadLetterMsg is the dead letter of delivery d of the record at stream
// sequence seq, which failed attempt attempt with cause.
func deadLetterMsg(seq uint64, d *router.Delivery, attempt int, cause error) *nats.Msg {
	h := deliveryHeader(d, 5)
	h[hdrAttempts] = []string{strconv.Itoa(attempt)}
	h[hdrError] = []string{headerSafe(cause.Error())}
	h[hdrFailedAt] = []string{time.Now().UTC().Format(time.RFC3339Nano)}
	// A crash between this publish and the settling of the record
	// publishes again: the id makes that a duplicate the stream drops.
	h[jetstream.MsgIDHeader] = []string{"dl/" + seqID(seq) + "/" + deliveryMsgID(d)}
	h[jetstream.ExpectedStreamHeader] = []string{DeadLettersStream}
	subject := deadLettersPrefix + token(spaceOf(d.Space)) + "." + token(d.FunctionID) + "." + token(d.SubscriptionID)
	return &nats.Msg{Subject: subject, Header: h, Data: d.Payload}
}

// deadLetterOf decodes a message of the dead-letter stream.
func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	d := deliveryOf(m.Header, m.Data)
	dl := DeadLetter{
		ID:             seqID(m.Sequence),
		Space:          d.Space,
		SubscriptionID: d.SubscriptionID,
		FunctionID:     d.FunctionID,
		EventID:        d.EventID,
		Event:          d.Event,
		System:         d.System,
		LastError:      m.Header.Get(hdrError),
		FailedAt:       m.Time,
		Payload:        json.RawMessage(m.Data),
	}
	dl.Attempts, _ = strconv.Atoi(m.Header.Get(hdrAttempts))
	if t, err := time.Parse(time.RFC3339Nano, m.Header.Get(hdrFailedAt)); err == nil {
		dl.FailedAt = t
	}
	return dl
}

// seqID is a stream sequence as a dead letter's id.
func seqID(seq uint64) string { return strconv.FormatUint(seq, 10) }

// headerSafe makes s a header value: no line breaks or other control
// characters, valid UTF-8, at most maxErrorLen bytes.
func headerSafe(s string) string {
	if len(s) > maxErrorLen {
		cut := maxErrorLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut-- // do not cut a character in two
		}
		s = s[:cut]
	}
	s = strings.ToValidUTF8(s, "?")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
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
