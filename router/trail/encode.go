package trail

import (
	"encoding/base64"
	"strconv"

	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/event"
)

// The trail writes its messages by hand, as the router writes envelopes:
// encoding/json's reflection was most of the recorder's own cost. What it
// writes is what encoding/json reads into message (encode_test.go).
//
// A record is encoded when it is given (Recorder.add), into one buffer
// for all the records waiting: no allocation per record, and nothing for
// the garbage collector to scan in what waits. A flush then wraps the
// records of each event in its message, whose head holds what all its
// records share (space, event id, type, instance), so that each record
// does not repeat it.

// appendJSONString appends s as a JSON string: as it is when it needs no
// escaping (ids, types, names: nearly always), else as
// event.AppendJSONString writes it.
func appendJSONString(b []byte, s string) []byte {
	if !jsonPlain(s) {
		return event.AppendJSONString(b, s)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Bytes eight at a time, in a uint64: lsb has 1 in each, msb 0x80.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// word is s[i:i+8] as a little-endian uint64 (the compiler makes it one
// load).
func word(s string, i int) uint64 {
	w := s[i : i+8]
	return uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
}

// has0 is not 0 when a byte of x is 0, less is not 0 when a byte of x is
// less than n (n at most 0x80): the bit tricks of "Bit Twiddling Hacks",
// exact as to whether there is one.
func has0(x uint64) uint64         { return (x - lsb) & ^x & msb }
func less(x uint64, n byte) uint64 { return (x - uint64(n)*lsb) & ^x & msb }

// jsonPlain reports whether a JSON string holds s as it is: printable
// ASCII but '"' and '\\'.
func jsonPlain(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := word(s, i)
		if (less(x, 0x20) | x&msb | has0(x^'"'*lsb) | has0(x^'\\'*lsb)) != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// appendMessageHead appends the start of a message of the event eventID
// of space and type typ, whose attempts instance made; its records and
// appendMessageTail follow, the records separated by commas.
func appendMessageHead(b []byte, space, eventID, typ, instance string) []byte {
	b = append(b, `{"space":`...)
	b = appendJSONString(b, space)
	b = append(b, `,"eventId":`...)
	b = appendJSONString(b, eventID)
	b = appendStr(b, `,"type":`, typ)
	b = appendStr(b, `,"instance":`, instance)
	return append(b, `,"records":[`...)
}

// appendMessageTail ends a message.
func appendMessageTail(b []byte) []byte { return append(b, "]}"...) }

// appendRecord appends r as JSON, leaving out empty fields as
// encoding/json's omitempty does, with subs (those of an acceptance) as
// its subscribers: the router's, written without being copied into
// r.Subscribers, which is where a reader finds them.
func appendRecord(b []byte, r *record, subs []router.Subscriber) []byte {
	b = append(b, `{"kind":`...)
	b = appendConst(b, r.Kind)
	b = append(b, `,"at":`...)
	b = strconv.AppendInt(b, r.At, 10)
	b = appendStr(b, `,"type":`, r.Type)
	if len(subs) > 0 {
		b = append(b, `,"subscribers":[`...)
		for i := range subs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"subscriptionId":`...)
			b = appendJSONString(b, subs[i].SubscriptionID)
			b = append(b, `,"functionId":`...)
			b = appendJSONString(b, subs[i].FunctionID)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendStr(b, `,"subscriptionId":`, r.SubscriptionID)
	b = appendStr(b, `,"functionId":`, r.FunctionID)
	b = appendStr(b, `,"reason":`, r.Reason)
	b = appendInt(b, `,"attempt":`, int64(r.Attempt))
	b = appendInt(b, `,"tookUs":`, r.TookUs)
	if r.Result != "" {
		b = appendConst(append(b, `,"result":`...), r.Result)
	}
	b = appendStr(b, `,"error":`, r.Error)
	if r.Outcome != "" {
		b = appendConst(append(b, `,"outcome":`...), r.Outcome)
	}
	b = appendInt(b, `,"next":`, r.Next)
	b = appendStr(b, `,"instance":`, r.Instance)
	return append(b, '}')
}

// appendConst appends s, one of the package's names (a kind, result or
// outcome: plain lowercase ASCII), as a JSON string without looking.
func appendConst(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendStr appends key (`,"name":`) and v, unless v is empty.
func appendStr(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, key...)
	return appendJSONString(b, v)
}

// appendInt appends key (`,"name":`) and v, unless v is 0.
func appendInt(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, key...)
	return strconv.AppendInt(b, v, 10)
}

// tokenClean reports whether jetstream.SubjectToken leaves s as it is:
// no byte up to ' ', nor 0x7f, '.', '*', '>' or '%'.
func tokenClean(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := word(s, i)
		if (less(x, '!') | has0(x^0x7f*lsb) | has0(x^'.'*lsb) | has0(x^'*'*lsb) | has0(x^'>'*lsb) | has0(x^'%'*lsb)) != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' || c == '%' {
			return false
		}
	}
	return true
}

// appendToken appends s as one subject token, as token writes it, with
// no allocation but for a long one.
func appendToken(b []byte, s string) []byte {
	if len(s) > 0 && len(s) <= maxTokenLen && tokenClean(s) {
		return append(b, s...)
	}
	if len(s) == 0 || len(s) > maxTokenLen {
		return append(b, token(s)...)
	}
	const hex = "0123456789ABCDEF"
	start := len(b)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	if len(b)-start > maxTokenLen {
		return append(b[:start], token(s)...)
	}
	return b
}

// appendIDToken appends the subject token of an event id: idToken's.
func appendIDToken(b []byte, id string) []byte {
	var u [16]byte
	if !parseUUID(&u, id) {
		return appendToken(b, id)
	}
	b = append(b, "%U"...)
	return base64.RawURLEncoding.AppendEncode(b, u[:])
}

// idToken is the subject token of an event id: for a UUID written as
// the gateway writes the ids it gives (lowercase, with dashes), "%U" and
// its 16 bytes in base64url, 24 bytes instead of 36 (NATS parses and
// keeps a subject byte by byte, for each message); else token(id). No
// other token starts with "%U": token writes '%' as "%25".
func idToken(id string) string { return string(appendIDToken(nil, id)) }

// uuidHex are the places of the byte pairs of a UUID with dashes. Read
// only.
var uuidHex = [16]uint8{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// parseUUID sets u to the UUID s and reports whether s is one, in
// lowercase hex with dashes.
func parseUUID(u *[16]byte, s string) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	for i := range u {
		at := uuidHex[i]
		hi, lo := unhex(s[at]), unhex(s[at+1])
		if hi|lo > 15 {
			return false
		}
		u[i] = hi<<4 | lo
	}
	return true
}

// unhex is the value of a lowercase hex digit, or more than 15.
func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return 0xff
}
