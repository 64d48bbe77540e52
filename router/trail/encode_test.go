package trail

import (
	"encoding/json"
	"reflect"
	"testing"
)

// What appendMessage writes is what encoding/json reads back, escapes
// and empty fields included.
func TestEncodeRoundTrip(t *testing.T) {
	in := message{Space: "sp", EventID: "id \"quoted\" \\ <tag> é \x01", Records: []record{
		{Kind: KindAccepted, At: 1764547200123456, Type: "order.created", Subscribers: []Subscriber{{"s1", "f1"}, {"s2", "f.2"}}},
		{Kind: KindAccepted, At: 1, Type: "nobody"},
		{Kind: KindSkipped, At: 2, Type: "t", SubscriptionID: "s3", FunctionID: "f3", Reason: "amount < 10\n"},
		{Kind: KindAttempt, At: 3, Type: "t", SubscriptionID: "s1", FunctionID: "f1", Attempt: 2, TookUs: 1500, Result: "failed",
			Error: "function failed: http status 500\t\"x\"", Outcome: "retrying", Next: 99, Instance: "host-1"},
	}}
	recs := make([]*record, len(in.Records))
	for i := range in.Records {
		recs[i] = &in.Records[i]
	}
	b := appendMessage(nil, in.Space, in.EventID, recs)
	var out message
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n in %+v\nout %+v\n%s", in, out, b)
	}
	want, _ := json.Marshal(in)
	var a, c any
	json.Unmarshal(b, &a)
	json.Unmarshal(want, &c)
	if !reflect.DeepEqual(a, c) {
		t.Fatalf("hand-written\n%s\nencoding/json\n%s", b, want)
	}
}

// A flush's records are grouped by event, each event's in the order given.
func TestBatchSort(t *testing.T) {
	var es []entry
	keys := []eventKey{{"s", "a"}, {"s", "b"}, {"t", "a"}, {"s", "b"}, {"s", "a"}, {"s", "c"}, {"s", "a"}}
	for i, k := range keys {
		es = append(es, entry{key: k, rec: record{At: int64(i)}})
	}
	var b batch
	b.index = map[eventKey]int32{}
	for range 2 { // the second time on reused slices
		b.sort(es)
		want := map[eventKey][]int64{{"s", "a"}: {0, 4, 6}, {"s", "b"}: {1, 3}, {"t", "a"}: {2}, {"s", "c"}: {5}}
		if len(b.keys) != len(want) {
			t.Fatalf("%d events, want %d", len(b.keys), len(want))
		}
		for g, k := range b.keys {
			var got []int64
			for _, r := range b.ptrs[b.start[g]:b.start[g+1]] {
				got = append(got, r.At)
			}
			if !reflect.DeepEqual(got, want[k]) {
				t.Fatalf("event %v: records %v, want %v", k, got, want[k])
			}
		}
	}
}
