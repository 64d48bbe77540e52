package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router"
)

// DeadLetter is a delivery that failed every attempt.
type DeadLetter struct {
	// ID is the dead letter's sequence in its stream: ids grow with time.
	ID             string          `json:"id"`
	SubscriptionID string          `json:"subscriptionId"`
	FunctionID     string          `json:"functionId"`
	EventID        string          `json:"eventId"`
	Event          string          `json:"event"`
	System         bool            `json:"system,omitempty"`
	Attempts       int             `json:"attempts"`
	LastError      string          `json:"lastError"`
	FailedAt       time.Time       `json:"failedAt"`
	Payload        json.RawMessage `json:"payload"`
}

// DeadLetterFilter selects and pages dead letters.
type DeadLetterFilter struct {
	SubscriptionID string
	FunctionID     string
	// After is a cursor: only dead letters with a greater ID are listed.
	After string
	// Limit is the page size: default 100, at most 1000.
	Limit int
}

// maxErrorLen bounds the error text kept with a dead letter.
const maxErrorLen = 2048

// errNoDeadLetter is Replay's and DeleteDeadLetter's NotFound.
func errNoDeadLetter(id string) error {
	return errkind.New(errkind.NotFound, "dead letter %q not found", id)
}

// deadLetter moves a delivery that will not be retried to the dead
// letters, then removes it from the queue. If the dead letter cannot be
// written, the delivery stays in the queue and is tried again later.
func (q *Queue) deadLetter(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, d router.Delivery, attempt int, cause error, p RetryPolicy) {
	m := deadLetterMsg(md.Sequence.Stream, &d, attempt, cause)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := q.js.PublishMsg(pctx, m); err != nil {
		delay := p.Backoff(attempt)
		q.log.Error("delivery queue: cannot write a dead letter, will try again", "eventId", d.EventID, "subscriptionId", d.SubscriptionID, "retryIn", delay, "error", err)
		_ = msg.NakWithDelay(delay)
		return
	}
	if err := msg.TermWithReason("dead-lettered"); err != nil {
		q.log.Warn("delivery queue: term", "error", err)
	}
	q.deadLettered.Add(1)
	q.log.Warn("delivery failed, dead-lettered", "eventId", d.EventID, "event", d.Event, "subscriptionId", d.SubscriptionID, "functionId", d.FunctionID, "attempts", attempt, "error", cause)
}

// deadLetterMsg is the dead letter of delivery d of the record at stream
// sequence seq, which failed attempt attempt with cause.
func deadLetterMsg(seq uint64, d *router.Delivery, attempt int, cause error) *nats.Msg {
	h := deliveryHeader(d, 4)
	h[hdrAttempts] = []string{strconv.Itoa(attempt)}
	h[hdrError] = []string{headerSafe(cause.Error())}
	h[hdrFailedAt] = []string{time.Now().UTC().Format(time.RFC3339Nano)}
	// A crash between this publish and the settling of the record
	// publishes again: the id makes that a duplicate the stream drops.
	h[jetstream.MsgIDHeader] = []string{"dl/" + seqID(seq) + "/" + d.EventID + "/" + d.SubscriptionID}
	h[jetstream.ExpectedStreamHeader] = []string{DeadLettersStream}
	return &nats.Msg{Subject: deadLettersPrefix + token(d.FunctionID) + "." + token(d.SubscriptionID), Header: h, Data: d.Payload}
}

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

// deadLetterOf decodes a message of the dead-letter stream.
func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	d := deliveryOf(m.Header, m.Data)
	dl := DeadLetter{
		ID:             seqID(m.Sequence),
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

// deadLetterSubject is the subject filter of dead letters of a function
// and a subscription, either of them "" for any.
func deadLetterSubject(functionID, subscriptionID string) string {
	fn, sub := "*", "*"
	if functionID != "" {
		fn = token(functionID)
	}
	if subscriptionID != "" {
		sub = token(subscriptionID)
	}
	return deadLettersPrefix + fn + "." + sub
}

// nextDeadLetter returns the first dead letter at or after seq on subject,
// or nil.
func (q *Queue) nextDeadLetter(ctx context.Context, seq uint64, subject string) (*jetstream.RawStreamMsg, error) {
	m, err := q.dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return m, nil
}

// DeadLetters lists dead letters, oldest first, filtered by function and
// subscription. next is the cursor of the following page (pass it as
// After), or "" when this is the last page.
func (q *Queue) DeadLetters(ctx context.Context, f DeadLetterFilter) (items []DeadLetter, next string, err error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	seq := uint64(1)
	if f.After != "" {
		after, err := strconv.ParseUint(f.After, 10, 64)
		if err != nil {
			return nil, "", errkind.New(errkind.Invalid, "invalid cursor %q", f.After)
		}
		seq = after + 1
	}
	subject := deadLetterSubject(f.FunctionID, f.SubscriptionID)
	items = []DeadLetter{}
	for len(items) < limit {
		m, err := q.nextDeadLetter(ctx, seq, subject)
		if err != nil {
			return nil, "", err
		}
		if m == nil {
			return items, "", nil
		}
		items = append(items, deadLetterOf(m))
		seq = m.Sequence + 1
	}
	m, err := q.nextDeadLetter(ctx, seq, subject)
	if err != nil {
		return nil, "", err
	}
	if m != nil {
		next = items[len(items)-1].ID
	}
	return items, next, nil
}

// Replay puts a dead letter back in the queue, with its attempts counted
// from zero, then deletes it. It is an error of kind NotFound if there is
// no dead letter id.
func (q *Queue) Replay(ctx context.Context, id string) error {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 {
		return errNoDeadLetter(id)
	}
	m, err := q.dead.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return errNoDeadLetter(id)
	}
	if err != nil {
		return unavailable(err)
	}
	return q.replay(ctx, m)
}

func (q *Queue) replay(ctx context.Context, m *jetstream.RawStreamMsg) error {
	d := deliveryOf(m.Header, m.Data)
	out := &nats.Msg{Subject: deliveriesPrefix + token(d.SubscriptionID), Header: deliveryHeader(&d, 2), Data: d.Payload}
	// A replay retried after a failure below does not queue it twice.
	out.Header[jetstream.MsgIDHeader] = []string{d.EventID + "/" + d.SubscriptionID + "/replay/" + seqID(m.Sequence)}
	out.Header[jetstream.ExpectedStreamHeader] = []string{DeliveriesStream}
	if _, err := q.js.PublishMsg(ctx, out); err != nil {
		return unavailable(err)
	}
	if _, err := q.deleteDead(ctx, m.Sequence); err != nil {
		return err
	}
	q.replayed.Add(1)
	return nil
}

// ReplayAll replays every dead letter of a subscription that exists when
// it begins (those dead-lettered again meanwhile are left), and returns how
// many it replayed.
func (q *Queue) ReplayAll(ctx context.Context, subscriptionID string) (int, error) {
	if subscriptionID == "" {
		return 0, errkind.New(errkind.Invalid, "a subscription id is required")
	}
	info, err := q.dead.Info(ctx)
	if err != nil {
		return 0, unavailable(err)
	}
	last := info.State.LastSeq
	subject := deadLetterSubject("", subscriptionID)
	n := 0
	for seq := uint64(1); seq <= last; {
		m, err := q.nextDeadLetter(ctx, seq, subject)
		if err != nil {
			return n, err
		}
		if m == nil || m.Sequence > last {
			break
		}
		if err := q.replay(ctx, m); err != nil {
			return n, err
		}
		n++
		seq = m.Sequence + 1
	}
	return n, nil
}

// DeleteDeadLetter deletes a dead letter. It is an error of kind NotFound
// if there is none with that id.
func (q *Queue) DeleteDeadLetter(ctx context.Context, id string) error {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 {
		return errNoDeadLetter(id)
	}
	found, err := q.deleteDead(ctx, seq)
	if err != nil {
		return err
	}
	if !found {
		return errNoDeadLetter(id)
	}
	return nil
}

// deleteDead deletes the dead letter seq; found is false if it was not
// there. The error of a failed delete does not say why (nats.go keeps
// only its text), so a failed delete looks the message up.
func (q *Queue) deleteDead(ctx context.Context, seq uint64) (found bool, err error) {
	derr := q.dead.DeleteMsg(ctx, seq)
	if derr == nil {
		return true, nil
	}
	if _, err := q.dead.GetMsg(ctx, seq); errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return true, unavailable(derr)
}
