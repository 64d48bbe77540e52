// Package event holds the envelope every function receives and its
// encodings: the envelope and its one JSON writer, the data of an http
// event, and the response object a function answers an http event with.
// It imports nothing of the gateway, so plugins can use it too.
package event

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// DefaultDataType is the data type of an event sent without Content-Type.
const DefaultDataType = "application/octet-stream"

// Event is the envelope every function receives.
type Event struct {
	Event      string `json:"event"`
	ID         string `json:"id"`
	ReceivedAt int64  `json:"receivedAt"` // Unix milliseconds
	// Data is the payload: the JSON value itself when DataType is JSON, a
	// base64 string of the bytes otherwise.
	Data     json.RawMessage `json:"data"`
	DataType string          `json:"dataType"`
}

// New wraps a payload in an envelope with a new id (NewIDAt now).
func New(name string, body []byte, contentType string, now time.Time) (Event, error) {
	data, dataType, err := EncodeData(body, contentType)
	if err != nil {
		return Event{}, err
	}
	return Event{
		Event:      name,
		ID:         NewIDAt(now),
		ReceivedAt: now.UnixMilli(),
		Data:       data,
		DataType:   dataType,
	}, nil
}

// NewPayload is New, and the envelope's JSON encoding as AppendJSON
// writes it, built together in one buffer of the encoding's size: the
// returned Event's Data is a slice of the payload, not a buffer of its
// own. For a large body that is one copy of it (or of its base64 form)
// rather than two, and no buffer grown on the way.
func NewPayload(name string, body []byte, contentType string, now time.Time) (Event, []byte, error) {
	if contentType == "" {
		contentType = DefaultDataType
	}
	ev := Event{Event: name, ID: NewIDAt(now), ReceivedAt: now.UnixMilli(), DataType: contentType}
	var dataLen int
	switch {
	case len(body) == 0:
		dataLen = len("null")
	case IsJSON(contentType):
		if !ValidJSON(body) {
			return Event{}, nil, &InvalidJSONError{ContentType: contentType}
		}
		dataLen = len(body)
	default:
		dataLen = base64.StdEncoding.EncodedLen(len(body)) + 2
	}
	b := make([]byte, 0, envelopeOverhead+len(name)+len(ev.ID)+len(contentType)+dataLen)
	b = appendHead(b, ev.Event, ev.ID, ev.ReceivedAt)
	start := len(b)
	switch {
	case len(body) == 0:
		b = append(b, "null"...)
	case IsJSON(contentType):
		b = append(b, body...)
	default:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, body)
		b = append(b, '"')
	}
	ev.Data = b[start:len(b):len(b)]
	return ev, appendTail(b, ev.DataType), nil
}

// envelopeOverhead is the size of an envelope's JSON encoding besides its
// event name, id, data and data type: the member names, the quotes and
// the longest receivedAt.
const envelopeOverhead = len(`{"event":"","id":"","receivedAt":,"data":,"dataType":""}`) + 20

// JSONSize returns the size of the envelope's JSON encoding, or a little
// more, for a buffer AppendJSON then fills without growing it. (Names or
// types that need escaping take more: the buffer then grows.)
func (e *Event) JSONSize() int {
	return envelopeOverhead + len(e.Event) + len(e.ID) + len(e.DataType) + max(len(e.Data), len("null"))
}

// NewID returns a new id for an event named now: NewIDAt(time.Now()).
func NewID() string { return NewIDAt(time.Now()) }

// NewIDAt returns a new UUID of version 7 (RFC 9562) for an event named at
// t: its first 48 bits are t's Unix milliseconds, the other 74 random,
// from crypto/rand. An id that carries its time lets the event trail find
// the event's records by time, storing those of many events together
// (router/trail); ids also sort by time. An event id is an idempotency
// key, so the random bits come from the kernel's generator rather than
// one seeded once per process; with 74 of them, two alike among a million
// events named in the same millisecond has a chance of about 3·10⁻¹¹.
// One allocation (the string): the array stays on the stack, which
// reading through an io.Reader would make escape.
func NewIDAt(t time.Time) string {
	var u uuid.UUID
	// crypto/rand.Read never fails: it crashes the program instead.
	rand.Read(u[6:])
	ms := uint64(t.UnixMilli())
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // variant RFC 9562
	return u.String()
}

// InvalidJSONError is returned for a body that claims to be JSON and is
// not: the caller's input is wrong, not the gateway.
type InvalidJSONError struct{ ContentType string }

func (e *InvalidJSONError) Error() string {
	return "body is not valid JSON, but Content-Type is " + e.ContentType
}

// EncodeData turns a request body into the envelope's data: the JSON value
// as it is when the content type is JSON, a base64 string otherwise. An empty
// body is JSON null. A body that claims to be JSON but is not is an Invalid
// error: passing it on would make the envelope itself invalid JSON.
func EncodeData(body []byte, contentType string) (json.RawMessage, string, error) {
	if contentType == "" {
		contentType = DefaultDataType
	}
	if len(body) == 0 {
		return json.RawMessage("null"), contentType, nil
	}
	if IsJSON(contentType) {
		if !ValidJSON(body) {
			return nil, "", &InvalidJSONError{ContentType: contentType}
		}
		return json.RawMessage(body), contentType, nil
	}
	return base64String(body), contentType, nil
}

// EncodeBody is EncodeData for the body of an http event, which the
// gateway passes through rather than judges: a body that claims to be JSON
// but is not reaches the function base64-encoded instead of being refused.
func EncodeBody(body []byte, contentType string) json.RawMessage {
	switch {
	case len(body) == 0:
		return json.RawMessage("null")
	case IsJSON(contentType) && ValidJSON(body):
		return json.RawMessage(body)
	default:
		return base64String(body)
	}
}

// ValidJSON reports whether b is valid JSON in UTF-8. json.Valid alone
// accepts invalid UTF-8 inside strings, which encoding/json would then
// replace when decoding: passed on as it is, such a body would make the
// envelope around it invalid JSON.
func ValidJSON(b []byte) bool {
	return utf8.Valid(b) && json.Valid(b)
}

func base64String(b []byte) json.RawMessage {
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(b))+2)
	out = append(out, '"')
	out = base64.StdEncoding.AppendEncode(out, b)
	return append(out, '"')
}

// IsJSON reports whether a Content-Type is JSON: application/json or any
// type with the +json suffix, with or without parameters such as charset.
func IsJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	if strings.EqualFold(mt, "application/json") {
		return true
	}
	if len(mt) < 5 || !strings.EqualFold(mt[len(mt)-5:], "+json") {
		return false
	}
	// A well-formed type/subtype+json; anything else is not JSON.
	t, _, err := mime.ParseMediaType(mt)
	return err == nil && strings.Contains(t, "/")
}

// AppendJSON appends the envelope's JSON encoding to b. It writes the same
// bytes as encoding/json would, without reflection, because every async
// delivery and sync call encodes one.
func (e *Event) AppendJSON(b []byte) []byte {
	b = appendHead(b, e.Event, e.ID, e.ReceivedAt)
	if len(e.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Data...)
	}
	return appendTail(b, e.DataType)
}

// appendHead appends the envelope up to its data: every writer of an
// envelope goes through it and appendTail, so the field names and their
// order are written in one place.
func appendHead(b []byte, name, id string, receivedAt int64) []byte {
	b = append(b, `{"event":`...)
	b = appendString(b, name)
	b = append(b, `,"id":`...)
	b = appendString(b, id)
	b = append(b, `,"receivedAt":`...)
	b = strconv.AppendInt(b, receivedAt, 10)
	return append(b, `,"data":`...)
}

// appendTail closes an envelope whose data has just been appended.
func appendTail(b []byte, dataType string) []byte {
	b = append(b, `,"dataType":`...)
	b = appendString(b, dataType)
	return append(b, '}')
}

// appendString appends s as a JSON string. Event names, ids and content
// types are short and almost always plain ASCII, so the fast path copies;
// anything that needs escaping goes through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendJSONString appends s as a JSON string, cheaply when it needs no
// escaping: for other encoders of short strings (the event trail's).
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }
