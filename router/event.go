package router

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/internal/errkind"
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

// NewEvent wraps a payload in an envelope with a new id (UUID v4).
func NewEvent(name string, body []byte, contentType string, now time.Time) (Event, error) {
	data, dataType, err := EncodeData(body, contentType)
	if err != nil {
		return Event{}, err
	}
	return Event{
		Event:      name,
		ID:         uuid.NewString(),
		ReceivedAt: now.UnixMilli(),
		Data:       data,
		DataType:   dataType,
	}, nil
}

// NewJSONEvent wraps data the gateway itself encoded, and so knows to be
// valid JSON, in an envelope with a new id.
func NewJSONEvent(name string, data json.RawMessage, now time.Time) Event {
	return Event{Event: name, ID: uuid.NewString(), ReceivedAt: now.UnixMilli(), Data: data, DataType: "application/json"}
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
		if !json.Valid(body) {
			return nil, "", errkind.New(errkind.Invalid, "body is not valid JSON, but Content-Type is %s", contentType)
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
	case IsJSON(contentType) && json.Valid(body):
		return json.RawMessage(body)
	default:
		return base64String(body)
	}
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
	b = append(b, `{"event":`...)
	b = appendString(b, e.Event)
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"receivedAt":`...)
	b = strconv.AppendInt(b, e.ReceivedAt, 10)
	b = append(b, `,"data":`...)
	if len(e.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Data...)
	}
	b = append(b, `,"dataType":`...)
	b = appendString(b, e.DataType)
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

// HTTPResponse is what a function answers to an http event.
type HTTPResponse struct {
	StatusCode int
	Headers    map[string]string
	Body       []byte
}

// ParseHTTPResponse reads a function's response object
// {statusCode, headers, body}. statusCode defaults to 200 and must be
// 200-599; body should be a
// string, and any other JSON value is passed on as JSON text. An empty
// response is an empty 200. Anything else is an error.
func ParseHTTPResponse(raw []byte) (HTTPResponse, error) {
	var obj struct {
		StatusCode *int              `json:"statusCode"`
		Headers    map[string]string `json:"headers"`
		Body       json.RawMessage   `json:"body"`
	}
	resp := HTTPResponse{StatusCode: 200}
	if len(bytes.TrimSpace(raw)) == 0 {
		return resp, nil
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return HTTPResponse{}, fmt.Errorf("response object: %w", err)
	}
	if obj.StatusCode != nil {
		// 1xx are not final answers: sent to a client they would leave it
		// waiting for one.
		if *obj.StatusCode < 200 || *obj.StatusCode > 599 {
			return HTTPResponse{}, fmt.Errorf("response object: statusCode %d out of range 200-599", *obj.StatusCode)
		}
		resp.StatusCode = *obj.StatusCode
	}
	resp.Headers = obj.Headers
	switch {
	case len(obj.Body) == 0 || string(obj.Body) == "null":
	case obj.Body[0] == '"' && bytes.IndexByte(obj.Body, '\\') < 0:
		// No escapes (the common case): the string is the bytes between
		// the quotes, which the decoder has already checked.
		resp.Body = obj.Body[1 : len(obj.Body)-1]
	case obj.Body[0] == '"':
		var s string
		if err := json.Unmarshal(obj.Body, &s); err != nil {
			return HTTPResponse{}, fmt.Errorf("response object: body: %w", err)
		}
		resp.Body = []byte(s)
	default:
		resp.Body = obj.Body
		if !hasHeader(resp.Headers, "Content-Type") {
			if resp.Headers == nil {
				resp.Headers = make(map[string]string, 1)
			}
			resp.Headers["Content-Type"] = "application/json"
		}
	}
	return resp, nil
}

func hasHeader(h map[string]string, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}
