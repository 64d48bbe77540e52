package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

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
// response is an empty 200. Anything else is an error. The returned Body
// may share raw's memory.
func ParseHTTPResponse(raw []byte) (HTTPResponse, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return HTTPResponse{StatusCode: 200}, nil
	}
	// Every http event pays for this decoding: encoding/json's reflection
	// and its copies cost 14 allocations for a plain answer. The usual
	// object is read directly; the decoder sees what that parser does not
	// handle exactly like it, and so decides what errors say.
	if resp, ok := parseHTTPResponseFast(raw); ok {
		return resp, nil
	}
	return parseHTTPResponseJSON(raw)
}

// parseHTTPResponseJSON is ParseHTTPResponse with encoding/json.
func parseHTTPResponseJSON(raw []byte) (HTTPResponse, error) {
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
		setJSONType(&resp)
	}
	return resp, nil
}

// setJSONType gives a response whose body is a JSON value other than a
// string the Content-Type of JSON, unless it has one.
func setJSONType(resp *HTTPResponse) {
	if !hasHeader(resp.Headers, "Content-Type") {
		if resp.Headers == nil {
			resp.Headers = make(map[string]string, 1)
		}
		resp.Headers["Content-Type"] = "application/json"
	}
}

// maxFastHeaders bounds the headers parseHTTPResponseFast reads; a
// response with more goes to encoding/json.
const maxFastHeaders = 16

// parseHTTPResponseFast reads a response object as parseHTTPResponseJSON
// does, without reflection: valid JSON whose keys are plain ASCII, each
// of statusCode, headers and body at most once, statusCode null or an
// integer of 200-599, headers null or an object of strings without
// escapes, any body. It reports false for anything else, valid or not,
// and for what encoding/json would refuse, so that the caller hands the
// response to the decoder, which then decides. Where it reports true, the
// result is the decoder's, up to which memory Body and the headers share.
func parseHTTPResponseFast(raw []byte) (resp HTTPResponse, ok bool) {
	resp.StatusCode = 200
	i := skipSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return resp, false
	}
	i = skipSpace(raw, i+1)
	var seenStatus, seenHeaders, seenBody bool
	var body []byte
	if i < len(raw) && raw[i] == '}' {
		i++
	} else {
		for {
			if i == len(raw) || raw[i] != '"' {
				return resp, false
			}
			end, esc, ascii := scanString(raw, i+1)
			if end < 0 || esc || !ascii {
				// encoding/json folds non-ASCII keys by Unicode rules.
				return resp, false
			}
			key := raw[i+1 : end]
			i = skipSpace(raw, end+1)
			if i == len(raw) || raw[i] != ':' {
				return resp, false
			}
			i = skipSpace(raw, i+1)
			// encoding/json matches field names without regard to case.
			switch {
			case bytes.EqualFold(key, []byte("statusCode")):
				if seenStatus {
					return resp, false
				}
				seenStatus = true
				if i, ok = parseStatusCode(raw, i, &resp.StatusCode); !ok {
					return resp, false
				}
			case bytes.EqualFold(key, []byte("headers")):
				if seenHeaders {
					return resp, false
				}
				seenHeaders = true
				if i, ok = parseHeaders(raw, i, &resp.Headers); !ok {
					return resp, false
				}
			case bytes.EqualFold(key, []byte("body")):
				if seenBody {
					return resp, false
				}
				seenBody = true
				end := valueEnd(raw, i)
				if end < 0 {
					return resp, false
				}
				body, i = raw[i:end], end
			default:
				// Unknown keys are ignored, as the decoder does.
				end := valueEnd(raw, i)
				if end < 0 {
					return resp, false
				}
				i = end
			}
			i = skipSpace(raw, i)
			if i == len(raw) {
				return resp, false
			}
			if raw[i] == '}' {
				i++
				break
			}
			if raw[i] != ',' {
				return resp, false
			}
			i = skipSpace(raw, i+1)
		}
	}
	if skipSpace(raw, i) != len(raw) {
		return resp, false
	}
	switch {
	case len(body) == 0 || string(body) == "null":
	case body[0] == '"':
		// valueEnd has checked the string, escapes included.
		s := body[1 : len(body)-1]
		if bytes.IndexByte(s, '\\') < 0 {
			resp.Body = s
		} else {
			resp.Body = unescape(s)
		}
	default:
		resp.Body = body
		setJSONType(&resp)
	}
	return resp, true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString finds the closing quote of the JSON string whose content
// starts at i. It returns -1 for a control character or a string that
// does not end, and reports whether the string has escapes (not checked
// here) and whether it is all ASCII.
func scanString(b []byte, i int) (end int, esc, ascii bool) {
	ascii = true
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i, esc, ascii
		case c == '\\':
			esc = true
			i++ // the escaped byte cannot end the string
		case c < 0x20:
			return -1, esc, ascii
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return -1, esc, ascii
}

// parseStatusCode reads the statusCode value at i: null, which leaves
// code as it is, or an integer of 200-599 without sign, fraction or
// exponent; anything else is not read (false). It returns the index after
// the value.
func parseStatusCode(b []byte, i int, code *int) (int, bool) {
	if bytes.HasPrefix(b[i:], []byte("null")) {
		return i + 4, true
	}
	n, j := 0, i
	for ; j < len(b) && j-i < 3 && '0' <= b[j] && b[j] <= '9'; j++ {
		n = n*10 + int(b[j]-'0')
	}
	// Three digits from 200 to 599; whatever follows them is checked by
	// the caller to be a separator, so 2000 or 200.5 are not read.
	if j-i != 3 || n < 200 || n > 599 {
		return i, false
	}
	*code = n
	return j, true
}

// parseHeaders reads the headers value at i: null, or an object of
// strings without escapes. Its keys and values are substrings of one
// string made of the object's text: one allocation for all of them.
func parseHeaders(b []byte, i int, h *map[string]string) (int, bool) {
	if bytes.HasPrefix(b[i:], []byte("null")) {
		return i + 4, true
	}
	if i == len(b) || b[i] != '{' {
		return i, false
	}
	start := i
	var spans [maxFastHeaders][4]int // key and value, from start
	n := 0
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if n == maxFastHeaders {
				return i, false
			}
			var ks, ke, vs, ve int
			var ok bool
			if ks, ke, ok = plainString(b, i); !ok {
				return i, false
			}
			i = skipSpace(b, ke+1)
			if i == len(b) || b[i] != ':' {
				return i, false
			}
			i = skipSpace(b, i+1)
			if vs, ve, ok = plainString(b, i); !ok {
				return i, false
			}
			spans[n] = [4]int{ks - start, ke - start, vs - start, ve - start}
			n++
			i = skipSpace(b, ve+1)
			if i == len(b) {
				return i, false
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipSpace(b, i+1)
		}
	}
	m := make(map[string]string, n)
	if n > 0 {
		text := string(b[start:i])
		for _, s := range spans[:n] {
			m[text[s[0]:s[1]]] = text[s[2]:s[3]] // a repeated name: the last wins, as in the decoder
		}
	}
	*h = m
	return i, true
}

// plainString finds the JSON string at i and returns the bounds of its
// content: false unless it is a string without escapes and of valid UTF-8
// (the decoder replaces invalid UTF-8, and decodes escapes).
func plainString(b []byte, i int) (start, end int, ok bool) {
	if i == len(b) || b[i] != '"' {
		return 0, 0, false
	}
	end, esc, ascii := scanString(b, i+1)
	if end < 0 || esc || (!ascii && !utf8.Valid(b[i+1:end])) {
		return 0, 0, false
	}
	return i + 1, end, true
}

// valueEnd returns the index after the JSON value at i, or -1 when there
// is no valid value there. It finds the value's end without checking, and
// json.Valid, which does not allocate, then checks the value.
func valueEnd(b []byte, i int) int {
	if i == len(b) {
		return -1
	}
	end := -1
	switch b[i] {
	case '"':
		if e, _, _ := scanString(b, i+1); e >= 0 {
			end = e + 1
		}
	case '{', '[':
		depth := 0
	scan:
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					end = j + 1
					break scan
				}
			case '"':
				e, _, _ := scanString(b, j+1)
				if e < 0 {
					return -1
				}
				j = e
			}
		}
	default:
		end = i
		for end < len(b) && b[end] != ',' && b[end] != '}' && b[end] != ']' && b[end] != ' ' && b[end] != '\t' && b[end] != '\n' && b[end] != '\r' {
			end++
		}
	}
	if end < 0 || !json.Valid(b[i:end]) {
		return -1
	}
	return end
}

// unescape decodes the content of a valid JSON string exactly as
// encoding/json does: escapes, \u escapes with UTF-16 surrogate pairs,
// and U+FFFD for a lone surrogate or invalid UTF-8.
func unescape(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			i++
			switch s[i] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(s[i+1 : i+5])
				i += 4
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
						r2 = hex4(s[i+3 : i+7])
					}
					if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
						r = dec
						i += 6
					} else {
						r = unicode.ReplacementChar
					}
				}
				out = utf8.AppendRune(out, r)
			default: // '"', '\\', '/'
				out = append(out, s[i])
			}
			i++
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			out = utf8.AppendRune(out, r)
			i += size
		}
	}
	return out
}

// hex4 reads the four hex digits of a \u escape, which json.Valid has
// checked.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

func hasHeader(h map[string]string, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}
