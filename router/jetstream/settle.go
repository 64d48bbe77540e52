package jetstream

import (
	"context"
	"errors"
	"time"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What becomes of a delivery after an attempt is decided here, once, for
// a record of one delivery and for each delivery of a batch record alike.
// The two paths differ only in how they carry the decision out: a record
// of one delivery is acked, handed back or delayed itself; a delivery of
// a batch leaves its record as a retry record or a dead letter, and the
// batch is acked once all of its deliveries are settled (consume.go).

// action is what is done with a delivery after an attempt.
type action uint8

const (
	// done: the delivery was made; it leaves the queue.
	done action = iota + 1
	// drop: its subscription was deleted since the event was accepted,
	// so the function must not get it; it leaves the queue, counted as
	// dropped.
	drop
	// handBack: the attempt was cut short by a shutdown; the delivery goes
	// back to the queue at once, for this or another instance.
	handBack
	// postpone: it was not made, for want of room rather than for a
	// failure (router.DeferredError: its function's bulkhead full or
	// breaker open, a plugin unavailable); it is tried again after
	// outcome.after, and the attempt does not count.
	postpone
	// retry: it is tried again after outcome.after.
	retry
	// deadLetter: it goes to the dead letters, since no attempt is left
	// or trying again cannot help.
	deadLetter
)

func (a action) String() string {
	switch a {
	case done:
		return "done"
	case drop:
		return "drop"
	case handBack:
		return "hand back"
	case postpone:
		return "postpone"
	case retry:
		return "retry"
	case deadLetter:
		return "dead letter"
	}
	return "unknown"
}

// outcome is settle's decision.
type outcome struct {
	action action
	// after is, for retry and postpone, the pause before the next attempt; for
	// deadLetter, the pause before the delivery is tried again should its
	// dead letter not be stored.
	after time.Duration
}

// settle decides what becomes of a delivery whose attempt number attempt
// (1 for the first) ended with err, under the retry policy p. stopping
// reports that the queue is shutting down (the context of the attempt has
// ended), so a failure may be the shutdown's doing rather than the
// function's. rnd draws the jitter of the backoff (see
// RetryPolicy.backoff). settle has no side effects: its inputs decide.
func settle(err error, attempt int, p RetryPolicy, stopping bool, rnd func(n int64) int64) outcome {
	var deferred *router.DeferredError
	switch {
	case err == nil:
		return outcome{action: done}
	case errors.Is(err, router.ErrSubscriptionGone):
		return outcome{action: drop}
	case errors.As(err, &deferred):
		return outcome{action: postpone, after: max(deferred.After, 0)}
	case stopping:
		return outcome{action: handBack}
	case retryable(err) && attempt < p.normalized().MaxAttempts:
		return outcome{action: retry, after: p.backoff(attempt, rnd)}
	}
	return outcome{action: deadLetter, after: p.backoff(attempt, rnd)}
}

// retryable reports whether trying a failed delivery again can help: not
// when a plugin refused it (Forbidden), it cannot be made (Invalid) or
// there is nothing to call (NotFound).
func retryable(err error) bool {
	switch errkind.Of(err) {
	case errkind.Forbidden, errkind.Invalid, errkind.NotFound:
		return false
	}
	return true
}

// settleRecord carries out o for the record of one delivery d, whose
// attempt number attempt ended with err.
func (q *Queue) settleRecord(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, d *router.Delivery, attempt int, err error, o outcome) {
	switch o.action {
	case done, drop:
		if aerr := msg.Ack(); aerr != nil {
			q.log.Warn("delivery queue: ack", "eventId", d.EventID, "space", d.Space, "subscriptionId", d.SubscriptionID, "error", aerr)
		}
		if o.action == done {
			q.delivered.Add(1)
		} else {
			q.dropped.Add(1)
		}
	case handBack:
		q.nak(msg)
	case postpone:
		// A nak would count an attempt (the record's delivery count):
		// the record is stored again instead, as a retry record that
		// owes the attempts made so far, less this one, and the original
		// leaves the queue. Should that fail, a nak with the delay is the
		// fallback, and costs one attempt.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), followUpTimeout)
		defer cancel()
		if serr := q.store(pctx, retryRecord(d, attempt-1, time.Now().Add(o.after))); serr != nil {
			q.log.Warn("delivery queue: cannot store a postponed delivery, handing it back", "eventId", d.EventID, "space", d.Space, "subscriptionId", d.SubscriptionID, "retryIn", o.after, "error", serr)
			_ = msg.NakWithDelay(o.after)
			return
		}
		if aerr := msg.Ack(); aerr != nil {
			q.log.Warn("delivery queue: ack", "eventId", d.EventID, "space", d.Space, "subscriptionId", d.SubscriptionID, "error", aerr)
		}
		q.postponed.Add(1)
		q.logPostpone(d, attempt, o.after, err)
	case retry:
		// JetStream hands the record out again after the delay, with its
		// delivery count, the attempt number, one higher.
		if nerr := msg.NakWithDelay(o.after); nerr != nil {
			q.log.Warn("delivery queue: nak", "error", nerr)
		}
		q.retried.Add(1)
		q.logRetry(d, attempt, o.after, err)
	case deadLetter:
		// The dead letter is stored before the record leaves the queue: if
		// it cannot be, the delivery stays and is tried again later.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), followUpTimeout)
		defer cancel()
		if serr := q.store(pctx, deadLetterMsg(md.Sequence.Stream, d, attempt, err)); serr != nil {
			q.log.Error("delivery queue: cannot store a dead letter, will try again", "eventId", d.EventID, "space", d.Space, "subscriptionId", d.SubscriptionID, "retryIn", o.after, "error", serr)
			_ = msg.NakWithDelay(o.after)
			return
		}
		if terr := msg.TermWithReason("dead-lettered"); terr != nil {
			q.log.Warn("delivery queue: term", "error", terr)
		}
		q.deadLettered.Add(1)
		q.logDeadLetter(d, attempt, err)
	}
}

// settleBatch carries out outs, the outcomes of the deliveries ds of a
// batch record after attempt number attempt ended with errs. The record is
// acked only once every delivery is settled: those to be tried again are
// stored first as retry records of their own, and those that failed for
// good as dead letters, so that the record's other deliveries are not made
// again for them. A delivery cut short by a shutdown hands the whole
// record back.
func (q *Queue) settleBatch(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, ds []router.Delivery, attempt int, errs []error, outs []outcome) {
	var follow []*nats.Msg
	var delivered, dropped, retried, dead, postponed int
	for i, o := range outs {
		d := &ds[i]
		switch o.action {
		case done:
			delivered++
		case drop:
			dropped++
		case handBack:
			q.nak(msg)
			return
		case postpone:
			// Its attempt does not count: the retry record owes one
			// fewer.
			follow = append(follow, retryRecord(d, attempt-1, time.Now().Add(o.after)))
			postponed++
		case retry:
			follow = append(follow, retryRecord(d, attempt, time.Now().Add(o.after)))
			retried++
		case deadLetter:
			follow = append(follow, deadLetterMsg(md.Sequence.Stream, d, attempt, errs[i]))
			dead++
		}
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), followUpTimeout)
	defer cancel()
	if err := q.store(pctx, follow...); err != nil {
		// Without its retries and dead letters stored, the record must
		// stay: all of it is tried again, the deliveries that worked too.
		q.log.Error("delivery queue: cannot store retries or dead letters of a record, will make it again", "seq", md.Sequence.Stream, "retryIn", batchFollowUpRetry, "error", err)
		_ = msg.NakWithDelay(batchFollowUpRetry)
		return
	}
	if err := msg.Ack(); err != nil {
		q.log.Warn("delivery queue: ack", "error", err)
	}
	for i, o := range outs {
		switch o.action {
		case postpone:
			q.logPostpone(&ds[i], attempt, o.after, errs[i])
		case retry:
			q.logRetry(&ds[i], attempt, o.after, errs[i])
		case deadLetter:
			q.logDeadLetter(&ds[i], attempt, errs[i])
		}
	}
	q.delivered.Add(uint64(delivered))
	q.dropped.Add(uint64(dropped))
	q.retried.Add(uint64(retried))
	q.deadLettered.Add(uint64(dead))
	q.postponed.Add(uint64(postponed))
}

const (
	// followUpTimeout bounds the storing of the retry records and dead
	// letters that settle a record.
	followUpTimeout = 10 * time.Second
	// batchFollowUpRetry is how soon a batch record whose retry records
	// or dead letters could not be stored is made again.
	batchFollowUpRetry = 5 * time.Second
)

func (q *Queue) logRetry(d *router.Delivery, attempt int, after time.Duration, err error) {
	q.log.Debug("delivery failed, will retry", "eventId", d.EventID, "space", d.Space, "subscriptionId", d.SubscriptionID, "functionId", d.FunctionID, "attempt", attempt, "retryIn", after, "error", err)
}

func (q *Queue) logPostpone(d *router.Delivery, attempt int, after time.Duration, err error) {
	q.log.Debug("delivery postponed, the attempt does not count", "eventId", d.EventID, "space", d.Space, "subscriptionId", d.SubscriptionID, "functionId", d.FunctionID, "attempt", attempt, "retryIn", after, "reason", err)
}

func (q *Queue) logDeadLetter(d *router.Delivery, attempt int, err error) {
	q.log.Warn("delivery failed, dead-lettered", "eventId", d.EventID, "event", d.Event, "space", d.Space, "subscriptionId", d.SubscriptionID, "functionId", d.FunctionID, "attempts", attempt, "error", err)
}
