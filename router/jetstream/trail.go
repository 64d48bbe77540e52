package jetstream

import (
	"time"

	"github.com/event-gateway/event-gateway/router"
)

// AttemptObserver is told what became of each attempt of a delivery: the
// event trail (router/trail) records it. It is called on the worker's
// goroutine once the outcome is decided, so it must not block.
type AttemptObserver interface {
	Attempted(a *Attempt)
}

// Attempt is one attempt of a delivery and its outcome. It is valid only
// during the call of Attempted.
type Attempt struct {
	Delivery *router.Delivery
	// Number is the attempt number, 1 for the first; an attempt that was
	// postponed or handed back does not count, so the next one has the
	// same number.
	Number int
	Began  time.Time
	Took   time.Duration
	// Err is the attempt's error; nil when the function was called and
	// succeeded.
	Err error
	// Outcome is what becomes of the delivery (Outcome*).
	Outcome string
	// Next is, for OutcomeRetrying and OutcomePostponed, about when the
	// next attempt is due.
	Next time.Time
}

// Outcomes of an attempt.
const (
	OutcomeDelivered  = "delivered"
	OutcomeRetrying   = "retrying"
	OutcomeDeadLetter = "deadletter"
	// OutcomeDropped: the subscription was deleted after the event was
	// accepted; the function is not called.
	OutcomeDropped = "dropped"
	// OutcomePostponed: not made for want of room (bulkhead, breaker,
	// plugin); tried again later without counting an attempt.
	OutcomePostponed = "postponed"
	// OutcomeHandedBack: cut short by a shutdown; made again by this or
	// another instance.
	OutcomeHandedBack = "handedback"
)

// outcomeName is the trail's name of a settle action.
func outcomeName(a action) string {
	switch a {
	case done:
		return OutcomeDelivered
	case drop:
		return OutcomeDropped
	case handBack:
		return OutcomeHandedBack
	case postpone:
		return OutcomePostponed
	case retry:
		return OutcomeRetrying
	case deadLetter:
		return OutcomeDeadLetter
	}
	return "unknown"
}

// observe tells the trail, if any, of an attempt of d. System events'
// deliveries are left out: they are the gateway's own, not accepted
// events.
func (q *Queue) observe(d *router.Delivery, attempt int, began time.Time, took time.Duration, err error, o outcome) {
	if q.trail == nil || d.System {
		return
	}
	a := Attempt{Delivery: d, Number: attempt, Began: began, Took: took, Err: err, Outcome: outcomeName(o.action)}
	switch o.action {
	case retry, postpone:
		a.Next = began.Add(took + o.after)
	}
	q.trail.Attempted(&a)
}

// SubjectToken is s as one token of a NATS subject, as the queue writes
// its own subjects: the event trail's subjects use the same form.
func SubjectToken(s string) string { return token(s) }
