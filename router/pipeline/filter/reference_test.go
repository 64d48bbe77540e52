package filter

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// refMatch is the reference the matcher is tested against: the event and
// the pattern decoded by encoding/json, the pattern evaluated recursively
// by the rules of the package documentation. The pattern must be one
// Compile accepts.
func refMatch(pattern, event []byte) bool {
	if !json.Valid(event) {
		return false
	}
	var p, ev any
	if err := decodeNumbers(pattern, &p); err != nil {
		panic(err)
	}
	if err := decodeNumbers(event, &ev); err != nil {
		return false
	}
	if _, ok := ev.(map[string]any); !ok {
		return false
	}
	return refObject(p.(map[string]any), ev)
}

func decodeNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func refNum(n json.Number) float64 {
	f, _ := strconv.ParseFloat(string(n), 64)
	return f
}

// refObject: an object is matched field by field; an array if one of its
// elements matches; anything else (absent, a scalar, an empty array) as an
// object without fields.
func refObject(p map[string]any, v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, pv := range p {
			if k == "$or" {
				matched := false
				for _, alt := range pv.([]any) {
					if refObject(alt.(map[string]any), v) {
						matched = true
					}
				}
				if !matched {
					return false
				}
				continue
			}
			fv, present := v[k]
			if !refField(pv, fv, present) {
				return false
			}
		}
		return true
	case []any:
		if len(v) == 0 {
			return refObject(p, map[string]any{})
		}
		for _, e := range v {
			if refObject(p, e) {
				return true
			}
		}
		return false
	}
	return refObject(p, map[string]any{})
}

func refField(pv, fv any, present bool) bool {
	if sub, ok := pv.(map[string]any); ok {
		if !present {
			return refObject(sub, map[string]any{})
		}
		return refObject(sub, fv)
	}
	var values []any
	if present {
		values = flatten(fv, nil)
	}
	for _, c := range pv.([]any) {
		if m, ok := c.(map[string]any); ok {
			if e, ok := m["exists"]; ok {
				if e.(bool) == (len(values) > 0) {
					return true
				}
				continue
			}
		}
		for _, x := range values {
			if refCond(c, x) {
				return true
			}
		}
	}
	return false
}

func flatten(v any, out []any) []any {
	switch v := v.(type) {
	case map[string]any:
	case []any:
		for _, e := range v {
			out = flatten(e, out)
		}
	default:
		out = append(out, v)
	}
	return out
}

func refCond(c, x any) bool {
	switch c := c.(type) {
	case string:
		s, ok := x.(string)
		return ok && s == c
	case json.Number:
		n, ok := x.(json.Number)
		return ok && refNum(n) == refNum(c)
	case bool:
		b, ok := x.(bool)
		return ok && b == c
	case nil:
		return x == nil
	}
	m := c.(map[string]any)
	for op, arg := range m {
		s, isStr := x.(string)
		switch op {
		case "prefix", "suffix":
			if !isStr {
				return false
			}
			if p, ok := arg.(string); ok {
				if op == "prefix" {
					return strings.HasPrefix(s, p)
				}
				return strings.HasSuffix(s, p)
			}
			p := arg.(map[string]any)["equals-ignore-case"].(string)
			rs, n := []rune(s), len([]rune(p))
			if len(rs) < n {
				return false
			}
			if op == "prefix" {
				return strings.EqualFold(string(rs[:n]), p)
			}
			return strings.EqualFold(string(rs[len(rs)-n:]), p)
		case "equals-ignore-case":
			return isStr && strings.EqualFold(s, arg.(string))
		case "wildcard":
			return isStr && refWildcard(arg.(string)).MatchString(s)
		case "cidr":
			if !isStr {
				return false
			}
			pfx, err := netip.ParsePrefix(arg.(string))
			if err != nil {
				a := netip.MustParseAddr(arg.(string))
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
			a, err := netip.ParseAddr(s)
			return err == nil && pfx.Masked().Contains(a)
		case "numeric":
			n, ok := x.(json.Number)
			if !ok {
				return false
			}
			f := refNum(n)
			args := arg.([]any)
			for i := 0; i < len(args); i += 2 {
				b := refNum(args[i+1].(json.Number))
				var r bool
				switch args[i].(string) {
				case "=":
					r = f == b
				case "<":
					r = f < b
				case "<=":
					r = f <= b
				case ">":
					r = f > b
				case ">=":
					r = f >= b
				}
				if !r {
					return false
				}
			}
			return true
		case "anything-but":
			switch a := arg.(type) {
			case []any:
				for _, v := range a {
					if refCond(v, x) {
						return false
					}
				}
				return true
			case map[string]any:
				if l, ok := a["equals-ignore-case"].([]any); ok {
					for _, v := range l {
						if refCond(map[string]any{"equals-ignore-case": v}, x) {
							return false
						}
					}
					return true
				}
				return !refCond(a, x)
			}
			return !refCond(arg, x)
		}
		panic("reference: unknown operator " + op)
	}
	panic("reference: empty operator")
}

// refWildcard turns a wildcard into a regular expression.
func refWildcard(w string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	lit := ""
	for i := 0; i < len(w); i++ {
		switch w[i] {
		case '\\':
			i++
			lit += w[i : i+1]
		case '*':
			b.WriteString(regexp.QuoteMeta(lit) + ".*")
			lit = ""
		default:
			lit += w[i : i+1]
		}
	}
	b.WriteString(regexp.QuoteMeta(lit) + `\z`)
	return regexp.MustCompile(b.String())
}
