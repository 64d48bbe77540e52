package event

// CloudEvents codecs.
//
// The Events API accepts an event in one of four forms, and every
// subscriber receives the envelope of the generation its subscription was
// made in. CloudEvent is the one in-memory form all of them decode to and
// every envelope is written from.
//
// Forms read (Detect tells which one a request is in):
//
//   - FormBinary: CloudEvents 1.0, HTTP binary mode (DecodeBinary). The
//     attributes are ce-* headers, percent-decoded as the HTTP binding says
//     (a double-quoted value is unquoted first; a '%' that is not followed
//     by two hex digits is kept as it is; invalid UTF-8 after decoding is
//     refused). Content-Type is datacontenttype and the body is the data.
//     Every extension read from a header is a string: headers carry no type.
//   - FormStructured: CloudEvents 1.0, structured mode, Content-Type
//     application/cloudevents+json (DecodeStructured), with data or
//     data_base64.
//   - FormV01: CloudEvents v0.1 JSON as the 0.9 clients send it (DecodeV01):
//     eventType, eventTypeVersion, cloudEventsVersion "0.1", source, eventID,
//     eventTime, schemaURL, contentType, extensions, data. Member names are
//     matched without regard to case, as the 0.9 gateway's decoder did, and
//     unknown members are ignored as it did.
//   - FormLegacy: the seed's form, an Event header naming the event and the
//     body as data (New, then FromEvent).
//
// Envelopes written:
//
//   - the seed envelope {event,id,receivedAt,data,dataType}
//     (CloudEvent.ToEvent, then Event.AppendJSON, or AppendSeedJSON);
//   - CloudEvents v0.1 JSON, for subscriptions of the 0.9 generation
//     (AppendV01JSON);
//   - CloudEvents 1.0 structured JSON (AppendJSON).
//
// Choices:
//
//   - Time is kept as the string received (checked to be RFC 3339), so an
//     event is written back byte for byte as it came; Timestamp parses it.
//   - Data follows the rule of Event.Data: the JSON value itself, or, when
//     DataBinary is set, a JSON string holding the base64 of the bytes
//     (data_base64 in 1.0, the binary-mode body of a non-JSON type, a
//     legacy body of a non-JSON type). A structured event whose data is a
//     JSON string under a non-JSON type (text/plain, "hello") keeps it as
//     that string; the seed envelope, whose rule is base64 for every
//     non-JSON type, gets the base64 of its text.
//   - Extensions hold string, bool and int32 values, the CloudEvents 1.0
//     types a JSON event can carry; a v0.1 extension of another JSON type
//     (an object, a fraction) is kept as json.RawMessage, written back as it
//     is in v0.1 and as a string of its JSON text in 1.0. v0.1 eventTypeVersion
//     is the 1.0 extension "eventtypeversion", and back. A v0.1 extension
//     name is lower-cased for 1.0, and one that is still not a 1.0 name
//     (a-z, 0-9) is left out of the 1.0 envelope.
//   - SpecVersion tells what the event was received as: "1.0" or "0.1";
//     events made by the gateway (legacy, http) are "1.0". Encoders write
//     their own version.
//   - Events the gateway makes itself have a source of the scheme
//     /event-gateway/<kind>: SourceLegacy for an event sent with the Event
//     header, SourceHTTP for the http.request event (FromHTTPEvent). Their
//     time is the moment the gateway received them, in UTC milliseconds.
//   - The seed envelope's receivedAt is the event's time when it has one,
//     else the time given to ToEvent (the moment of receipt). An event
//     without datacontenttype has the data type application/json when its
//     data is JSON, application/octet-stream when binary.
//   - Bounds: MaxAttributeLen, MaxExtensions, MaxExtensionNameLen. The body
//     itself is bounded by the caller (the API's request body limit).
//   - Decoding is hand-written over the helpers of the response parser
//     (valid JSON checked by json.Valid, which does not allocate) rather
//     than done with the CloudEvents SDK: the SDK's reader costs several
//     times the allocations (see the benchmarks) and would make every
//     plugin import it and json-iterator. The tests check both directions
//     against the SDK.
//   - Every refusal is an *InvalidEventError naming the form, the
//     attribute or header, and why: the API answers it with 400.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bounds on what a decoder accepts, so that hostile input cannot make an
// event cost more memory than its body.
const (
	// MaxAttributeLen bounds the bytes of one attribute or extension value
	// (for a v0.1 extension of a JSON object, its JSON text).
	MaxAttributeLen = 4096
	// MaxExtensions bounds the number of extensions of one event.
	MaxExtensions = 64
	// MaxExtensionNameLen bounds an extension's name. CloudEvents 1.0
	// recommends at most 20 characters; longer names up to this bound are
	// accepted.
	MaxExtensionNameLen = 64
)

// Sources of the events the gateway makes itself.
const (
	// SourceLegacy is the source of an event sent in the legacy form (an
	// Event header and a body).
	SourceLegacy = "/event-gateway/legacy"
	// SourceHTTP is the source of the http.request event, made of an HTTP
	// request that carries no event.
	SourceHTTP = "/event-gateway/http"
)

// TypeHTTPRequest is the type of the http.request event of the 0.9
// gateway and of CloudEvents subscriptions; the seed names it "http".
const TypeHTTPRequest = "http.request"

// ExtEventTypeVersion is the 1.0 extension that carries v0.1's
// eventTypeVersion.
const ExtEventTypeVersion = "eventtypeversion"

// Media types of the CloudEvents JSON formats.
const (
	MediaTypeStructured = "application/cloudevents+json"
	MediaTypeBatch      = "application/cloudevents-batch+json"
)

// CloudEvent is an accepted event in the form every envelope is written
// from. Required attributes (ID, Source, Type) are never empty in a
// decoded event; an optional one is "" when absent.
type CloudEvent struct {
	ID              string
	Source          string
	SpecVersion     string // as received: "1.0" or "0.1"
	Type            string
	DataContentType string
	DataSchema      string
	Subject         string
	// Time is the RFC 3339 timestamp as received, "" when absent.
	Time string
	// Data is the JSON value of the data, or, when DataBinary is set, a
	// JSON string of the base64 of its bytes; nil when there is none. A
	// decoded Data may share memory with the body it was read from.
	Data       json.RawMessage
	DataBinary bool
	// Extensions maps names to values of type string, bool or int32, or
	// json.RawMessage for a v0.1 extension of another JSON type. Nil when
	// there are none.
	Extensions map[string]any
}

// Form is the form an event arrives in.
type Form int

// The forms of a request to the Events API.
const (
	// FormHTTP is a request that carries no event: the request itself
	// is the event (the seed's http event, the 0.9 http.request).
	FormHTTP Form = iota
	// FormLegacy is the seed's form: an Event header and the body as data.
	FormLegacy
	// FormV01 is CloudEvents v0.1 JSON, as the 0.9 clients send it.
	FormV01
	// FormStructured is CloudEvents 1.0 in structured HTTP mode.
	FormStructured
	// FormBinary is CloudEvents 1.0 in binary HTTP mode.
	FormBinary
	// FormBatch is CloudEvents 1.0 batched mode, which no decoder reads:
	// the API refuses it (415).
	FormBatch
)

var formNames = [...]string{"http", "legacy", "CloudEvents v0.1", "CloudEvents 1.0 structured", "CloudEvents 1.0 binary", "CloudEvents 1.0 batch"}

// String names the form for messages and logs.
func (f Form) String() string {
	if f < 0 || int(f) >= len(formNames) {
		return "Form(" + strconv.Itoa(int(f)) + ")"
	}
	return formNames[f]
}

// InvalidEventError is returned by the decoders for input that is not an
// acceptable event: the caller's input is wrong (400), not the gateway.
type InvalidEventError struct {
	Form Form
	// Attribute names the attribute, member or header at fault; "" when
	// the body as a whole is.
	Attribute string
	Reason    string
}

// Error says the form, the attribute and why, e.g. "invalid CloudEvents
// 1.0 structured event: id: missing: it is required".
func (e *InvalidEventError) Error() string {
	if e.Attribute == "" {
		return "invalid " + e.Form.String() + " event: " + e.Reason
	}
	return "invalid " + e.Form.String() + " event: " + e.Attribute + ": " + e.Reason
}

// Detect tells the form of a request to the Events API from its header
// and body: ce-specversion makes it binary; Content-Type
// application/cloudevents+json structured (or v0.1 when the body's object
// has a cloudEventsVersion member, as 0.9 clients may send it);
// application/cloudevents-batch+json batch; a JSON Content-Type with a
// top-level cloudEventsVersion member v0.1; an Event header legacy;
// anything else the http event. It only looks at the body's top-level
// member names, and decides nothing about its validity: the decoder of
// the form does.
func Detect(h http.Header, body []byte) Form {
	if len(h["Ce-Specversion"]) > 0 {
		return FormBinary
	}
	ct := h.Get("Content-Type")
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, MediaTypeBatch):
		return FormBatch
	case strings.EqualFold(mt, MediaTypeStructured):
		if hasV01Member(body) {
			return FormV01
		}
		return FormStructured
	case IsJSON(ct) && hasV01Member(body):
		return FormV01
	case h.Get("Event") != "":
		return FormLegacy
	}
	return FormHTTP
}

// hasV01Member reports whether body is a JSON object with a top-level
// member named cloudEventsVersion (in any case).
func hasV01Member(body []byte) bool {
	found := false
	eachMember(body, func(key []byte, _ []byte) error {
		if strings.EqualFold(string(key), "cloudEventsVersion") {
			found = true
		}
		return nil
	})
	return found
}

// Timestamp returns Time parsed, and false when the event has none. A
// leap second (:60) reads as :59 of the same minute.
func (e *CloudEvent) Timestamp() (time.Time, bool) {
	if e.Time == "" {
		return time.Time{}, false
	}
	t, err := parseTime(e.Time)
	return t, err == nil
}

// parseTime reads an RFC 3339 timestamp, which time.Parse almost does: it
// refuses a lower-case t or z and a leap second, both of which RFC 3339
// allows (the 0.9 docs' own example is 23:59:60Z).
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		return t, nil
	}
	if len(s) < 20 || len(s) > 64 {
		return t, err
	}
	var buf [64]byte
	b := append(buf[:0], s...)
	if b[10] == 't' {
		b[10] = 'T'
	}
	if b[len(b)-1] == 'z' {
		b[len(b)-1] = 'Z'
	}
	if b[17] == '6' && b[18] == '0' {
		b[18] = '9' // :60 → :59
		b[17] = '5'
	}
	t, err2 := time.Parse(time.RFC3339Nano, string(b))
	if err2 != nil {
		return t, err
	}
	return t, nil
}

// FromEvent turns a legacy event into the common form: type is the event's
// name, source SourceLegacy, time its receivedAt in UTC milliseconds,
// datacontenttype its dataType, data binary when the type is not JSON.
// ToEvent gives back the same event.
func FromEvent(ev *Event) CloudEvent {
	ce := CloudEvent{
		ID:              ev.ID,
		Source:          SourceLegacy,
		SpecVersion:     "1.0",
		Type:            ev.Event,
		DataContentType: ev.DataType,
		Time:            formatMillis(ev.ReceivedAt),
	}
	if len(ev.Data) > 0 && string(ev.Data) != "null" {
		ce.Data = ev.Data
		ce.DataBinary = !IsJSON(ev.DataType) && ev.Data[0] == '"'
	}
	return ce
}

// FromHTTPEvent turns the seed's http event (EncodeHTTP) into the
// http.request CloudEvent: type TypeHTTPRequest, source SourceHTTP, data
// the HTTPData JSON. ToEvent gives back the http event.
func FromHTTPEvent(ev *Event) CloudEvent {
	ce := FromEvent(ev)
	ce.Type = TypeHTTPRequest
	ce.Source = SourceHTTP
	return ce
}

// formatMillis formats Unix milliseconds as RFC 3339 in UTC with three
// decimals, which reads back to the same milliseconds.
func formatMillis(ms int64) string {
	var buf [32]byte
	return string(time.UnixMilli(ms).UTC().AppendFormat(buf[:0], "2006-01-02T15:04:05.000Z07:00"))
}

// ToEvent writes the event as the seed envelope: event is the type (the
// http.request event made by the gateway is "http" again), receivedAt the
// time in Unix milliseconds, or receivedAt when the event has no time,
// data by the seed's rule (JSON value, or base64 string for every other
// type), dataType the datacontenttype (application/json for JSON data
// without one, application/octet-stream for other data without one).
func (e *CloudEvent) ToEvent(receivedAt time.Time) Event {
	ev := Event{Event: e.Type, ID: e.ID, ReceivedAt: receivedAt.UnixMilli(), DataType: e.DataContentType}
	if e.Type == TypeHTTPRequest && e.Source == SourceHTTP {
		ev.Event = "http"
	}
	if t, ok := e.Timestamp(); ok {
		ev.ReceivedAt = t.UnixMilli()
	}
	ev.Data = e.Data
	switch {
	case len(e.Data) == 0:
		ev.Data = json.RawMessage("null")
		if ev.DataType == "" {
			ev.DataType = DefaultDataType
		}
	case e.DataBinary:
		if ev.DataType == "" {
			ev.DataType = DefaultDataType
		}
	case ev.DataType == "":
		ev.DataType = "application/json"
	case !IsJSON(ev.DataType):
		// Text data of a non-JSON type: the seed carries the bytes in
		// base64.
		if e.Data[0] == '"' {
			var s string
			if json.Unmarshal(e.Data, &s) == nil {
				ev.Data = base64String([]byte(s))
			}
		} else {
			ev.Data = base64String(e.Data)
		}
	}
	return ev
}

// AppendSeedJSON appends the seed envelope of the event to b: ToEvent,
// then Event.AppendJSON.
func (e *CloudEvent) AppendSeedJSON(b []byte, receivedAt time.Time) []byte {
	ev := e.ToEvent(receivedAt)
	return ev.AppendJSON(b)
}

// AppendJSON appends the event in CloudEvents 1.0 structured JSON to b:
// the attributes it has, its extensions by name, then data (JSON data as
// it is) or data_base64 (binary data).
func (e *CloudEvent) AppendJSON(b []byte) []byte {
	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = appendOptional(b, `,"datacontenttype":`, e.DataContentType)
	b = appendOptional(b, `,"dataschema":`, e.DataSchema)
	b = appendOptional(b, `,"subject":`, e.Subject)
	b = appendOptional(b, `,"time":`, e.Time)
	if len(e.Extensions) > 0 {
		var arr [MaxExtensions]string
		for _, name := range sortedNames(e.Extensions, arr[:0]) {
			n := name
			if !isV1Name(n) {
				n = strings.ToLower(n)
				if !isV1Name(n) || isV1Reserved(n) {
					continue // a v0.1 name 1.0 cannot carry
				}
				if _, dup := e.Extensions[n]; dup {
					continue
				}
			} else if isV1Reserved(n) {
				continue
			}
			b = append(b, ',', '"')
			b = append(b, n...)
			b = append(b, '"', ':')
			b = appendExtValue(b, e.Extensions[name], true)
		}
	}
	if len(e.Data) > 0 {
		if e.DataBinary {
			b = append(b, `,"data_base64":`...)
		} else {
			b = append(b, `,"data":`...)
		}
		b = append(b, e.Data...)
	}
	return append(b, '}')
}

// AppendV01JSON appends the event in CloudEvents v0.1 JSON to b, as the
// 0.9 gateway wrote it for its subscribers: eventType, eventTypeVersion
// (from the extension eventtypeversion), cloudEventsVersion, source,
// eventID, eventTime, schemaURL, contentType, extensions, data (binary
// data as its base64 string). Subject, which v0.1 lacks, is the extension
// "subject".
func (e *CloudEvent) AppendV01JSON(b []byte) []byte {
	b = append(b, `{"eventType":`...)
	b = appendString(b, e.Type)
	if v, ok := e.Extensions[ExtEventTypeVersion].(string); ok {
		b = append(b, `,"eventTypeVersion":`...)
		b = appendString(b, v)
	}
	b = append(b, `,"cloudEventsVersion":"0.1","source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"eventID":`...)
	b = appendString(b, e.ID)
	b = appendOptional(b, `,"eventTime":`, e.Time)
	b = appendOptional(b, `,"schemaURL":`, e.DataSchema)
	b = appendOptional(b, `,"contentType":`, e.DataContentType)
	n := len(e.Extensions)
	if _, ok := e.Extensions[ExtEventTypeVersion].(string); ok {
		n--
	}
	if n > 0 || e.Subject != "" {
		b = append(b, `,"extensions":{`...)
		first := true
		if e.Subject != "" {
			b = append(b, `"subject":`...)
			b = appendString(b, e.Subject)
			first = false
		}
		var arr [MaxExtensions]string
		for _, name := range sortedNames(e.Extensions, arr[:0]) {
			if name == ExtEventTypeVersion {
				if _, ok := e.Extensions[name].(string); ok {
					continue
				}
			}
			if name == "subject" && e.Subject != "" {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, name)
			b = append(b, ':')
			b = appendExtValue(b, e.Extensions[name], false)
		}
		b = append(b, '}')
	}
	b = append(b, `,"data":`...)
	if len(e.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Data...)
	}
	return append(b, '}')
}

func appendOptional(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, key...)
	return appendString(b, v)
}

// sortedNames returns the names of m sorted, in buf when it is large
// enough.
func sortedNames(m map[string]any, buf []string) []string {
	for k := range m {
		buf = append(buf, k)
	}
	slices.Sort(buf)
	return buf
}

// appendExtValue appends an extension value. In 1.0 (v1) a value of a
// JSON type 1.0 has no room for is written as a string of its JSON text.
func appendExtValue(b []byte, v any, v1 bool) []byte {
	switch v := v.(type) {
	case string:
		return appendString(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int32:
		return strconv.AppendInt(b, int64(v), 10)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case json.RawMessage:
		if v1 {
			return appendString(b, string(v))
		}
		if len(v) == 0 {
			return append(b, "null"...)
		}
		return append(b, v...)
	case []byte: // binary, as the SDK has it: base64 in JSON
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, '"')
	case time.Time:
		return appendString(b, v.Format(time.RFC3339Nano))
	default:
		return appendString(b, fmt.Sprint(v))
	}
}

// isV1Name reports whether s is a CloudEvents 1.0 attribute name: a-z and
// 0-9 only.
func isV1Name(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// isV1Reserved reports whether name is a 1.0 context attribute or the
// data member, which no extension may be.
func isV1Reserved(name string) bool {
	switch name {
	case "id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time", "data":
		return true
	}
	return false
}
