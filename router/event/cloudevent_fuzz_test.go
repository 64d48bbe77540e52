package event

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"
)

// checkAccepted: an accepted event writes valid JSON in every envelope,
// and its 1.0 envelope decodes to the same event.
func checkAccepted(t *testing.T, ce CloudEvent, input any) {
	t.Helper()
	for name, out := range map[string][]byte{
		"1.0":  ce.AppendJSON(nil),
		"v0.1": ce.AppendV01JSON(nil),
		"seed": ce.AppendSeedJSON(nil, time.Now()),
	} {
		if !json.Valid(out) {
			t.Fatalf("%q: the %s envelope is not JSON: %s", input, name, out)
		}
	}
	back, err := DecodeStructured(ce.AppendJSON(nil))
	if err != nil {
		t.Fatalf("%q: 1.0 envelope refused: %v\n%s", input, err, ce.AppendJSON(nil))
	}
	want := ce
	want.SpecVersion = "1.0"
	if want.Extensions != nil {
		// Only the 1.0 names go through 1.0, and other JSON values
		// become strings.
		want.Extensions = nil
		for k, v := range ce.Extensions {
			if isV1Name(k) {
				if raw, ok := v.(json.RawMessage); ok {
					v = string(raw)
				}
				if want.Extensions == nil {
					want.Extensions = map[string]any{}
				}
				want.Extensions[k] = v
			}
		}
	}
	if ce.SpecVersion == "1.0" && !reflect.DeepEqual(back, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", input, back, want)
	}
}

func checkRefused(t *testing.T, err error, input any) {
	t.Helper()
	var ie *InvalidEventError
	if !errors.As(err, &ie) {
		t.Fatalf("%q: error %v (%T) is not an *InvalidEventError", input, err, err)
	}
}

func FuzzDecodeStructured(f *testing.F) {
	for _, s := range []string{
		structuredFull,
		`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AAEC"}`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"h\u00e9"}`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"1990-12-31T23:59:60Z","x":-5,"y":false}`,
		`{"specversion":"1.0","id":"\ud800","source":"/s","type":"t","data_base64":"aGk\u003d"}`,
		`{}`, `[]`, `{"specversion":"0.3"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ce, err := DecodeStructured(body)
		if err != nil {
			checkRefused(t, err, body)
			return
		}
		checkAccepted(t, ce, body)
	})
}

func FuzzDecodeV01(f *testing.F) {
	for _, s := range []string{
		v01Full,
		`{"eventType":"e","cloudEventsVersion":"0.1","source":"/s","eventID":"1","data":"x","contentType":"text/plain"}`,
		`{"EVENTTYPE":"e","cloudEventsVersion":"0.1","source":"/s","eventID":"1","extensions":{"A-b":[1],"c":null}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ce, err := DecodeV01(body)
		if err != nil {
			checkRefused(t, err, body)
			return
		}
		checkAccepted(t, ce, body)
		back, err := DecodeV01(ce.AppendV01JSON(nil))
		if err != nil {
			t.Fatalf("%q: v0.1 envelope refused: %v", body, err)
		}
		if !reflect.DeepEqual(back, ce) {
			t.Fatalf("%q: v0.1 round trip\n got %#v\nwant %#v", body, back, ce)
		}
	})
}

func FuzzDecodeBinary(f *testing.F) {
	f.Add("1.0", "1", "/s", "t", "2018-04-05T17:31:00Z", "Ce-Myext", "v", "application/json", []byte(`{"a":1}`))
	f.Add("1.0", "%22", "a b", "t%C3%A9", "", "Ce-X", `"q\"%41"`, "", []byte("\xff"))
	f.Fuzz(func(t *testing.T, spec, id, source, typ, tm, extName, extValue, ct string, body []byte) {
		h := http.Header{}
		for k, v := range map[string]string{"Ce-Specversion": spec, "Ce-Id": id, "Ce-Source": source, "Ce-Type": typ,
			"Ce-Time": tm, extName: extValue, "Content-Type": ct} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		ce, err := DecodeBinary(h, body)
		if err != nil {
			checkRefused(t, err, h)
			return
		}
		checkAccepted(t, ce, h)
	})
}
