package transform

import (
	"encoding/json"
	"errors"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// errNotJSON is what decode answers for anything but one JSON value.
var errNotJSON = errors.New("not valid JSON")

// maxDepth bounds the nesting of a decoded value (a check, not a
// limitation met in practice: JSON.parse has none, encoding/json 10000).
const maxDepth = 1000

// decoder turns JSON text into native JavaScript values of one runtime,
// as JSON.parse would (plain objects and arrays, members defined as own
// data properties, so "__proto__" is a member and no setter of a
// prototype runs), without the token stream of encoding/json that goja's
// JSON.parse uses: that is two thirds of the cost of a call (see
// BenchmarkInput). It accepts exactly what json.Valid accepts
// (FuzzDecode checks that).
//
// It reads a string copy of the input, made once. When the input is at
// most maxShared bytes, the strings of members and values are slices of
// it rather than one allocation each; then a string a script keeps (in a
// global cache, say) keeps the whole text alive, so a large input gets a
// copy per string instead.
//
// An object is built without a prototype and given Object.prototype once
// its members are in: members are then added by a plain assignment, which
// on an object without prototype can meet no setter and no read-only
// property (not even __proto__'s), so it defines them exactly as
// DefineDataProperty does, without the property descriptor that call
// allocates and throws away for each member.
//
// When the input is shared and ASCII, as events mostly are, a string
// value without escapes is a substring of the whole input made a goja
// string once (text): one allocation per value instead of the two of
// ToValue (the string boxed as an interface, then as a goja string).
type decoder struct {
	vm    *goja.Runtime
	proto *goja.Object // Object.prototype
	b     string
	share bool        // strings may be slices of b
	text  goja.String // b, when shared and ASCII; else nil
	i     int
	depth int
	items []any // scratch for arrays, reused
}

// maxShared is the largest input whose strings share its text: what a
// kept string may keep alive at most.
const maxShared = 4 << 10

// decode parses b, one JSON value, in vm.
func decode(vm *goja.Runtime, b []byte) (goja.Value, error) {
	return decodeIn(vm, objectPrototype(vm), b)
}

// objectPrototype is vm's Object.prototype, the intrinsic one whatever a
// script did to the global Object.
func objectPrototype(vm *goja.Runtime) *goja.Object {
	return vm.NewObject().Prototype()
}

// decodeIn is decode with vm's Object.prototype known.
func decodeIn(vm *goja.Runtime, proto *goja.Object, b []byte) (goja.Value, error) {
	d := decoder{vm: vm, proto: proto, b: string(b), share: len(b) <= maxShared}
	if d.share && isASCII(d.b) {
		// Substring of an ASCII goja string slices it; ToValue's
		// string is scanned for non-ASCII on first use, so scan it now.
		t := vm.ToValue(d.b).(goja.String)
		d.text = t.Substring(0, t.Length())
	}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	if d.skip(); d.i != len(b) {
		return nil, errNotJSON
	}
	return v, nil
}

// next is the byte at d.i, or 0 at the end.
func (d *decoder) next() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// literal consumes lit at d.i.
func (d *decoder) literal(lit string) bool {
	if len(d.b)-d.i < len(lit) || d.b[d.i:d.i+len(lit)] != lit {
		return false
	}
	d.i += len(lit)
	return true
}

// number consumes a JSON number at d.i: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() (string, bool) {
	start := d.i
	if d.next() == '-' {
		d.i++
	}
	switch c := d.next(); {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return "", false
	}
	if d.next() == '.' {
		d.i++
		if d.digits() == 0 {
			return "", false
		}
	}
	if c := d.next(); c == 'e' || c == 'E' {
		d.i++
		if c := d.next(); c == '+' || c == '-' {
			d.i++
		}
		if d.digits() == 0 {
			return "", false
		}
	}
	return d.b[start:d.i], true
}

func (d *decoder) digits() int {
	n := 0
	for c := d.next(); c >= '0' && c <= '9'; c = d.next() {
		d.i++
		n++
	}
	return n
}

func (d *decoder) skip() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value() (goja.Value, error) {
	d.skip()
	switch c := d.next(); {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		start := d.i + 1
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		// Without escapes (each makes the string shorter than its
		// text), s is the input between the quotes.
		if end := d.i - 1; d.text != nil && len(s) == end-start {
			return d.text.Substring(start, end), nil
		}
		return d.vm.ToValue(s), nil
	case c == 't' && d.literal("true"):
		return d.vm.ToValue(true), nil
	case c == 'f' && d.literal("false"):
		return d.vm.ToValue(false), nil
	case c == 'n' && d.literal("null"):
		return goja.Null(), nil
	default:
		num, ok := d.number()
		if !ok {
			return nil, errNotJSON
		}
		// Integers that fit are the common case, and exact.
		if n, err := strconv.ParseInt(num, 10, 64); err == nil && n > -1<<53 && n < 1<<53 && (n != 0 || num[0] != '-') {
			return d.vm.ToValue(n), nil
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			// Out of range: JSON.parse gives ±Infinity, as ParseFloat
			// does with its error.
			var ne *strconv.NumError
			if !errors.As(err, &ne) || ne.Err != strconv.ErrRange {
				return nil, errNotJSON
			}
		}
		return d.vm.ToValue(f), nil
	}
}

// str reads the string at d.i (at its opening quote).
func (d *decoder) str() (string, error) {
	b, i := d.b, d.i
	if i >= len(b) || b[i] != '"' {
		return "", errNotJSON
	}
	start := i
	i++
	// Most strings are short, printable ASCII without escapes: a byte
	// table loop (measured cheaper here than plainLen's words).
	for i < len(b) && plainByte[b[i]] {
		i++
	}
	if i < len(b) && b[i] == '"' {
		d.i = i + 1
		return d.own(b[start+1 : i]), nil
	}
	for {
		if i >= len(b) {
			return "", errNotJSON
		}
		c := b[i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			return "", errNotJSON
		}
		if c == '\\' {
			i += 2 // json.Unmarshal checks the escape
			continue
		}
		i++
	}
	i++
	d.i = i
	raw := b[start:i]
	if c := raw[1 : len(raw)-1]; utf8.ValidString(c) && !strings.Contains(c, `\`) {
		return d.own(c), nil
	}
	// Escapes or invalid UTF-8 (replaced by U+FFFD, as JSON.parse does).
	var s string
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return "", errNotJSON
	}
	return s, nil
}

// own is s, a slice of the input, or a copy when strings do not share it.
func (d *decoder) own(s string) string {
	if d.share {
		return s
	}
	return strings.Clone(s)
}

// plainLen is the length of the longest prefix of s of plain bytes
// (plainByte), found eight bytes at a time while they last.
func plainLen(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		q := x ^ (ones * '"')
		bs := x ^ (ones * '\\')
		// The high bit of each byte below 0x20, equal to the quote or the
		// backslash (then zero in q or bs), or from 0x80 up. A borrow
		// can mark a byte above a marked one, never below: the lowest
		// mark is the first byte that is not plain.
		if m := ((x-ones*0x20)&^x | (q-ones)&^q | (bs-ones)&^bs | x) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(s) && plainByte[s[i]] {
		i++
	}
	return i
}

// isASCII tells whether s is all ASCII.
func isASCII(s string) bool {
	var or uint64
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		or |= uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
	}
	for ; i < len(s); i++ {
		or |= uint64(s[i])
	}
	return or&0x8080808080808080 == 0
}

// plainByte tells the bytes a JSON string holds as they are in the
// common case: printable ASCII but the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (d *decoder) object() (goja.Value, error) {
	if d.depth++; d.depth > maxDepth {
		return nil, errNotJSON
	}
	d.i++ // {
	d.skip()
	if d.next() == '}' {
		d.i++
		d.depth--
		return d.vm.NewObject(), nil
	}
	o := d.vm.CreateObject(nil)
	for {
		d.skip()
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.skip()
		if d.next() != ':' {
			return nil, errNotJSON
		}
		d.i++
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		if err := o.Set(k, v); err != nil {
			return nil, err
		}
		d.skip()
		switch d.next() {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			if err := o.SetPrototype(d.proto); err != nil {
				return nil, err
			}
			return o, nil
		default:
			return nil, errNotJSON
		}
	}
}

func (d *decoder) array() (goja.Value, error) {
	if d.depth++; d.depth > maxDepth {
		return nil, errNotJSON
	}
	d.i++ // [
	mark := len(d.items)
	d.skip()
	if d.next() == ']' {
		d.i++
		d.depth--
		return d.vm.NewArray(), nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.items = append(d.items, v)
		d.skip()
		c := d.next()
		if c != ',' && c != ']' {
			return nil, errNotJSON
		}
		d.i++
		if c == ']' {
			break
		}
	}
	a := d.vm.NewArray(d.items[mark:]...)
	clear(d.items[mark:])
	d.items = d.items[:mark]
	d.depth--
	return a, nil
}
