package jetstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/event-gateway/event-gateway/router"
)

const (
	// batchSubject holds the records of many deliveries (see the subjects
	// in codec.go).
	batchSubject = deliveriesPrefix + "_batch"

	// maxBatchDeliveries bounds the deliveries of one record, and so the
	// calls one record starts and the work a crash makes again.
	maxBatchDeliveries = 64
)

// A batch record's data is a header, then its deliveries one after the
// other:
//
//	header: magic byte 0xEB, format version byte (1), record flags byte
//	each delivery:
//	  flags byte: 1 system event, 2 same payload as the delivery before,
//	    4 hop count follows the revision, 8 trace context follows
//	  uvarint revision
//	  uvarint hop count, if flag 4
//	  traceparent, tracestate, if flag 8: uvarint length, bytes
//	  space, subscription id, function id, event id, event name:
//	    uvarint length, bytes
//	  payload, unless flag 2: uvarint length, bytes
//
// The deliveries of one event share its payload, which is stored once.
//
// Gateways of different versions share a NATS during a rolling upgrade, so
// a record may be read by a gateway older than the one that wrote it. A
// reader refuses a version, or flag bits (of the record or of a delivery),
// that it does not know, rather than misread the record, and hands it back
// for a gateway that reads it (see handleBatch). So a change an older
// reader could misread takes a new version or a new flag; no record flag
// is defined yet. The records written before there was a header begin
// with a delivery's flags, 0 to 3, never the magic byte: they are refused
// the same way.
const (
	batchMagic     = 0xEB
	batchVersion   = 1
	batchHeaderLen = 3

	knownRecordFlags = 0

	flagSystem         = 1
	flagSamePayload    = 2
	flagHops           = 4
	flagTrace          = 8
	knownDeliveryFlags = flagSystem | flagSamePayload | flagHops | flagTrace
)

var (
	// errMalformedBatch: no gateway can read the record.
	errMalformedBatch = errors.New("malformed batch record")
	// errUnsupportedBatch: the record is of a format, version or flag
	// this gateway does not know; another gateway may read it.
	errUnsupportedBatch = errors.New("batch record of a format this gateway does not read")
)

// batchOverhead is an upper bound of the bytes a delivery adds to a record
// besides its ids and payload.
const batchOverhead = 1 + 8*binary.MaxVarintLen64

// encodedSize is an upper bound of the bytes ds take in a record, header
// not included.
func encodedSize(ds []router.Delivery) int {
	n := 0
	for i := range ds {
		d := &ds[i]
		n += batchOverhead + len(spaceOf(d.Space)) + len(d.SubscriptionID) + len(d.FunctionID) + len(d.EventID) + len(d.Event) + len(d.Trace.Parent) + len(d.Trace.State)
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

// appendBatchHeader begins a record.
func appendBatchHeader(buf []byte) []byte {
	return append(buf, batchMagic, batchVersion, knownRecordFlags)
}

// appendDeliveries appends ds to a record begun with appendBatchHeader.
// prev is the payload of the delivery appended before them, if any: a
// first delivery with the same payload refers to it.
func appendDeliveries(buf []byte, ds []router.Delivery, prev []byte) []byte {
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
		if d.Hops > 0 {
			// Only then: a record without hops stays readable by the
			// gateways from before the flag.
			flags |= flagHops
		}
		if d.Trace.Parent != "" {
			// Only then, as hops: records of gateways that do not
			// trace stay readable by those from before the flag.
			flags |= flagTrace
		}
		buf = append(buf, flags)
		buf = binary.AppendUvarint(buf, uint64(max(d.Revision, 0)))
		if d.Hops > 0 {
			buf = binary.AppendUvarint(buf, uint64(d.Hops))
		}
		if d.Trace.Parent != "" {
			str(d.Trace.Parent)
			str(d.Trace.State)
		}
		str(spaceOf(d.Space))
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

// decodeBatch reads a batch record. Payloads point into data. Its errors
// wrap errUnsupportedBatch or errMalformedBatch.
func decodeBatch(data []byte) ([]router.Delivery, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", errMalformedBatch)
	}
	if data[0] != batchMagic {
		if data[0]&^(flagSystem|flagSamePayload) == 0 {
			return nil, fmt.Errorf("%w: no format header (written by a gateway from before batch format versions)", errUnsupportedBatch)
		}
		return nil, fmt.Errorf("%w: no format header", errMalformedBatch)
	}
	if len(data) < batchHeaderLen {
		return nil, fmt.Errorf("%w: header cut short", errMalformedBatch)
	}
	if v := data[1]; v != batchVersion {
		return nil, fmt.Errorf("%w: format version %d (this gateway reads version %d)", errUnsupportedBatch, v, batchVersion)
	}
	if f := data[2]; f&^knownRecordFlags != 0 {
		return nil, fmt.Errorf("%w: unknown record flags %#02x", errUnsupportedBatch, f&^knownRecordFlags)
	}
	data = data[batchHeaderLen:]

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
		if flags&^knownDeliveryFlags != 0 {
			return nil, fmt.Errorf("%w: unknown delivery flags %#02x", errUnsupportedBatch, flags&^knownDeliveryFlags)
		}
		rev, ok := uvarint()
		if !ok || rev > math.MaxInt64 {
			return nil, errMalformedBatch
		}
		d := router.Delivery{Revision: int64(rev), System: flags&flagSystem != 0}
		if flags&flagHops != 0 {
			hops, ok := uvarint()
			if !ok || hops > math.MaxInt32 {
				return nil, errMalformedBatch
			}
			d.Hops = int(hops)
		}
		if flags&flagTrace != 0 {
			var okP, okS bool
			d.Trace.Parent, okP = str()
			d.Trace.State, okS = str()
			if !okP || !okS {
				return nil, errMalformedBatch
			}
		}
		var ok0, ok1, ok2, ok3, ok4 bool
		d.Space, ok0 = str()
		d.SubscriptionID, ok1 = str()
		d.FunctionID, ok2 = str()
		d.EventID, ok3 = str()
		d.Event, ok4 = str()
		if !ok0 || !ok1 || !ok2 || !ok3 || !ok4 || d.Space == "" || d.SubscriptionID == "" {
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
		return nil, fmt.Errorf("%w: no deliveries", errMalformedBatch)
	}
	return ds, nil
}
