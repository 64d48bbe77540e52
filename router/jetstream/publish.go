package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
