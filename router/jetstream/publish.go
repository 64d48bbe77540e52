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

// Errors of Enqueue, which any error it returns matches with errors.Is.
// Their messages are safe to show to clients; the cause that follows them
// in Error() is for logs.
var (
	ErrFull        = &errkind.Error{Kind: errkind.Unavailable, Msg: "too many events waiting for delivery, retry later"}
	errUnavailable = &errkind.Error{Kind: errkind.Unavailable, Msg: "event store unavailable, retry later"}
)

// Codes of the JetStream API errors that mean the store is full. nats.go
// names none of them; the names are the server's.
const (
	jsErrAccountResourcesExceeded jetstream.ErrorCode = 10002 // JSAccountResourcesExceededErr
	jsErrInsufficientResources    jetstream.ErrorCode = 10023 // JSInsufficientResourcesErr
	jsErrStorageResourcesExceeded jetstream.ErrorCode = 10047 // JSStorageResourcesExceededErr
	// JSStreamStoreFailedF: the stream could not store the message, among
	// other reasons because its MaxBytes or MaxMsgs is reached (a
	// DiscardNew stream refuses what does not fit).
	jsErrStreamStoreFailed jetstream.ErrorCode = 10077
)

// unavailable classifies an error of NATS for Enqueue's caller as ErrFull
// or errUnavailable, keeping it as the cause.
func unavailable(err error) error {
	if isFull(err) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return fmt.Errorf("%w: %w", errUnavailable, err)
}

// isFull reports whether err is NATS refusing a message for want of room.
func isFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case jsErrAccountResourcesExceeded, jsErrInsufficientResources, jsErrStorageResourcesExceeded:
		return true
	case jsErrStreamStoreFailed:
		// The code covers other store failures; only this text says
		// "maximum messages/bytes exceeded".
		return strings.Contains(apiErr.Description, "maximum")
	}
	return false
}

// Enqueue implements router.Queue: it stores ds, with the deliveries of
// other Enqueue calls made at the same time, in one batch record, and
// returns nil only once JetStream has stored it. Any failure (the stream
// full, NATS unreachable, ctx or PublishTimeout over) is an Unavailable
// error, ErrFull when the store is full.
//
// Deliveries too many or too large for a batch record are published one
// record each. On failure some of them may have been stored: they are
// delivered. Calling Enqueue again with the same deliveries (same space,
// event and subscription ids) within DedupeWindow stores only the missing
// ones of those.
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
	if size := encodedSize(ds); len(ds) <= maxBatchDeliveries && batchHeaderLen+size <= q.batch.maxBytes {
		return q.batch.enqueue(&pubReq{ctx: ctx, ds: ds, size: size, done: make(chan error, 1)})
	}
	// Too large for a batch record: one record per delivery.
	msgs := make([]*nats.Msg, len(ds))
	for i := range ds {
		msgs[i] = deliveryMsg(&ds[i], deliveryMsgID(&ds[i]))
	}
	if err := q.store(ctx, msgs...); err != nil {
		return unavailable(err)
	}
	q.enqueued.Add(uint64(len(ds)))
	return nil
}

// store publishes msgs and waits until JetStream has stored every one of
// them, or ctx ends. Every publish of the queue goes through here. One
// message is published and awaited (a request and its reply); several are
// published at once and their acks awaited together, so that they cost
// one round trip rather than one each. When ctx has a deadline, a publish
// waits for room among the pending ones (MaxPublishPending) until then.
// Its errors are those of NATS, and ctx's: callers classify them.
func (q *Queue) store(ctx context.Context, msgs ...*nats.Msg) error {
	switch len(msgs) {
	case 0:
		return nil
	case 1:
		_, err := q.js.PublishMsg(ctx, msgs[0])
		return err
	}
	var opts []jetstream.PublishOpt
	if deadline, ok := ctx.Deadline(); ok {
		opts = append(opts, jetstream.WithStallWait(max(time.Until(deadline), time.Millisecond)))
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := q.js.PublishMsgAsync(m, opts...)
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
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// pubReq is one Enqueue waiting for its deliveries to be stored.
type pubReq struct {
	ctx  context.Context
	ds   []router.Delivery
	size int        // encodedSize(ds)
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
	take, size := 0, batchHeaderLen
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

	b.commit(reqs, size)

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

// commit stores reqs, of size bytes at most, as one record and tells
// each the result.
func (b *batcher) commit(reqs []*pubReq, size int) {
	// Requests whose caller gave up are not stored.
	live := reqs[:0:0]
	n := 0
	for _, r := range reqs {
		if r.ctx.Err() != nil {
			r.done <- unavailable(r.ctx.Err())
			continue
		}
		live = append(live, r)
		n += len(r.ds)
	}
	if len(live) == 0 {
		return
	}
	data := appendBatchHeader(make([]byte, 0, size))
	var prev []byte
	for _, r := range live {
		data = appendDeliveries(data, r.ds, prev)
		prev = r.ds[len(r.ds)-1].Payload
	}
	m := &nats.Msg{
		Subject: batchSubject,
		Header:  nats.Header{jetstream.ExpectedStreamHeader: []string{DeliveriesStream}},
		Data:    data,
	}
	// The record is of many requests: no one's context bounds it.
	ctx, cancel := context.WithTimeout(context.Background(), b.q.pubTimeout)
	defer cancel()
	var err error
	if perr := b.q.store(ctx, m); perr != nil {
		err = unavailable(perr)
	} else {
		b.q.enqueued.Add(uint64(n))
	}
	for _, r := range live {
		r.done <- err
	}
}
