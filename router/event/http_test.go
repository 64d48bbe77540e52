package event

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEncodeHTTP(t *testing.T) {
	for _, tt := range []struct {
		name, method, target, body, ct string
		headers                        map[string][]string
		params                         []Param
	}{
		{name: "plain", method: "GET", target: "/users/42"},
		{name: "json body and query", method: "POST", target: "/users/42?x=1&x=2&y=%C3%A9&empty=", body: `{"a":[1,2]}`, ct: "application/json",
			params: []Param{{Key: "id", Value: "42"}}},
		{name: "binary body", method: "PUT", target: "/f", body: "\x00\xff😸", ct: "application/octet-stream"},
		{name: "claims json", method: "POST", target: "/f", body: "{oops", ct: "application/json"},
		{name: "hostile headers", method: "GET", target: "/h", headers: map[string][]string{
			"X-Quote": {`a "quoted" \ value`}, "X-Html": {"<b>&</b>"}, "X-Multi": {"1", "2", "3"}, "X-Unicode": {"é\u2028"},
		}, params: []Param{{Key: "rest", Value: `a/"b"/ü`}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if tt.ct != "" {
				r.Header.Set("Content-Type", tt.ct)
			}
			for k, vs := range tt.headers {
				r.Header[k] = vs
			}
			now := time.UnixMilli(1700000000000)
			ev, payload := EncodeHTTP(r, tt.params, []byte(tt.body), now)

			// The reference: the same data through encoding/json.
			want := HTTPData{
				Path: r.URL.Path, Method: r.Method, Headers: FlattenHeaders(r.Header), Host: r.Host,
				Query: r.URL.Query(), Params: map[string]string{}, Body: EncodeBody([]byte(tt.body), tt.ct),
			}
			for _, p := range tt.params {
				want.Params[p.Key] = p.Value
			}
			var gotEnv Event
			if err := json.Unmarshal(payload, &gotEnv); err != nil {
				t.Fatalf("payload is not JSON: %v\n%s", err, payload)
			}
			if gotEnv.Event != "http" || gotEnv.ID != ev.ID || gotEnv.ReceivedAt != 1700000000000 || gotEnv.DataType != "application/json" {
				t.Fatalf("envelope %+v", gotEnv)
			}
			if string(gotEnv.Data) != string(ev.Data) {
				t.Fatalf("ev.Data is not the payload's data:\n%s\n%s", ev.Data, gotEnv.Data)
			}
			var got HTTPData
			if err := json.Unmarshal(ev.Data, &got); err != nil {
				t.Fatal(err)
			}
			if string(got.Body) != string(want.Body) {
				t.Fatalf("body %s, want %s", got.Body, want.Body)
			}
			got.Body, want.Body = nil, nil
			if len(want.Query) == 0 {
				want.Query = map[string][]string{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("data\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func BenchmarkEncodeHTTP(b *testing.B) {
	r := httptest.NewRequest("GET", "/users/42?expand=true", nil)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "bench/1.0")
	ps := []Param{{Key: "id", Value: "42"}}
	b.ReportAllocs()
	for b.Loop() {
		EncodeHTTP(r, ps, nil, time.Now())
	}
}
