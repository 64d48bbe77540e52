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
	b := appendMessage(nil, &in)
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
