package event

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HTTPData is the data of an http event: the request as the function sees
// it.
type HTTPData struct {
	Path    string              `json:"path"`
	Method  string              `json:"method"`
	Headers map[string]string   `json:"headers"`
	Host    string              `json:"host"`
	Query   map[string][]string `json:"query"`
	Params  map[string]string   `json:"params"`
	// Body follows the rule of EncodeData.
	Body json.RawMessage `json:"body"`
}

// Param is a path parameter matched by an http route.
type Param struct{ Key, Value string }

// EncodeHTTP builds the envelope of an http event and its JSON
// encoding in one buffer, without reflection or intermediate maps: it is
// the per-request work of every http subscription. The envelope's Data is
// a slice of the returned payload. The JSON is the same as encoding/json
// would write for an Event holding HTTPData, up to the order of keys.
func EncodeHTTP(r *http.Request, params []Param, body []byte, now time.Time) (Event, []byte) {
	ev := Event{Event: "http", ID: NewIDAt(now), ReceivedAt: now.UnixMilli(), DataType: "application/json"}
	bodyJSON := EncodeBody(body, r.Header.Get("Content-Type"))

	size := 256 + len(r.URL.Path) + len(r.URL.RawQuery)*2 + len(r.Host) + len(bodyJSON)
	for k, vs := range r.Header {
		size += len(k) + 6
		for _, v := range vs {
			size += len(v) + 2
		}
	}
	for _, p := range params {
		size += len(p.Key) + len(p.Value) + 6
	}
	b := make([]byte, 0, size)

	b = appendHead(b, ev.Event, ev.ID, ev.ReceivedAt)
	start := len(b)

	b = append(b, `{"path":`...)
	b = appendString(b, r.URL.Path)
	b = append(b, `,"method":`...)
	b = appendString(b, r.Method)
	b = append(b, `,"headers":{`...)
	first := true
	for k, vs := range r.Header {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ':')
		b = appendJoined(b, vs)
	}
	b = append(b, `},"host":`...)
	b = appendString(b, r.Host)
	b = append(b, `,"query":{`...)
	if r.URL.RawQuery != "" {
		b = appendQuery(b, r.URL.RawQuery)
	}
	b = append(b, `},"params":{`...)
	for i, p := range params {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, p.Key)
		b = append(b, ':')
		b = appendString(b, p.Value)
	}
	b = append(b, `},"body":`...)
	b = append(b, bodyJSON...)
	b = append(b, '}')

	ev.Data = b[start:len(b):len(b)]
	return ev, appendTail(b, ev.DataType)
}

// appendJoined appends header values as one JSON string, joined by ", ".
func appendJoined(b []byte, vs []string) []byte {
	if len(vs) == 1 {
		return appendString(b, vs[0])
	}
	n := 0
	for _, v := range vs {
		n += len(v) + 2
	}
	joined := make([]byte, 0, n)
	for i, v := range vs {
		if i > 0 {
			joined = append(joined, ", "...)
		}
		joined = append(joined, v...)
	}
	return appendString(b, string(joined))
}

// appendQuery appends the members of the query object: each name with the
// list of its values.
func appendQuery(b []byte, raw string) []byte {
	q, _ := url.ParseQuery(raw) // keeps what parses, as net/http does
	first := true
	for k, vs := range q {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ":["...)
		for i, v := range vs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, v)
		}
		b = append(b, ']')
	}
	return b
}

// FlattenHeaders turns HTTP headers into one string per name, joining
// repeated values with ", " as HTTP allows.
func FlattenHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		out[k] = strings.Join(vs, ", ")
	}
	return out
}
