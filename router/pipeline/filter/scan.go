package filter

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxEventDepth is encoding/json's nesting limit: an event nested deeper
// is invalid JSON for the gateway's decoders, so it matches nothing here.
const maxEventDepth = 10000

// The scanner below reads JSON text in place. Every function takes the
// document and an index and returns the index after what it read and
// whether the text there is valid; none of them allocates.

// skipWS returns the index of the first byte at or after i that is not
// white space. The gateway's events are compact, so the first test (a
// byte above the space) almost always answers; it inlines.
func skipWS(d []byte, i int) int {
	if i < len(d) && d[i] > ' ' {
		return i
	}
	return skipWSLoop(d, i)
}

func skipWSLoop(d []byte, i int) int {
	for i < len(d) {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special reports, for the 8 bytes of w, a mask whose lowest set bit is
// the top bit of the first byte that is a quote, a backslash or a control
// character (the bytes a string scan must look at); 0 if there is none.
// Each term is the usual "byte is zero" test, (x - 0x01…) &^ x & 0x80…;
// XOR with '"' or '\\' keeps a byte's top bit, so the three &^ share one.
func special(w uint64) uint64 {
	q := w ^ (lsb * '"')
	b := w ^ (lsb * '\\')
	return ((q - lsb) | (b - lsb) | (w - lsb*0x20)) &^ w & msb
}

// load64 reads d[i:i+8] (in range) little-endian, without bounds checks.
func load64(d []byte, i int) uint64 {
	return binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(d)), i))[:])
}

// load32 reads d[i:i+4] (in range) little-endian, without bounds checks.
func load32(d []byte, i int) uint32 {
	return binary.LittleEndian.Uint32((*[4]byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(d)), i))[:])
}

// scanString reads the string starting at d[i] == '"'. It returns the
// index after the closing quote and whether the string holds escapes.
func scanString(d []byte, i int) (end int, esc bool, ok bool) {
	return stringBody(d, i+1)
}

// stringBody reads a string from d[i], after its opening quote or
// somewhere inside it past any escape. Eight bytes at a time while the
// document has them; the byte found is taken from the word, without
// reading d again.
func stringBody(d []byte, i int) (end int, esc bool, ok bool) {
	for {
		for i+8 <= len(d) {
			w := load64(d, i)
			if m := special(w); m != 0 {
				tz := bits.TrailingZeros64(m)
				i += tz >> 3
				if byte(w>>(tz&^7)) == '"' {
					return i + 1, esc, true
				}
				goto slow
			}
			i += 8
		}
		for i < len(d) && d[i] >= 0x20 && d[i] != '"' && d[i] != '\\' {
			i++
		}
		if i >= len(d) {
			return 0, false, false
		}
	slow:
		switch c := d[i]; {
		case c == '"':
			return i + 1, esc, true
		case c == '\\':
			esc = true
			if i+1 >= len(d) {
				return 0, false, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || hex4(d[i+2:i+6]) < 0 {
					return 0, false, false
				}
				i += 6
			default:
				return 0, false, false
			}
		default: // a control character
			return 0, false, false
		}
	}
}

// hex4 decodes four hex digits; -1 if they are not.
func hex4(b []byte) rune {
	b = b[:4]
	h0, ok0 := hexDigit(b[0])
	h1, ok1 := hexDigit(b[1])
	h2, ok2 := hexDigit(b[2])
	h3, ok3 := hexDigit(b[3])
	if !(ok0 && ok1 && ok2 && ok3) {
		return -1
	}
	return rune(h0)<<12 | rune(h1)<<8 | rune(h2)<<4 | rune(h3)
}

// hexDigit decodes one hex digit: a digit, or a letter a-f in either
// case (0x20 is the case bit).
func hexDigit(c byte) (byte, bool) {
	if d := c - '0'; d <= 9 {
		return d, true
	}
	l := (c | 0x20) - 'a' // 'A'-'F' and 'a'-'f' to 0-5
	return l + 10, l <= 5
}

// scanNumber reads a JSON number at d[i] (a '-' or a digit).
func scanNumber(d []byte, i int) (int, bool) {
	if i < len(d) && d[i] == '-' {
		i++
	}
	if i >= len(d) {
		return 0, false
	}
	switch c := d[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i++
		for i < len(d) && d[i]-'0' <= 9 {
			i++
		}
	default:
		return 0, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i]-'0' > 9 {
			return 0, false
		}
		for i < len(d) && d[i]-'0' <= 9 {
			i++
		}
	}
	if i < len(d) && d[i]|0x20 == 'e' {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i]-'0' > 9 {
			return 0, false
		}
		for i < len(d) && d[i]-'0' <= 9 {
			i++
		}
	}
	return i, true
}

// The literals as little-endian words of their first four bytes.
const (
	wordTrue = uint32('t') | uint32('r')<<8 | uint32('u')<<16 | uint32('e')<<24
	wordNull = uint32('n') | uint32('u')<<8 | uint32('l')<<16 | uint32('l')<<24
	wordFals = uint32('f') | uint32('a')<<8 | uint32('l')<<16 | uint32('s')<<24
)

// scanLiteral reads true, false or null at d[i].
func scanLiteral(d []byte, i int) (int, bool) {
	if i < 0 || len(d)-i < 4 {
		return 0, false
	}
	switch load32(d, i) {
	case wordTrue, wordNull:
		return i + 4, true
	case wordFals:
		if len(d)-i >= 5 && d[i+4] == 'e' {
			return i + 5, true
		}
	}
	return 0, false
}

func skipObject(d []byte, i, depth int) (int, bool) {
	if depth > maxEventDepth {
		return 0, false
	}
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return 0, false
		}
		var ok bool
		if i, _, ok = scanString(d, i); !ok {
			return 0, false
		}
		i = skipWS(d, i)
		if i >= len(d) || d[i] != ':' {
			return 0, false
		}
		if i, ok = skipValue(d, skipWS(d, i+1), depth); !ok {
			return 0, false
		}
		if i, ok = next(d, i, '}'); !ok || i < 0 {
			return -i, ok
		}
	}
}

func skipArray(d []byte, i, depth int) (int, bool) {
	if depth > maxEventDepth {
		return 0, false
	}
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = skipValue(d, i, depth); !ok {
			return 0, false
		}
		if i, ok = next(d, i, ']'); !ok || i < 0 {
			return -i, ok
		}
	}
}

// next reads what follows a member or an element: a comma (it returns the
// index of the next value, positive) or the closing byte (it returns minus
// the index after it).
func next(d []byte, i int, closing byte) (int, bool) {
	i = skipWS(d, i)
	if i >= len(d) {
		return 0, false
	}
	switch d[i] {
	case ',':
		return skipWS(d, i+1), true
	case closing:
		return -(i + 1), true
	}
	return 0, false
}

// appendUnescaped appends the decoded content of a JSON string (raw is
// what is between the quotes, already checked by scanString) to dst, as
// encoding/json decodes it: invalid UTF-8 and lone surrogates become
// U+FFFD.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			if i+1 >= len(raw) {
				return dst
			}
			switch raw[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				if i+6 > len(raw) {
					return dst
				}
				r := hex4(raw[i+2 : i+6])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, hex4(raw[i+2:i+6])); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, raw[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, raw[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

// skipValue validates and skips the value at d[i] (white space before it
// too); depth is the nesting depth of the container holding it (0 at the
// top level).
//
// It is where Match spends most of its time (the parts of an event a
// pattern does not name), so it is one loop without calls, written as a
// state machine with gotos: after reading a value, the next member name,
// the next value. The kinds of the open containers are bits of a word;
// those nested 64 levels deeper go to skipObject and skipArray. Strings
// are read eight bytes at a time; white space, which the gateway's
// compact events do not have, costs nothing until it is met.
func skipValue(d []byte, i, depth int) (int, bool) {
	var (
		objects uint64 // bit k set: the container at level k is an object
		level   int    // containers open
		key     bool   // the string being read is a member name
		c       byte
	)
	n := len(d)
	if i < 0 {
		return 0, false
	}
value:
	if i >= n {
		return 0, false
	}
	switch d[i] {
	case '"':
		key = false
		goto str
	case '{', '[':
		goto open
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		goto number
	case 't':
		if n-i >= 4 && load32(d, i) == wordTrue {
			i += 4
			goto after
		}
	case 'n':
		if n-i >= 4 && load32(d, i) == wordNull {
			i += 4
			goto after
		}
	case 'f':
		if n-i >= 5 && load32(d, i) == wordFals && d[i+4] == 'e' {
			i += 5
			goto after
		}
	case ' ', '\t', '\n', '\r':
		i++
		goto value
	}
	return 0, false

open: // d[i] is '{' or '['
	if depth+level >= maxEventDepth {
		return 0, false
	}
	if level == 64 {
		var ok bool
		if d[i] == '{' {
			i, ok = skipObject(d, i, depth+level+1)
		} else {
			i, ok = skipArray(d, i, depth+level+1)
		}
		if !ok {
			return 0, false
		}
		goto after
	}
	{
		isObj := d[i] == '{'
		objects = objects&^(1<<level) | b2u(isObj)<<level
		level++
		i = skipWS(d, i+1)
		// '}' is ']' + 0x20.
		if i < n && d[i] == ']'|byte(b2u(isObj))<<5 {
			i++
			level--
			goto after
		}
		if isObj {
			goto member
		}
		goto value
	}

after: // after a value: a comma or the end of the container
	if level == 0 {
		return i, true
	}
	if i >= n {
		return 0, false
	}
	switch d[i] {
	case ',':
		i++
		if objects>>(level-1)&1 != 0 {
			goto member
		}
		goto value
	case '}':
		if objects>>(level-1)&1 != 0 {
			i++
			level--
			goto after
		}
	case ']':
		if objects>>(level-1)&1 == 0 {
			i++
			level--
			goto after
		}
	case ' ', '\t', '\n', '\r':
		i++
		goto after
	}
	return 0, false

member:
	if i >= n {
		return 0, false
	}
	switch d[i] {
	case '"':
		key = true
		goto str
	case ' ', '\t', '\n', '\r':
		i++
		goto member
	}
	return 0, false

colon: // after a member name
	if i < n && d[i] == ':' {
		i++
		goto value
	}
	i = skipWS(d, i)
	if i >= n || d[i] != ':' {
		return 0, false
	}
	i++
	goto value

str: // d[i] == '"'
	i++
	for {
		if i+8 <= n {
			w := load64(d, i)
			m := special(w)
			if m == 0 {
				i += 8
				continue
			}
			tz := bits.TrailingZeros64(m)
			i += tz >> 3
			c = byte(w >> (tz &^ 7))
		} else {
			if i >= n {
				return 0, false
			}
			if c = d[i]; c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
		}
		if c == '"' {
			i++
			break
		}
		if c != '\\' || i+1 >= n { // a control character, or a lone \
			return 0, false
		}
		switch d[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > n || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) || !isHex(d[i+5]) {
				return 0, false
			}
			i += 6
		default:
			return 0, false
		}
	}
	if key {
		goto colon
	}
	goto after

number: // d[i] is '-' or a digit
	if d[i] == '-' {
		i++
		if i >= n {
			return 0, false
		}
	}
	if c = d[i]; c == '0' {
		i++
	} else if c-'1' <= 8 {
		// Integer digits eight at a time (timestamps, ids): a byte is
		// not a digit if adding 0x46 or subtracting 0x30 sets its top
		// bit; carries and borrows only reach bytes after such a byte.
		i++
		for i+8 <= n {
			w := load64(d, i)
			if m := ((w + lsb*0x46) | (w - lsb*0x30)) & msb; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				goto fraction
			}
			i += 8
		}
		for i < n && d[i]-'0' <= 9 {
			i++
		}
	} else {
		return 0, false
	}
fraction:
	if i < n && d[i] == '.' {
		i++
		if i >= n || d[i]-'0' > 9 {
			return 0, false
		}
		for i < n && d[i]-'0' <= 9 {
			i++
		}
	}
	if i < n && d[i]|0x20 == 'e' {
		i++
		if i < n && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= n || d[i]-'0' > 9 {
			return 0, false
		}
		for i < n && d[i]-'0' <= 9 {
			i++
		}
	}
	goto after
}

// isHex reports whether c is a hex digit.
func isHex(c byte) bool {
	return c-'0' <= 9 || (c|0x20)-'a' <= 5
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
