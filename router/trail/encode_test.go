package trail

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/event-gateway/event-gateway/router"
)

// What the recorder writes, a message head and its records, is what
// encoding/json reads back, escapes and empty fields included.
func TestEncodeRoundTrip(t *testing.T) {
	odd := "id \"quoted\" \\ <tag> é \x01\x7f"
	in := message{Space: "sp", EventID: odd, Type: "order.created", Instance: "host-1", Records: []record{
		{Kind: KindAccepted, At: 1764547200123456, Subscribers: []Subscriber{{"s1", "f1"}, {"s2", odd}}},
		{Kind: KindAccepted, At: 1},
		{Kind: KindSkipped, At: 2, Type: "t", SubscriptionID: "s3", FunctionID: "f3", Reason: "amount < 10\n"},
		{Kind: KindAttempt, At: 3, SubscriptionID: "s1", FunctionID: "f1", Attempt: 2, TookUs: 1500, Result: "failed",
			Error: "function failed: http status 500\t\"x\"", Outcome: "retrying", Next: 99, Instance: "host-2"},
		{Kind: KindCall, At: -4, SubscriptionID: "s1", FunctionID: "f1", Attempt: 1, Result: "ok", Outcome: "delivered"},
	}}
	b := appendMessageHead(nil, in.Space, in.EventID, in.Type, in.Instance)
	for i := range in.Records {
		if i > 0 {
			b = append(b, ',')
		}
		var subs []router.Subscriber
		for _, s := range in.Records[i].Subscribers {
			subs = append(subs, router.Subscriber{SubscriptionID: s.SubscriptionID, FunctionID: s.FunctionID})
		}
		b = appendRecord(b, &in.Records[i], subs)
	}
	b = appendMessageTail(b)
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
	// A reader gives the records what they leave to the head.
	out.fill()
	for i, rec := range out.Records {
		wantType, wantInstance := in.Records[i].Type, in.Records[i].Instance
		if wantType == "" {
			wantType = in.Type
		}
		if wantInstance == "" && (rec.Kind == KindAttempt || rec.Kind == KindCall) {
			wantInstance = in.Instance
		}
		if rec.Type != wantType || rec.Instance != wantInstance {
			t.Fatalf("record %d: type %q instance %q, want %q %q", i, rec.Type, rec.Instance, wantType, wantInstance)
		}
	}
}

// Subject tokens written into a buffer are those of jetstream.SubjectToken
// (through token), for every byte and for long strings.
func TestAppendToken(t *testing.T) {
	all := append(oneOdd(), "", "550e8400-e29b-41d4-a716-446655440000", "order.created", string(make([]byte, maxTokenLen+1)))
	for _, s := range all {
		if got, want := string(appendToken([]byte("x."), s)), "x."+token(s); got != want {
			t.Fatalf("appendToken(%q) = %q, want %q", s, got, want)
		}
	}
}

// oneOdd returns strings of 1 to 19 bytes, eight at a time and not,
// holding every byte value at every place among plain ones ('0' and 'é').
func oneOdd() []string {
	var all []string
	for n := 1; n < 20; n++ {
		for at := range n {
			for c := range 256 {
				for _, fill := range []byte{'0', 0xc3} {
					s := make([]byte, n)
					for i := range s {
						s[i] = fill
					}
					s[at] = byte(c)
					all = append(all, string(s))
				}
			}
		}
	}
	return all
}

// The eight-bytes-at-a-time checks agree with one byte at a time.
func TestPlainChecks(t *testing.T) {
	for _, s := range oneOdd() {
		json, clean := true, true
		for i := 0; i < len(s); i++ {
			c := s[i]
			json = json && c >= 0x20 && c < 0x80 && c != '"' && c != '\\'
			clean = clean && c > ' ' && c != 0x7f && c != '.' && c != '*' && c != '>' && c != '%'
		}
		if jsonPlain(s) != json || tokenClean(s) != clean {
			t.Fatalf("%q: jsonPlain %v tokenClean %v, want %v %v", s, jsonPlain(s), tokenClean(s), json, clean)
		}
	}
}

// A flush's records are grouped by event, each event's in the order given.
func TestBatchSort(t *testing.T) {
	var es []entry
	keys := []eventKey{{"s", "a", "t"}, {"s", "b", "t"}, {"t", "a", "t"}, {"s", "b", "t"}, {"s", "a", "t"}, {"s", "c", "t"}, {"s", "a", "t"}, {"s", "a", "u"}}
	for i, k := range keys {
		es = append(es, entry{key: k, off: i})
	}
	var b batch
	b.index = map[eventKey]int32{}
	for range 2 { // the second time on reused slices
		b.sort(es)
		want := map[eventKey][]int{{"s", "a", "t"}: {0, 4, 6}, {"s", "b", "t"}: {1, 3}, {"t", "a", "t"}: {2}, {"s", "c", "t"}: {5}, {"s", "a", "u"}: {7}}
		if len(b.keys) != len(want) {
			t.Fatalf("%d events, want %d", len(b.keys), len(want))
		}
		for g, k := range b.keys {
			var got []int
			for _, i := range b.order[b.start[g]:b.start[g+1]] {
				got = append(got, es[i].off)
			}
			if !reflect.DeepEqual(got, want[k]) {
				t.Fatalf("event %v: records %v, want %v", k, got, want[k])
			}
		}
	}
}

// A UUID's token is its 16 bytes in base64url after "%U"; any other id's
// is token's.
func TestIDToken(t *testing.T) {
	const id = "5f92bc12-cd2c-44eb-9f95-3fee48b71f7c"
	got := idToken(id)
	u, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(got, "%U"))
	if err != nil || len(got) != 24 || hex.EncodeToString(u) != strings.ReplaceAll(id, "-", "") {
		t.Fatalf("idToken(%q) = %q (%x, %v)", id, got, u, err)
	}
	for _, other := range []string{strings.ToUpper(id), strings.ReplaceAll(id, "-", ""), id[:35] + "g", id[:8] + "." + id[9:], "%U" + got[2:], "e1"} {
		if idToken(other) != token(other) {
			t.Fatalf("idToken(%q) = %q, want token's %q", other, idToken(other), token(other))
		}
	}
	if idToken("5f92bc12-cd2c-44eb-9f95-3fee48b71f7d") == got {
		t.Fatal("two UUIDs, one token")
	}
}
