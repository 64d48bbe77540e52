package jetstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/router"
)

// Start begins pulling deliveries and making them with deliver, Workers at
// a time, until Stop or until ctx ends. ctx is also the context of each
// call of deliver, so it should outlive Stop's wait. policy gives the retry
// policy of a subscription of a space, asked only when a delivery failed;
// nil means DefaultRetryPolicy for all.
//
// deliver's error decides what happens to a failed delivery (see settle):
// router.ErrSubscriptionGone drops it; of kind Forbidden, Invalid or
// NotFound it goes to the dead letters at once, since trying again cannot
// help; otherwise it is retried after policy's Backoff(attempt) until its
// MaxAttempts attempts have been made, then dead-lettered.
func (q *Queue) Start(ctx context.Context, deliver router.DeliverFunc, policy PolicyFunc) error {
	if policy == nil {
		policy = func(string, string) RetryPolicy { return DefaultRetryPolicy() }
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started {
		return errors.New("jetstream: queue already started")
	}
	cons, err := q.consumer(ctx)
	if err != nil {
		return err
	}
	it, err := q.messages(cons)
	if err != nil {
		return err
	}
	q.started = true
	q.calls = make(chan struct{}, q.workers)
	q.it = it
	q.stopCh = make(chan struct{})
	q.loopDone = make(chan struct{})
	cctx, cancel := context.WithCancel(ctx)
	q.cancelCalls = cancel
	go q.run(cctx, deliver, policy)
	go func() {
		select {
		case <-ctx.Done():
			q.halt()
		case <-q.stopCh:
		}
	}()
	return nil
}

// messages starts pulling. The client buffers at most Workers messages
// beyond those in progress, and takes one from the buffer only when a
// worker is free: a message waiting in a buffer is one that no other
// instance can take.
func (q *Queue) messages(cons jetstream.Consumer) (jetstream.MessagesContext, error) {
	it, err := cons.Messages(
		jetstream.PullMaxMessages(q.workers),
		// nats.go can leave an iterator without a pull request when the
		// last buffered message is taken while the previous request is
		// still being sent; only a missed heartbeat wakes it up. Short
		// heartbeats keep that stall under two seconds.
		jetstream.PullExpiry(5*time.Second),
		jetstream.PullHeartbeat(time.Second),
		jetstream.WithMessagesErrOnMissingHeartbeat(false))
	if err != nil {
		return nil, fmt.Errorf("jetstream: pull from %s: %w", DeliveriesConsumer, err)
	}
	return it, nil
}

// halt stops pulling: what the client has buffered is still returned by
// Next, then ErrMsgIteratorClosed.
func (q *Queue) halt() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopping {
		return
	}
	q.stopping = true
	close(q.stopCh)
	q.it.Drain()
}

func (q *Queue) isStopping() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stopping
}

// run hands messages to workers until halted.
func (q *Queue) run(ctx context.Context, deliver router.DeliverFunc, policy PolicyFunc) {
	defer close(q.loopDone)
	sem := make(chan struct{}, q.workers)
	for {
		select {
		case sem <- struct{}{}:
		case <-q.stopCh:
			// Workers are all busy: give back what is buffered.
			q.nakBuffered()
			return
		}
		q.mu.Lock()
		it := q.it
		q.mu.Unlock()
		msg, err := it.Next()
		if err != nil {
			<-sem
			if q.isStopping() {
				return
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				// The consumer was deleted, or the connection closed.
				if q.nc.IsClosed() {
					q.log.Error("delivery queue: NATS connection closed, no more deliveries")
					return
				}
				q.log.Error("delivery queue: pulling stopped, starting again", "error", err)
				q.restart(ctx)
				continue
			}
			q.log.Warn("delivery queue: pulling", "error", err)
			continue
		}
		if q.isStopping() {
			<-sem
			q.nak(msg)
			continue
		}
		q.inflight.Add(1)
		q.active.Add(1)
		go func() {
			defer q.inflight.Done()
			defer q.active.Add(-1)
			defer func() { <-sem }()
			q.handle(ctx, msg, deliver, policy)
		}()
	}
}

// restart creates the consumer again, if need be, and pulls from it,
// trying once a second until it works or the queue is stopped.
func (q *Queue) restart(ctx context.Context) {
	for {
		select {
		case <-q.stopCh:
			return
		case <-time.After(time.Second):
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cons, err := q.consumer(cctx)
		cancel()
		if err == nil {
			var it jetstream.MessagesContext
			if it, err = q.messages(cons); err == nil {
				q.mu.Lock()
				if q.stopping {
					it.Stop()
				} else {
					q.it = it
				}
				q.mu.Unlock()
				return
			}
		}
		q.log.Error("delivery queue: cannot pull", "error", err)
	}
}

// nakBuffered returns what the client still holds, once halted.
func (q *Queue) nakBuffered() {
	q.mu.Lock()
	it := q.it
	q.mu.Unlock()
	for {
		msg, err := it.Next()
		if err != nil {
			return
		}
		q.nak(msg)
	}
}

// nak hands a message back at once, for another worker or instance, on
// shutdown. Its delivery count already counts this delivery: a message
// handed back on shutdown has used one attempt without a call.
//
// A plain nak only queues the message for redelivery in the server's
// memory: the consumer's stored state still holds the time it was handed
// out, so after a restart of the store (the embedded server stops with
// the gateway) it would wait for AckWait. A nak with a delay stores a
// new time, so it is asked for with the shortest delay, and the server's
// answer awaited: once nak returns, the message is due, also after a
// restart.
func (q *Queue) nak(msg jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), nakTimeout)
	defer cancel()
	if _, err := q.nc.RequestWithContext(ctx, msg.Reply(), nakNow); err != nil {
		q.log.Debug("delivery queue: nak", "error", err)
	}
}

// nakNow is a nak with a delay of 1ns (the server's format:
// ConsumerNakOptions), which the server stores (see nak).
var nakNow = []byte(`-NAK {"delay":1}`)

// nakTimeout bounds the wait for the server's answer to a nak.
const nakTimeout = 2 * time.Second

// Stop stops pulling and waits until the deliveries in progress are done,
// or ctx ends. Messages buffered and not begun are handed back at once;
// those whose call has not ended when Stop returns (ctx ended first) are
// handed out again after AckWait, to this or another instance. Nothing is
// lost. The queue cannot be started again; Enqueue still works.
func (q *Queue) Stop(ctx context.Context) error {
	q.mu.Lock()
	started := q.started
	q.mu.Unlock()
	if !started {
		return nil
	}
	q.halt()
	done := make(chan struct{})
	go func() {
		<-q.loopDone
		q.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Abort cuts short what a Stop that ran out of time left in progress:
// the context of the calls ends, and each record is handed back at once
// (a nak), for another instance or this one's next start, rather than
// after AckWait. It waits for that until ctx ends and returns the number
// of records still in progress then (those come back after AckWait).
func (q *Queue) Abort(ctx context.Context) int {
	q.mu.Lock()
	started := q.started
	q.mu.Unlock()
	if !started {
		return 0
	}
	q.halt()
	q.cancelCalls()
	done := make(chan struct{})
	go func() {
		<-q.loopDone
		q.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return 0
	case <-ctx.Done():
		return int(q.active.Load())
	}
}

// handle makes the deliveries of a record and settles it.
func (q *Queue) handle(ctx context.Context, msg jetstream.Msg, deliver router.DeliverFunc, policy PolicyFunc) {
	md, err := msg.Metadata()
	if err != nil {
		// Not a message of a JetStream consumer: there is nothing to ack.
		q.log.Error("delivery queue: dropping a message without metadata", "subject", msg.Subject(), "error", err)
		_ = msg.TermWithReason("malformed")
		return
	}
	if msg.Subject() == batchSubject {
		q.handleBatch(ctx, msg, md, deliver, policy)
		return
	}
	d := deliveryOf(msg.Headers(), msg.Data())
	if d.SubscriptionID == "" {
		// No gateway can deliver it, now or later.
		q.log.Error("delivery queue: terminating a record without a subscription", "subject", msg.Subject(), "seq", md.Sequence.Stream)
		_ = msg.TermWithReason("malformed")
		return
	}
	attempt, scheduled := retryDue(msg, md)
	if scheduled {
		return
	}
	d.Attempt = attempt
	stop := q.keepAlive(msg)
	q.calls <- struct{}{}
	var began time.Time
	if q.trail != nil {
		began = time.Now()
	}
	err = q.call(ctx, deliver, d)
	var took time.Duration
	if q.trail != nil {
		took = time.Since(began)
	}
	<-q.calls
	stop()
	var p RetryPolicy
	if err != nil {
		p = policy(d.Space, d.SubscriptionID)
	}
	o := settle(err, attempt, p, ctx.Err() != nil, rand.Int64N)
	q.observe(&d, attempt, began, took, err, o)
	q.settleRecord(ctx, msg, md, &d, attempt, err, o)
}

// handleBatch makes the deliveries of a batch record, each as its own
// call, then settles the record.
//
// A record this gateway cannot read is never acked away: one of a format
// it does not know (a newer gateway's, during a rolling upgrade on a
// shared NATS, or an older one's) is handed back after a pause, for a
// gateway that reads it; one that no gateway can read is terminated. Both
// are logged as errors.
func (q *Queue) handleBatch(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, deliver router.DeliverFunc, policy PolicyFunc) {
	ds, err := decodeBatch(msg.Data())
	if errors.Is(err, errUnsupportedBatch) {
		q.log.Error("delivery queue: a batch record this gateway cannot read, handing it back for a gateway that can", "seq", md.Sequence.Stream, "handedOut", md.NumDelivered, "retryIn", unreadableRetry, "error", err)
		if nerr := msg.NakWithDelay(unreadableRetry); nerr != nil {
			q.log.Warn("delivery queue: nak", "error", nerr)
		}
		return
	}
	if err != nil {
		q.log.Error("delivery queue: terminating a malformed batch record", "seq", md.Sequence.Stream, "bytes", len(msg.Data()), "error", err)
		_ = msg.TermWithReason("malformed")
		return
	}
	attempt := int(md.NumDelivered)
	for i := range ds {
		ds[i].Attempt = attempt
	}
	errs := make([]error, len(ds))
	// The time and duration of each call, for the trail only.
	var began []time.Time
	var took []time.Duration
	if q.trail != nil {
		began, took = make([]time.Time, len(ds)), make([]time.Duration, len(ds))
	}
	call := func(i int) {
		if began != nil {
			began[i] = time.Now()
			defer func() { took[i] = time.Since(began[i]) }()
		}
		errs[i] = q.call(ctx, deliver, ds[i])
	}
	stop := q.keepAlive(msg)
	if len(ds) == 1 {
		q.calls <- struct{}{}
		call(0)
		<-q.calls
	} else {
		var wg sync.WaitGroup
		for i := range ds {
			q.calls <- struct{}{}
			wg.Go(func() {
				defer func() { <-q.calls }()
				call(i)
			})
		}
		wg.Wait()
	}
	stop()
	stopping := ctx.Err() != nil
	outs := make([]outcome, len(ds))
	for i, err := range errs {
		var p RetryPolicy
		if err != nil {
			p = policy(ds[i].Space, ds[i].SubscriptionID)
		}
		outs[i] = settle(err, attempt, p, stopping, rand.Int64N)
		if began != nil {
			q.observe(&ds[i], attempt, began[i], took[i], err, outs[i])
		}
	}
	q.settleBatch(ctx, msg, md, ds, attempt, errs, outs)
}

// unreadableRetry is how long a record of a format this gateway does not
// read waits before it is handed out again.
const unreadableRetry = 30 * time.Second

// call makes one delivery. A panic fails the attempt instead of the
// process: a message that crashed every instance that took it would
// otherwise never leave the queue.
func (q *Queue) call(ctx context.Context, deliver router.DeliverFunc, d router.Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			q.log.Error("delivery panicked", "eventId", d.EventID, "subscriptionId", d.SubscriptionID, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("delivery panicked: %v", r)
		}
	}()
	return deliver(ctx, d)
}

// keepAlive tells JetStream every AckWait/2 that msg is still being
// worked on, so a long call is not handed to another worker, until the
// returned func is called.
func (q *Queue) keepAlive(msg jetstream.Msg) (stop func()) {
	every := q.ackWait / 2
	var mu sync.Mutex
	stopped := false
	mu.Lock()
	defer mu.Unlock()
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := msg.InProgress(); err != nil {
			q.log.Debug("delivery queue: in progress", "error", err)
		}
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

// retryDue handles the first hand-out of a retry record, which only
// schedules it: the record goes back to the queue until it is due. It
// returns the attempt number the record's next call will be, and whether
// msg was settled here.
func retryDue(msg jetstream.Msg, md *jetstream.MsgMetadata) (attempt int, settled bool) {
	h := msg.Headers()
	prior, err := strconv.Atoi(h.Get(hdrPriorAttempts))
	if err != nil {
		return int(md.NumDelivered), false // an ordinary record
	}
	if md.NumDelivered <= 1 {
		due, _ := strconv.ParseInt(h.Get(hdrNotBefore), 10, 64)
		_ = msg.NakWithDelay(max(time.Until(time.UnixMilli(due)), 0))
		return 0, true
	}
	return prior + int(md.NumDelivered) - 1, false
}
