package filter

import (
	"fmt"
	"strconv"
)

// pnode is one value of a pattern document, with its byte offset.
type pnode struct {
	kind  byte // '{', '[', '"', 'n' (number), 't', 'f', 'l' (null)
	off   int
	str   string
	num   float64
	keys  []string
	koffs []int
	elems []*pnode // members' values (objects) or elements (arrays)
}

// parser reads a pattern document into pnodes, with the exact offset and
// path of its first error.
type parser struct {
	d []byte
}

func (p *parser) errAt(path string, off int, format string, args ...any) *PatternError {
	return &PatternError{Path: path, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) value(i int, path string, depth int) (*pnode, int, error) {
	d := p.d
	i = skipWS(d, i)
	if i >= len(d) {
		return nil, 0, p.errAt(path, i, "unexpected end of pattern")
	}
	switch c := d[i]; {
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return nil, 0, p.errAt(path, i, "pattern nested deeper than %d", MaxDepth)
		}
		if c == '{' {
			return p.object(i, path, depth+1)
		}
		return p.array(i, path, depth+1)
	case c == '"':
		end, _, ok := scanString(d, i)
		if !ok {
			return nil, 0, p.errAt(path, i, "invalid string")
		}
		return &pnode{kind: '"', off: i, str: string(appendUnescaped(nil, d[i+1:end-1]))}, end, nil
	case c == '-' || ('0' <= c && c <= '9'):
		end, ok := scanNumber(d, i)
		if !ok {
			return nil, 0, p.errAt(path, i, "invalid number")
		}
		f, err := strconv.ParseFloat(string(d[i:end]), 64)
		if err != nil {
			return nil, 0, p.errAt(path, i, "number %s out of range", d[i:end])
		}
		return &pnode{kind: 'n', off: i, num: f}, end, nil
	default:
		end, ok := scanLiteral(d, i)
		if !ok {
			return nil, 0, p.errAt(path, i, "invalid JSON value")
		}
		k := d[i]
		if k == 'n' {
			k = 'l'
		}
		return &pnode{kind: k, off: i}, end, nil
	}
}

func (p *parser) object(i int, path string, depth int) (*pnode, int, error) {
	d := p.d
	n := &pnode{kind: '{', off: i}
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == '}' {
		return n, i + 1, nil
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return nil, 0, p.errAt(path, i, "expected a member name in quotes")
		}
		end, _, ok := scanString(d, i)
		if !ok {
			return nil, 0, p.errAt(path, i, "invalid string")
		}
		key := string(appendUnescaped(nil, d[i+1:end-1]))
		kpath := joinPath(path, key)
		for _, k := range n.keys {
			if k == key {
				return nil, 0, p.errAt(kpath, i, "duplicate member %q", key)
			}
		}
		n.keys = append(n.keys, key)
		n.koffs = append(n.koffs, i)
		i = skipWS(d, end)
		if i >= len(d) || d[i] != ':' {
			return nil, 0, p.errAt(kpath, i, "expected ':'")
		}
		v, end2, err := p.value(i+1, kpath, depth)
		if err != nil {
			return nil, 0, err
		}
		n.elems = append(n.elems, v)
		i = skipWS(d, end2)
		if i < len(d) && d[i] == ',' {
			i = skipWS(d, i+1)
			continue
		}
		if i < len(d) && d[i] == '}' {
			return n, i + 1, nil
		}
		return nil, 0, p.errAt(path, i, "expected ',' or '}'")
	}
}

func (p *parser) array(i int, path string, depth int) (*pnode, int, error) {
	d := p.d
	n := &pnode{kind: '[', off: i}
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == ']' {
		return n, i + 1, nil
	}
	for {
		v, end, err := p.value(i, indexPath(path, len(n.elems)), depth)
		if err != nil {
			return nil, 0, err
		}
		n.elems = append(n.elems, v)
		i = skipWS(d, end)
		if i < len(d) && d[i] == ',' {
			i++
			continue
		}
		if i < len(d) && d[i] == ']' {
			return n, i + 1, nil
		}
		return nil, 0, p.errAt(path, i, "expected ',' or ']'")
	}
}

// joinPath names the member key of the value at path: detail.size, or
// detail["a.b"] when the name is not a plain word.
func joinPath(path, key string) string {
	plain := key != ""
	for _, c := range key {
		if c == '.' || c == '[' || c == ']' || c == '"' || c == ' ' || c < 0x20 {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return path + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func kindName(k byte) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "a number"
	case 't', 'f':
		return "a boolean"
	}
	return "null"
}
