package trail

import (
	"context"
	"encoding/json"
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
	space, eventID string
	rec            Record
}

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
	// Stored counts the records stored; Dropped those dropped because
	// the buffer was full or the recorder closed; Failed those NATS did
	// not take.
	Stored, Dropped, Failed uint64
}

// Stats returns the recorder's counters.
func (r *Recorder) Stats() Stats {
	return Stats{Stored: r.stored.Load(), Dropped: r.dropped.Load(), Failed: r.failed.Load()}
}

// add hands a record to the storing goroutine, or drops it when the
// buffer is full: the request path never waits for the trail.
func (r *Recorder) add(space, eventID string, rec Record) {
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
	case r.in <- entry{space: space, eventID: eventID, rec: rec}:
	default:
		r.dropped.Add(1)
	}
}

// Accepted implements router.Trail.
func (r *Recorder) Accepted(space, eventID, eventType string, at time.Time, subs []router.Subscriber) {
	rec := Record{Kind: KindAccepted, At: at, Type: eventType}
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
	r.add(space, eventID, Record{Kind: KindSkipped, At: time.Now(), Type: eventType, SubscriptionID: subscriptionID, FunctionID: functionID, Reason: reason})
}

// Attempted implements jetstream.AttemptObserver.
func (r *Recorder) Attempted(a *egjs.Attempt) {
	d := a.Delivery
	rec := Record{
		Kind:           KindAttempt,
		At:             a.Began,
		Type:           d.Event,
		SubscriptionID: d.SubscriptionID,
		FunctionID:     d.FunctionID,
		Attempt:        a.Number,
		DurationMs:     float64(a.Took.Microseconds()) / 1000,
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
		next := a.Next
		rec.NextAttemptAt = &next
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
	byEvent map[string]*message
	order   []*message
	n       int
}

// run stores what arrives, every r.every, until Close. At most max
// records wait; more are dropped.
func (r *Recorder) run(max int) {
	defer close(r.done)
	p := pending{byEvent: map[string]*message{}}
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-r.in:
			if !ok {
				r.flush(&p)
				return
			}
			if p.n >= max {
				r.dropped.Add(1)
				continue
			}
			key := e.space + "\x00" + e.eventID
			m := p.byEvent[key]
			if m == nil {
				m = &message{Space: e.space, EventID: e.eventID}
				p.byEvent[key] = m
				p.order = append(p.order, m)
			}
			m.Records = append(m.Records, e.rec)
			p.n++
		case <-tick.C:
			r.flush(&p)
		}
	}
}

// flushTimeout bounds the wait for NATS to store one flush.
const flushTimeout = 10 * time.Second

// flush stores the waiting records, one message per event, and empties
// p. Records NATS does not take are counted and dropped: the trail is
// not worth holding deliveries back for.
func (r *Recorder) flush(p *pending) {
	if len(p.order) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	type sent struct {
		f jetstream.PubAckFuture
		n int
	}
	futures := make([]sent, 0, len(p.order))
	var failed uint64
	var firstErr error
	for _, m := range p.order {
		data, err := json.Marshal(m)
		if err == nil {
			var f jetstream.PubAckFuture
			f, err = r.js.PublishMsgAsync(&nats.Msg{Subject: subjectOf(m), Data: data},
				jetstream.WithExpectStream(Stream), jetstream.WithStallWait(flushTimeout))
			if err == nil {
				futures = append(futures, sent{f, len(m.Records)})
				continue
			}
		}
		failed += uint64(len(m.Records))
		firstErr = cmpErr(firstErr, err)
	}
	var stored uint64
	for _, s := range futures {
		select {
		case <-s.f.Ok():
			stored += uint64(s.n)
		case err := <-s.f.Err():
			failed += uint64(s.n)
			firstErr = cmpErr(firstErr, err)
		case <-ctx.Done():
			failed += uint64(s.n)
			firstErr = cmpErr(firstErr, ctx.Err())
		}
	}
	r.stored.Add(stored)
	if failed > 0 {
		r.failed.Add(failed)
		r.log.Warn("event trail: records not stored", "records", failed, "error", firstErr)
	}
	clear(p.byEvent)
	clear(p.order)
	p.order = p.order[:0]
	p.n = 0
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

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
