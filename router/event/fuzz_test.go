package event

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzEncodeData: the envelope built from any body and content type is
// valid JSON whose data decodes back to the body.
func FuzzEncodeData(f *testing.F) {
	f.Add([]byte(`{"a":1}`), "application/json")
	f.Add([]byte("😸"), "")
	f.Add([]byte("\xff\x00"), "text/plain; charset=utf-8")
	f.Add([]byte(`[1,2`), "application/problem+json")
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		ev, err := New("fuzz", body, ct, time.Now())
		if err != nil {
			if !IsJSON(ct) {
				t.Fatalf("non-JSON content type %q refused: %v", ct, err)
			}
			return
		}
		out := ev.AppendJSON(nil)
		var back Event
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("envelope is not JSON: %v\n%s", err, out)
		}
		if len(body) > 0 && !IsJSON(ct) {
			var s string
			if err := json.Unmarshal(back.Data, &s); err != nil {
				t.Fatalf("data of %q is not a base64 string: %s", ct, back.Data)
			}
		}
	})
}

// FuzzEncodeHTTP: any request path, query, header and body gives a
// valid JSON envelope.
func FuzzEncodeHTTP(f *testing.F) {
	f.Add("/a/b", "x=1&x=2", "X-A", "v\"\\<>&", []byte(`{}`))
	f.Add("/ü", "%zz=%", "X-B", "\u2028", []byte("\xff"))
	f.Fuzz(func(t *testing.T, path, query, hk, hv string, body []byte) {
		u, err := url.Parse("http://h" + path)
		if err != nil || !strings.HasPrefix(path, "/") {
			return // not a request the server would hand over
		}
		u.RawQuery = query
		r := httptest.NewRequest("POST", "http://h/", nil)
		r.URL = u
		r.Header[hk] = []string{hv}
		_, payload := EncodeHTTP(r, []Param{{Key: "k", Value: hv}}, body, time.Now())
		if !json.Valid(payload) {
			t.Fatalf("invalid JSON: %s", payload)
		}
	})
}
