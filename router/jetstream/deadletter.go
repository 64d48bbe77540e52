package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/internal/errkind"
)

// DeadLetter is a delivery that failed every attempt.
type DeadLetter struct {
	// ID is the dead letter's sequence in its stream: ids grow with time.
	ID string `json:"id"`
	// Space is the space of the subscription and the function.
	Space          string          `json:"space"`
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
	// Space, SubscriptionID and FunctionID select; "" selects all.
	Space          string
	SubscriptionID string
	FunctionID     string
	// After is a cursor: only dead letters with a greater ID are listed.
	After string
	// Limit is the page size: default 100, at most 1000.
	Limit int
}

// errNoDeadLetter is Replay's and DeleteDeadLetter's NotFound.
func errNoDeadLetter(id string) error {
	return errkind.New(errkind.NotFound, "dead letter %q not found", id)
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

// DeadLetters lists dead letters, oldest first, filtered by space,
// function and subscription. next is the cursor of the following page (pass it as
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
	subject := deadLetterSubject(f.Space, f.FunctionID, f.SubscriptionID)
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
	// A replay retried after a failure below does not queue it twice.
	out := deliveryMsg(&d, deliveryMsgID(&d)+"/replay/"+seqID(m.Sequence))
	if err := q.store(ctx, out); err != nil {
		return unavailable(err)
	}
	if _, err := q.deleteDead(ctx, m.Sequence); err != nil {
		return err
	}
	q.replayed.Add(1)
	return nil
}

// ReplayAll replays every dead letter of a subscription (of any space:
// subscription ids are unique) that exists when it begins (those dead-lettered again meanwhile are left), and returns how
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
	subject := deadLetterSubject("", "", subscriptionID)
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
