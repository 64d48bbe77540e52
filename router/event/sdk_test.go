package event

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	ceevent "github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// sdkEvent builds an event with the official CloudEvents Go SDK: every
// attribute, and an extension of each type.
func sdkEvent(t testing.TB, contentType string, data any) ceevent.Event {
	e := ceevent.New("1.0")
	e.SetID("A234-1234-1234")
	e.SetSource("https://github.com/cloudevents/spec/pull")
	e.SetType("com.github.pull_request.opened")
	e.SetSubject("123 café")
	e.SetTime(time.Date(2018, 4, 5, 17, 31, 0, 500000000, time.UTC))
	e.SetDataSchema("https://example.com/schema")
	e.SetExtension("comexampleextension1", "value")
	e.SetExtension("comexampleothervalue", 5)
	e.SetExtension("flag", true)
	if err := e.SetData(contentType, data); err != nil {
		t.Fatal(err)
	}
	return e
}

// sdkRequest writes e as the SDK sends it over HTTP, in binary or
// structured mode.
func sdkRequest(t testing.TB, e ceevent.Event, structured bool) (http.Header, []byte) {
	ctx := binding.WithForceBinary(context.Background())
	if structured {
		ctx = binding.WithForceStructured(context.Background())
	}
	req, _ := http.NewRequest("POST", "http://gateway/", nil)
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(&e), req); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return req.Header, body
}

func decodeRequest(t testing.TB, h http.Header, body []byte) CloudEvent {
	var ce CloudEvent
	var err error
	switch f := Detect(h, body); f {
	case FormBinary:
		ce, err = DecodeBinary(h, body)
	case FormStructured:
		ce, err = DecodeStructured(body)
	default:
		t.Fatalf("detected %v", f)
	}
	if err != nil {
		t.Fatalf("%v\n%v\n%s", err, h, body)
	}
	return ce
}

// TestSDKToGateway: an event the SDK writes in binary and in structured
// mode decodes to the same attributes, extensions and data.
func TestSDKToGateway(t *testing.T) {
	for _, tc := range []struct {
		name, ct string
		data     any
	}{
		{"json", "application/json", map[string]any{"a": []int{1, 2}}},
		{"binary", "application/octet-stream", []byte{0, 1, 2, 0xff}},
		{"text", "text/plain", "hello <world>"},
	} {
		for _, structured := range []bool{false, true} {
			name := tc.name + "/binary-mode"
			if structured {
				name = tc.name + "/structured-mode"
			}
			t.Run(name, func(t *testing.T) {
				e := sdkEvent(t, tc.ct, tc.data)
				h, body := sdkRequest(t, e, structured)
				ce := decodeRequest(t, h, body)
				if ce.ID != e.ID() || ce.Source != e.Source() || ce.Type != e.Type() || ce.Subject != e.Subject() ||
					ce.DataSchema != e.DataSchema() || ce.DataContentType != e.DataContentType() || ce.SpecVersion != "1.0" {
					t.Errorf("attributes: %#v\nSDK: %v", ce, e)
				}
				if ts, ok := ce.Timestamp(); !ok || !ts.Equal(e.Time()) {
					t.Errorf("time %q, SDK %v", ce.Time, e.Time())
				}
				// Headers carry no types: in binary mode every extension
				// is a string.
				want := map[string]any{"comexampleextension1": "value", "comexampleothervalue": int32(5), "flag": true}
				if !structured {
					want = map[string]any{"comexampleextension1": "value", "comexampleothervalue": "5", "flag": "true"}
				}
				if len(ce.Extensions) != len(want) {
					t.Errorf("extensions %#v, want %#v", ce.Extensions, want)
				}
				for k, v := range want {
					if ce.Extensions[k] != v {
						t.Errorf("extension %s = %#v, want %#v", k, ce.Extensions[k], v)
					}
				}
				if got := dataBytes(t, ce); !bytes.Equal(got, e.Data()) {
					t.Errorf("data %q, SDK %q", got, e.Data())
				}
			})
		}
	}
}

// dataBytes returns the bytes of the data as the SDK holds them: the JSON
// text, the text of a string of a non-JSON type, or the binary bytes.
func dataBytes(t testing.TB, ce CloudEvent) []byte {
	ev := ce.ToEvent(time.Now())
	if IsJSON(ev.DataType) {
		return ev.Data
	}
	// The seed envelope's base64 string is the bytes.
	var b []byte
	if err := json.Unmarshal(ev.Data, &b); err != nil {
		t.Fatalf("%s: %v", ev.Data, err)
	}
	return b
}

// TestGatewayToSDK: what AppendJSON writes, the SDK reads back with every
// attribute, extension and the data intact.
func TestGatewayToSDK(t *testing.T) {
	for _, tc := range []struct {
		name string
		ce   CloudEvent
		data []byte
	}{
		{"json", CloudEvent{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "application/json",
			DataSchema: "https://x/schema", Subject: "sub \"q\"", Time: "2018-04-05T17:31:00.5Z", Data: []byte(`{"a":[1,2]}`),
			Extensions: map[string]any{"str": "v", "num": int32(-7), "flag": false}}, []byte(`{"a":[1,2]}`)},
		{"binary", CloudEvent{ID: "2", Source: "urn:x", Type: "t", DataContentType: "image/png", Data: []byte(`"AAEC/w=="`), DataBinary: true},
			[]byte{0, 1, 2, 0xff}},
		{"text", CloudEvent{ID: "3", Source: "/s", Type: "t", DataContentType: "text/plain", Data: []byte(`"hello"`)}, []byte("hello")},
		{"no data", CloudEvent{ID: "4", Source: "/s", Type: "t", Extensions: map[string]any{"e": "x"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.ce.AppendJSON(nil)
			var e ceevent.Event
			if err := e.UnmarshalJSON(out); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			ce := tc.ce
			if e.ID() != ce.ID || e.Source() != ce.Source || e.Type() != ce.Type || e.Subject() != ce.Subject ||
				e.DataSchema() != ce.DataSchema || e.SpecVersion() != "1.0" {
				t.Errorf("SDK read %v from %s", e, out)
			}
			if ce.DataContentType != "" && e.DataContentType() != ce.DataContentType {
				t.Errorf("datacontenttype %q", e.DataContentType())
			}
			if ts, _ := ce.Timestamp(); !ts.Equal(e.Time()) {
				t.Errorf("time %v, want %v", e.Time(), ts)
			}
			ext := e.Extensions()
			if len(ext) != len(ce.Extensions) {
				t.Errorf("extensions %#v, want %#v", ext, ce.Extensions)
			}
			for k, v := range ce.Extensions {
				if ext[k] != v {
					t.Errorf("extension %s = %#v (%T), want %#v", k, ext[k], ext[k], v)
				}
			}
			if !bytes.Equal(e.Data(), tc.data) {
				t.Errorf("data %q, want %q", e.Data(), tc.data)
			}
			// And the SDK writes it back as we read it.
			again, err := e.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			back, err := DecodeStructured(again)
			if err != nil {
				t.Fatalf("%v\n%s", err, again)
			}
			if string(back.AppendJSON(nil)) != string(out) {
				t.Errorf("SDK round trip:\n got %s\nwant %s", back.AppendJSON(nil), out)
			}
		})
	}
}
