package filter

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds on a pattern. A pattern beyond them is refused by Compile, so a
// hostile pattern costs at most this much memory to hold and a bounded
// amount of work per event value.
const (
	// MaxPatternBytes is the largest pattern document, in bytes.
	MaxPatternBytes = 64 << 10
	// MaxDepth is how deeply the pattern document's objects and arrays
	// may nest (the outermost object is depth 1).
	MaxDepth = 32
	// MaxConditions bounds the conditions of a whole pattern: every
	// element of a field's array counts one, every value in an
	// anything-but list or equals-ignore-case list one more.
	MaxConditions = 1024
	// MaxFieldsPerObject bounds the fields matched in one event object:
	// those of a pattern object plus those of its $or alternatives.
	MaxFieldsPerObject = 256
)

// PatternError is Compile's error: what is wrong and where.
type PatternError struct {
	// Path is the place in the pattern, in the form
	// detail.size[0].numeric[2]; a member whose name is not a plain word
	// is written ["name"]. Empty for the pattern as a whole.
	Path string
	// Offset is the byte offset in the pattern of the value (or member
	// name) at fault, or of the syntax error.
	Offset int
	// Reason says what is wrong.
	Reason string
}

func (e *PatternError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("filter pattern: %s (offset %d)", e.Reason, e.Offset)
	}
	return fmt.Sprintf("filter pattern: %s: %s (offset %d)", e.Path, e.Reason, e.Offset)
}

// Filter is a compiled pattern. It is immutable and safe for concurrent
// use.
type Filter struct {
	root *objNode
}

// Compile checks an event pattern and compiles it into a Filter. Any
// error is a *PatternError.
func Compile(pattern []byte) (*Filter, error) {
	if len(pattern) > MaxPatternBytes {
		return nil, &PatternError{Offset: MaxPatternBytes, Reason: fmt.Sprintf("pattern larger than %d bytes", MaxPatternBytes)}
	}
	p := parser{d: pattern}
	root, end, err := p.value(0, "", 0)
	if err != nil {
		return nil, err
	}
	if end = skipWS(pattern, end); end != len(pattern) {
		return nil, &PatternError{Offset: end, Reason: "data after the pattern"}
	}
	if root.kind != '{' {
		return nil, &PatternError{Offset: root.off, Reason: "a pattern is a JSON object, not " + kindName(root.kind)}
	}
	var c compiler
	n, err := c.object(root, "")
	if err != nil {
		return nil, err
	}
	return &Filter{root: n}, nil
}

// MustCompile is Compile for patterns known to be valid; it panics on an
// error.
func MustCompile(pattern string) *Filter {
	f, err := Compile([]byte(pattern))
	if err != nil {
		panic(err)
	}
	return f
}

// bitset holds one bit per field of an object node.
type bitset [MaxFieldsPerObject / 64]uint64

func (b *bitset) set(i int)      { b[i>>6] |= 1 << (i & 63) }
func (b *bitset) clear(i int)    { b[i>>6] &^= 1 << (i & 63) }
func (b *bitset) has(i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b *bitset) put(i int, v bool) {
	b.clear(i)
	if v {
		b.set(i)
	}
}

// objNode matches one level of objects in the event: every field named
// at this level, by the pattern object and by its $or alternatives, is a
// slot; a root says how the slots' results combine. A node compiled from
// a pattern object has one root; a node merged from the nested objects
// that several slots of one name hold (see merge) has one per slot, and
// its results are a bit each.
type objNode struct {
	slots      []slot
	groups     []group        // the slots of each distinct name
	byName     map[string]int // name → group, when there are many names
	names      uint64         // keyBit of every name: most keys of an event are none of them
	roots      []*conj        // at most 64
	root       [1]*conj       // roots' array for a compiled node: no allocation of its own
	absentMask bitset         // the slots that match an absent field
	absent     uint64         // the roots' results on no object at all
	fffd       bool           // a name holds U+FFFD: names with invalid UTF-8 are decoded
}

type slot struct {
	name   string
	leaf   *leaf    // a field's conditions, or
	obj    *objNode // a nested pattern object
	absent bool     // the result when the field is absent
}

type group struct {
	name  string
	slots []int
	// merged, when the slots (two or more) all hold nested objects:
	// their objects as one node, so that the event's value is read once
	// for all of them. Patterns get these from $or alternatives that name
	// the same object ({"$or":[{"data":{…}},{"data":{…}}]}).
	merged *objNode
}

// conj is an object pattern: all of must, and one alternative of each $or.
type conj struct {
	must bitset
	ors  [][]*conj
}

func (c *conj) eval(v *bitset) bool {
	for w := range v {
		if v[w]&c.must[w] != c.must[w] {
			return false
		}
	}
	for _, alts := range c.ors {
		ok := false
		for _, a := range alts {
			if a.eval(v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

type compiler struct {
	conds int
}

func errAt(path string, off int, format string, args ...any) *PatternError {
	return &PatternError{Path: path, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

func (c *compiler) object(p *pnode, path string) (*objNode, error) {
	if len(p.keys) == 0 {
		if path == "" {
			return nil, errAt(path, p.off, "empty pattern")
		}
		return nil, errAt(path, p.off, "empty object")
	}
	n := &objNode{}
	root, err := c.conj(n, p, path)
	if err != nil {
		return nil, err
	}
	n.root[0] = root
	n.roots = n.root[:]
	n.index()
	return n, nil
}

// index fills in what object() reads besides the slots and roots.
func (n *objNode) index() {
	for i, s := range n.slots {
		if s.absent {
			n.absentMask.set(i)
		}
	}
	for j, r := range n.roots {
		if r.eval(&n.absentMask) {
			n.absent |= 1 << j
		}
	}
	index := map[string]int{}
	for i, s := range n.slots {
		g, ok := index[s.name]
		if !ok {
			g = len(n.groups)
			index[s.name] = g
			n.groups = append(n.groups, group{name: s.name})
		}
		n.groups[g].slots = append(n.groups[g].slots, i)
		n.names |= keyBit([]byte(s.name))
		if strings.ContainsRune(s.name, utf8.RuneError) {
			n.fffd = true
		}
	}
	if len(n.groups) > 8 {
		n.byName = index
	}
	for g := range n.groups {
		n.groups[g].merged = n.merge(n.groups[g].slots)
	}
}

// merge returns the objects of slots as one node, or nil if the slots
// are not two or more nested objects or too many to merge (more than 64
// or, together, more than a node's MaxFieldsPerObject slots).
func (n *objNode) merge(slots []int) *objNode {
	if len(slots) < 2 || len(slots) > 64 {
		return nil
	}
	total := 0
	for _, s := range slots {
		if n.slots[s].obj == nil {
			return nil
		}
		total += len(n.slots[s].obj.slots)
	}
	if total > MaxFieldsPerObject {
		return nil
	}
	m := &objNode{}
	for _, s := range slots {
		x := n.slots[s].obj
		m.roots = append(m.roots, x.roots[0].shift(len(m.slots)))
		m.slots = append(m.slots, x.slots...)
	}
	m.index()
	return m
}

// shift returns c with its slot numbers moved up by off.
func (c *conj) shift(off int) *conj {
	d := &conj{}
	for i := range MaxFieldsPerObject - off {
		if c.must.has(i) {
			d.must.set(i + off)
		}
	}
	for _, alts := range c.ors {
		shifted := make([]*conj, len(alts))
		for k, a := range alts {
			shifted[k] = a.shift(off)
		}
		d.ors = append(d.ors, shifted)
	}
	return d
}

func (c *compiler) conj(n *objNode, p *pnode, path string) (*conj, error) {
	cj := &conj{}
	for k, key := range p.keys {
		v := p.elems[k]
		kpath := joinPath(path, key)
		if key == "$or" {
			if v.kind != '[' || len(v.elems) < 2 {
				return nil, errAt(kpath, v.off, "$or takes an array of at least two patterns")
			}
			alts := make([]*conj, 0, len(v.elems))
			for j, a := range v.elems {
				apath := indexPath(kpath, j)
				if a.kind != '{' {
					return nil, errAt(apath, a.off, "an $or alternative is a pattern object, not %s", kindName(a.kind))
				}
				if len(a.keys) == 0 {
					return nil, errAt(apath, a.off, "empty pattern")
				}
				ac, err := c.conj(n, a, apath)
				if err != nil {
					return nil, err
				}
				alts = append(alts, ac)
			}
			cj.ors = append(cj.ors, alts)
			continue
		}
		idx := len(n.slots)
		if idx >= MaxFieldsPerObject {
			return nil, errAt(kpath, p.koffs[k], "more than %d fields in one object (with its $or alternatives)", MaxFieldsPerObject)
		}
		s := slot{name: key}
		switch v.kind {
		case '{':
			child, err := c.object(v, kpath)
			if err != nil {
				return nil, err
			}
			s.obj, s.absent = child, child.absent&1 != 0
		case '[':
			l, err := c.leaf(v, kpath)
			if err != nil {
				return nil, err
			}
			s.leaf, s.absent = l, l.existsFalse
		default:
			return nil, errAt(kpath, v.off, "a field takes an array of conditions or a nested pattern object, not %s", kindName(v.kind))
		}
		n.slots = append(n.slots, s)
		cj.must.set(idx)
	}
	return cj, nil
}

func (c *compiler) count(path string, off int) error {
	c.conds++
	if c.conds > MaxConditions {
		return errAt(path, off, "more than %d conditions in the pattern", MaxConditions)
	}
	return nil
}

const (
	litTrue = 1 << iota
	litFalse
	litNull
)

func (c *compiler) leaf(v *pnode, path string) (*leaf, error) {
	if len(v.elems) == 0 {
		return nil, errAt(path, v.off, "empty array of conditions")
	}
	l := &leaf{}
	for i, e := range v.elems {
		epath := indexPath(path, i)
		if err := c.count(epath, e.off); err != nil {
			return nil, err
		}
		switch e.kind {
		case '"':
			l.strs = append(l.strs, e.str)
		case 'n':
			l.nums = append(l.nums, e.num)
		case 't':
			l.lits |= litTrue
		case 'f':
			l.lits |= litFalse
		case 'l':
			l.lits |= litNull
		case '{':
			if err := c.operator(l, e, epath); err != nil {
				return nil, err
			}
		default:
			return nil, errAt(epath, e.off, "a condition is a value or an operator object, not an array")
		}
	}
	if len(l.strs) > 8 {
		l.strSet = make(map[string]struct{}, len(l.strs))
		for _, s := range l.strs {
			l.strSet[s] = struct{}{}
		}
	}
	l.tests = len(l.strs) > 0 || len(l.nums) > 0 || l.lits != 0 || len(l.conds) > 0
	l.needNum = len(l.nums) > 0
	for i := range l.conds {
		if cd := &l.conds[i]; cd.op == opNumeric || len(cd.nums) > 0 {
			l.needNum = true
		}
	}
	l.fffd = l.hasFFFD()
	return l, nil
}

func (c *compiler) operator(l *leaf, e *pnode, path string) error {
	if len(e.keys) != 1 {
		return errAt(path, e.off, "an operator object has exactly one member, not %d", len(e.keys))
	}
	op, v := e.keys[0], e.elems[0]
	opath := joinPath(path, op)
	switch op {
	case "exists":
		if v.kind != 't' && v.kind != 'f' {
			return errAt(opath, v.off, "exists takes true or false, not %s", kindName(v.kind))
		}
		if v.kind == 't' {
			l.existsTrue = true
		} else {
			l.existsFalse = true
		}
		return nil
	case "prefix", "suffix":
		plain, fold := opPrefix, opPrefixFold
		if op == "suffix" {
			plain, fold = opSuffix, opSuffixFold
		}
		if v.kind == '"' {
			l.conds = append(l.conds, cond{op: plain, s: v.str})
			return nil
		}
		if v.kind == '{' && len(v.keys) == 1 && v.keys[0] == "equals-ignore-case" {
			w := v.elems[0]
			if w.kind != '"' {
				return errAt(joinPath(opath, "equals-ignore-case"), w.off, "equals-ignore-case takes a string, not %s", kindName(w.kind))
			}
			l.conds = append(l.conds, cond{op: fold, s: w.str})
			return nil
		}
		return errAt(opath, v.off, "%s takes a string or {\"equals-ignore-case\": string}", op)
	case "equals-ignore-case":
		if v.kind != '"' {
			return errAt(opath, v.off, "equals-ignore-case takes a string, not %s", kindName(v.kind))
		}
		l.conds = append(l.conds, cond{op: opEqFold, strs: []string{v.str}})
		return nil
	case "wildcard":
		if v.kind != '"' {
			return errAt(opath, v.off, "wildcard takes a string, not %s", kindName(v.kind))
		}
		w, reason := compileWildcard(v.str)
		if reason != "" {
			return errAt(opath, v.off, "%s", reason)
		}
		l.conds = append(l.conds, cond{op: opWildcard, wc: w})
		return nil
	case "cidr":
		if v.kind != '"' {
			return errAt(opath, v.off, "cidr takes a string, not %s", kindName(v.kind))
		}
		pfx, err := netip.ParsePrefix(v.str)
		if err != nil {
			a, err2 := netip.ParseAddr(v.str)
			if err2 != nil || a.Zone() != "" {
				return errAt(opath, v.off, "cidr takes an IP address prefix like 10.0.0.0/24: %q", v.str)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		l.conds = append(l.conds, cond{op: opCIDR, pfx: pfx.Masked()})
		return nil
	case "numeric":
		cd, err := numeric(v, opath)
		if err != nil {
			return err
		}
		l.conds = append(l.conds, cd)
		return nil
	case "anything-but":
		cd, err := c.anythingBut(v, opath)
		if err != nil {
			return err
		}
		cd.neg = true
		l.conds = append(l.conds, cd)
		return nil
	}
	return errAt(opath, e.koffs[0], "unknown operator %q", op)
}

func (c *compiler) anythingBut(v *pnode, path string) (cond, error) {
	switch v.kind {
	case '"':
		return cond{op: opValues, strs: []string{v.str}}, nil
	case 'n':
		return cond{op: opValues, nums: []float64{v.num}}, nil
	case '[':
		if len(v.elems) == 0 {
			return cond{}, errAt(path, v.off, "anything-but takes a non-empty list")
		}
		cd := cond{op: opValues}
		for j, e := range v.elems {
			epath := indexPath(path, j)
			if j > 0 {
				if err := c.count(epath, e.off); err != nil {
					return cond{}, err
				}
			}
			switch e.kind {
			case '"':
				cd.strs = append(cd.strs, e.str)
			case 'n':
				cd.nums = append(cd.nums, e.num)
			default:
				return cond{}, errAt(epath, e.off, "anything-but lists strings or numbers, not %s", kindName(e.kind))
			}
		}
		return cd, nil
	case '{':
		if len(v.keys) != 1 {
			return cond{}, errAt(path, v.off, "an operator object has exactly one member, not %d", len(v.keys))
		}
		op, w := v.keys[0], v.elems[0]
		opath := joinPath(path, op)
		switch op {
		case "prefix", "suffix":
			if w.kind != '"' {
				return cond{}, errAt(opath, w.off, "%s takes a string, not %s", op, kindName(w.kind))
			}
			if op == "prefix" {
				return cond{op: opPrefix, s: w.str}, nil
			}
			return cond{op: opSuffix, s: w.str}, nil
		case "wildcard":
			if w.kind != '"' {
				return cond{}, errAt(opath, w.off, "wildcard takes a string, not %s", kindName(w.kind))
			}
			wc, reason := compileWildcard(w.str)
			if reason != "" {
				return cond{}, errAt(opath, w.off, "%s", reason)
			}
			return cond{op: opWildcard, wc: wc}, nil
		case "equals-ignore-case":
			switch w.kind {
			case '"':
				return cond{op: opEqFold, strs: []string{w.str}}, nil
			case '[':
				if len(w.elems) == 0 {
					return cond{}, errAt(opath, w.off, "equals-ignore-case takes a string or a non-empty list of strings")
				}
				cd := cond{op: opEqFold}
				for j, x := range w.elems {
					xpath := indexPath(opath, j)
					if j > 0 {
						if err := c.count(xpath, x.off); err != nil {
							return cond{}, err
						}
					}
					if x.kind != '"' {
						return cond{}, errAt(xpath, x.off, "equals-ignore-case lists strings, not %s", kindName(x.kind))
					}
					cd.strs = append(cd.strs, x.str)
				}
				return cd, nil
			}
			return cond{}, errAt(opath, w.off, "equals-ignore-case takes a string or a list of strings, not %s", kindName(w.kind))
		}
		return cond{}, errAt(opath, v.koffs[0], "unknown operator %q in anything-but", op)
	}
	return cond{}, errAt(path, v.off, "anything-but takes a string, a number, a list of them or an operator object, not %s", kindName(v.kind))
}

// numeric compiles ["<op>", n] or [">"|">=", lo, "<"|"<=", hi].
func numeric(v *pnode, path string) (cond, error) {
	if v.kind != '[' {
		return cond{}, errAt(path, v.off, "numeric takes an array like [\">\", 0, \"<=\", 5], not %s", kindName(v.kind))
	}
	if len(v.elems) != 2 && len(v.elems) != 4 {
		return cond{}, errAt(path, v.off, "numeric takes one or two operator-number pairs, not %d elements", len(v.elems))
	}
	cd := cond{op: opNumeric}
	for j := 0; j < len(v.elems); j += 2 {
		o, x := v.elems[j], v.elems[j+1]
		opath, xpath := indexPath(path, j), indexPath(path, j+1)
		if o.kind != '"' {
			return cond{}, errAt(opath, o.off, "expected an operator (=, <, <=, >, >=), not %s", kindName(o.kind))
		}
		if x.kind != 'n' {
			return cond{}, errAt(xpath, x.off, "expected a number, not %s", kindName(x.kind))
		}
		switch o.str {
		case "=":
			if len(v.elems) != 2 {
				return cond{}, errAt(opath, o.off, "\"=\" stands alone in numeric")
			}
			cd.lo, cd.hi, cd.hasLo, cd.hasHi, cd.loIncl, cd.hiIncl = x.num, x.num, true, true, true, true
		case ">", ">=":
			if j != 0 {
				return cond{}, errAt(opath, o.off, "the second bound must be an upper bound (< or <=)")
			}
			cd.lo, cd.hasLo, cd.loIncl = x.num, true, o.str == ">="
		case "<", "<=":
			if j == 0 && len(v.elems) == 4 {
				return cond{}, errAt(opath, o.off, "with two bounds the first must be a lower bound (> or >=)")
			}
			cd.hi, cd.hasHi, cd.hiIncl = x.num, true, o.str == "<="
		default:
			return cond{}, errAt(opath, o.off, "unknown numeric operator %q (=, <, <=, >, >=)", o.str)
		}
	}
	if cd.hasLo && cd.hasHi && (cd.lo > cd.hi || (cd.lo == cd.hi && !(cd.loIncl && cd.hiIncl))) {
		x := v.elems[len(v.elems)-1]
		return cond{}, errAt(indexPath(path, len(v.elems)-1), x.off, "empty range: %s is not above the lower bound %s", fmtNum(cd.hi), fmtNum(cd.lo))
	}
	return cd, nil
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// compileWildcard splits a wildcard pattern at its unescaped stars. In it
// \* is a literal star and \\ a literal backslash; any other backslash
// and two stars in a row are errors.
func compileWildcard(s string) (*wildcard, string) {
	w := &wildcard{}
	var seg []byte
	prevStar := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '*' && s[i+1] != '\\') {
				return nil, fmt.Sprintf("invalid escape at character %d of the wildcard (only \\* and \\\\)", i)
			}
			seg = append(seg, s[i+1])
			i++
			prevStar = false
		case '*':
			if prevStar {
				return nil, fmt.Sprintf("consecutive wildcard characters at character %d", i)
			}
			w.segs = append(w.segs, seg)
			seg = nil
			prevStar = true
		default:
			seg = append(seg, s[i])
			prevStar = false
		}
	}
	w.segs = append(w.segs, seg)
	return w, ""
}
