package jetstream

import (
	"bytes"
	"errors"
	"testing"

	"github.com/event-gateway/event-gateway/internal/tracing"

	"github.com/event-gateway/event-gateway/router"
)

// encodeBatch is the record the batcher stores for ds.
func encodeBatch(ds []router.Delivery) []byte {
	return appendDeliveries(appendBatchHeader(nil), ds, nil)
}

func TestBatchEncoding(t *testing.T) {
	shared := []byte(`{"event":"a","data":{"n":1}}`)
	ds := []router.Delivery{
		{SubscriptionID: "s1", FunctionID: "f.1", EventID: "e1", Event: "a", Revision: 7, Payload: shared},
		{Space: "acme", SubscriptionID: "s2", FunctionID: "f2", EventID: "e1", Event: "a", Revision: 7, Payload: shared},
		{Space: "default", SubscriptionID: "s3", FunctionID: "f3", EventID: "e2", Event: "gateway.function.invoked", System: true, Payload: []byte(`{}`)},
		{Space: "a.b", SubscriptionID: "s4", FunctionID: "f4", EventID: "e3", Event: "b", Payload: nil},
		{SubscriptionID: "s5", FunctionID: "f5", EventID: "e4", Event: "c", Revision: 9, Hops: 3, Payload: []byte(`{}`)},
		{SubscriptionID: "s6", FunctionID: "f6", EventID: "e5", Event: "d", Payload: []byte(`{}`),
			Trace: tracing.Carrier{Parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", State: "vendor=x"}},
	}
	data := encodeBatch(ds)
	if len(data) > batchHeaderLen+encodedSize(ds) {
		t.Fatalf("encoded %d bytes, more than the header and encodedSize's %d", len(data), encodedSize(ds))
	}
	if bytes.Count(data, shared) != 1 {
		t.Errorf("a payload shared by two deliveries is stored %d times", bytes.Count(data, shared))
	}
	if data[0] != batchMagic || data[1] != batchVersion || data[2] != 0 {
		t.Errorf("header % x", data[:batchHeaderLen])
	}
	got, err := decodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ds) {
		t.Fatalf("decoded %d deliveries, want %d", len(got), len(ds))
	}
	for i := range ds {
		w, g := ds[i], got[i]
		if g.Space != spaceOf(w.Space) || g.SubscriptionID != w.SubscriptionID || g.FunctionID != w.FunctionID || g.EventID != w.EventID || g.Event != w.Event ||
			g.Revision != w.Revision || g.System != w.System || g.Hops != w.Hops || g.Trace != w.Trace || !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("delivery %d: got %+v, want %+v", i, g, w)
		}
	}
	if got[0].Space != "default" {
		t.Errorf("an empty space decoded as %q, want default", got[0].Space)
	}
	// Every truncation is an error, never a panic or a wrong delivery.
	for n := range len(data) {
		if ds, err := decodeBatch(data[:n]); err == nil && len(ds) == len(got) {
			t.Fatalf("truncated to %d bytes: decoded all %d deliveries", n, len(ds))
		}
	}
	first := appendBatchHeader(nil)
	first = append(first, flagSamePayload, 0, 1, 'd', 1, 'x', 0, 0, 0)
	if _, err := decodeBatch(first); !errors.Is(err, errMalformedBatch) {
		t.Errorf("a first delivery that refers to a payload before it: %v", err)
	}
}

// TestBatchFormatRefused: a record of a version or with flags this gateway
// does not know, or of the format from before versions, is refused as
// unsupported (another gateway may read it), not misread; bytes no gateway
// wrote are malformed.
func TestBatchFormatRefused(t *testing.T) {
	ds := []router.Delivery{{SubscriptionID: "s", FunctionID: "f", EventID: "e", Event: "x", Payload: []byte("{}")}}
	good := encodeBatch(ds)
	with := func(i int, b byte) []byte {
		data := bytes.Clone(good)
		data[i] = b
		return data
	}
	// The record of ds as gateways wrote it before the format header.
	legacy := []byte{flagSystem, 0, 1, 's', 1, 'f', 1, 'e', 1, 'x', 2, '{', '}'}
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"a later version", with(1, batchVersion+1), errUnsupportedBatch},
		{"version 0", with(1, 0), errUnsupportedBatch},
		{"unknown record flags", with(2, 0x01), errUnsupportedBatch},
		{"unknown record flag bit 7", with(2, 0x80), errUnsupportedBatch},
		{"unknown delivery flags", with(batchHeaderLen, 0x10), errUnsupportedBatch},
		{"the format before versions", legacy, errUnsupportedBatch},
		{"not a batch record", []byte("hello"), errMalformedBatch},
		{"empty", nil, errMalformedBatch},
		{"a header alone", appendBatchHeader(nil), errMalformedBatch},
		{"a header cut short", good[:2], errMalformedBatch},
	} {
		ds, err := decodeBatch(c.data)
		if !errors.Is(err, c.want) || ds != nil {
			t.Errorf("%s: %d deliveries, error %v, want %v", c.name, len(ds), err, c.want)
		}
	}
	if _, err := decodeBatch(with(1, 9)); err == nil || err.Error() != "batch record of a format this gateway does not read: format version 9 (this gateway reads version 1)" {
		t.Errorf("the error does not say which version: %v", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch([]router.Delivery{{SubscriptionID: "s", FunctionID: "f", EventID: "e", Event: "x", Payload: []byte("{}")}}))
	f.Add(encodeBatch([]router.Delivery{
		{Space: "acme", SubscriptionID: "s", FunctionID: "f", EventID: "e", Event: "x", System: true, Payload: []byte("{}")},
		{Space: "acme", SubscriptionID: "t", FunctionID: "g", EventID: "e", Event: "x", System: true, Payload: []byte("{}")},
	}))
	f.Add([]byte{batchMagic, batchVersion, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := decodeBatch(data)
		if err != nil {
			if !errors.Is(err, errMalformedBatch) && !errors.Is(err, errUnsupportedBatch) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		// What decodes encodes back to what decodes the same.
		again, err := decodeBatch(encodeBatch(ds))
		if err != nil || len(again) != len(ds) {
			t.Fatalf("re-encoded: %v, %d deliveries, want %d", err, len(again), len(ds))
		}
		for i := range ds {
			a, b := ds[i], again[i]
			if a.Space != b.Space || a.SubscriptionID != b.SubscriptionID || a.FunctionID != b.FunctionID || a.EventID != b.EventID ||
				a.Event != b.Event || a.Revision != b.Revision || a.System != b.System || !bytes.Equal(a.Payload, b.Payload) {
				t.Fatalf("delivery %d re-encoded as %+v, was %+v", i, b, a)
			}
		}
	})
}
