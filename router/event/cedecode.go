package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// errNotObject is eachMember's answer to a body that is not one valid
// JSON object.
var errNotObject = errors.New("not a JSON object")

// eachMember calls fn with the decoded name and the raw JSON value of each
// member of the JSON object b, in order, and stops at fn's first error. It
// returns errNotObject for anything but one valid JSON object (values are
// checked by json.Valid, which does not allocate).
func eachMember(b []byte, fn func(key, val []byte) error) error {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return errNotObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		if skipSpace(b, i+1) != len(b) {
			return errNotObject
		}
		return nil
	}
	for {
		if i == len(b) || b[i] != '"' {
			return errNotObject
		}
		end, esc, _ := scanString(b, i+1)
		if end < 0 {
			return errNotObject
		}
		key := b[i+1 : end]
		if esc {
			if !json.Valid(b[i : end+1]) {
				return errNotObject
			}
			key = unescape(key)
		}
		i = skipSpace(b, end+1)
		if i == len(b) || b[i] != ':' {
			return errNotObject
		}
		i = skipSpace(b, i+1)
		vend := valueEnd(b, i)
		if vend < 0 {
			return errNotObject
		}
		if err := fn(key, b[i:vend]); err != nil {
			return err
		}
		i = skipSpace(b, vend)
		if i == len(b) {
			return errNotObject
		}
		if b[i] == '}' {
			if skipSpace(b, i+1) != len(b) {
				return errNotObject
			}
			return nil
		}
		if b[i] != ',' {
			return errNotObject
		}
		i = skipSpace(b, i+1)
	}
}

// jsonString decodes the JSON string val (checked valid) within
// MaxAttributeLen bytes. It reports a reason when val is not a string, is
// too long or is not valid UTF-8; isNull when it is null.
func jsonString(val []byte) (s string, isNull bool, reason string) {
	if string(val) == "null" {
		return "", true, ""
	}
	if val[0] != '"' {
		return "", false, "must be a string"
	}
	content := val[1 : len(val)-1]
	if len(content) > MaxAttributeLen {
		return "", false, "longer than " + strconv.Itoa(MaxAttributeLen) + " bytes"
	}
	if !utf8.Valid(content) {
		return "", false, "not valid UTF-8"
	}
	if bytes.IndexByte(content, '\\') < 0 {
		return string(content), false, ""
	}
	return string(unescape(content)), false, ""
}

// jsonInt32 reads a JSON number written as an integer of 32 bits.
func jsonInt32(val []byte) (int32, bool) {
	neg := val[0] == '-'
	digits := val
	if neg {
		digits = val[1:]
	}
	if len(digits) == 0 || len(digits) > 10 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	if n < -1<<31 || n > 1<<31-1 {
		return 0, false
	}
	return int32(n), true
}

// lowerKey lower-cases an ASCII name into buf for matching without
// regard to case; a longer name, which matches no attribute, gives nil.
func lowerKey[T string | []byte](key T, buf *[32]byte) []byte {
	if len(key) > len(buf) {
		return nil
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(key)]
}

// Attributes seen, to refuse one given twice.
const (
	seenID = 1 << iota
	seenSource
	seenSpec
	seenType
	seenDCT
	seenSchema
	seenSubject
	seenTime
	seenData
	seenData64
	seenExts
	seenETV
)

// decoder holds what the decoders share: the event being read, the form
// for errors, and the attributes seen.
type decoder struct {
	form Form
	ce   CloudEvent
	seen int
}

func (d *decoder) fail(attr, reason string) error {
	return &InvalidEventError{Form: d.form, Attribute: attr, Reason: reason}
}

// setString reads the string attribute name into *dst, once.
func (d *decoder) setString(name string, bit int, dst *string, val []byte) error {
	if d.seen&bit != 0 {
		return d.fail(name, "given more than once")
	}
	d.seen |= bit
	s, isNull, reason := jsonString(val)
	if reason != "" {
		return d.fail(name, reason)
	}
	if !isNull {
		if s == "" {
			return d.fail(name, "must not be empty")
		}
		*dst = s
	}
	return nil
}

// addExtension adds an extension after checking its name and the bounds.
func (d *decoder) addExtension(name string, v any) error {
	if len(name) > MaxExtensionNameLen {
		return d.fail(name[:MaxExtensionNameLen]+"…", "extension name longer than "+strconv.Itoa(MaxExtensionNameLen)+" bytes")
	}
	if _, dup := d.ce.Extensions[name]; dup {
		return d.fail(name, "given more than once")
	}
	if len(d.ce.Extensions) == MaxExtensions {
		return d.fail(name, "more than "+strconv.Itoa(MaxExtensions)+" extensions")
	}
	if d.ce.Extensions == nil {
		d.ce.Extensions = make(map[string]any, 4)
	}
	d.ce.Extensions[name] = v
	return nil
}

// finish checks what every form requires: the required attributes, and a
// time that reads as RFC 3339.
func (d *decoder) finish(id, source, typ, specversion string) (CloudEvent, error) {
	for _, a := range [...]struct {
		name string
		v    string
	}{{specversion, d.ce.SpecVersion}, {id, d.ce.ID}, {source, d.ce.Source}, {typ, d.ce.Type}} {
		if a.v == "" {
			return CloudEvent{}, d.fail(a.name, "missing: it is required")
		}
	}
	if d.ce.Time != "" {
		if _, err := parseTime(d.ce.Time); err != nil {
			return CloudEvent{}, d.fail(timeName(d.form), strconv.Quote(d.ce.Time)+" is not an RFC 3339 timestamp")
		}
	}
	return d.ce, nil
}

func timeName(f Form) string {
	switch f {
	case FormV01:
		return "eventTime"
	case FormBinary:
		return "ce-time"
	}
	return "time"
}

// DecodeStructured reads a CloudEvents 1.0 event in structured mode: the
// body of a request of Content-Type application/cloudevents+json. It
// requires specversion "1.0", id, source and type; data or data_base64
// (not both) is the data; every other member is an extension whose name
// is a-z and 0-9 and whose value is a string, a boolean or an integer of
// 32 bits. A null member is an absent one. Data shares body's memory.
func DecodeStructured(body []byte) (CloudEvent, error) {
	d := decoder{form: FormStructured}
	var hasData, hasData64 bool
	err := eachMember(body, func(key, val []byte) error {
		switch string(key) {
		case "specversion":
			if string(val) == `"1.0"` && d.seen&seenSpec == 0 {
				d.seen |= seenSpec
				d.ce.SpecVersion = "1.0" // the usual value, without a copy
				return nil
			}
			if err := d.setString("specversion", seenSpec, &d.ce.SpecVersion, val); err != nil {
				return err
			}
			if d.ce.SpecVersion != "" && d.ce.SpecVersion != "1.0" {
				return d.fail("specversion", strconv.Quote(d.ce.SpecVersion)+" is not supported: only \"1.0\" is")
			}
			return nil
		case "id":
			return d.setString("id", seenID, &d.ce.ID, val)
		case "source":
			return d.setString("source", seenSource, &d.ce.Source, val)
		case "type":
			return d.setString("type", seenType, &d.ce.Type, val)
		case "datacontenttype":
			return d.setString("datacontenttype", seenDCT, &d.ce.DataContentType, val)
		case "dataschema":
			return d.setString("dataschema", seenSchema, &d.ce.DataSchema, val)
		case "subject":
			return d.setString("subject", seenSubject, &d.ce.Subject, val)
		case "time":
			return d.setString("time", seenTime, &d.ce.Time, val)
		case "data":
			if d.seen&seenData != 0 {
				return d.fail("data", "given more than once")
			}
			d.seen |= seenData
			if !utf8.Valid(val) {
				// json.Valid lets invalid UTF-8 inside strings through,
				// and data is passed on as it is: the envelope would not
				// be JSON.
				return d.fail("data", "not valid UTF-8")
			}
			if string(val) != "null" {
				d.ce.Data, hasData = val, true
			}
			return nil
		case "data_base64":
			if d.seen&seenData64 != 0 {
				return d.fail("data_base64", "given more than once")
			}
			d.seen |= seenData64
			if string(val) == "null" {
				return nil
			}
			if val[0] != '"' {
				return d.fail("data_base64", "must be a string")
			}
			data, err := canonicalBase64(val)
			if err != nil {
				return d.fail("data_base64", "not valid base64: "+err.Error())
			}
			d.ce.Data, d.ce.DataBinary, hasData64 = data, true, true
			return nil
		}
		name := string(key)
		if !isV1Name(name) {
			return d.fail(strconv.Quote(name[:min(len(name), MaxExtensionNameLen)]), "not a valid attribute name: only a-z and 0-9 are allowed")
		}
		if string(val) == "null" {
			return nil
		}
		v, reason := extValue(val)
		if reason != "" {
			return d.fail(name, reason)
		}
		return d.addExtension(name, v)
	})
	if err != nil {
		if err == errNotObject {
			return CloudEvent{}, d.fail("", "body is not a JSON object")
		}
		return CloudEvent{}, err
	}
	if hasData && hasData64 {
		return CloudEvent{}, d.fail("data_base64", "given with data: an event has one or the other")
	}
	return d.finish("id", "source", "type", "specversion")
}

// extValue reads the value of a 1.0 extension in JSON: a string, a
// boolean or an integer of 32 bits.
func extValue(val []byte) (any, string) {
	switch val[0] {
	case '"':
		s, _, reason := jsonString(val)
		return s, reason
	case 't':
		return true, ""
	case 'f':
		return false, ""
	case '{', '[':
		return nil, "must be a string, a boolean or an integer"
	}
	n, ok := jsonInt32(val)
	if !ok {
		return nil, "number " + string(val[:min(len(val), 32)]) + " is not an integer of 32 bits"
	}
	return n, ""
}

// canonicalBase64 checks the JSON string val holds base64 and returns it
// as a JSON string: val itself when it has no escapes. It decodes in
// chunks on the stack, so checking costs no allocation.
func canonicalBase64(val []byte) (json.RawMessage, error) {
	content := val[1 : len(val)-1]
	if bytes.IndexByte(content, '\\') >= 0 {
		raw, err := base64.StdEncoding.DecodeString(string(unescape(content)))
		if err != nil {
			return nil, err
		}
		return base64String(raw), nil
	}
	// A JSON string holds no raw line breaks, which the decoder would
	// skip, so chunks of 4n characters decode as the whole does.
	var buf [384]byte
	for len(content) > 0 {
		n := min(len(content), 512)
		if _, err := base64.StdEncoding.Decode(buf[:], content[:n]); err != nil {
			return nil, err
		}
		content = content[n:]
	}
	return val, nil
}

// DecodeV01 reads a CloudEvents v0.1 event as the 0.9 gateway's clients
// send it: a JSON object with eventType, cloudEventsVersion "0.1", source
// and eventID required; eventTypeVersion, eventTime, schemaURL,
// contentType, extensions (an object of any JSON values) and data
// optional. Names are matched without regard to case and unknown members
// are ignored, as the 0.9 gateway did. eventTypeVersion becomes the
// extension "eventtypeversion". Data shares body's memory.
func DecodeV01(body []byte) (CloudEvent, error) {
	d := decoder{form: FormV01}
	var version string
	err := eachMember(body, func(key, val []byte) error {
		var kb [32]byte
		switch string(lowerKey(key, &kb)) {
		case "eventtype":
			return d.setString("eventType", seenType, &d.ce.Type, val)
		case "eventtypeversion":
			var v string
			if err := d.setString("eventTypeVersion", seenETV, &v, val); err != nil || v == "" {
				return err
			}
			return d.addExtension(ExtEventTypeVersion, v)
		case "cloudeventsversion":
			if err := d.setString("cloudEventsVersion", seenSpec, &version, val); err != nil {
				return err
			}
			if version != "" && version != "0.1" {
				return d.fail("cloudEventsVersion", strconv.Quote(version)+" is not supported: only \"0.1\" is")
			}
			return nil
		case "source":
			return d.setString("source", seenSource, &d.ce.Source, val)
		case "eventid":
			return d.setString("eventID", seenID, &d.ce.ID, val)
		case "eventtime":
			return d.setString("eventTime", seenTime, &d.ce.Time, val)
		case "schemaurl":
			return d.setString("schemaURL", seenSchema, &d.ce.DataSchema, val)
		case "contenttype":
			return d.setString("contentType", seenDCT, &d.ce.DataContentType, val)
		case "extensions":
			if d.seen&seenExts != 0 {
				return d.fail("extensions", "given more than once")
			}
			d.seen |= seenExts
			return d.v01Extensions(val)
		case "data":
			if d.seen&seenData != 0 {
				return d.fail("data", "given more than once")
			}
			d.seen |= seenData
			if !utf8.Valid(val) {
				return d.fail("data", "not valid UTF-8")
			}
			if string(val) != "null" {
				d.ce.Data = val
			}
		}
		return nil
	})
	if err != nil {
		if err == errNotObject {
			return CloudEvent{}, d.fail("", "body is not a JSON object")
		}
		return CloudEvent{}, err
	}
	if version != "" {
		d.ce.SpecVersion = "0.1"
	}
	return d.finish("eventID", "source", "eventType", "cloudEventsVersion")
}

// v01Extensions reads v0.1's extensions object: any names, any values.
func (d *decoder) v01Extensions(val []byte) error {
	if string(val) == "null" {
		return nil
	}
	if val[0] != '{' {
		return d.fail("extensions", "must be an object")
	}
	return eachMember(val, func(key, v []byte) error {
		name := string(key)
		if name == "" {
			return d.fail("extensions", "an extension has an empty name")
		}
		if !utf8.ValidString(name) {
			return d.fail("extensions", "an extension name is not valid UTF-8")
		}
		var value any
		switch v[0] {
		case 'n':
			return nil
		case 't':
			value = true
		case 'f':
			value = false
		case '"':
			s, _, reason := jsonString(v)
			if reason != "" {
				return d.fail("extensions."+name, reason)
			}
			value = s
		default:
			if n, ok := jsonInt32(v); ok {
				value = n
			} else {
				if len(v) > MaxAttributeLen {
					return d.fail("extensions."+name, "longer than "+strconv.Itoa(MaxAttributeLen)+" bytes")
				}
				if !utf8.Valid(v) {
					return d.fail("extensions."+name, "not valid UTF-8")
				}
				value = json.RawMessage(v)
			}
		}
		return d.addExtension(name, value)
	})
}

// DecodeBinary reads a CloudEvents 1.0 event in binary HTTP mode: the
// attributes from the ce-* headers (ce-specversion "1.0", ce-id,
// ce-source and ce-type required; every other ce-* header an extension,
// whose value is a string), datacontenttype from Content-Type, and the
// body as the data: the JSON value when Content-Type is JSON (then it must
// be valid JSON), binary otherwise; an empty body is no data. Header
// values are percent-decoded. Data may share body's memory.
func DecodeBinary(h http.Header, body []byte) (CloudEvent, error) {
	d := decoder{form: FormBinary}
	var dctHeader string
	for k, vs := range h {
		if len(k) < 3 || !strings.EqualFold(k[:3], "ce-") {
			continue
		}
		var kb [32]byte
		lower := lowerKey(k[3:], &kb)
		if len(vs) != 1 {
			return CloudEvent{}, d.fail(strings.ToLower(k), "given more than once")
		}
		v, reason := headerValue(vs[0])
		if reason != "" {
			return CloudEvent{}, d.fail(strings.ToLower(k), reason)
		}
		var dst *string
		switch string(lower) {
		case "specversion":
			if v != "1.0" {
				return CloudEvent{}, d.fail(strings.ToLower(k), strconv.Quote(v)+" is not supported: only \"1.0\" is")
			}
			dst = &d.ce.SpecVersion
		case "id":
			dst = &d.ce.ID
		case "source":
			dst = &d.ce.Source
		case "type":
			dst = &d.ce.Type
		case "dataschema":
			dst = &d.ce.DataSchema
		case "subject":
			dst = &d.ce.Subject
		case "time":
			dst = &d.ce.Time
		case "datacontenttype":
			// Content-Type carries it; this is read only without one.
			dst = &dctHeader
		case "data":
			return CloudEvent{}, d.fail(strings.ToLower(k), "the body is the data in binary mode")
		}
		if dst != nil {
			if v == "" {
				return CloudEvent{}, d.fail(strings.ToLower(k), "must not be empty")
			}
			*dst = v
			continue
		}
		name := strings.ToLower(k[3:])
		if !isV1Name(name) {
			return CloudEvent{}, d.fail(strings.ToLower(k), "not a valid attribute name: only a-z and 0-9 are allowed after ce-")
		}
		if err := d.addExtension(name, v); err != nil {
			return CloudEvent{}, err
		}
	}
	d.ce.DataContentType = h.Get("Content-Type")
	if d.ce.DataContentType == "" {
		d.ce.DataContentType = dctHeader
	}
	if len(d.ce.DataContentType) > MaxAttributeLen {
		return CloudEvent{}, d.fail("Content-Type", "longer than "+strconv.Itoa(MaxAttributeLen)+" bytes")
	}
	if !utf8.ValidString(d.ce.DataContentType) {
		return CloudEvent{}, d.fail("Content-Type", "not valid UTF-8")
	}
	if len(body) > 0 {
		if IsJSON(d.ce.DataContentType) {
			if !ValidJSON(body) {
				return CloudEvent{}, d.fail("data", "the body is not valid JSON, but Content-Type is "+d.ce.DataContentType)
			}
			d.ce.Data = body
		} else {
			d.ce.Data, d.ce.DataBinary = base64String(body), true
		}
	}
	return d.finish("ce-id", "ce-source", "ce-type", "ce-specversion")
}

// headerValue decodes an attribute's header value as the CloudEvents HTTP
// binding says: a double-quoted string is unquoted (backslash escapes
// included), then one round of percent-decoding; the result must be valid
// UTF-8. A '%' not followed by two hex digits is kept as it is: writers
// such as the Go SDK send values unencoded.
func headerValue(s string) (string, string) {
	if len(s) > 3*MaxAttributeLen {
		return "", "longer than " + strconv.Itoa(MaxAttributeLen) + " bytes"
	}
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || c == '"' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		if len(s) > MaxAttributeLen {
			return "", "longer than " + strconv.Itoa(MaxAttributeLen) + " bytes"
		}
		return s, ""
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		var q []byte
		for i := 1; i < len(s)-1; i++ {
			if s[i] == '\\' && i+1 < len(s)-1 {
				i++
			}
			q = append(q, s[i])
		}
		s = string(q)
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, c)
	}
	if len(out) > MaxAttributeLen {
		return "", "longer than " + strconv.Itoa(MaxAttributeLen) + " bytes"
	}
	if !utf8.Valid(out) {
		return "", "not valid UTF-8 after percent-decoding"
	}
	return string(out), ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
