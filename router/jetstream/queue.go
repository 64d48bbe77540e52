// Package jetstream is the durable delivery queue of asynchronous events,
// on NATS JetStream.
//
// Accepted deliveries are stored in the work-queue stream EG_DELIVERIES:
// those of events accepted together in one batch record, on the subject
// eg.deliveries._batch (see batch.go), and a delivery waiting for a retry
// (or too large to share a record) in a record of its own, on the subject
// eg.deliveries.<subscriptionID>. Enqueue returns only once JetStream has
// stored every delivery of the event, so a 202 means persisted. One durable
// pull consumer, shared by every gateway instance that uses the same NATS,
// hands each record to one worker of one instance at a time; a record
// leaves the stream when it is acked.
//
// A failed delivery is not retried by the worker: it is stored as a record
// of its own, negatively acknowledged with a delay (exponential backoff
// with jitter), and JetStream hands it out again when the delay is over. A worker is
// never held by a failing subscriber, so one slow or failing function
// never delays the deliveries of another. The attempt number is the
// message's delivery count kept by JetStream, so it survives crashes and
// moves with the message between instances. After the last attempt the
// delivery goes to the stream EG_DEADLETTERS (subject
// eg.deadletters.<functionID>.<subscriptionID>) with its last error, where
// it can be listed, replayed or deleted.
//
// Delivery is at least once: a crash between a call and its ack, or an ack
// lost on the way, makes the call again.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router"
)

// Names of the streams, their subjects and the consumer.
const (
	DeliveriesStream   = "EG_DELIVERIES"
	DeadLettersStream  = "EG_DEADLETTERS"
	DeliveriesConsumer = "eg-deliveries"

	deliveriesPrefix  = "eg.deliveries."
	deadLettersPrefix = "eg.deadletters."
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

// Options configures a Queue.
type Options struct {
	// Conn is the connection to NATS: to the embedded server, or to an
	// external cluster.
	Conn *nats.Conn
	// Replicas of the streams: 1 on the embedded server, 3 on a cluster.
	Replicas int
	// MaxBytes bounds the deliveries stream. When it is full, new
	// deliveries are refused (Enqueue fails with Unavailable, the emitter
	// gets a 503) instead of old ones being dropped. 0 or less: no bound
	// but the server's.
	MaxBytes int64
	// MaxMsgs bounds the number of records waiting in the stream (a
	// record holds up to 64 deliveries), with the same refusal when it is
	// reached. 0 or less: no bound.
	MaxMsgs int64
	// AckWait is how long a delivery handed to a worker may go without
	// word from it before it is handed out again: the time to notice a
	// crashed instance. A worker whose call takes longer tells JetStream
	// it is still working every AckWait/2. Default 30s.
	AckWait time.Duration
	// Workers is the number of deliveries this instance makes at once.
	// Default 32.
	Workers int
	// DeadLetterMaxAge is how long a dead letter is kept. Default 14 days.
	DeadLetterMaxAge time.Duration
	// DeadLetterMaxBytes bounds the dead-letter stream; the oldest go
	// first. 0 or less: no bound but the age.
	DeadLetterMaxBytes int64
	// DedupeWindow is how long a publish of a delivery in a record of its
	// own is remembered by its message id (eventID/subscriptionID), so a
	// retried Enqueue of the same event does not store it twice. Batch
	// records carry no id. Each id costs memory in the server
	// for that long: about 170 bytes per delivery, so 25 MB at 10,000
	// deliveries a second with the default of 15s, which covers retries
	// of an Enqueue within one request.
	DedupeWindow time.Duration
	// PublishTimeout bounds Enqueue when its context has no earlier
	// deadline. Default 5s.
	PublishTimeout time.Duration
	// MaxPublishPending is the number of publishes awaiting their ack,
	// over all Enqueue calls of this instance, past which an Enqueue waits
	// for room (until its deadline). Default 16384.
	MaxPublishPending int
	// MaxAckPending bounds the deliveries handed out and not yet acked,
	// over all instances, including those waiting for a retry. When it is
	// reached JetStream hands out nothing new, so every subscriber waits:
	// keep it far above what retries can hold. Default -1, no bound (the
	// stream's MaxBytes bounds it anyway).
	MaxAckPending int
	Logger        *slog.Logger
}

// RetryPolicy says how often and how soon a failed delivery is tried
// again.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first one included.
	MaxAttempts int
	// InitialBackoff is the pause after the first failure; each further
	// one doubles it, up to MaxBackoff. Each pause is jittered by ±20%.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

// DefaultRetryPolicy is 10 attempts with pauses of 20s, 40s, 80s, ...
// capped at 15 minutes: about an hour from the first attempt to the last.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 10, InitialBackoff: 20 * time.Second, MaxBackoff: 15 * time.Minute}
}

// normalized fills zero fields from the default.
func (p RetryPolicy) normalized() RetryPolicy {
	def := DefaultRetryPolicy()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = def.MaxAttempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = def.InitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = max(def.MaxBackoff, p.InitialBackoff)
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	return p
}

// Backoff is the pause after failed attempt number attempt (1 for the
// first): InitialBackoff·2^(attempt-1), at most MaxBackoff, ±20% jitter so
// the retries of one burst of failures spread out.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	p = p.normalized()
	d := p.InitialBackoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	return d - d/5 + time.Duration(rand.Int64N(int64(d)*2/5+1))
}

// Stats are the queue's counters since New, for this instance, and the
// number of deliveries waiting over all instances.
type Stats struct {
	Enqueued     uint64 // deliveries accepted by Enqueue
	Delivered    uint64 // deliveries made (acked)
	Retried      uint64 // failed attempts scheduled for a retry
	DeadLettered uint64 // deliveries moved to the dead letters
	Dropped      uint64 // deliveries given up without a call (CountDropped)
	Replayed     uint64 // dead letters put back in the queue
	// Pending is the number of records not yet done, over all instances:
	// waiting, in progress or waiting for a retry. -1 when NATS could not
	// be asked.
	Pending int64
	// DeadLetters is the number of dead letters kept; -1 when NATS could
	// not be asked.
	DeadLetters int64
}

// Queue is the durable queue. It implements router.Queue.
type Queue struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	deliveries jetstream.Stream
	dead       jetstream.Stream
	consCfg    jetstream.ConsumerConfig
	log        *slog.Logger
	ackWait    time.Duration
	workers    int
	pubTimeout time.Duration

	enqueued, delivered, retried, deadLettered, dropped, replayed atomic.Uint64

	mu       sync.Mutex
	started  bool
	stopping bool
	stopCh   chan struct{}
	loopDone chan struct{}
	it       jetstream.MessagesContext
	inflight sync.WaitGroup
	// calls bounds the deliveries being made at once, over all records.
	calls chan struct{}

	batch *batcher
}

var _ router.Queue = (*Queue)(nil)

// New creates the streams and the shared durable consumer, or updates them
// to o, and returns a queue. Enqueue works at once; deliveries begin with
// Start.
func New(ctx context.Context, o Options) (*Queue, error) {
	if o.Conn == nil {
		return nil, errors.New("jetstream: Options.Conn is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = -1
	}
	if o.MaxMsgs <= 0 {
		o.MaxMsgs = -1
	}
	if o.DeadLetterMaxBytes <= 0 {
		o.DeadLetterMaxBytes = -1
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.DeadLetterMaxAge <= 0 {
		o.DeadLetterMaxAge = 14 * 24 * time.Hour
	}
	if o.DedupeWindow <= 0 {
		o.DedupeWindow = 15 * time.Second
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.MaxPublishPending <= 0 {
		o.MaxPublishPending = 16384
	}
	if o.MaxAckPending == 0 {
		o.MaxAckPending = -1
	}
	js, err := jetstream.New(o.Conn,
		jetstream.WithPublishAsyncMaxPending(o.MaxPublishPending),
		jetstream.WithPublishAsyncTimeout(o.PublishTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	q := &Queue{
		nc:         o.Conn,
		js:         js,
		log:        o.Logger,
		ackWait:    o.AckWait,
		workers:    o.Workers,
		pubTimeout: o.PublishTimeout,
	}
	q.batch = &batcher{q: q, maxBytes: int(o.Conn.MaxPayload() - 1024)}
	q.deliveries, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeliveriesStream,
		Description: "Event Gateway: deliveries of accepted events, one per subscriber",
		Subjects:    []string{deliveriesPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		MaxBytes:    o.MaxBytes,
		MaxMsgs:     o.MaxMsgs,
		Discard:     jetstream.DiscardNew,
		Duplicates:  o.DedupeWindow,
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream: stream %s: %w", DeliveriesStream, err)
	}
	q.dead, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadLettersStream,
		Description: "Event Gateway: deliveries that failed every attempt",
		Subjects:    []string{deadLettersPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		MaxAge:      o.DeadLetterMaxAge,
		MaxBytes:    o.DeadLetterMaxBytes,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("jetstream: stream %s: %w", DeadLettersStream, err)
	}
	q.consCfg = jetstream.ConsumerConfig{
		Durable:       DeliveriesConsumer,
		Description:   "Event Gateway: delivery workers of every instance",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		// Attempts are counted and bounded here, per subscription.
		MaxDeliver:    -1,
		MaxAckPending: o.MaxAckPending,
	}
	if _, err := q.consumer(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

// consumer creates the shared consumer, or updates it to q's options.
func (q *Queue) consumer(ctx context.Context) (jetstream.Consumer, error) {
	c, err := q.deliveries.CreateOrUpdateConsumer(ctx, q.consCfg)
	if err != nil {
		return nil, fmt.Errorf("jetstream: consumer %s: %w", DeliveriesConsumer, err)
	}
	return c, nil
}

// Errors of Enqueue. Their messages are safe to show to clients.
var (
	ErrFull        = &errkind.Error{Kind: errkind.Unavailable, Msg: "too many events waiting for delivery, retry later"}
	errUnavailable = &errkind.Error{Kind: errkind.Unavailable, Msg: "event store unavailable, retry later"}
)

// unavailable classifies an error of NATS for Enqueue's caller, keeping it
// as the cause for logs.
func unavailable(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10002, 10023, 10047: // account, server or disk limits reached
			return &errkind.Error{Kind: ErrFull.Kind, Msg: ErrFull.Msg, Err: err}
		case 10077: // the stream refused it: its MaxBytes when full
			if strings.Contains(apiErr.Description, "maximum") {
				return &errkind.Error{Kind: ErrFull.Kind, Msg: ErrFull.Msg, Err: err}
			}
		}
	}
	return &errkind.Error{Kind: errUnavailable.Kind, Msg: errUnavailable.Msg, Err: err}
}

// Enqueue implements router.Queue: it stores ds, with the deliveries of
// other Enqueue calls made at the same time, in one batch record, and
// returns nil only once JetStream has stored it. Any failure (the stream
// full, NATS unreachable, ctx or PublishTimeout over) is an Unavailable
// error.
//
// Deliveries too many or too large for a batch record are published one
// message each. On failure some of them may have been stored: they are
// delivered. Calling Enqueue again with the same deliveries (same event
// and subscription ids) within DedupeWindow stores only the missing ones
// of those.
func (q *Queue) Enqueue(ctx context.Context, ds []router.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, q.pubTimeout)
		defer cancel()
	}
	// Leave room for the headers, and refuse before publishing anything.
	maxPayload := q.nc.MaxPayload() - 1024
	for i := range ds {
		if n := int64(len(ds[i].Payload)); n > maxPayload {
			return errkind.New(errkind.TooLarge, "event of %d bytes is too large for the delivery queue (at most %d)", n, maxPayload)
		}
	}
	if len(ds) <= maxBatchDeliveries && encodedSize(ds) <= q.batch.maxBytes {
		return q.batch.enqueue(&pubReq{ctx: ctx, ds: ds, size: encodedSize(ds), done: make(chan error, 1)})
	}
	// Too large for a batch record: one record per delivery.
	deadline, _ := ctx.Deadline()
	futures := make([]jetstream.PubAckFuture, 0, len(ds))
	for i := range ds {
		d := &ds[i]
		m := &nats.Msg{
			Subject: deliveriesPrefix + token(d.SubscriptionID),
			Header:  deliveryHeader(d, 2),
			Data:    d.Payload,
		}
		m.Header[jetstream.MsgIDHeader] = []string{d.EventID + "/" + d.SubscriptionID}
		m.Header[jetstream.ExpectedStreamHeader] = []string{DeliveriesStream}
		f, err := q.js.PublishMsgAsync(m, jetstream.WithStallWait(max(time.Until(deadline), time.Millisecond)))
		if err != nil {
			return unavailable(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return unavailable(err)
		case <-ctx.Done():
			return unavailable(ctx.Err())
		}
	}
	q.enqueued.Add(uint64(len(ds)))
	return nil
}

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

// Start begins pulling deliveries and making them with deliver, Workers at
// a time, until Stop or until ctx ends. ctx is also the context of each
// call of deliver, so it should outlive Stop's wait. policy gives the retry
// policy of a subscription (zero fields are the default's); nil means
// DefaultRetryPolicy for all.
//
// deliver's error decides what happens to a failed delivery: of kind
// Forbidden, Invalid or NotFound it goes to the dead letters at once,
// since trying again cannot help; otherwise it is retried after
// policy.Backoff(attempt) until policy.MaxAttempts attempts have been made,
// then dead-lettered.
func (q *Queue) Start(ctx context.Context, deliver router.DeliverFunc, policy func(subscriptionID string) RetryPolicy) error {
	if policy == nil {
		policy = func(string) RetryPolicy { return DefaultRetryPolicy() }
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
	go q.run(ctx, deliver, policy)
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
func (q *Queue) run(ctx context.Context, deliver router.DeliverFunc, policy func(string) RetryPolicy) {
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
		go func() {
			defer q.inflight.Done()
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

// nak hands a message back at once, for another worker or instance. Its
// delivery count already counts this delivery: a message handed back on
// shutdown has used one attempt without a call.
func (q *Queue) nak(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		q.log.Debug("delivery queue: nak", "error", err)
	}
}

// handle makes one delivery and settles its message.
func (q *Queue) handle(ctx context.Context, msg jetstream.Msg, deliver router.DeliverFunc, policy func(string) RetryPolicy) {
	md, err := msg.Metadata()
	if err == nil && msg.Subject() == batchSubject {
		q.handleBatch(ctx, msg, md, deliver, policy)
		return
	}
	d := deliveryOf(msg.Headers(), msg.Data())
	if err != nil || d.SubscriptionID == "" {
		q.log.Error("delivery queue: dropping a malformed message", "subject", msg.Subject(), "error", err)
		_ = msg.TermWithReason("malformed")
		return
	}
	attempt, settled := retryDue(msg, md)
	if settled {
		return
	}
	stop := q.keepAlive(msg)
	q.calls <- struct{}{}
	err = q.call(ctx, deliver, d)
	<-q.calls
	stop()
	if err == nil {
		if aerr := msg.Ack(); aerr != nil {
			q.log.Warn("delivery queue: ack", "eventId", d.EventID, "subscriptionId", d.SubscriptionID, "error", aerr)
		}
		q.delivered.Add(1)
		return
	}
	if errors.Is(err, router.ErrSubscriptionGone) {
		// Unsubscribed since the event was accepted: the function must not
		// get it. Dropped, and counted.
		if aerr := msg.Ack(); aerr != nil {
			q.log.Warn("delivery queue: ack", "eventId", d.EventID, "subscriptionId", d.SubscriptionID, "error", aerr)
		}
		q.dropped.Add(1)
		return
	}
	if ctx.Err() != nil {
		// Shutting down cut the call short: hand it back.
		q.nak(msg)
		return
	}
	p := policy(d.SubscriptionID).normalized()
	switch {
	case !retryable(err):
		// Refused, or nothing to call: trying again cannot help.
	case attempt < p.MaxAttempts:
		delay := p.Backoff(attempt)
		if nerr := msg.NakWithDelay(delay); nerr != nil {
			q.log.Warn("delivery queue: nak", "error", nerr)
		}
		q.retried.Add(1)
		q.log.Debug("delivery failed, will retry", "eventId", d.EventID, "subscriptionId", d.SubscriptionID, "functionId", d.FunctionID, "attempt", attempt, "retryIn", delay, "error", err)
		return
	}
	q.deadLetter(ctx, msg, md, d, attempt, err, p)
}

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

// CountDropped counts n deliveries given up without a call, for Stats:
// the caller's deliver func returns nil for a subscription deleted since
// its event was accepted.
func (q *Queue) CountDropped(n int) { q.dropped.Add(uint64(n)) }

// DropSubscription removes the deliveries still queued for a subscription
// (it was deleted) and counts them as dropped. Calls already in progress
// finish.
func (q *Queue) DropSubscription(ctx context.Context, subscriptionID string) (int, error) {
	subj := deliveriesPrefix + token(subscriptionID)
	info, err := q.deliveries.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return 0, unavailable(err)
	}
	n := int(info.State.Subjects[subj])
	if n == 0 {
		return 0, nil
	}
	if err := q.deliveries.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
		return 0, unavailable(err)
	}
	q.dropped.Add(uint64(n))
	return n, nil
}

// Stats returns the counters; Pending and DeadLetters ask NATS (for up to
// two seconds).
func (q *Queue) Stats() Stats {
	s := Stats{
		Enqueued:     q.enqueued.Load(),
		Delivered:    q.delivered.Load(),
		Retried:      q.retried.Load(),
		DeadLettered: q.deadLettered.Load(),
		Dropped:      q.dropped.Load(),
		Replayed:     q.replayed.Load(),
		Pending:      -1,
		DeadLetters:  -1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c, err := q.js.Consumer(ctx, DeliveriesStream, DeliveriesConsumer); err == nil {
		info := c.CachedInfo()
		s.Pending = int64(info.NumPending) + int64(info.NumAckPending)
	}
	if info, err := q.dead.Info(ctx); err == nil {
		s.DeadLetters = int64(info.State.Msgs)
	}
	return s
}

// seqID is a stream sequence as a dead letter's id.
func seqID(seq uint64) string { return strconv.FormatUint(seq, 10) }
