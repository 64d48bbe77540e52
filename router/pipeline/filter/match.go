package filter

import (
	"bytes"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// leaf holds the conditions of one field; a value matches if any does.
type leaf struct {
	existsTrue, existsFalse bool
	strs                    []string
	strSet                  map[string]struct{} // strs, when many
	nums                    []float64
	lits                    uint8 // litTrue | litFalse | litNull
	conds                   []cond
	tests                   bool // any condition on values (not only exists)
	needNum                 bool // a condition reads numbers' values
	fffd                    bool // a string of it holds U+FFFD
}

type opKind uint8

const (
	opPrefix opKind = iota
	opSuffix
	opPrefixFold
	opSuffixFold
	opEqFold   // any of strs
	opWildcard // wc
	opCIDR     // pfx
	opNumeric  // lo, hi
	opValues   // any of strs, nums
)

// cond is an operator condition; neg (anything-but) inverts it over every
// value of the field, strings or not.
type cond struct {
	op                           opKind
	neg                          bool
	s                            string
	strs                         []string
	nums                         []float64
	lo, hi                       float64
	hasLo, hasHi, loIncl, hiIncl bool
	wc                           *wildcard
	pfx                          netip.Prefix
}

type wildcard struct {
	segs [][]byte // the literal parts around the stars
}

func (l *leaf) hasFFFD() bool {
	has := func(s string) bool { return strings.ContainsRune(s, utf8.RuneError) }
	for _, s := range l.strs {
		if has(s) {
			return true
		}
	}
	for i := range l.conds {
		c := &l.conds[i]
		if has(c.s) {
			return true
		}
		for _, s := range c.strs {
			if has(s) {
				return true
			}
		}
		if c.wc != nil {
			for _, s := range c.wc.segs {
				if bytes.ContainsRune(s, utf8.RuneError) {
					return true
				}
			}
		}
	}
	return false
}

// Match reports whether the JSON document event matches the pattern. An
// event that is not one valid JSON object (as encoding/json reads it)
// matches nothing. Match reads event once, does not keep it and does not
// allocate for usual patterns.
func (f *Filter) Match(event []byte) bool {
	i := skipWS(event, 0)
	if i >= len(event) || event[i] != '{' {
		return false
	}
	end, r, ok := f.root.object(event, i, 1)
	return ok && r&1 != 0 && skipWS(event, end) == len(event)
}

// object matches the object at d[i] == '{' (at nesting depth depth)
// against n. It returns the index after it, the results (bit j for root
// j) and whether the object is valid JSON.
func (n *objNode) object(d []byte, i, depth int) (int, uint64, bool) {
	if depth > maxEventDepth {
		return 0, 0, false
	}
	var seen, hit bitset
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == '}' {
		return i + 1, n.absent, true
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return 0, 0, false
		}
		// Most names end in the eight bytes after the quote: read here,
		// without calling scanString. (With no special byte, tz is 64
		// and w>>64 is 0.)
		end, esc, ok := -1, false, true
		if len(d)-i > 8 {
			w := load64(d, i+1)
			if tz := bits.TrailingZeros64(special(w)); byte(w>>(tz&^7)) == '"' {
				end = i + 2 + tz>>3
			}
		}
		if end < 0 {
			if end, esc, ok = scanString(d, i); !ok {
				return 0, 0, false
			}
		}
		g := -1
		// A key without escapes (and valid UTF-8, unless a name holds
		// U+FFFD) reads as its bytes: when its keyBit is in none of the
		// names, it is none of them.
		if key := d[i+1 : end-1]; esc || n.fffd || n.names&keyBit(key) != 0 {
			g = n.lookup(key, esc)
		}
		if end < len(d) && d[end] == ':' {
			i = skipWS(d, end+1)
		} else {
			i = skipWS(d, end)
			if i >= len(d) || d[i] != ':' {
				return 0, 0, false
			}
			i = skipWS(d, i+1)
		}
		if g < 0 {
			if i, ok = skipValue(d, i, depth); !ok {
				return 0, 0, false
			}
		} else {
			// Of duplicate names the last counts, as for encoding/json.
			gr := &n.groups[g]
			ss := gr.slots
			if gr.merged != nil {
				var rs uint64
				if i, rs, ok = gr.merged.value(d, i, depth); !ok {
					return 0, 0, false
				}
				for k, s := range ss {
					seen.set(s)
					hit.put(s, rs>>k&1 != 0)
				}
			} else {
				start := i
				var r bool
				if i, r, ok = n.slots[ss[0]].value(d, i, depth); !ok {
					return 0, 0, false
				}
				seen.set(ss[0])
				hit.put(ss[0], r)
				for _, s := range ss[1:] {
					_, r, _ = n.slots[s].value(d[:i], start, depth)
					seen.set(s)
					hit.put(s, r)
				}
			}
		}
		if i < len(d) && d[i] == ',' {
			i = skipWS(d, i+1)
			continue
		}
		if i, ok = next(d, i, '}'); !ok {
			return 0, 0, false
		}
		if i < 0 {
			i = -i
			break
		}
	}
	for w := range hit {
		hit[w] = hit[w]&seen[w] | n.absentMask[w]&^seen[w]
	}
	var rs uint64
	for j, r := range n.roots {
		if r.eval(&hit) {
			rs |= 1 << j
		}
	}
	return i, rs, true
}

// keyBit hashes a member name to one bit of a word, from its length and
// first byte.
func keyBit(key []byte) uint64 {
	h := uint(len(key))
	if len(key) > 0 {
		h += uint(key[0]) << 2
	}
	return 1 << (h & 63)
}

// lookup finds the group of slots named key (raw, between the quotes).
func (n *objNode) lookup(key []byte, esc bool) int {
	if esc || (n.fffd && !utf8.Valid(key)) {
		var buf [128]byte
		return n.find(appendUnescaped(buf[:0], key))
	}
	return n.find(key)
}

func (n *objNode) find(key []byte) int {
	if n.byName != nil {
		if g, ok := n.byName[string(key)]; ok {
			return g
		}
		return -1
	}
	for g := range n.groups {
		if n.groups[g].name == string(key) {
			return g
		}
	}
	return -1
}

// value matches the value at d[i], in a container at depth, against the
// slot.
func (s *slot) value(d []byte, i, depth int) (int, bool, bool) {
	if s.obj != nil {
		end, r, ok := s.obj.value(d, i, depth)
		return end, r&1 != 0, ok
	}
	var st leafState
	end, ok := s.leaf.walk(d, i, depth, &st)
	if !ok {
		return 0, false, false
	}
	l := s.leaf
	return end, st.hit || (st.count > 0 && l.existsTrue) || (st.count == 0 && l.existsFalse), true
}

// value matches a nested pattern object against any value: an object is
// matched, an array matches if one of its elements does (root by root),
// anything else (and an empty array) is matched as if the field were
// absent.
func (n *objNode) value(d []byte, i, depth int) (int, uint64, bool) {
	if i >= len(d) {
		return 0, 0, false
	}
	switch d[i] {
	case '{':
		return n.object(d, i, depth+1)
	case '[':
		depth++
		if depth > maxEventDepth {
			return 0, 0, false
		}
		i = skipWS(d, i+1)
		if i < len(d) && d[i] == ']' {
			return i + 1, n.absent, true
		}
		var res uint64
		all := uint64(1)<<len(n.roots) - 1
		for {
			var ok bool
			if res == all {
				i, ok = skipValue(d, i, depth)
			} else {
				var r uint64
				i, r, ok = n.value(d, i, depth)
				res |= r
			}
			if !ok {
				return 0, 0, false
			}
			if i, ok = next(d, i, ']'); !ok {
				return 0, 0, false
			}
			if i < 0 {
				return -i, res, true
			}
		}
	}
	end, ok := skipValue(d, i, depth)
	return end, n.absent, ok
}

type leafState struct {
	count int  // leaf values seen (not objects, not arrays)
	hit   bool // a condition matched one
}

// walk reads the value at d[i] for a field's conditions: arrays are
// flattened, objects in them skipped.
func (l *leaf) walk(d []byte, i, depth int, st *leafState) (int, bool) {
	if i >= len(d) {
		return 0, false
	}
	switch c := d[i]; {
	case c == '"':
		end, esc, ok := scanString(d, i)
		if !ok {
			return 0, false
		}
		st.count++
		if !st.hit && l.tests {
			st.hit = l.testString(d[i+1:end-1], esc)
		}
		return end, true
	case c == '[':
		depth++
		if depth > maxEventDepth {
			return 0, false
		}
		i = skipWS(d, i+1)
		if i < len(d) && d[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = l.walk(d, i, depth, st); !ok {
				return 0, false
			}
			if i, ok = next(d, i, ']'); !ok {
				return 0, false
			}
			if i < 0 {
				return -i, true
			}
		}
	case c == '{':
		return skipValue(d, i, depth)
	case c == '-' || ('0' <= c && c <= '9'):
		end, ok := scanNumber(d, i)
		if !ok {
			return 0, false
		}
		st.count++
		if !st.hit && l.tests {
			st.hit = l.testNumber(d[i:end])
		}
		return end, true
	default:
		end, ok := scanLiteral(d, i)
		if !ok {
			return 0, false
		}
		st.count++
		if !st.hit && l.tests {
			st.hit = l.testLiteral(c)
		}
		return end, true
	}
}

func (l *leaf) testString(raw []byte, esc bool) bool {
	s := raw
	// Without escapes the raw bytes compare like the decoded string: an
	// invalid UTF-8 byte decodes to U+FFFD, which only a condition
	// holding U+FFFD could match.
	if esc || (l.fffd && !utf8.Valid(raw)) {
		var buf [256]byte
		s = appendUnescaped(buf[:0], raw)
	}
	if l.strSet != nil {
		if _, ok := l.strSet[string(s)]; ok {
			return true
		}
	} else {
		for _, x := range l.strs {
			if x == string(s) {
				return true
			}
		}
	}
	for i := range l.conds {
		if l.conds[i].onString(s) {
			return true
		}
	}
	return false
}

func (l *leaf) testNumber(raw []byte) bool {
	var f float64
	if l.needNum {
		f = parseNumber(raw)
		for _, x := range l.nums {
			if x == f {
				return true
			}
		}
	}
	for i := range l.conds {
		if l.conds[i].onNumber(f) {
			return true
		}
	}
	return false
}

func (l *leaf) testLiteral(c byte) bool {
	switch {
	case c == 't' && l.lits&litTrue != 0, c == 'f' && l.lits&litFalse != 0, c == 'n' && l.lits&litNull != 0:
		return true
	}
	for i := range l.conds {
		if l.conds[i].neg {
			return true
		}
	}
	return false
}

// parseNumber reads a JSON number (valid, from scanNumber) as float64;
// beyond float64's range it is ±Inf.
func parseNumber(raw []byte) float64 {
	if len(raw) <= 15 {
		// Integers of up to 15 digits are exact: no need for strconv.
		neg, b := false, raw
		if b[0] == '-' {
			neg, b = true, b[1:]
		}
		var n int64
		j := 0
		for ; j < len(b) && '0' <= b[j] && b[j] <= '9'; j++ {
			n = n*10 + int64(b[j]-'0')
		}
		if j == len(b) {
			if neg {
				return -float64(n)
			}
			return float64(n)
		}
	}
	f, _ := strconv.ParseFloat(unsafe.String(unsafe.SliceData(raw), len(raw)), 64)
	return f
}

func (c *cond) onString(s []byte) bool {
	var r bool
	switch c.op {
	case opPrefix:
		r = len(s) >= len(c.s) && string(s[:len(c.s)]) == c.s
	case opSuffix:
		r = len(s) >= len(c.s) && string(s[len(s)-len(c.s):]) == c.s
	case opPrefixFold:
		r = hasPrefixFold(s, c.s)
	case opSuffixFold:
		r = hasSuffixFold(s, c.s)
	case opEqFold:
		for _, x := range c.strs {
			if hasPrefixFold(s, x) && utf8.RuneCount(s) == utf8.RuneCountInString(x) {
				r = true
				break
			}
		}
	case opWildcard:
		r = c.wc.match(s)
	case opCIDR:
		a, ok := parseAddr(s)
		r = ok && c.pfx.Contains(a)
	case opValues:
		for _, x := range c.strs {
			if x == string(s) {
				r = true
				break
			}
		}
	}
	return r != c.neg
}

func (c *cond) onNumber(f float64) bool {
	var r bool
	switch c.op {
	case opNumeric:
		r = (!c.hasLo || f > c.lo || (c.loIncl && f == c.lo)) &&
			(!c.hasHi || f < c.hi || (c.hiIncl && f == c.hi))
	case opValues:
		for _, x := range c.nums {
			if x == f {
				r = true
				break
			}
		}
	}
	return r != c.neg
}

// foldEq reports whether two runes are equal under Unicode simple case
// folding, as strings.EqualFold compares them.
func foldEq(a, b rune) bool {
	if a == b {
		return true
	}
	if a > b {
		a, b = b, a
	}
	if b < utf8.RuneSelf {
		return 'A' <= a && a <= 'Z' && b == a+'a'-'A'
	}
	r := unicode.SimpleFold(a)
	for r != a && r < b {
		r = unicode.SimpleFold(r)
	}
	return r == b
}

// hasPrefixFold compares the first runes of s with those of p under case
// folding. An invalid UTF-8 byte of s reads as U+FFFD, as it decodes.
func hasPrefixFold(s []byte, p string) bool {
	for _, pr := range p {
		if len(s) == 0 {
			return false
		}
		r, size := utf8.DecodeRune(s)
		if !foldEq(r, pr) {
			return false
		}
		s = s[size:]
	}
	return true
}

func hasSuffixFold(s []byte, p string) bool {
	skip := utf8.RuneCount(s) - utf8.RuneCountInString(p)
	if skip < 0 {
		return false
	}
	for ; skip > 0; skip-- {
		_, size := utf8.DecodeRune(s)
		s = s[size:]
	}
	return hasPrefixFold(s, p)
}

// match reports whether s matches the wildcard, in time linear in s (for
// the string searches): the first part must start s, the last end it,
// and the middle ones are found leftmost in order, which is enough with
// stars only.
func (w *wildcard) match(s []byte) bool {
	if len(w.segs) == 1 {
		return bytes.Equal(s, w.segs[0])
	}
	first, last := w.segs[0], w.segs[len(w.segs)-1]
	if len(s) < len(first)+len(last) || !bytes.HasPrefix(s, first) || !bytes.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, m := range w.segs[1 : len(w.segs)-1] {
		j := bytes.Index(s, m)
		if j < 0 {
			return false
		}
		s = s[j+len(m):]
	}
	return true
}

// parseAddr reads an IP address like netip.ParseAddr; IPv4 without
// allocating.
func parseAddr(s []byte) (netip.Addr, bool) {
	if bytes.IndexByte(s, ':') >= 0 {
		a, err := netip.ParseAddr(string(s))
		return a, err == nil
	}
	var ip [4]byte
	for k := range 4 {
		if k > 0 {
			if len(s) == 0 || s[0] != '.' {
				return netip.Addr{}, false
			}
			s = s[1:]
		}
		n, j := 0, 0
		for ; j < len(s) && j < 4 && '0' <= s[j] && s[j] <= '9'; j++ {
			n = n*10 + int(s[j]-'0')
		}
		if j == 0 || j > 3 || n > 255 || (j > 1 && s[0] == '0') {
			return netip.Addr{}, false
		}
		ip[k] = byte(n)
		s = s[j:]
	}
	if len(s) != 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}
