package trail

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/router"
	egjs "github.com/event-gateway/event-gateway/router/jetstream"
)

// Options configures a Recorder.
type Options struct {
	// Conn is the connection to the NATS server of the delivery queue.
	Conn *nats.Conn
	// Replicas of the stream. Default 1.
	Replicas int
	// Retention is how long records are kept. Default DefaultRetention.
	Retention time.Duration
	// MaxBytes bounds the stream; the oldest records go first. Default
	// DefaultMaxBytes; less than 0: no bound but the retention.
	MaxBytes int64
	// Buffer is the number of records that may wait in memory to be
	// stored; more are dropped and counted. Default DefaultBuffer.
	Buffer int
	// FlushEvery is how often waiting records are stored. Default
	// DefaultFlushEvery.
	FlushEvery time.Duration
	Logger     *slog.Logger
}

// Recorder records the trail of events and reads it back. It implements
// router.Trail and jetstream.AttemptObserver.
type Recorder struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   jetstream.Stream
	log      *slog.Logger
	every    time.Duration
	instance string

	in      chan entry
	stopped chan struct{}
	// closeMu guards closing in against sends.
	closeMu sync.RWMutex
	closed  bool
	done    chan struct{}

	dropped, stored, failed atomic.Uint64
}

// entry is a record on its way to the store.
type entry struct {
	key eventKey
	rec record
}

// eventKey names an event.
type eventKey struct{ space, eventID string }

var (
	_ router.Trail         = (*Recorder)(nil)
	_ egjs.AttemptObserver = (*Recorder)(nil)
)

// New creates the stream, or updates it to o, and starts storing records.
func New(ctx context.Context, o Options) (*Recorder, error) {
	if o.Conn == nil {
		return nil, errors.New("trail: Options.Conn is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	switch {
	case o.MaxBytes == 0:
		o.MaxBytes = DefaultMaxBytes
	case o.MaxBytes < 0:
		o.MaxBytes = -1
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = DefaultFlushEvery
	}
	js, err := jetstream.New(o.Conn)
	if err != nil {
		return nil, fmt.Errorf("trail: %w", err)
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        Stream,
		Description: "Event Gateway: the trail of every accepted event",
		Subjects:    []string{subjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		MaxAge:      o.Retention,
		MaxBytes:    o.MaxBytes,
		Discard:     jetstream.DiscardOld,
		// Messages are read one by one by subject (direct gets), and
		// never published twice on purpose.
		AllowDirect: true,
		Duplicates:  min(o.Retention, time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("trail: stream %s: %w", Stream, err)
	}
	host, _ := os.Hostname()
	r := &Recorder{
		nc:       o.Conn,
		js:       js,
		stream:   st,
		log:      o.Logger,
		every:    o.FlushEvery,
		instance: host,
		in:       make(chan entry, o.Buffer),
		done:     make(chan struct{}),
	}
	go r.run(o.Buffer)
	return r, nil
}

// Stats are the recorder's counters since New.
type Stats struct {
	// Stored counts the records sent to the store; Dropped those
	// dropped because the buffer was full or the recorder closed; Failed
	// those that could not be sent.
	Stored, Dropped, Failed uint64
}

// Stats returns the recorder's counters.
func (r *Recorder) Stats() Stats {
	return Stats{Stored: r.stored.Load(), Dropped: r.dropped.Load(), Failed: r.failed.Load()}
}

// add hands a record to the storing goroutine, or drops it when the
// buffer is full: the request path never waits for the trail.
func (r *Recorder) add(space, eventID string, rec record) {
	if space == "" {
		space = functions.DefaultSpace
	}
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		r.dropped.Add(1)
		return
	}
	select {
	case r.in <- entry{key: eventKey{space, eventID}, rec: rec}:
	default:
		r.dropped.Add(1)
	}
}

// Accepted implements router.Trail.
func (r *Recorder) Accepted(space, eventID, eventType string, at time.Time, subs []router.Subscriber) {
	rec := record{Kind: KindAccepted, At: at.UnixMicro(), Type: eventType}
	if len(subs) > 0 {
		rec.Subscribers = make([]Subscriber, len(subs))
		for i, s := range subs {
			rec.Subscribers[i] = Subscriber{SubscriptionID: s.SubscriptionID, FunctionID: s.FunctionID}
		}
	}
	r.add(space, eventID, rec)
}

// Skipped implements router.Trail.
func (r *Recorder) Skipped(space, eventID, eventType, subscriptionID, functionID, reason string) {
	r.add(space, eventID, record{Kind: KindSkipped, At: time.Now().UnixMicro(), Type: eventType, SubscriptionID: subscriptionID, FunctionID: functionID, Reason: reason})
}

// Attempted implements jetstream.AttemptObserver.
func (r *Recorder) Attempted(a *egjs.Attempt) {
	d := a.Delivery
	rec := record{
		Kind:           KindAttempt,
		At:             a.Began.UnixMicro(),
		Type:           d.Event,
		SubscriptionID: d.SubscriptionID,
		FunctionID:     d.FunctionID,
		Attempt:        a.Number,
		TookUs:         a.Took.Microseconds(),
		Result:         result(a.Err),
		Outcome:        a.Outcome,
		Instance:       r.instance,
	}
	if a.Err != nil {
		rec.Error = a.Err.Error()
		if len(rec.Error) > maxErrorLen {
			rec.Error = rec.Error[:maxErrorLen]
		}
	}
	if !a.Next.IsZero() {
		rec.Next = a.Next.UnixMicro()
	}
	r.add(d.Space, d.EventID, rec)
}

// result classifies an attempt's error as the metrics do.
func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, functions.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "failed"
	}
}

// Close stores the records still waiting, within ctx, and stops the
// recorder; records given to it afterwards are dropped. Call it once the
// deliveries are done.
func (r *Recorder) Close(ctx context.Context) error {
	r.closeMu.Lock()
	if !r.closed {
		r.closed = true
		close(r.in)
	}
	r.closeMu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pending gathers the records of each event until they are stored.
type pending struct {
	byEvent map[eventKey]*message
	order   []*message
	n       int
}

// run stores what arrives, every r.every, until Close. At most max
// records wait; more are dropped.
func (r *Recorder) run(max int) {
	defer close(r.done)
	p := pending{byEvent: map[eventKey]*message{}}
	var buf []byte
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-r.in:
			if !ok {
				r.flush(&p, &buf)
				return
			}
			if p.n >= max {
				r.dropped.Add(1)
				continue
			}
			m := p.byEvent[e.key]
			if m == nil {
				m = &message{Space: e.key.space, EventID: e.key.eventID}
				p.byEvent[e.key] = m
				p.order = append(p.order, m)
			}
			m.Records = append(m.Records, e.rec)
			p.n++
		case <-tick.C:
			r.flush(&p, &buf)
		}
	}
}

// flushTimeout bounds the wait for NATS to take one flush.
const flushTimeout = 10 * time.Second

// flush stores the waiting records, one message per event, and empties
// p; buf is the encoding buffer, kept between flushes.
//
// The messages are published without asking for JetStream's
// acknowledgement, which would cost as much again as storing them; the
// stream takes them all the same. So a record NATS refuses (the
// connection down, the store full) is lost without a word: the trail is
// not worth holding deliveries back for. A flush of the connection at
// the end counts the records of a flush that did not reach the server.
func (r *Recorder) flush(p *pending, buf *[]byte) {
	if len(p.order) == 0 {
		return
	}
	var n, failed uint64
	var firstErr error
	for _, m := range p.order {
		*buf = appendMessage((*buf)[:0], m)
		if err := r.nc.Publish(subjectOf(m), *buf); err != nil {
			failed += uint64(len(m.Records))
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		n += uint64(len(m.Records))
	}
	if err := r.nc.FlushTimeout(flushTimeout); err != nil {
		failed += n
		n = 0
		firstErr = cmp.Or(firstErr, err)
	}
	r.stored.Add(n)
	if failed > 0 {
		r.failed.Add(failed)
		r.log.Warn("event trail: records not stored", "records", failed, "error", firstErr)
	}
	if cap(*buf) > maxKeptBuffer {
		*buf = nil
	}
	clear(p.byEvent)
	clear(p.order)
	p.order = p.order[:0]
	p.n = 0
}

// maxKeptBuffer bounds the encoding buffer kept between flushes.
const maxKeptBuffer = 1 << 20

// subjectOf is the subject of a message: see the package comment.
func subjectOf(m *message) string {
	base := eventSubject(m.Space, m.EventID)
	for i := range m.Records {
		if m.Records[i].Kind == KindAccepted {
			return base + ".a." + egjs.SubjectToken(m.Records[i].Type)
		}
	}
	return base + ".d"
}

// eventSubject is the subject of an event's messages but their kind.
func eventSubject(space, eventID string) string {
	return subjectPrefix + egjs.SubjectToken(space) + "." + egjs.SubjectToken(eventID)
}
