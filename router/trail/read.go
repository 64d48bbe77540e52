package trail

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	egjs "github.com/event-gateway/event-gateway/router/jetstream"
)

// Event is the trail of one event: what became of it at each subscriber.
type Event struct {
	Space   string `json:"space"`
	EventID string `json:"eventId"`
	Type    string `json:"type"`
	// AcceptedAt is when the gateway received it; nil when its acceptance
	// was not recorded (dropped from a full buffer).
	AcceptedAt *time.Time `json:"acceptedAt,omitempty"`
	// Outcome sums the subscribers' up: OutcomeUnmatched when it matched
	// none, OutcomeInFlight while a delivery is not settled, else
	// OutcomeDeadLetter when one was dead-lettered, else OutcomeFailed
	// when its synchronous call failed, else OutcomeDelivered.
	Outcome     string          `json:"outcome"`
	Subscribers []SubscriberLog `json:"subscribers"`
}

// SubscriberLog is what became of an event at one subscriber.
type SubscriberLog struct {
	SubscriptionID string `json:"subscriptionId"`
	FunctionID     string `json:"functionId"`
	// Outcome is that of the last attempt (pending before the first, and
	// while the delivery waits for room), or skipped.
	Outcome string `json:"outcome"`
	// Reason is why a filter skipped it.
	Reason string `json:"reason,omitempty"`
	// Sync marks the synchronous subscription, whose one attempt is the
	// call that answered the request.
	Sync     bool      `json:"sync,omitempty"`
	Attempts []Attempt `json:"attempts"`
}

// Attempt is one attempt of a delivery.
type Attempt struct {
	Attempt       int        `json:"attempt"`
	At            time.Time  `json:"at"`
	DurationMs    float64    `json:"durationMs"`
	Result        string     `json:"result"`
	Error         string     `json:"error,omitempty"`
	Outcome       string     `json:"outcome"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	Instance      string     `json:"instance,omitempty"`
}

// Outcomes of a subscriber (besides those of an attempt, which are
// jetstream.Outcome*) and of an event.
const (
	OutcomePending   = "pending"
	OutcomeSkipped   = "skipped"
	OutcomeUnmatched = "unmatched"
	OutcomeInFlight  = "inflight"
	OutcomeDelivered = egjs.OutcomeDelivered
	OutcomeRetrying  = egjs.OutcomeRetrying
	// OutcomeDeadLetter: see egjs.OutcomeDeadLetter.
	OutcomeDeadLetter = egjs.OutcomeDeadLetter
	OutcomeDropped    = egjs.OutcomeDropped
	// OutcomeFailed: the call of a synchronous subscription failed (its
	// caller got the error; there is no retry).
	OutcomeFailed = "failed"
)

// Outcomes lists the outcomes ListFilter.Outcome may ask for.
var Outcomes = []string{OutcomePending, OutcomeRetrying, OutcomeDelivered, OutcomeDeadLetter, OutcomeFailed, OutcomeDropped, OutcomeSkipped, OutcomeUnmatched}

// unavailable is the error of a read NATS could not answer.
func unavailable(err error) error {
	return errkind.Wrap(errkind.Unavailable, err, "event trail unavailable, retry later")
}

// notFound is Event's NotFound.
func notFound(space, id string) error {
	return errkind.New(errkind.NotFound, "no trail of event %q in space %q (never accepted, or older than the retention)", id, space)
}

// messages returns the messages on subject, oldest first, up to
// maxEventMessages of them or maxEventBytes of data, and how many reads
// that took. skip, when not nil, leaves out a message it reports true of
// (without counting its bytes).
func (r *Recorder) messages(ctx context.Context, subject string, skip func([]byte) bool) (out []*jetstream.RawStreamMsg, reads int, err error) {
	size := 0
	for seq := uint64(1); len(out) < maxEventMessages && size < maxEventBytes; {
		m, err := r.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		reads++
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, reads, unavailable(err)
		}
		seq = m.Sequence + 1
		if skip != nil && skip(m.Data) {
			continue
		}
		out = append(out, m)
		size += len(m.Data)
	}
	return out, reads, nil
}

// Event returns the trail of the event id of space ("" for the default
// space). It is an error of kind NotFound when nothing is recorded of it.
func (r *Recorder) Event(ctx context.Context, space, id string) (*Event, error) {
	ev, _, err := r.event(ctx, space, id, nil)
	return ev, err
}

// lastWindow keeps the messages of the window a List read last: the
// events of one window come one after the other in a list, and each
// would read them all again.
type lastWindow struct {
	subject string
	msgs    []message
}

// event is Event, and how many reads it took. The records of an event
// whose id carries its time are in the messages of its window (those
// given near that time) and on its own subject (later ones); those of
// other events on their own subject only. It reads a window's messages
// from last (when not nil) if they are those it read last, and keeps
// them there.
func (r *Recorder) event(ctx context.Context, space, id string, last *lastWindow) (*Event, int, error) {
	if space == "" {
		space = functions.DefaultSpace
	}
	var msgs []message
	reads := 0
	read := func(subject string, skip func([]byte) bool) error {
		ms, n, err := r.messages(ctx, subject, skip)
		reads += n
		if err != nil {
			return err
		}
		for _, m := range ms {
			decoded, err := decode(m.Data)
			if err != nil {
				r.log.Warn("event trail: unreadable record", "seq", m.Sequence, "error", err)
				continue
			}
			msgs = append(msgs, decoded...)
		}
		return nil
	}
	if w, ok := window(id); ok {
		subject := windowSubject(space, w) + ".>"
		switch {
		case last != nil && last.subject == subject:
			msgs = append(msgs, last.msgs...)
		case last != nil:
			// A list reads the window for its other events too.
			if err := read(subject, nil); err != nil {
				return nil, reads, err
			}
			*last = lastWindow{subject, msgs}
		default:
			// The id is written as it is (a UUID needs no escape): a
			// message without it holds none of the event's records.
			if err := read(subject, func(b []byte) bool { return !bytes.Contains(b, []byte(id)) }); err != nil {
				return nil, reads, err
			}
		}
		msgs = slices.Clip(msgs)
	}
	if err := read(eventSubject(space, id)+".>", nil); err != nil {
		return nil, reads, err
	}
	var recs []record
	for i := range msgs {
		msg := &msgs[i]
		if msg.EventID != id || msg.Space != space {
			continue // another event of the window, or whose long id hashes alike (token)
		}
		msg.fill()
		recs = append(recs, msg.Records...)
	}
	if len(recs) == 0 {
		return nil, reads, notFound(space, id)
	}
	return assemble(space, id, recs), reads, nil
}

// decode reads a stored message: the records of one event, or of the
// events of a window (an array of such).
func decode(data []byte) ([]message, error) {
	var msgs []message
	if len(data) > 0 && data[0] == '[' {
		err := json.Unmarshal(data, &msgs)
		return msgs, err
	}
	msgs = make([]message, 1)
	err := json.Unmarshal(data, &msgs[0])
	return msgs, err
}

// accepts reports whether m holds the acceptance of its event.
func (m *message) accepts() bool {
	for i := range m.Records {
		if m.Records[i].Kind == KindAccepted {
			return true
		}
	}
	return false
}

// maxEventMessages and maxEventBytes bound what is read for one event:
// its own messages (one per flush that held some of its records), or
// those of its window (one per flush within windowSpan of its time, per
// instance, unless a window's events fill more than a message).
const (
	maxEventMessages = 1000
	maxEventBytes    = 32 << 20
)

// assemble makes the trail of an event from its records.
func assemble(space, id string, recs []record) *Event {
	slices.SortStableFunc(recs, func(a, b record) int { return cmp.Compare(a.At, b.At) })
	ev := &Event{Space: space, EventID: id, Subscribers: []SubscriberLog{}}
	index := map[string]int{}
	sub := func(subID, fnID string) *SubscriberLog {
		i, ok := index[subID]
		if !ok {
			i = len(ev.Subscribers)
			index[subID] = i
			ev.Subscribers = append(ev.Subscribers, SubscriberLog{SubscriptionID: subID, FunctionID: fnID, Outcome: OutcomePending, Attempts: []Attempt{}})
		}
		return &ev.Subscribers[i]
	}
	for _, rec := range recs {
		if ev.Type == "" {
			ev.Type = rec.Type
		}
		switch rec.Kind {
		case KindAccepted:
			at := micros(rec.At)
			ev.AcceptedAt = &at
			ev.Type = rec.Type
			for _, s := range rec.Subscribers {
				sub(s.SubscriptionID, s.FunctionID)
			}
		case KindSkipped:
			s := sub(rec.SubscriptionID, rec.FunctionID)
			s.Outcome, s.Reason = OutcomeSkipped, rec.Reason
		case KindAttempt, KindCall:
			s := sub(rec.SubscriptionID, rec.FunctionID)
			s.Sync = rec.Kind == KindCall
			a := Attempt{
				Attempt: rec.Attempt, At: micros(rec.At), DurationMs: float64(rec.TookUs) / 1000, Result: rec.Result,
				Error: rec.Error, Outcome: rec.Outcome, Instance: rec.Instance,
			}
			if rec.Next != 0 {
				next := micros(rec.Next)
				a.NextAttemptAt = &next
			}
			s.Attempts = append(s.Attempts, a)
			switch rec.Outcome {
			case egjs.OutcomePostponed, egjs.OutcomeHandedBack:
				s.Outcome = OutcomePending
			default:
				s.Outcome = rec.Outcome
			}
		}
	}
	ev.Outcome = summary(ev.Subscribers)
	return ev
}

// micros is a stored time.
func micros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// summary is the outcome of an event from its subscribers'.
func summary(subs []SubscriberLog) string {
	if len(subs) == 0 {
		return OutcomeUnmatched
	}
	dead, failed, matched := false, false, false
	for _, s := range subs {
		switch s.Outcome {
		case OutcomePending, OutcomeRetrying:
			return OutcomeInFlight
		case OutcomeDeadLetter:
			dead = true
		case OutcomeFailed:
			failed = true
		}
		if s.Outcome != OutcomeSkipped {
			matched = true
		}
	}
	switch {
	case !matched:
		return OutcomeUnmatched
	case dead:
		return OutcomeDeadLetter
	case failed:
		return OutcomeFailed
	}
	return OutcomeDelivered
}

// ListFilter selects and pages events.
type ListFilter struct {
	// Type, SubscriptionID and Outcome select; "" selects all. An event
	// has an outcome when one of its subscribers (the one of
	// SubscriptionID, if given) has it; OutcomeUnmatched selects events
	// that matched no subscriber.
	Type           string
	SubscriptionID string
	Outcome        string
	// Before is a cursor: only events accepted before it are listed.
	Before string
	// Limit is the page size: default DefaultLimit, at most MaxLimit.
	Limit int
}

// Page sizes of List.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// maxListReads bounds the reads of one List: a filter that matches few
// events returns a short page (with a cursor to go on) rather than read
// the whole stream in one request.
const maxListReads = 5000

// List lists the events of space accepted within the retention, newest
// first, that match f. next is the cursor of the following page (pass
// it as Before), "" when the list ends. A page may hold fewer than Limit
// events and still have a next page: each reads at most a bounded part
// of the stream.
func (r *Recorder) List(ctx context.Context, space string, f ListFilter) (items []Event, next string, err error) {
	if space == "" {
		space = functions.DefaultSpace
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	if f.Outcome != "" && !slices.Contains(Outcomes, f.Outcome) {
		return nil, "", errkind.New(errkind.Invalid, "outcome %q is not one of %v", f.Outcome, Outcomes)
	}
	info, err := r.stream.Info(ctx)
	if err != nil {
		return nil, "", unavailable(err)
	}
	first, hi := info.State.FirstSeq, info.State.LastSeq
	// The cursor is a sequence and, in its low 16 bits, how many of the
	// events of that message are still to list (0: none, go on before it).
	// 16 bits are enough: a message of at most maxMessage bytes holds
	// fewer than 1<<16 events, each of which takes over 64 bytes (a
	// window's ids alone are 36).
	partialSeq, partial := uint64(0), 0
	if f.Before != "" {
		before, err := strconv.ParseUint(f.Before, 10, 64)
		if err != nil || before>>16 == 0 {
			return nil, "", errkind.New(errkind.Invalid, "invalid cursor %q", f.Before)
		}
		seq, idx := before>>16, int(before&0xffff)
		if idx == 0 {
			hi = min(hi, seq-1)
		} else if seq <= hi {
			hi, partialSeq, partial = seq, seq, idx
		}
	}
	// Acceptances of single events are on eg.trail.<space>.<id>.a.<type>,
	// those of windows on eg.trail.<space>.%W<window>.a.%B.
	subjects := []string{subjectPrefix + token(space) + ".*.a.*"}
	if f.Type != "" {
		subjects = []string{subjectPrefix + token(space) + ".*.a." + token(f.Type), subjectPrefix + token(space) + ".*.a." + windowBatch}
	}
	cursor := func(seq uint64, idx int) string { return strconv.FormatUint(seq<<16|uint64(idx), 10) }
	items = []Event{}
	reads := 0
	var last lastWindow
	// Walk back in windows of sequences, reading the accepted messages of
	// each window forward (direct gets go forward only); a window that
	// held none doubles the next one.
	span := uint64(256)
	for hi >= first && hi > 0 {
		if reads >= maxListReads || ctx.Err() != nil {
			return items, cursor(hi+1, 0), nil
		}
		lo := first
		if hi-first+1 > span {
			lo = hi - span + 1
		}
		var ms []*jetstream.RawStreamMsg
		for _, subject := range subjects {
			for seq := lo; ; {
				m, err := r.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
				reads++
				if errors.Is(err, jetstream.ErrMsgNotFound) {
					break
				}
				if err != nil {
					return nil, "", unavailable(err)
				}
				if m.Sequence > hi {
					break
				}
				ms = append(ms, m)
				seq = m.Sequence + 1
			}
		}
		if len(subjects) > 1 {
			slices.SortFunc(ms, func(a, b *jetstream.RawStreamMsg) int { return cmp.Compare(a.Sequence, b.Sequence) })
		}
		if len(ms) == 0 {
			span = min(span*2, 1<<20)
		}
		for i := len(ms) - 1; i >= 0; i-- {
			msgs, err := decode(ms[i].Data)
			if err != nil {
				continue
			}
			j := len(msgs) - 1
			if ms[i].Sequence == partialSeq {
				j = min(j, partial-1)
			}
			for ; j >= 0; j-- {
				msg := &msgs[j]
				if len(msgs) > 1 || ms[i].Data[0] == '[' {
					// A window's: its events of every type, some only
					// attempted there.
					if !msg.accepts() || (f.Type != "" && msg.Type != f.Type) {
						continue
					}
				}
				ev, n, err := r.event(ctx, space, msg.EventID, &last)
				reads += n
				if errkind.Of(err) == errkind.NotFound {
					continue // expired meanwhile
				}
				if err != nil {
					return nil, "", err
				}
				if !f.matches(ev) {
					continue
				}
				items = append(items, *ev)
				if len(items) == limit {
					switch {
					case j > 0:
						return items, cursor(ms[i].Sequence, j), nil
					case ms[i].Sequence <= first:
						return items, "", nil
					}
					return items, cursor(ms[i].Sequence, 0), nil
				}
			}
		}
		if lo == 0 || lo <= first {
			break
		}
		hi = lo - 1
	}
	return items, "", nil
}

// matches reports whether ev is one f selects (its type is selected by
// the subject already).
func (f ListFilter) matches(ev *Event) bool {
	if f.Outcome == OutcomeUnmatched {
		return ev.Outcome == OutcomeUnmatched && f.SubscriptionID == ""
	}
	if f.SubscriptionID == "" && f.Outcome == "" {
		return true
	}
	for _, s := range ev.Subscribers {
		if (f.SubscriptionID == "" || s.SubscriptionID == f.SubscriptionID) && (f.Outcome == "" || s.Outcome == f.Outcome) {
			return true
		}
	}
	return false
}
