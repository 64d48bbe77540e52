package event

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

const structuredFull = `{"specversion":"1.0","id":"A234-1234-1234","source":"https://github.com/cloudevents/spec/pull","type":"com.github.pull_request.opened",` +
	`"subject":"123","time":"2018-04-05T17:31:00Z","comexampleextension1":"value","comexampleothervalue":5,"flag":true,` +
	`"datacontenttype":"application/json","dataschema":"https://example.com/schema","data":{"a":[1,2,"x"]}}`

func TestDecodeStructured(t *testing.T) {
	base := `"specversion":"1.0","id":"1","source":"/s","type":"t"`
	tests := []struct {
		name, body string
		attr       string // the attribute of the error; "-" for no error
		check      func(t *testing.T, ce CloudEvent)
	}{
		{"full", structuredFull, "-", func(t *testing.T, ce CloudEvent) {
			want := CloudEvent{ID: "A234-1234-1234", Source: "https://github.com/cloudevents/spec/pull", SpecVersion: "1.0",
				Type: "com.github.pull_request.opened", DataContentType: "application/json", DataSchema: "https://example.com/schema",
				Subject: "123", Time: "2018-04-05T17:31:00Z", Data: json.RawMessage(`{"a":[1,2,"x"]}`),
				Extensions: map[string]any{"comexampleextension1": "value", "comexampleothervalue": int32(5), "flag": true}}
			if !reflect.DeepEqual(ce, want) {
				t.Errorf("got  %#v\nwant %#v", ce, want)
			}
		}},
		{"minimal", `{` + base + `}`, "-", func(t *testing.T, ce CloudEvent) {
			if ce.Data != nil || ce.Extensions != nil || ce.Time != "" {
				t.Errorf("%#v", ce)
			}
		}},
		{"null members are absent", `{` + base + `,"subject":null,"x":null,"data":null,"data_base64":null}`, "-", func(t *testing.T, ce CloudEvent) {
			if ce.Data != nil || ce.Extensions != nil || ce.Subject != "" {
				t.Errorf("%#v", ce)
			}
		}},
		{"data_base64", `{` + base + `,"datacontenttype":"image/png","data_base64":"iVBORw0KGgo="}`, "-", func(t *testing.T, ce CloudEvent) {
			if !ce.DataBinary || string(ce.Data) != `"iVBORw0KGgo="` {
				t.Errorf("%#v", ce)
			}
		}},
		{"data_base64 escaped", `{` + base + `,"data_base64":"aGk\u003d"}`, "-", func(t *testing.T, ce CloudEvent) {
			if !ce.DataBinary || string(ce.Data) != `"aGk="` {
				t.Errorf("%s", ce.Data)
			}
		}},
		{"text data", `{` + base + `,"datacontenttype":"text/xml","data":"<much wow=\"xml\"/>"}`, "-", func(t *testing.T, ce CloudEvent) {
			if ce.DataBinary || string(ce.Data) != `"<much wow=\"xml\"/>"` {
				t.Errorf("%#v", ce)
			}
		}},
		{"escaped attribute", `{` + strings.Replace(base, `"t"`, `"t\u00e9\n"`, 1) + `}`, "-", func(t *testing.T, ce CloudEvent) {
			if ce.Type != "té\n" {
				t.Errorf("%q", ce.Type)
			}
		}},
		{"lower-case t and leap second", `{` + base + `,"time":"1990-12-31t23:59:60z"}`, "-", nil},
		{"negative extension", `{` + base + `,"n":-2147483648}`, "-", func(t *testing.T, ce CloudEvent) {
			if ce.Extensions["n"] != int32(-2147483648) {
				t.Errorf("%#v", ce.Extensions)
			}
		}},

		{"missing specversion", `{"id":"1","source":"/s","type":"t"}`, "specversion", nil},
		{"missing id", `{"specversion":"1.0","source":"/s","type":"t"}`, "id", nil},
		{"missing source", `{"specversion":"1.0","id":"1","type":"t"}`, "source", nil},
		{"missing type", `{"specversion":"1.0","id":"1","source":"/s"}`, "type", nil},
		{"empty id", `{"specversion":"1.0","id":"","source":"/s","type":"t"}`, "id", nil},
		{"null id", `{"specversion":"1.0","id":null,"source":"/s","type":"t"}`, "id", nil},
		{"id not a string", `{"specversion":"1.0","id":1,"source":"/s","type":"t"}`, "id", nil},
		{"specversion 0.3", `{"specversion":"0.3","id":"1","source":"/s","type":"t"}`, "specversion", nil},
		{"specversion 1", `{"specversion":1.0,"id":"1","source":"/s","type":"t"}`, "specversion", nil},
		{"bad time", `{` + base + `,"time":"yesterday"}`, "time", nil},
		{"time without zone", `{` + base + `,"time":"2018-04-05T17:31:00"}`, "time", nil},
		{"duplicate", `{` + base + `,"id":"2"}`, "id", nil},
		{"data and data_base64", `{` + base + `,"data":1,"data_base64":"aGk="}`, "data_base64", nil},
		{"bad base64", `{` + base + `,"data_base64":"a!b="}`, "data_base64", nil},
		{"base64 not a string", `{` + base + `,"data_base64":12}`, "data_base64", nil},
		{"upper-case extension", `{` + base + `,"myExt":"v"}`, `"myExt"`, nil},
		{"extension name with dash", `{` + base + `,"my-ext":"v"}`, `"my-ext"`, nil},
		{"object extension", `{` + base + `,"ext":{"a":1}}`, "ext", nil},
		{"fraction extension", `{` + base + `,"ext":1.5}`, "ext", nil},
		{"big extension", `{` + base + `,"ext":2147483648}`, "ext", nil},
		{"long attribute", `{` + base + `,"subject":"` + strings.Repeat("x", MaxAttributeLen+1) + `"}`, "subject", nil},
		{"invalid UTF-8", `{` + base + ",\"subject\":\"\xff\"}", "subject", nil},
		{"not JSON", `{"specversion":"1.0",`, "", nil},
		{"array", `[1]`, "", nil},
		{"trailing", `{` + base + `}x`, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce, err := DecodeStructured([]byte(tt.body))
			checkDecode(t, ce, err, FormStructured, tt.attr, tt.check)
		})
	}
}

func checkDecode(t *testing.T, ce CloudEvent, err error, form Form, attr string, check func(*testing.T, CloudEvent)) {
	t.Helper()
	if attr == "-" {
		if err != nil {
			t.Fatalf("error: %v", err)
		}
		if check != nil {
			check(t, ce)
		}
		return
	}
	var ie *InvalidEventError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T), want an *InvalidEventError", err, err)
	}
	if ie.Form != form || ie.Attribute != attr || ie.Reason == "" {
		t.Fatalf("error %#v, want form %v attribute %q", ie, form, attr)
	}
	t.Log(err)
}

func TestTooManyExtensions(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"specversion":"1.0","id":"1","source":"/s","type":"t"`)
	for i := range MaxExtensions + 1 {
		b.WriteString(`,"e` + strings.Repeat("a", i%10) + string(rune('a'+i/10)) + `x` + string(rune('a'+i%10)) + `":1`)
	}
	b.WriteString(`}`)
	_, err := DecodeStructured([]byte(b.String()))
	var ie *InvalidEventError
	if !errors.As(err, &ie) || !strings.Contains(ie.Reason, "extensions") {
		t.Fatalf("error %v", err)
	}
}

func binaryHeader(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestDecodeBinary(t *testing.T) {
	req := []string{"ce-specversion", "1.0", "ce-id", "1", "ce-source", "/s", "ce-type", "t"}
	with := func(kv ...string) http.Header { return binaryHeader(append(append([]string{}, req...), kv...)...) }
	without := func(name string) http.Header {
		h := with()
		h.Del(name)
		return h
	}
	tests := []struct {
		name  string
		h     http.Header
		body  string
		attr  string
		check func(t *testing.T, ce CloudEvent)
	}{
		{"json", with("Content-Type", "application/json", "ce-time", "2018-04-05T17:31:00Z", "ce-subject", "sub",
			"ce-dataschema", "https://x/s", "ce-myext", "v", "X-Other", "o"), `{"a":1}`, "-", func(t *testing.T, ce CloudEvent) {
			want := CloudEvent{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "application/json",
				DataSchema: "https://x/s", Subject: "sub", Time: "2018-04-05T17:31:00Z", Data: json.RawMessage(`{"a":1}`),
				Extensions: map[string]any{"myext": "v"}}
			if !reflect.DeepEqual(ce, want) {
				t.Errorf("got  %#v\nwant %#v", ce, want)
			}
		}},
		{"binary data", with("Content-Type", "image/png"), "\x89PNG", "-", func(t *testing.T, ce CloudEvent) {
			if !ce.DataBinary || string(ce.Data) != `"iVBORw=="` || ce.DataContentType != "image/png" {
				t.Errorf("%#v", ce)
			}
		}},
		{"no content type", with(), "hi", "-", func(t *testing.T, ce CloudEvent) {
			if !ce.DataBinary || ce.DataContentType != "" {
				t.Errorf("%#v", ce)
			}
		}},
		{"empty body", with("Content-Type", "application/json"), "", "-", func(t *testing.T, ce CloudEvent) {
			if ce.Data != nil {
				t.Errorf("%#v", ce)
			}
		}},
		{"percent-encoded", with("ce-subject", "caf%C3%A9%20au%20lait%25", "ce-myext", `"quoted \"v\" 100%"`), "", "-", func(t *testing.T, ce CloudEvent) {
			if ce.Subject != "café au lait%" || ce.Extensions["myext"] != `quoted "v" 100%` {
				t.Errorf("%q %q", ce.Subject, ce.Extensions["myext"])
			}
		}},
		{"ce-datacontenttype without Content-Type", with("ce-datacontenttype", "text/plain"), "x", "-", func(t *testing.T, ce CloudEvent) {
			if ce.DataContentType != "text/plain" {
				t.Errorf("%#v", ce)
			}
		}},
		{"missing specversion", without("ce-specversion"), "", "ce-specversion", nil},
		{"missing id", without("ce-id"), "", "ce-id", nil},
		{"missing source", without("ce-source"), "", "ce-source", nil},
		{"missing type", without("ce-type"), "", "ce-type", nil},
		{"empty type", with("ce-type", ""), "", "ce-type", nil},
		{"specversion 0.3", with("ce-specversion", "0.3"), "", "ce-specversion", nil},
		{"bad time", with("ce-time", "2018-13-05T17:31:00Z"), "", "ce-time", nil},
		{"invalid JSON body", with("Content-Type", "application/json"), "{", "data", nil},
		{"bad extension name", with("ce-my_ext", "v"), "", "ce-my_ext", nil},
		{"ce-data", with("ce-data", "v"), "", "ce-data", nil},
		{"invalid UTF-8", with("ce-subject", "%FF"), "", "ce-subject", nil},
		{"repeated", func() http.Header { h := with(); h.Add("ce-id", "2"); return h }(), "", "ce-id", nil},
		{"long", with("ce-subject", strings.Repeat("x", MaxAttributeLen+1)), "", "ce-subject", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce, err := DecodeBinary(tt.h, []byte(tt.body))
			checkDecode(t, ce, err, FormBinary, tt.attr, tt.check)
		})
	}
}

const v01Full = `{"eventType":"myapp.user.created","eventTypeVersion":"1.0","cloudEventsVersion":"0.1",` +
	`"source":"https://serverless.com/event-gateway/#transformationVersion=0.1","eventID":"66dfc31d-6844-42fd-b1a7-a489a49f65f3",` +
	`"eventTime":"1990-12-31T23:59:60Z","schemaURL":"https://x/schema","contentType":"application/json",` +
	`"extensions":{"eventgateway":{"transformed":"true","transformation-version":"0.1"},"n":3,"b":false,"s":"x","f":1.5},` +
	`"data":{"foo":"bar"}}`

func TestDecodeV01(t *testing.T) {
	base := `"eventType":"e","cloudEventsVersion":"0.1","source":"/s","eventID":"1"`
	tests := []struct {
		name, body string
		attr       string
		check      func(t *testing.T, ce CloudEvent)
	}{
		{"full", v01Full, "-", func(t *testing.T, ce CloudEvent) {
			want := CloudEvent{ID: "66dfc31d-6844-42fd-b1a7-a489a49f65f3", Source: "https://serverless.com/event-gateway/#transformationVersion=0.1",
				SpecVersion: "0.1", Type: "myapp.user.created", DataContentType: "application/json", DataSchema: "https://x/schema",
				Time: "1990-12-31T23:59:60Z", Data: json.RawMessage(`{"foo":"bar"}`),
				Extensions: map[string]any{"eventtypeversion": "1.0", "eventgateway": json.RawMessage(`{"transformed":"true","transformation-version":"0.1"}`),
					"n": int32(3), "b": false, "s": "x", "f": json.RawMessage(`1.5`)}}
			if !reflect.DeepEqual(ce, want) {
				t.Errorf("got  %#v\nwant %#v", ce, want)
			}
		}},
		{"case and unknown members", `{"EventType":"e","cloudeventsversion":"0.1","Source":"/s","eventId":"1","other":[1]}`, "-", nil},
		{"no data", `{` + base + `}`, "-", func(t *testing.T, ce CloudEvent) {
			if ce.Data != nil {
				t.Errorf("%s", ce.Data)
			}
		}},
		{"missing eventType", `{"cloudEventsVersion":"0.1","source":"/s","eventID":"1"}`, "eventType", nil},
		{"missing version", `{"eventType":"e","source":"/s","eventID":"1"}`, "cloudEventsVersion", nil},
		{"missing source", `{"eventType":"e","cloudEventsVersion":"0.1","eventID":"1"}`, "source", nil},
		{"missing eventID", `{"eventType":"e","cloudEventsVersion":"0.1","source":"/s"}`, "eventID", nil},
		{"version 1.0", `{"eventType":"e","cloudEventsVersion":"1.0","source":"/s","eventID":"1"}`, "cloudEventsVersion", nil},
		{"bad time", `{` + base + `,"eventTime":"now"}`, "eventTime", nil},
		{"extensions not an object", `{` + base + `,"extensions":[1]}`, "extensions", nil},
		{"duplicate eventtypeversion", `{` + base + `,"eventTypeVersion":"1","extensions":{"eventtypeversion":"2"}}`, "eventtypeversion", nil},
		{"not an object", `"x"`, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce, err := DecodeV01([]byte(tt.body))
			checkDecode(t, ce, err, FormV01, tt.attr, tt.check)
		})
	}
}

// TestRoundTrip1 decodes each form, writes 1.0 structured JSON, decodes
// that, and expects the same event.
func TestRoundTrip1(t *testing.T) {
	events := map[string]func() (CloudEvent, error){
		"structured": func() (CloudEvent, error) { return DecodeStructured([]byte(structuredFull)) },
		"structured base64": func() (CloudEvent, error) {
			return DecodeStructured([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AAEC"}`))
		},
		"structured text": func() (CloudEvent, error) {
			return DecodeStructured([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"hé<>"}`))
		},
		"binary": func() (CloudEvent, error) {
			return DecodeBinary(binaryHeader("ce-specversion", "1.0", "ce-id", "1", "ce-source", "/s", "ce-type", "t",
				"ce-subject", "%22q%22", "ce-e1", "x", "Content-Type", "text/plain"), []byte("hello\x00"))
		},
	}
	for name, decode := range events {
		t.Run(name, func(t *testing.T) {
			ce, err := decode()
			if err != nil {
				t.Fatal(err)
			}
			out := ce.AppendJSON(nil)
			if !json.Valid(out) {
				t.Fatalf("invalid JSON: %s", out)
			}
			back, err := DecodeStructured(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, ce) {
				t.Fatalf("\n got %#v\nwant %#v\n%s", back, ce, out)
			}
		})
	}
}

// TestRoundTripV01: v0.1 in, v0.1 out, the same event; and 1.0 carries
// what 1.0 can.
func TestRoundTripV01(t *testing.T) {
	ce, err := DecodeV01([]byte(v01Full))
	if err != nil {
		t.Fatal(err)
	}
	out := ce.AppendV01JSON(nil)
	back, err := DecodeV01(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, ce) {
		t.Fatalf("\n got %#v\nwant %#v\n%s", back, ce, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil || m["eventTypeVersion"] != "1.0" || m["cloudEventsVersion"] != "0.1" {
		t.Fatalf("%v %s", err, out)
	}

	v1 := ce.AppendJSON(nil)
	got, err := DecodeStructured(v1)
	if err != nil {
		t.Fatalf("%v\n%s", err, v1)
	}
	if got.Extensions["eventgateway"] != `{"transformed":"true","transformation-version":"0.1"}` ||
		got.Extensions["eventtypeversion"] != "1.0" || got.Extensions["f"] != "1.5" || got.Extensions["n"] != int32(3) {
		t.Fatalf("%#v", got.Extensions)
	}
}

func TestLegacyConversion(t *testing.T) {
	now := time.UnixMilli(1700000000123)
	for _, tt := range []struct{ body, ct string }{
		{`{"a":1}`, "application/json"},
		{"hello", "text/plain"},
		{"", ""},
		{"\x00\xff", ""},
	} {
		ev, err := New("user.created", []byte(tt.body), tt.ct, now)
		if err != nil {
			t.Fatal(err)
		}
		ce := FromEvent(&ev)
		if ce.Source != SourceLegacy || ce.Type != "user.created" || ce.Time != "2023-11-14T22:13:20.123Z" {
			t.Fatalf("%#v", ce)
		}
		back := ce.ToEvent(time.Now())
		if !reflect.DeepEqual(back, ev) {
			t.Fatalf("\n got %#v\nwant %#v", back, ev)
		}
		if string(ce.AppendSeedJSON(nil, time.Now())) != string(ev.AppendJSON(nil)) {
			t.Fatal("AppendSeedJSON differs from the envelope")
		}
		// Through 1.0 and back, the same envelope.
		again, err := DecodeStructured(ce.AppendJSON(nil))
		if err != nil {
			t.Fatal(err)
		}
		if back := again.ToEvent(time.Now()); !reflect.DeepEqual(back, ev) {
			t.Fatalf("through 1.0:\n got %#v\nwant %#v", back, ev)
		}
	}
}

func TestToEvent(t *testing.T) {
	now := time.UnixMilli(42)
	for _, tt := range []struct {
		in         string
		data, dt   string
		receivedAt int64
	}{
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}`, `{"a":1}`, "application/json", 42},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi","time":"1970-01-01T00:00:01.5+00:00"}`, `"aGk="`, "text/plain", 1500},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":{"a":1}}`, `"eyJhIjoxfQ=="`, "text/plain", 42},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"aGk="}`, `"aGk="`, "application/octet-stream", 42},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t"}`, `null`, "application/octet-stream", 42},
	} {
		ce, err := DecodeStructured([]byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		ev := ce.ToEvent(now)
		if string(ev.Data) != tt.data || ev.DataType != tt.dt || ev.ReceivedAt != tt.receivedAt || ev.Event != "t" || ev.ID != "1" {
			t.Errorf("%s: %#v", tt.in, ev)
		}
	}
}

func TestHTTPEvent(t *testing.T) {
	r, _ := http.NewRequest("POST", "http://h/p?x=1", nil)
	r.Header.Set("Content-Type", "application/json")
	ev, _ := EncodeHTTP(r, nil, []byte(`{"a":1}`), time.UnixMilli(5))
	ce := FromHTTPEvent(&ev)
	if ce.Type != TypeHTTPRequest || ce.Source != SourceHTTP || ce.DataContentType != "application/json" || ce.DataBinary {
		t.Fatalf("%#v", ce)
	}
	var data HTTPData
	if err := json.Unmarshal(ce.Data, &data); err != nil || data.Path != "/p" || string(data.Body) != `{"a":1}` {
		t.Fatalf("%v %#v", err, data)
	}
	if back := ce.ToEvent(time.Now()); !reflect.DeepEqual(back, ev) {
		t.Fatalf("\n got %#v\nwant %#v", back, ev)
	}
	var v01 map[string]any
	if err := json.Unmarshal(ce.AppendV01JSON(nil), &v01); err != nil || v01["eventType"] != "http.request" {
		t.Fatalf("%v %v", err, v01)
	}
}

func TestDetect(t *testing.T) {
	for _, tt := range []struct {
		h    http.Header
		body string
		want Form
	}{
		{binaryHeader("Ce-Specversion", "1.0", "Content-Type", "application/json"), `{}`, FormBinary},
		{binaryHeader("ce-specversion", "1.0", "Event", "e"), ``, FormBinary},
		{binaryHeader("Content-Type", "application/cloudevents+json; charset=utf-8"), `{"specversion":"1.0"}`, FormStructured},
		{binaryHeader("Content-Type", "application/cloudevents-batch+json"), `[]`, FormBatch},
		{binaryHeader("Content-Type", "application/json"), `{"eventType":"e","cloudEventsVersion":"0.1"}`, FormV01},
		{binaryHeader("Content-Type", "application/cloudevents+json"), `{"eventType":"e","cloudEventsVersion":"0.1"}`, FormV01},
		{binaryHeader("Content-Type", "application/json", "Event", "e"), `{"data":{"cloudEventsVersion":"0.1"}}`, FormLegacy},
		{binaryHeader("Content-Type", "text/plain", "Event", "e"), `{"cloudEventsVersion":"0.1"}`, FormLegacy},
		{binaryHeader("Content-Type", "application/json"), `{"a":1}`, FormHTTP},
		{http.Header{}, ``, FormHTTP},
	} {
		if got := Detect(tt.h, []byte(tt.body)); got != tt.want {
			t.Errorf("Detect(%v, %s) = %v, want %v", tt.h, tt.body, got, tt.want)
		}
	}
}

func TestAppendJSONExtensionNames(t *testing.T) {
	ce := CloudEvent{ID: "1", Source: "/s", Type: "t", Extensions: map[string]any{
		"Upper": "a", "bad-name": "b", "ok": int32(1), "id": "x", "big": 7, "when": time.Unix(0, 0).UTC()}}
	out := ce.AppendJSON(nil)
	want := `{"specversion":"1.0","id":"1","source":"/s","type":"t","upper":"a","big":7,"ok":1,"when":"1970-01-01T00:00:00Z"}`
	if string(out) != want {
		t.Fatalf("\n got %s\nwant %s", out, want)
	}
}

func TestInvalidEventErrorMessage(t *testing.T) {
	_, err := DecodeStructured([]byte(`{"specversion":"1.0","source":"/s","type":"t"}`))
	if err == nil || err.Error() != "invalid CloudEvents 1.0 structured event: id: missing: it is required" {
		t.Fatalf("%v", err)
	}
}
