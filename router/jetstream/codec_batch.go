package jetstream

import (
	"encoding/binary"
	"errors"

	"github.com/event-gateway/event-gateway/router"
)

const (
	// batchSubject holds the records of many deliveries. Subscription
	// ids are UUIDs, so no subscription's subject is this one.
	batchSubject = deliveriesPrefix + "_batch"

	// maxBatchDeliveries bounds the deliveries of one record, and so the
	// calls one record starts and the work a crash makes again.
	maxBatchDeliveries = 64
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
