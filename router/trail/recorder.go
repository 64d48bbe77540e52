package trail

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
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
	// stored, in at most Buffer × 512 bytes of text; more are dropped and
	// counted. Default DefaultBuffer.
	Buffer int
	// FlushEvery is how often waiting records are stored. Default
	// DefaultFlushEvery.
	FlushEvery time.Duration
	Logger     *slog.Logger
}

// Recorder records the trail of events and reads it back. It implements
// router.Trail and jetstream.AttemptObserver.
type Recorder struct {
	nc *nats.Conn
	// maxMsg bounds a message: the server's largest, less room for the
	// subject and protocol.
	maxMsg   int64
	stream   jetstream.Stream
	log      *slog.Logger
	every    time.Duration
	instance string

	// mu guards what waits for the next flush: waiting, the records
	// given since the last one (at most max), encoded in text (at most
	// maxText bytes), and closed. Slices under a lock rather than a
	// channel: the storing goroutine takes them all at once every flush,
	// instead of being woken for each record.
	mu      sync.Mutex
	waiting []entry
	text    []byte
	max     int
	maxText int
	closed  bool

	stop      chan struct{}
	closeOnce sync.Once
	done      chan struct{}

	dropped, stored, failed, sent atomic.Uint64

	// skew moves the clock a flush reads to choose between an event's
	// window and its own subject: tests set it, before any flush, to
	// record an event's later attempts without waiting.
	skew time.Duration
}

// manySubscribers is the number of subscribers past which an acceptance
// is encoded before the lock is taken.
const manySubscribers = 32

// maxRecordText is the room a waiting record has on average: Buffer
// records wait in at most Buffer × maxRecordText bytes.
const maxRecordText = 512

// entry is a record on its way to the store: its event, and where its
// JSON is in the text it was given with.
type entry struct {
	key eventKey
	// accepted marks the event's acceptance, whose message is the one on
	// the subject lists walk.
	accepted bool
	off, end int
}

// eventKey names the event of a record. The type is part of it: one
// message holds records of one type, named once in its head (a
// CloudEvent id sent again may come with another type).
type eventKey struct{ space, eventID, typ string }

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
		maxMsg:   min(o.Conn.MaxPayload()-1024, maxMessage),
		stream:   st,
		log:      o.Logger,
		every:    o.FlushEvery,
		instance: host,
		max:      o.Buffer,
		maxText:  o.Buffer * maxRecordText,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go r.run()
	return r, nil
}

// Stats are the recorder's counters since New.
type Stats struct {
	// Stored counts the records sent to the store; Dropped those
	// dropped because the buffer was full or the recorder closed; Failed
	// those that could not be sent.
	Stored, Dropped, Failed uint64
	// Messages counts the messages the stored records were sent in.
	Messages uint64
}

// Stats returns the recorder's counters.
func (r *Recorder) Stats() Stats {
	return Stats{Stored: r.stored.Load(), Dropped: r.dropped.Load(), Failed: r.failed.Load(), Messages: r.sent.Load()}
}

// add hands a record of the event eventID of space and type typ, with
// subs as its subscribers, to the storing goroutine, or drops it when
// the buffer is full: the request path never waits for the trail.
func (r *Recorder) add(space, eventID, typ string, rec *record, subs []router.Subscriber) {
	if space == "" {
		space = functions.DefaultSpace
	}
	// A record is encoded under the lock, straight into the buffer, but
	// a long one (an event of many subscribers) before taking it, so
	// that the others do not wait for it.
	var long []byte
	if len(subs) > manySubscribers {
		long = appendRecord(nil, rec, subs)
	}
	r.mu.Lock()
	if r.closed || len(r.waiting) >= r.max {
		r.mu.Unlock()
		r.dropped.Add(1)
		return
	}
	off := len(r.text)
	if long != nil {
		r.text = append(r.text, long...)
	} else {
		r.text = appendRecord(r.text, rec, subs)
	}
	if len(r.text) > r.maxText {
		r.text = r.text[:off]
		r.mu.Unlock()
		r.dropped.Add(1)
		return
	}
	r.waiting = append(r.waiting, entry{key: eventKey{space, eventID, typ}, accepted: rec.Kind == KindAccepted, off: off, end: len(r.text)})
	r.mu.Unlock()
}

// Accepted implements router.Trail.
func (r *Recorder) Accepted(space, eventID, eventType string, at time.Time, subs []router.Subscriber) {
	r.add(space, eventID, eventType, &record{Kind: KindAccepted, At: at.UnixMicro()}, subs)
}

// Skipped implements router.Trail.
func (r *Recorder) Skipped(space, eventID, eventType, subscriptionID, functionID, reason string) {
	r.add(space, eventID, eventType, &record{Kind: KindSkipped, At: time.Now().UnixMicro(), SubscriptionID: subscriptionID, FunctionID: functionID, Reason: reason}, nil)
}

// Attempted implements jetstream.AttemptObserver. The records of
// attempts and calls leave their instance to their message's head.
func (r *Recorder) Attempted(a *egjs.Attempt) {
	d := a.Delivery
	rec := record{
		Kind:           KindAttempt,
		At:             a.Began.UnixMicro(),
		SubscriptionID: d.SubscriptionID,
		FunctionID:     d.FunctionID,
		Attempt:        a.Number,
		TookUs:         a.Took.Microseconds(),
		Result:         result(a.Err),
		Outcome:        a.Outcome,
	}
	if a.Err != nil {
		rec.Error = errorText(a.Err)
	}
	if !a.Next.IsZero() {
		rec.Next = a.Next.UnixMicro()
	}
	r.add(d.Space, d.EventID, d.Event, &rec, nil)
}

// Called implements router.Trail.
func (r *Recorder) Called(space, eventID, eventType, subscriptionID, functionID string, began time.Time, took time.Duration, err error) {
	rec := record{
		Kind:           KindCall,
		At:             began.UnixMicro(),
		SubscriptionID: subscriptionID,
		FunctionID:     functionID,
		Attempt:        1,
		TookUs:         took.Microseconds(),
		Result:         result(err),
		Outcome:        OutcomeDelivered,
	}
	if err != nil {
		rec.Error = errorText(err)
		rec.Outcome = OutcomeFailed
	}
	r.add(space, eventID, eventType, &rec, nil)
}

// errorText is an error as a record keeps it.
func errorText(err error) string {
	s := err.Error()
	if len(s) > maxErrorLen {
		s = strings.ToValidUTF8(s[:maxErrorLen], "")
	}
	return s
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
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.stop)
	})
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// batch orders the records of one flush by event, without moving them:
// order holds their indexes event after event, those of event g (keys[g])
// at order[start[g]:start[g+1]]. Its slices are reused from flush to
// flush.
type batch struct {
	index map[eventKey]int32
	keys  []eventKey
	group []int32 // of each record
	start []int32
	order []int32
}

// sort orders es by event (a counting sort: each event's records keep
// their order).
func (b *batch) sort(es []entry) {
	clear(b.index)
	// Cleared, not only cut: the last flush's ids and types would stay
	// alive in the slice's spare room.
	clear(b.keys)
	b.keys, b.group, b.start = b.keys[:0], b.group[:0], b.start[:0]
	for i := range es {
		g, ok := b.index[es[i].key]
		if !ok {
			g = int32(len(b.keys))
			b.index[es[i].key] = g
			b.keys = append(b.keys, es[i].key)
			b.start = append(b.start, 0)
		}
		b.group = append(b.group, g)
		b.start[g]++
	}
	// Counts to offsets: start[g] is where event g's records begin.
	var sum int32
	for g, n := range b.start {
		b.start[g] = sum
		sum += n
	}
	b.start = append(b.start, sum)
	b.order = slices.Grow(b.order[:0], len(es))[:len(es)]
	for i, g := range b.group {
		b.order[b.start[g]] = int32(i)
		b.start[g]++
	}
	// Placing moved each start to the next event's: shift them back.
	copy(b.start[1:], b.start[:len(b.start)-1])
	b.start[0] = 0
}

// run stores what was given, every r.every, until Close.
func (r *Recorder) run() {
	defer close(r.done)
	f := flusher{r: r, b: batch{index: map[eventKey]int32{}}, windows: map[windowKey][]int32{}}
	var spare []entry
	var spareText []byte
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	for {
		stopping := false
		select {
		case <-tick.C:
		case <-r.stop:
			stopping = true
		}
		r.mu.Lock()
		es, text := r.waiting, r.text
		r.waiting, r.text = spare[:0], spareText[:0]
		r.mu.Unlock()
		if len(es) > 0 {
			f.flush(es, text)
		}
		// Kept for the next flush (at most Buffer records), cleared to
		// let go of their strings; the text only while it is small.
		clear(es)
		spare = es
		spareText = nil
		if cap(text) <= maxKeptText {
			spareText = text
		}
		if stopping {
			return
		}
	}
}

// flushTimeout bounds the wait for NATS to take one flush.
const flushTimeout = 10 * time.Second

// flusher is the storing goroutine's: its buffers are reused from flush
// to flush.
type flusher struct {
	r       *Recorder
	b       batch
	msg     []byte
	batch   []byte
	subject []byte
	// windows holds the events (indexes into b.keys) of each window, in
	// the order of windowKeys.
	windows    map[windowKey][]int32
	windowKeys []windowKey
}

// flush stores es, whose records are in text, one message per event.
//
// The messages are published without asking for JetStream's
// acknowledgement, which would cost as much again as storing them; the
// stream takes them all the same. So a record NATS refuses (the
// connection down, the store full) is lost without a word: the trail is
// not worth holding deliveries back for. A flush of the connection at
// the end counts the records of a flush that did not reach the server.
func (f *flusher) flush(es []entry, text []byte) {
	r := f.r
	f.b.sort(es)
	var n, msgs, failed uint64
	var firstErr error
	count := func(records int, sent, m uint64, err error) {
		n += sent
		msgs += m
		if lost := uint64(records) - sent; lost > 0 {
			failed += lost
			firstErr = cmp.Or(firstErr, err, errTooLarge)
		}
	}
	// Events whose ids carry their time go together, by window; the
	// others one by one.
	clear(f.windows)
	clear(f.windowKeys)
	f.windowKeys = f.windowKeys[:0]
	now := time.Now().Add(r.skew).UnixMilli()
	for g, k := range f.b.keys {
		group := f.b.order[f.b.start[g]:f.b.start[g+1]]
		if w, ok := windowNear(k.eventID, now); ok {
			wk := windowKey{k.space, w}
			if _, ok := f.windows[wk]; !ok {
				f.windowKeys = append(f.windowKeys, wk)
			}
			f.windows[wk] = append(f.windows[wk], int32(g))
			continue
		}
		sent, m, err := f.publish(k, es, text, group)
		count(len(group), sent, m, err)
	}
	for _, wk := range f.windowKeys {
		groups := f.windows[wk]
		records := 0
		for _, g := range groups {
			records += int(f.b.start[g+1] - f.b.start[g])
		}
		sent, m, err := f.publishWindow(wk, groups, es, text)
		count(records, sent, m, err)
	}
	if err := r.nc.FlushTimeout(flushTimeout); err != nil {
		failed += n
		n, msgs = 0, 0
		firstErr = cmp.Or(firstErr, err)
	}
	r.stored.Add(n)
	r.sent.Add(msgs)
	if failed > 0 {
		r.failed.Add(failed)
		r.log.Warn("event trail: records not stored", "records", failed, "error", firstErr)
	}
	if cap(f.msg) > maxKeptBuffer {
		f.msg = nil
	}
	if cap(f.batch) > maxKeptBuffer {
		f.batch = nil
	}
}

// appendEventMessage appends to b a message of the event k holding the
// first records of group (indexes into es, whose records are in text),
// as many as keep b within room bytes but at least one, and returns how
// many it holds and whether one is the event's acceptance.
func (f *flusher) appendEventMessage(b []byte, k eventKey, es []entry, text []byte, group []int32, room int64) (_ []byte, n int, accepted bool) {
	b = appendMessageHead(b, k.space, k.eventID, k.typ, f.r.instance)
	head := len(b)
	for ; n < len(group); n++ {
		e := &es[group[n]]
		// A record is never left out: one larger than NATS takes goes
		// alone, and is refused.
		if n > 0 && int64(len(b)+1+e.end-e.off+2) > room {
			break
		}
		if len(b) > head {
			b = append(b, ',')
		}
		b = append(b, text[e.off:e.end]...)
		accepted = accepted || e.accepted
	}
	return appendMessageTail(b), n, accepted
}

// publish publishes the records group (indexes into es, whose records
// are in text) of the event k as one message, or as several when that
// would be larger than NATS takes (an event of many subscribers), and
// returns how many records and messages it sent.
func (f *flusher) publish(k eventKey, es []entry, text []byte, group []int32) (sent, msgs uint64, err error) {
	for len(group) > 0 {
		var n int
		var accepted bool
		f.msg, n, accepted = f.appendEventMessage(f.msg[:0], k, es, text, group, f.r.maxMsg)
		group = group[n:]
		if int64(len(f.msg)) > f.r.nc.MaxPayload() {
			// One record larger than NATS takes: dropped (counted by
			// the caller), the event's others still sent.
			continue
		}
		f.subject = appendSubject(f.subject[:0], k, accepted)
		if err := f.r.nc.Publish(string(f.subject), f.msg); err != nil {
			return sent, msgs, err
		}
		sent += uint64(n)
		msgs++
	}
	return sent, msgs, nil
}

// errTooLarge is why a record larger than NATS takes is not stored.
var errTooLarge = errors.New("a record is larger than the largest message the NATS server takes")

// publishWindow publishes the records of the events groups (indexes into
// f.b.keys) of the window wk together: a JSON array of their messages,
// or several arrays when that would be larger than NATS takes. It
// returns how many records and messages it sent.
func (f *flusher) publishWindow(wk windowKey, groups []int32, es []entry, text []byte) (sent, msgs uint64, err error) {
	r := f.r
	f.batch = append(f.batch[:0], '[')
	var pending uint64
	accepted := false
	send := func() error {
		f.batch = append(f.batch, ']')
		if int64(len(f.batch)) > r.nc.MaxPayload() {
			// A lone event message larger than NATS takes (it holds one
			// record): dropped and counted by the caller, the window's
			// other events still sent.
			f.batch, pending, accepted = append(f.batch[:0], '['), 0, false
			return nil
		}
		f.subject = appendWindowSubject(f.subject[:0], wk, accepted)
		if err := r.nc.Publish(string(f.subject), f.batch); err != nil {
			return err
		}
		sent += pending
		msgs++
		f.batch, pending, accepted = append(f.batch[:0], '['), 0, false
		return nil
	}
	for _, g := range groups {
		k := f.b.keys[g]
		group := f.b.order[f.b.start[g]:f.b.start[g+1]]
		for len(group) > 0 {
			// Written in place; written again into the next batch when it
			// does not fit in this one.
			start := len(f.batch)
			if start > 1 {
				f.batch = append(f.batch, ',')
			}
			var n int
			var acc bool
			f.batch, n, acc = f.appendEventMessage(f.batch, k, es, text, group, r.maxMsg-1)
			if start > 1 && int64(len(f.batch)+1) > r.maxMsg {
				f.batch = f.batch[:start]
				if err := send(); err != nil {
					return sent, msgs, err
				}
				f.batch, n, acc = f.appendEventMessage(f.batch, k, es, text, group, r.maxMsg-1)
			}
			pending += uint64(n)
			accepted = accepted || acc
			group = group[n:]
		}
	}
	if pending > 0 {
		if err := send(); err != nil {
			return sent, msgs, err
		}
	}
	return sent, msgs, nil
}

// maxMessage bounds a message whatever the server takes: an event's
// records are read back whole.
const maxMessage = 1 << 20

// maxKeptBuffer bounds the buffers kept between flushes, maxKeptText
// that of the records' text: 8 MiB holds a flush of about 40,000 events
// of one delivery (the old entries buffer took as much for 32,000
// records); a larger one is made again at each flush.
const (
	// A message is cut back when its last event passes maxMessage, so
	// the buffer of a full one holds a little more.
	maxKeptBuffer = 2 * maxMessage
	maxKeptText   = 8 << 20
)

// appendSubject appends the subject of a message of the event k, one
// that holds its acceptance or not: see the package comment.
func appendSubject(b []byte, k eventKey, accepted bool) []byte {
	b = append(b, subjectPrefix...)
	b = appendToken(b, k.space)
	b = append(b, '.')
	b = appendIDToken(b, k.eventID)
	if accepted {
		b = append(b, ".a."...)
		return appendToken(b, k.typ)
	}
	return append(b, ".d"...)
}

// eventSubject is the subject of the messages of an event stored on its
// own, but their kind.
func eventSubject(space, eventID string) string {
	return subjectPrefix + token(space) + "." + idToken(eventID)
}

// windowSubject is the subject of the messages of the window w of space
// but their kind.
func windowSubject(space string, w uint64) string {
	return string(appendWindowToken(nil, windowKey{space, w}))
}

// windowKey names the events of a space whose ids carry a time in one
// window.
type windowKey struct {
	space  string
	window uint64
}

// windowMillis is the width of a window: the events whose ids carry a
// time within the same windowMillis milliseconds share their messages.
const windowMillis = 10

// windowSpan bounds, on either side, how far from the time an id
// carries the records of its event are stored with its window: those of
// its acceptance and first attempts. Later ones (a retry a minute on)
// are stored on the event's own subject, so that a window's messages
// stay few however long its events are retried (a read of one event
// reads all of them), and an id a client gave a time far off never
// joins the window of that time.
const windowSpan = 5 * time.Second

// idMillis returns the time an event id carries, in Unix milliseconds: a
// UUID of version 7, as the gateway writes ids (lowercase, with dashes),
// whose first 48 bits are Unix milliseconds. Any other id carries none.
func idMillis(id string) (int64, bool) {
	var u [16]byte
	if !parseUUID(&u, id) || u[6]>>4 != 7 || u[8]>>6 != 2 {
		return 0, false
	}
	ms := int64(u[0])<<40 | int64(u[1])<<32 | int64(u[2])<<24 | int64(u[3])<<16 | int64(u[4])<<8 | int64(u[5])
	return ms, true
}

// window returns the window of an event id that carries its time.
func window(id string) (uint64, bool) {
	ms, ok := idMillis(id)
	return uint64(ms) / windowMillis, ok
}

// windowNear returns the window of an event id that carries a time
// within windowSpan of now (Unix milliseconds): records given then are
// stored with the window.
func windowNear(id string, now int64) (uint64, bool) {
	ms, ok := idMillis(id)
	if !ok || ms < now-windowSpan.Milliseconds() || ms > now+windowSpan.Milliseconds() {
		return 0, false
	}
	return uint64(ms) / windowMillis, true
}

// windowBatch is the type token of a window's message that holds
// acceptances: no type's token (they write '%' as "%25").
const windowBatch = "%B"

// appendWindowToken appends the subject of the messages of the window wk
// but their kind: eg.trail.<space>.%W<window>.
func appendWindowToken(b []byte, wk windowKey) []byte {
	b = append(b, subjectPrefix...)
	b = appendToken(b, wk.space)
	b = append(b, ".%W"...)
	return strconv.AppendUint(b, wk.window, 10)
}

// appendWindowSubject appends the subject of a message of the window wk,
// one that holds acceptances (eg.trail.<space>.%W<window>.a.%B, which
// lists walk with the acceptances of single events) or not (.d).
func appendWindowSubject(b []byte, wk windowKey, accepted bool) []byte {
	b = appendWindowToken(b, wk)
	if accepted {
		return append(b, ".a."+windowBatch...)
	}
	return append(b, ".d"...)
}
