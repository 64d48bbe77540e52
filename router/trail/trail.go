// Package trail is the event trail: for every accepted event, what became
// of it. It records the subscribers the event matched (and those a filter
// skipped) and each attempt of each delivery, with its time, duration,
// result and outcome (delivered, retrying, dead letter), and serves them
// to the Configuration API.
//
// Records are kept in the JetStream stream EG_TRAIL, shared by every
// instance on the same NATS, for the retention the gateway is given
// (the stream's MaxAge), so they survive restarts and show on every
// instance.
//
// Recording costs the request path the encoding of a record into a
// buffer under a lock: a Recorder keeps records in memory (a bounded
// buffer; when it is full records are dropped and counted, never waited
// for) and one goroutine stores them, without waiting for JetStream's
// acknowledgements. The records of one event that arrive within one
// flush interval (FlushEvery, 200 ms by default) are stored as one
// message: an event delivered at once to all its subscribers costs one
// message, not one per record. The price is that the last interval's
// records are lost if the process is killed (a graceful stop stores
// them), and that a record shows up to an interval late.
//
// Subjects: the messages of an event are on
// eg.trail.<space>.<eventID>.<kind>, where kind is "a.<type>" for the
// message that holds the event's acceptance and "d" for the others, each
// part one subject token (jetstream.SubjectToken; a lowercase UUID is
// written short, idToken). One event's trail is read with the filter
// eg.trail.<space>.<eventID>.>, and recent events are listed, newest
// first, by walking back over eg.trail.<space>.*.a.* (or .a.<type>): the
// list needs no index besides the stream itself, so it is bounded by the
// same retention.
//
// A message costs NATS about as much to store as all the rest of the
// trail's work, and more under a subject of its own. So the events whose
// ids carry their time (UUIDs of version 7) are stored together: the
// records of every event whose id falls within the same windowMillis
// are one message per flush (a JSON array of the events' messages), on
// eg.trail.<space>.%W<window>.a.%B (.d when it holds no acceptance),
// as long as the records are given within windowSpan of the id's time;
// later ones (retries) go on the event's own subject, so that a window
// keeps few messages. Their id says which window to read, besides their
// own subject; lists walk those messages with the single events'
// acceptances.
package trail

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	egjs "github.com/event-gateway/event-gateway/router/jetstream"
)

// Names of the stream and its subjects.
const (
	Stream        = "EG_TRAIL"
	subjectPrefix = "eg.trail."
)

// Defaults of Options.
const (
	DefaultRetention  = 24 * time.Hour
	DefaultMaxBytes   = 256 << 20
	DefaultBuffer     = 1 << 16
	DefaultFlushEvery = 200 * time.Millisecond
)

// Kinds of a record.
const (
	KindAccepted = "accepted"
	KindSkipped  = "skipped"
	KindAttempt  = "attempt"
	// KindCall: the call of a synchronous subscription of the event.
	KindCall = "call"
)

// record is one thing that happened to an event, as stored (encode.go
// writes it, encoding/json reads it). Times are Unix microseconds.
type record struct {
	Kind string `json:"kind"`
	At   int64  `json:"at"`
	// Type is the event's type.
	Type string `json:"type,omitempty"`
	// Subscribers are, for an accepted event, those it matched.
	Subscribers []Subscriber `json:"subscribers,omitempty"`
	// SubscriptionID and FunctionID are those of a skipped subscriber or
	// of an attempt.
	SubscriptionID string `json:"subscriptionId,omitempty"`
	FunctionID     string `json:"functionId,omitempty"`
	// Reason is why a filter skipped the subscriber.
	Reason string `json:"reason,omitempty"`

	// Attempts only.
	Attempt int   `json:"attempt,omitempty"`
	TookUs  int64 `json:"tookUs,omitempty"`
	// Result is ok, timeout or failed; Error the failure.
	Result  string `json:"result,omitempty"`
	Error   string `json:"error,omitempty"`
	Outcome string `json:"outcome,omitempty"`
	// Next is when the next attempt is due.
	Next int64 `json:"next,omitempty"`
	// Instance is the host name of the gateway that made the attempt.
	Instance string `json:"instance,omitempty"`
}

// Subscriber is a subscriber an event matched.
type Subscriber struct {
	SubscriptionID string `json:"subscriptionId"`
	FunctionID     string `json:"functionId"`
}

// message is what one stored message holds: records of one event. Type
// and Instance are those of its records that leave them out (all that
// the recorder writes; Instance only matters to attempts and calls).
type message struct {
	Space    string   `json:"space"`
	EventID  string   `json:"eventId"`
	Type     string   `json:"type,omitempty"`
	Instance string   `json:"instance,omitempty"`
	Records  []record `json:"records"`
}

// fill gives m's records the type and instance they leave to m.
func (m *message) fill() {
	for i := range m.Records {
		rec := &m.Records[i]
		if rec.Type == "" {
			rec.Type = m.Type
		}
		if rec.Instance == "" && (rec.Kind == KindAttempt || rec.Kind == KindCall) {
			rec.Instance = m.Instance
		}
	}
}

// maxErrorLen bounds the error text of an attempt record.
const maxErrorLen = 1024

// maxTokenLen bounds a subject token. Event ids and types may be 4 KiB
// long (CloudEvents attributes), and a subject beyond the server's
// control line (4 KiB by default) would make NATS drop the connection,
// which the delivery queue shares.
const maxTokenLen = 128

// token is s as one subject token: jetstream.SubjectToken, or, when that
// is longer than maxTokenLen, "%H" and a hash of s, which no token of a
// string can be (they write '%' as "%25"). A trail read by such a token
// checks the event id in the message, so a collision shows nothing
// wrong.
func token(s string) string {
	t := egjs.SubjectToken(s)
	if len(t) <= maxTokenLen {
		return t
	}
	h := sha256.Sum256([]byte(s))
	return "%H" + hex.EncodeToString(h[:16])
}
