package transform

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// encoder writes the result of a script as JSON without going through
// goja's JSON.stringify, which reads every string one UTF-16 unit at a
// time and was two fifths of the cost of a small transform. It handles
// plain data only: objects of class Object without toJSON, arrays,
// strings, numbers, booleans and null, which is what scripts return when
// they change an event. Anything else (a Date, a Map, a boxed value, a
// BigInt, an object with toJSON, a string with a lone surrogate, a
// cycle) makes it give up, and the caller serializes the whole result
// with JSON.stringify: its output is then what JSON.stringify makes,
// exactly, and so it is now, for what the encoder does handle.
type encoder struct {
	vm  *goja.Runtime
	buf []byte
	max int
}

// encodeMaxDepth bounds the nesting the encoder follows before it gives
// up (a cycle, or data deeper than an event's); JSON.stringify then
// reports the cycle or writes the deep value.
const encodeMaxDepth = 64

var (
	typeInt64   = reflect.TypeFor[int64]()
	typeFloat64 = reflect.TypeFor[float64]()
	typeBool    = reflect.TypeFor[bool]()
)

// value appends v, as an object member or array element (inArray): it
// reports false when the encoder gives up, and skip when v has no JSON
// form in an object (undefined, a function, a symbol), which arrays write
// as null.
func (e *encoder) value(v goja.Value, depth int, inArray bool) (ok, skip bool) {
	if len(e.buf) > e.max {
		return false, false // JSON.stringify will say how large
	}
	switch {
	case v == nil || goja.IsUndefined(v):
		return e.hole(inArray)
	case goja.IsNull(v):
		e.buf = append(e.buf, "null"...)
		return true, false
	}
	switch x := v.(type) {
	case *goja.Object:
		return e.object(x, depth, inArray)
	case *goja.Symbol:
		return e.hole(inArray)
	case goja.String:
		var ok bool
		e.buf, ok = appendQuoted(e.buf, x.String())
		return ok, false
	}
	switch v.ExportType() {
	case typeInt64:
		e.buf = strconv.AppendInt(e.buf, v.ToInteger(), 10)
	case typeFloat64:
		f := v.ToFloat()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			e.buf = append(e.buf, "null"...)
		} else {
			e.buf = append(e.buf, v.String()...) // JavaScript's own number format
		}
	case typeBool:
		e.buf = strconv.AppendBool(e.buf, v.ToBoolean())
	default:
		return false, false // a BigInt (an error) or a type unknown here
	}
	return true, false
}

// hole writes what JSON.stringify writes for a value without a JSON form.
func (e *encoder) hole(inArray bool) (ok, skip bool) {
	if inArray {
		e.buf = append(e.buf, "null"...)
		return true, false
	}
	return true, true
}

func (e *encoder) object(o *goja.Object, depth int, inArray bool) (ok, skip bool) {
	if depth >= encodeMaxDepth {
		return false, false
	}
	switch o.ClassName() {
	case "Function":
		return e.hole(inArray)
	case "Array":
		if !isUndefined(o.Get("toJSON")) {
			return false, false
		}
		n := o.Get("length").ToInteger()
		e.buf = append(e.buf, '[')
		for i := int64(0); i < n; i++ {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if ok, _ := e.value(o.Get(strconv.FormatInt(i, 10)), depth+1, true); !ok {
				return false, false
			}
		}
		e.buf = append(e.buf, ']')
		return true, false
	case "Object":
		if !isUndefined(o.Get("toJSON")) {
			return false, false
		}
		e.buf = append(e.buf, '{')
		first := true
		for _, k := range o.Keys() {
			mark := len(e.buf)
			if !first {
				e.buf = append(e.buf, ',')
			}
			var ok bool
			if e.buf, ok = appendQuoted(e.buf, k); !ok {
				return false, false // and Get(k) would miss the member
			}
			e.buf = append(e.buf, ':')
			ok, skip := e.value(o.Get(k), depth+1, false)
			if !ok {
				return false, false
			}
			if skip {
				e.buf = e.buf[:mark]
				continue
			}
			first = false
		}
		e.buf = append(e.buf, '}')
		return true, false
	}
	return false, false
}

func isUndefined(v goja.Value) bool { return v == nil || goja.IsUndefined(v) }

// appendQuoted writes s as a JSON string as JSON.stringify does: quote,
// backslash and control characters escaped (\b \f \n \r \t, others as
// \u00XX), everything else as it is. It reports false, having written
// part of s, when s holds U+FFFD: perhaps a lone surrogate, which
// JSON.stringify escapes and the conversion of a goja string to UTF-8
// has replaced, so the caller gives up.
func appendQuoted(b []byte, s string) ([]byte, bool) {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := plainLen(s); i < len(s); i++ {
		c := s[i]
		if plainByte[c] {
			continue
		}
		if c >= utf8.RuneSelf {
			if c == 0xef && strings.HasPrefix(s[i:], "\uFFFD") {
				return b, false
			}
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"'), true
}
