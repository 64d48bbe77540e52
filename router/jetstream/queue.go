// Package jetstream is the durable delivery queue of asynchronous events,
// on NATS JetStream.
//
// Accepted deliveries are stored in the work-queue stream EG_DELIVERIES:
// those of events accepted together in one batch record, on the subject
// eg.deliveries._batch (codec_batch.go, publish.go), and a delivery
// waiting for a retry (or too large to share a record) in a record of its
// own, on the subject eg.deliveries.<space>.<subscriptionID> (codec.go).
// Enqueue returns only once JetStream has
// stored every delivery of the event, so a 202 means persisted. One durable
// pull consumer, shared by every gateway instance that uses the same NATS,
// hands each record to one worker of one instance at a time; a record
// leaves the stream when it is acked.
//
// A failed delivery is not retried by the worker: it is stored as a record
// of its own, negatively acknowledged with a delay (exponential backoff
// with jitter), and JetStream hands it out again when the delay is over
// (settle.go, policy.go). A worker is never held by a failing subscriber, so one slow or failing function
// never delays the deliveries of another. The attempt number is the
// message's delivery count kept by JetStream, so it survives crashes and
// moves with the message between instances. After the last attempt the
// delivery goes to the stream EG_DEADLETTERS (subject
// eg.deadletters.<space>.<functionID>.<subscriptionID>) with its last
// error, where it can be listed, replayed or deleted (deadletter.go).
//
// Delivery is at least once: a crash between a call and its ack, or an ack
// lost on the way, makes the call again.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/router"
)

// Names of the streams and the consumer.
const (
	DeliveriesStream   = "EG_DELIVERIES"
	DeadLettersStream  = "EG_DEADLETTERS"
	DeliveriesConsumer = "eg-deliveries"
)

// Defaults of Options, also those of the gateway's flags that set them.
const (
	DefaultReplicas          = 1
	DefaultMaxBytes          = 1 << 30
	DefaultMaxMsgs           = 1_000_000
	DefaultAckWait           = 30 * time.Second
	DefaultWorkers           = 200
	DefaultDeadLetterMaxAge  = 14 * 24 * time.Hour
	DefaultDedupeWindow      = 15 * time.Second
	DefaultPublishTimeout    = 5 * time.Second
	DefaultMaxPublishPending = 16384
)

// Options configures a Queue.
type Options struct {
	// Conn is the connection to NATS: to the embedded server, or to an
	// external cluster.
	Conn *nats.Conn
	// Replicas of the streams: 1 on the embedded server, 3 on a cluster.
	// Default 1.
	Replicas int
	// MaxBytes bounds the deliveries stream. When it is full, new
	// deliveries are refused (Enqueue fails with ErrFull, the emitter
	// gets a 503) instead of old ones being dropped. Default 1 GiB; less
	// than 0: no bound but the server's.
	MaxBytes int64
	// MaxMsgs bounds the number of records waiting in the stream (a
	// record holds up to 64 deliveries), with the same refusal when it is
	// reached. Default 1,000,000; less than 0: no bound.
	MaxMsgs int64
	// AckWait is how long a delivery handed to a worker may go without
	// word from it before it is handed out again: the time to notice a
	// crashed instance. A worker whose call takes longer tells JetStream
	// it is still working every AckWait/2. Default 30s.
	AckWait time.Duration
	// Workers is the number of deliveries this instance makes at once.
	// Default 200.
	Workers int
	// DeadLetterMaxAge is how long a dead letter is kept. Default 14 days.
	DeadLetterMaxAge time.Duration
	// DeadLetterMaxBytes bounds the dead-letter stream; the oldest go
	// first. 0 or less: no bound but the age.
	DeadLetterMaxBytes int64
	// DedupeWindow is how long a publish of a delivery in a record of its
	// own is remembered by its message id (space/eventID/subscriptionID), so a
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
	// Trail is told of every attempt and its outcome (the event trail);
	// nil when the trail is off.
	Trail  AttemptObserver
	Logger *slog.Logger
}

// Stats are the queue's counters since New, for this instance, and the
// number of deliveries waiting over all instances.
type Stats struct {
	Enqueued     uint64 // deliveries accepted by Enqueue
	Delivered    uint64 // deliveries made (acked)
	Retried      uint64 // failed attempts scheduled for a retry
	DeadLettered uint64 // deliveries moved to the dead letters
	Dropped      uint64 // deliveries of deleted subscriptions, left uncalled
	Replayed     uint64 // dead letters put back in the queue
	// Postponed counts deliveries not made for want of room (their
	// function's bulkhead full or breaker open, a plugin unavailable) and
	// handed back for later without counting an attempt.
	Postponed uint64
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
	trail      AttemptObserver

	enqueued, delivered, retried, deadLettered, dropped, replayed, postponed atomic.Uint64

	mu       sync.Mutex
	started  bool
	stopping bool
	stopCh   chan struct{}
	loopDone chan struct{}
	it       jetstream.MessagesContext
	inflight sync.WaitGroup
	// active counts the records being handled; cancelCalls ends the
	// context of their calls (Abort).
	active      atomic.Int64
	cancelCalls context.CancelFunc
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
		o.Replicas = DefaultReplicas
	}
	// JetStream's "no bound" is -1.
	switch {
	case o.MaxBytes == 0:
		o.MaxBytes = DefaultMaxBytes
	case o.MaxBytes < 0:
		o.MaxBytes = -1
	}
	switch {
	case o.MaxMsgs == 0:
		o.MaxMsgs = DefaultMaxMsgs
	case o.MaxMsgs < 0:
		o.MaxMsgs = -1
	}
	if o.DeadLetterMaxBytes <= 0 {
		o.DeadLetterMaxBytes = -1
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.DeadLetterMaxAge <= 0 {
		o.DeadLetterMaxAge = DefaultDeadLetterMaxAge
	}
	if o.DedupeWindow <= 0 {
		o.DedupeWindow = DefaultDedupeWindow
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.MaxPublishPending <= 0 {
		o.MaxPublishPending = DefaultMaxPublishPending
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
		trail:      o.Trail,
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
		Postponed:    q.postponed.Load(),
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
