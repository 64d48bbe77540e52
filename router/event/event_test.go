package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, ev := range []Event{
		{Event: "user.created", ID: uuid.NewString(), ReceivedAt: 1500897327098, Data: json.RawMessage(`{"foo":"bar"}`), DataType: "application/json"},
		{Event: "e", ID: "id", ReceivedAt: 0, Data: nil, DataType: ""},
		{Event: `quo"te\back`, ID: "<script>&", ReceivedAt: -1, Data: json.RawMessage(`"aGk="`), DataType: "text/plain; charset=\"utf-8\""},
		{Event: "ünïcode😸", ID: "\x00\x1f\u2028", ReceivedAt: 1, Data: json.RawMessage(`[1,2]`), DataType: "application/vnd.x+json"},
	} {
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		got := ev.AppendJSON(nil)
		if !json.Valid(got) {
			t.Fatalf("AppendJSON wrote invalid JSON: %s", got)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON:\n got %s\nwant %s", got, want)
		}
	}
}

func TestEncodeData(t *testing.T) {
	tests := []struct {
		body, ct         string
		wantData, wantDT string
		wantErr          bool
	}{
		{`{"a":1}`, "application/json", `{"a":1}`, "application/json", false},
		{`{"a":1}`, "application/json; charset=utf-8", `{"a":1}`, "application/json; charset=utf-8", false},
		{`{"a":1}`, "Application/JSON", `{"a":1}`, "Application/JSON", false},
		{`{"a":1}`, "application/cloudevents+json", `{"a":1}`, "application/cloudevents+json", false},
		{`[1]`, "application/problem+json; charset=utf-8", `[1]`, "application/problem+json; charset=utf-8", false},
		{"😸", "", `"8J+YuA=="`, "application/octet-stream", false},
		{`{"a":1}`, "text/plain", `"eyJhIjoxfQ=="`, "text/plain", false},
		{`{"a":1}`, "application/jsonx", `"eyJhIjoxfQ=="`, "application/jsonx", false},
		{"", "application/json", `null`, "application/json", false},
		{"", "", `null`, "application/octet-stream", false},
		{`{oops`, "application/json", "", "", true},
	}
	for _, tt := range tests {
		data, dt, err := EncodeData([]byte(tt.body), tt.ct)
		if tt.wantErr {
			if err == nil {
				t.Errorf("EncodeData(%q, %q): no error", tt.body, tt.ct)
			}
			continue
		}
		if err != nil || string(data) != tt.wantData || dt != tt.wantDT {
			t.Errorf("EncodeData(%q, %q) = %s, %q, %v; want %s, %q", tt.body, tt.ct, data, dt, err, tt.wantData, tt.wantDT)
		}
	}
}

func TestEncodeBody(t *testing.T) {
	for _, tt := range []struct{ body, ct, want string }{
		{`{"a":1}`, "application/json", `{"a":1}`},
		{`{oops`, "application/json", `"e29vcHM="`},
		{"hi", "text/plain", `"aGk="`},
		{"", "application/json", `null`},
	} {
		if got := EncodeBody([]byte(tt.body), tt.ct); string(got) != tt.want {
			t.Errorf("EncodeBody(%q, %q) = %s, want %s", tt.body, tt.ct, got, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	now := time.UnixMilli(1700000000123)
	ev, err := New("e", []byte(`{"x":true}`), "application/json", now)
	if err != nil {
		t.Fatal(err)
	}
	id, err := uuid.Parse(ev.ID)
	if err != nil || id.Version() != 7 || id.Variant() != uuid.RFC4122 {
		t.Fatalf("id %q is not a UUID v7", ev.ID)
	}
	// The id carries the time the event was named, as the envelope says.
	if sec, nsec := id.Time().UnixTime(); sec*1000+nsec/1e6 != 1700000000123 {
		t.Fatalf("id %q carries %d ms, want the event's 1700000000123", ev.ID, sec*1000+nsec/1e6)
	}
	if ev.ReceivedAt != 1700000000123 || string(ev.Data) != `{"x":true}` || ev.Event != "e" {
		t.Fatalf("event %+v", ev)
	}
	other, _ := New("e", nil, "", now)
	if other.ID == ev.ID {
		t.Fatal("two events share an id")
	}
}

func TestParseHTTPResponse(t *testing.T) {
	tests := []struct {
		raw        string
		status     int
		body       string
		header     string // Content-Type to expect, if any
		wantErr    bool
		errContain string
	}{
		{raw: `{"statusCode":201,"headers":{"content-type":"text/html"},"body":"<head></head>"}`, status: 201, body: "<head></head>", header: "text/html"},
		{raw: `{"body":"hello"}`, status: 200, body: "hello"},
		{raw: `{}`, status: 200},
		{raw: ``, status: 200},
		{raw: `{"statusCode":204,"body":null}`, status: 204},
		{raw: `{"body":{"a":1}}`, status: 200, body: `{"a":1}`, header: "application/json"},
		{raw: `{"body":"\u00e9\n"}`, status: 200, body: "é\n"},
		{raw: `{"statusCode":"200"}`, wantErr: true},
		{raw: `{"statusCode":99}`, wantErr: true, errContain: "out of range"},
		{raw: `{"statusCode":101}`, wantErr: true, errContain: "out of range"},
		{raw: `{"statusCode":199}`, wantErr: true},
		{raw: `{"statusCode":600}`, wantErr: true},
		{raw: `{"headers":{"a":1}}`, wantErr: true},
		{raw: `[1,2]`, wantErr: true},
		{raw: `not json`, wantErr: true},
	}
	for _, tt := range tests {
		resp, err := ParseHTTPResponse([]byte(tt.raw))
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), tt.errContain) {
				t.Errorf("ParseHTTPResponse(%s) error = %v", tt.raw, err)
			}
			continue
		}
		if err != nil || resp.StatusCode != tt.status || string(resp.Body) != tt.body {
			t.Errorf("ParseHTTPResponse(%s) = %d %q %v; want %d %q", tt.raw, resp.StatusCode, resp.Body, err, tt.status, tt.body)
		}
		if tt.header != "" && resp.Headers["content-type"] != tt.header && resp.Headers["Content-Type"] != tt.header {
			t.Errorf("ParseHTTPResponse(%s) headers %v; want content type %q", tt.raw, resp.Headers, tt.header)
		}
	}
}

// FuzzParseHTTPResponse checks that whatever the fast parser reads, it
// reads as encoding/json does.
func FuzzParseHTTPResponse(f *testing.F) {
	for _, s := range []string{
		`{"statusCode":201,"headers":{"content-type":"text/html"},"body":"<head></head>"}`,
		`{"statusCode":200,"body":"ok"}`, `{}`, ` { } `, `{"body":null}`, `{"statusCode":null,"headers":null}`,
		`{"body":{"a":[1,"}",{"b":null}]},"headers":{"CONTENT-TYPE":"x"}}`, `{"body":[]}`, `{"body":-1.5e3}`, `{"body":true}`,
		`{"body":"\u00e9\n\ud83d\ude00\ud83d\"\/\\\b\f\r\t"}`, `{"body":"\udc00\ud800x"}`, "{\"body\":\"\xff\\n\xe9\"}",
		"{\"body\":\"\xff\xe9\"}", `{"StatusCode":204,"BODY":"","Headers":{}}`, `{"statusCode":200,"statusCode":201}`,
		`{"statusCode":200.0}`, `{"statusCode":2e2}`, `{"statusCode":0200}`, `{"statusCode":-200}`, `{"statusCode":600}`,
		`{"statusCode":"200"}`, `{"headers":{"a":"b","a":"c"}}`, `{"headers":{"a":1}}`, `{"headers":{"é":"ü"}}`,
		"{\"headers\":{\"a\":\"\xff\"}}", `{"headers":{"a":"b\"c"}}`, `{"headers":{"a":null}}`, `{"x":{"y":[1,2,{}]},"body":"b"}`,
		`{"body":"a"}x`, `{"body":"a",}`, `{,}`, `{"body" "a"}`, `{"body":tru}`, `{"body":1 2}`, `{"body":{"a":]}}`,
		`{"body":"\x"}`, `{"body":"\'"}`, `{"body":"\u12"}`, `null`, `[1]`, `"s"`, `{"ſtatusCode":201}`, "{\"body\":\"a\tb\"}",
		"\t{\"body\" : \"a\" }\r\n", `{"headers":{}}`, `{"body":{"Content-Type":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fast, ok := parseHTTPResponseFast(raw)
		if !ok {
			return
		}
		slow, err := parseHTTPResponseJSON(raw)
		if err != nil {
			t.Fatalf("%q: the fast parser read %+v, encoding/json fails: %v", raw, fast, err)
		}
		if fast.StatusCode != slow.StatusCode || !reflect.DeepEqual(fast.Headers, slow.Headers) ||
			!bytes.Equal(fast.Body, slow.Body) || (fast.Body == nil) != (slow.Body == nil) {
			t.Fatalf("%q: fast %d %#v %q, encoding/json %d %#v %q", raw, fast.StatusCode, fast.Headers, fast.Body,
				slow.StatusCode, slow.Headers, slow.Body)
		}
	})
}

// TestParseHTTPResponseFast checks that the usual response objects take
// the fast path.
func TestParseHTTPResponseFast(t *testing.T) {
	for _, s := range []string{
		`{"statusCode":200,"body":"ok"}`,
		`{"statusCode":201,"headers":{"Content-Type":"application/json","X-A":"b"},"body":"{\"hello\":\"w\u00f6rld\"}"}`,
		`{"body":{"a":1}}`,
		`{"statusCode":204,"headers":null,"body":null,"isBase64Encoded":false}`,
	} {
		if _, ok := parseHTTPResponseFast([]byte(s)); !ok {
			t.Errorf("%s: not read by the fast parser", s)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	ev, _ := New("user.created", []byte(`{"name":"Max","email":"max@example.com"}`), "application/json", time.Now())
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = ev.AppendJSON(buf[:0])
	}
}

func BenchmarkMarshalJSON(b *testing.B) {
	ev, _ := New("user.created", []byte(`{"name":"Max","email":"max@example.com"}`), "application/json", time.Now())
	b.ReportAllocs()
	for b.Loop() {
		json.Marshal(ev)
	}
}

func BenchmarkParseHTTPResponse(b *testing.B) {
	raw := []byte(`{"statusCode":200,"headers":{"Content-Type":"application/json"},"body":"{\"hello\":\"world\",\"n\":42}"}`)
	plain := []byte(`{"statusCode":200,"headers":{"Content-Type":"text/plain"},"body":"hello world, a plain answer"}`)
	b.Run("escaped", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ParseHTTPResponse(raw)
		}
	})
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ParseHTTPResponse(plain)
		}
	})
	// The answer of the backend of go run ./bench.
	bare := []byte(`{"statusCode":200,"body":"ok"}`)
	b.Run("no-headers", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ParseHTTPResponse(bare)
		}
	})
}
