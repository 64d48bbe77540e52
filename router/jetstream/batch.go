package jetstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router"
)

// Group commit. Storing a message in JetStream, handing it to a worker and
// acking it cost the same whatever the message holds, and under load that
// fixed cost was most of the gateway's work per event. So Enqueue does not
// publish its deliveries itself: it adds them to a list, and one publisher
// at a time takes everything on the list and stores it as one record. While
// a record is on its way, new events gather for the next one; an idle
// gateway stores each event at once, a busy one stores many together, and a
// 202 still waits for the record holding its event to be stored.
//
// A worker makes every delivery of a record, each as its own call, and
// acks the record once all of them are settled. A delivery that failed and
// is to be tried again leaves the record as a record of its own (a retry
// record, on the subscription's subject, stored before the batch is acked),
// so that its backoff and attempts are its own and no other delivery of
// the batch is made again for it.

const (
	// batchSubject holds the records of many deliveries. Subscription
	// ids are UUIDs, so no subscription's subject is this one.
	batchSubject = deliveriesPrefix + "_batch"

	// maxBatchDeliveries bounds the deliveries of one record, and so the
	// calls one record starts and the work a crash makes again.
	maxBatchDeliveries = 64

	// Headers of a retry record: the attempts made before it, and when the
	// next one is due (Unix milliseconds).
	hdrPriorAttempts = "Eg-Prior-Attempts"
	hdrNotBefore     = "Eg-Not-Before"
)

// A batch record's data is its deliveries one after the other, each:
//
//	flags byte: 1 system event, 2 same payload as the delivery before
//	uvarint revision
//	subscription id, function id, event id, event name: uvarint length, bytes
//	payload, unless flag 2: uvarint length, bytes
//
// The deliveries of one event share its payload, which is stored once.
const (
	flagSystem      = 1
	flagSamePayload = 2
)

// batchOverhead is an upper bound of the bytes a delivery adds to a record
// besides its ids and payload.
const batchOverhead = 1 + 6*binary.MaxVarintLen64

func encodedSize(ds []router.Delivery) int {
	n := 0
	for i := range ds {
		d := &ds[i]
		n += batchOverhead + len(d.SubscriptionID) + len(d.FunctionID) + len(d.EventID) + len(d.Event)
		if i == 0 || !samePayload(ds[i-1].Payload, d.Payload) {
			n += len(d.Payload)
		}
	}
	return n
}

// samePayload reports whether a and b are the same bytes in memory: the
// deliveries of one event share one slice.
func samePayload(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func appendBatch(buf []byte, ds []router.Delivery, prev []byte) []byte {
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	for i := range ds {
		d := &ds[i]
		var flags byte
		if d.System {
			flags |= flagSystem
		}
		same := prev != nil && samePayload(prev, d.Payload)
		if same {
			flags |= flagSamePayload
		}
		buf = append(buf, flags)
		buf = binary.AppendUvarint(buf, uint64(max(d.Revision, 0)))
		str(d.SubscriptionID)
		str(d.FunctionID)
		str(d.EventID)
		str(d.Event)
		if !same {
			buf = binary.AppendUvarint(buf, uint64(len(d.Payload)))
			buf = append(buf, d.Payload...)
		}
		prev = d.Payload
	}
	return buf
}

var errMalformedBatch = errors.New("malformed batch record")

// decodeBatch reads a batch record. Payloads point into data.
func decodeBatch(data []byte) ([]router.Delivery, error) {
	var ds []router.Delivery
	var prev []byte
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(data)
		if n <= 0 {
			return 0, false
		}
		data = data[n:]
		return v, true
	}
	bytes := func() ([]byte, bool) {
		n, ok := uvarint()
		if !ok || n > uint64(len(data)) {
			return nil, false
		}
		b := data[:n:n]
		data = data[n:]
		return b, true
	}
	str := func() (string, bool) {
		b, ok := bytes()
		return string(b), ok
	}
	for len(data) > 0 {
		flags := data[0]
		data = data[1:]
		rev, ok := uvarint()
		if !ok {
			return nil, errMalformedBatch
		}
		d := router.Delivery{Revision: int64(rev), System: flags&flagSystem != 0}
		var ok1, ok2, ok3, ok4 bool
		d.SubscriptionID, ok1 = str()
		d.FunctionID, ok2 = str()
		d.EventID, ok3 = str()
		d.Event, ok4 = str()
		if !ok1 || !ok2 || !ok3 || !ok4 || d.SubscriptionID == "" {
			return nil, errMalformedBatch
		}
		if flags&flagSamePayload != 0 {
			if prev == nil {
				return nil, errMalformedBatch
			}
			d.Payload = prev
		} else if d.Payload, ok = bytes(); !ok {
			return nil, errMalformedBatch
		}
		prev = d.Payload
		ds = append(ds, d)
	}
	if len(ds) == 0 {
		return nil, errMalformedBatch
	}
	return ds, nil
}

// pubReq is one Enqueue waiting for its deliveries to be stored.
type pubReq struct {
	ctx  context.Context
	ds   []router.Delivery
	size int
	done chan error // one result, buffered
}

// batcher gathers the deliveries of concurrent Enqueue calls into records.
type batcher struct {
	q        *Queue
	maxBytes int

	mu         sync.Mutex
	pending    []*pubReq
	publishers int
}

// maxPublishers is how many records may be on their way at once. One lets
// the most events gather; a second keeps storing while the first one's
// answer is on its way back.
const maxPublishers = 1

// enqueue stores r's deliveries within a record and waits for it.
func (b *batcher) enqueue(r *pubReq) error {
	b.mu.Lock()
	b.pending = append(b.pending, r)
	lead := b.publishers < maxPublishers
	if lead {
		b.publishers++
	}
	b.mu.Unlock()
	if lead {
		// No record is on its way: store this one at once. Another
		// publisher takes over what gathers meanwhile.
		b.publish()
	}
	select {
	case err := <-r.done:
		return err
	case <-r.ctx.Done():
		// It may still be stored, and then delivered: at least once.
		return unavailable(r.ctx.Err())
	}
}

// publish stores one record of what is pending, then hands the rest to a
// new publisher, or stops publishing when nothing is left. One publisher
// runs at a time: that is what lets events gather.
func (b *batcher) publish() {
	b.mu.Lock()
	if len(b.pending) == 0 {
		// Another publisher took it all.
		b.publishers--
		b.mu.Unlock()
		return
	}
	take, size := 0, 0
	n := 0
	for _, r := range b.pending {
		if take > 0 && (n+len(r.ds) > maxBatchDeliveries || size+r.size > b.maxBytes) {
			break
		}
		take++
		n += len(r.ds)
		size += r.size
	}
	reqs := b.pending[:take:take]
	b.pending = b.pending[take:]
	if len(b.pending) == 0 {
		b.pending = nil // let the backing array go
	}
	b.mu.Unlock()

	b.store(reqs, n, size)

	b.mu.Lock()
	more := len(b.pending) > 0
	if !more {
		b.publishers--
	}
	b.mu.Unlock()
	if more {
		// The caller of this publish has its answer: it should not wait
		// for other events' records.
		go b.publish()
	}
}

// store publishes reqs as one record and tells each the result.
func (b *batcher) store(reqs []*pubReq, n, size int) {
	// Requests whose caller gave up are not stored.
	live := reqs[:0:0]
	for _, r := range reqs {
		if r.ctx.Err() != nil {
			r.done <- unavailable(r.ctx.Err())
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	data := make([]byte, 0, size)
	var prev []byte
	for _, r := range live {
		data = appendBatch(data, r.ds, prev)
		prev = r.ds[len(r.ds)-1].Payload
	}
	m := &nats.Msg{
		Subject: batchSubject,
		Header:  nats.Header{jetstream.ExpectedStreamHeader: []string{DeliveriesStream}},
		Data:    data,
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.q.pubTimeout)
	defer cancel()
	var err error
	if _, perr := b.q.js.PublishMsg(ctx, m); perr != nil {
		err = unavailable(perr)
	} else {
		b.q.enqueued.Add(uint64(n))
	}
	for _, r := range live {
		r.done <- err
	}
}

// handleBatch makes the deliveries of a batch record, each as its own
// call, then settles the record: acked once every delivery succeeded, was
// dropped, or left as a retry record or a dead letter.
func (q *Queue) handleBatch(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, deliver router.DeliverFunc, policy func(string) RetryPolicy) {
	ds, err := decodeBatch(msg.Data())
	if err != nil {
		q.log.Error("delivery queue: dropping a malformed record", "subject", msg.Subject(), "error", err)
		_ = msg.TermWithReason("malformed")
		return
	}
	errs := make([]error, len(ds))
	stop := q.keepAlive(msg)
	if len(ds) == 1 {
		q.calls <- struct{}{}
		errs[0] = q.call(ctx, deliver, ds[0])
		<-q.calls
	} else {
		var wg sync.WaitGroup
		for i := range ds {
			q.calls <- struct{}{}
			wg.Go(func() {
				defer func() { <-q.calls }()
				errs[i] = q.call(ctx, deliver, ds[i])
			})
		}
		wg.Wait()
	}
	stop()
	if ctx.Err() != nil {
		// Shutting down cut calls short: hand it all back.
		q.nak(msg)
		return
	}

	attempt := int(md.NumDelivered)
	var follow []*nats.Msg
	var delivered, dropped, retried, dead int
	for i, err := range errs {
		d := &ds[i]
		switch {
		case err == nil:
			delivered++
		case errors.Is(err, router.ErrSubscriptionGone):
			dropped++
		default:
			p := policy(d.SubscriptionID).normalized()
			if retryable(err) && attempt < p.MaxAttempts {
				delay := p.Backoff(attempt)
				follow = append(follow, retryRecord(d, attempt, time.Now().Add(delay)))
				retried++
				q.log.Debug("delivery failed, will retry", "eventId", d.EventID, "subscriptionId", d.SubscriptionID, "functionId", d.FunctionID, "attempt", attempt, "retryIn", delay, "error", err)
				continue
			}
			follow = append(follow, deadLetterMsg(md.Sequence.Stream, d, attempt, err))
			dead++
			q.log.Warn("delivery failed, dead-lettered", "eventId", d.EventID, "event", d.Event, "subscriptionId", d.SubscriptionID, "functionId", d.FunctionID, "attempts", attempt, "error", err)
		}
	}
	if err := q.publishAll(ctx, follow); err != nil {
		// Without its retries and dead letters stored, the record must
		// stay: all of it is tried again, the deliveries that worked too.
		delay := 5 * time.Second
		q.log.Error("delivery queue: cannot store retries or dead letters of a record, will make it again", "retryIn", delay, "error", err)
		_ = msg.NakWithDelay(delay)
		return
	}
	if err := msg.Ack(); err != nil {
		q.log.Warn("delivery queue: ack", "error", err)
	}
	q.delivered.Add(uint64(delivered))
	q.dropped.Add(uint64(dropped))
	q.retried.Add(uint64(retried))
	q.deadLettered.Add(uint64(dead))
}

// retryable reports whether trying a failed delivery again can help.
func retryable(err error) bool {
	switch errkind.Of(err) {
	case errkind.Forbidden, errkind.Invalid, errkind.NotFound:
		return false
	}
	return true
}

// retryRecord is a delivery of a batch that failed attempt attempt, as a
// record of its own, due at next.
func retryRecord(d *router.Delivery, attempt int, next time.Time) *nats.Msg {
	h := deliveryHeader(d, 3)
	h[hdrPriorAttempts] = []string{strconv.Itoa(attempt)}
	h[hdrNotBefore] = []string{strconv.FormatInt(next.UnixMilli(), 10)}
	h[jetstream.ExpectedStreamHeader] = []string{DeliveriesStream}
	return &nats.Msg{Subject: deliveriesPrefix + token(d.SubscriptionID), Header: h, Data: d.Payload}
}

// publishAll stores msgs and waits until every one is stored.
func (q *Queue) publishAll(ctx context.Context, msgs []*nats.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := q.js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-pctx.Done():
			return fmt.Errorf("storing retries: %w", pctx.Err())
		}
	}
	return nil
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
