package filter

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// Random events and patterns over a small vocabulary, so that they meet:
// the matcher must agree with the reference on every pair.

var (
	genNames = []string{"a", "b", "c", "\\u0061", "é", "$or"}
	genStrs  = []string{`""`, `"x"`, `"X"`, `"xy"`, `"abc"`, `"ABC"`, `"a*c"`, `"\u00e9t\u00E9"`, `"été"`, `"ÉTÉ"`,
		`"10.0.0.7"`, `"10.0.1.7"`, `"::1"`, `"2001:db8::1"`, `"\ud83d\ude00"`, `"😀"`, `"\ud800"`, `"\ufffd"`, "\"\xff\"",
		`"a\"b"`, `"a\\b"`, `"5"`, `"null"`, `"ſ"`, `"K"`, `"k"`}
	genNums = []string{"0", "-0", "5", "5.0", "5e0", "0.5e1", "50E-1", "-5", "1e400", "-1e400", "2.5", "1e-400", "12345678901234567890", "0.1"}
	genLits = []string{"true", "false", "null"}
)

func genEventValue(r *rand.Rand, depth int) string {
	switch k := r.IntN(10); {
	case k < 3:
		return genStrs[r.IntN(len(genStrs))]
	case k < 5:
		return genNums[r.IntN(len(genNums))]
	case k < 6:
		return genLits[r.IntN(len(genLits))]
	case k < 8 && depth < 3:
		n := r.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = genEventValue(r, depth+1)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case depth < 3:
		return genEventObject(r, depth+1)
	}
	return genStrs[r.IntN(len(genStrs))]
}

func genEventObject(r *rand.Rand, depth int) string {
	n := r.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"` + genNames[r.IntN(len(genNames))] + `":` + genEventValue(r, depth)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

var genConds = []string{
	`{"prefix":"a"}`, `{"prefix":""}`, `{"prefix":"é"}`, `{"prefix":{"equals-ignore-case":"A"}}`, `{"prefix":{"equals-ignore-case":"éT"}}`,
	`{"suffix":"c"}`, `{"suffix":"\u00e9"}`, `{"suffix":{"equals-ignore-case":"BC"}}`, `{"suffix":{"equals-ignore-case":"k"}}`,
	`{"equals-ignore-case":"abc"}`, `{"equals-ignore-case":"été"}`, `{"equals-ignore-case":"k"}`, `{"equals-ignore-case":"s"}`,
	`{"anything-but":"x"}`, `{"anything-but":5}`, `{"anything-but":["x","abc",5]}`, `{"anything-but":{"prefix":"a"}}`,
	`{"anything-but":{"suffix":"y"}}`, `{"anything-but":{"equals-ignore-case":["X","abc"]}}`, `{"anything-but":{"wildcard":"a*"}}`,
	`{"numeric":[">",0]}`, `{"numeric":[">=",0,"<=",5]}`, `{"numeric":["=",5]}`, `{"numeric":["<",-1]}`, `{"numeric":[">",1e300]}`,
	`{"exists":true}`, `{"exists":false}`, `{"wildcard":"a*c"}`, `{"wildcard":"*"}`, `{"wildcard":"a\\*c"}`, `{"wildcard":"*b*"}`, `{"wildcard":"x*"}`,
	`{"cidr":"10.0.0.0/24"}`, `{"cidr":"::/0"}`, `{"cidr":"10.0.0.7"}`,
	`"x"`, `"abc"`, `"été"`, `"\ufffd"`, `"😀"`, `5`, `-0`, `2.5`, `true`, `false`, `null`, `"5"`,
}

func genPattern(r *rand.Rand, depth int) string {
	n := 1 + r.IntN(3)
	parts := make([]string, 0, n)
	used := map[string]bool{}
	for range n {
		name := genNames[r.IntN(len(genNames)-1)]
		if r.IntN(8) == 0 && depth < 3 && !used["$or"] {
			used["$or"] = true
			parts = append(parts, `"$or":[`+genPattern(r, depth+1)+`,`+genPattern(r, depth+1)+`]`)
			continue
		}
		if used[name] {
			continue
		}
		used[name] = true
		if r.IntN(4) == 0 && depth < 3 {
			parts = append(parts, `"`+name+`":`+genPattern(r, depth+1))
			continue
		}
		m := 1 + r.IntN(3)
		conds := make([]string, m)
		for i := range conds {
			conds[i] = genConds[r.IntN(len(genConds))]
		}
		parts = append(parts, `"`+name+`":[`+strings.Join(conds, ",")+`]`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestDifferentialRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	matches := 0
	for range n {
		pattern := genPattern(r, 0)
		f, err := Compile([]byte(pattern))
		if err != nil {
			if strings.Contains(pattern, `\u0061`) {
				continue // may duplicate "a"
			}
			t.Fatalf("Compile(%s): %v", pattern, err)
		}
		for range 10 {
			event := genEventObject(r, 0)
			got, want := f.Match([]byte(event)), refMatch([]byte(pattern), []byte(event))
			if got != want {
				t.Fatalf("pattern %s\nevent %s\nMatch = %v, reference %v", pattern, event, got, want)
			}
			if got {
				matches++
			}
		}
	}
	t.Logf("%d of %d pairs matched", matches, n*10)
}

// genSharedOr returns a pattern whose $or alternatives (and perhaps the
// object itself) name the same nested object "a", the case Compile
// merges into one node read once; now and then one of them holds
// conditions instead, which is not merged.
func genSharedOr(r *rand.Rand, depth int) string {
	n := 2 + r.IntN(3)
	alts := make([]string, n)
	for k := range alts {
		switch {
		case r.IntN(8) == 0:
			alts[k] = `{"a":[` + genConds[r.IntN(len(genConds))] + `]}`
		case depth < 2 && r.IntN(3) == 0:
			alts[k] = `{"a":` + genSharedOr(r, depth+1) + `}`
		default:
			alts[k] = `{"a":` + genPattern(r, 2) + `}`
		}
		if r.IntN(4) == 0 {
			alts[k] = alts[k][:len(alts[k])-1] + `,"b":[` + genConds[r.IntN(len(genConds))] + `]}`
		}
	}
	p := `{"$or":[` + strings.Join(alts, ",") + `]`
	if r.IntN(3) == 0 {
		p += `,"a":` + genPattern(r, 2)
	}
	return p + "}"
}

// TestDifferentialSharedOr: patterns of genSharedOr against events
// whose "a" is an object, an array of objects and values, a value,
// absent or duplicated.
func TestDifferentialSharedOr(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	n := 5000
	if testing.Short() {
		n = 500
	}
	matches, pairs := 0, 0
	for range n {
		pattern := genSharedOr(r, 0)
		f, err := Compile([]byte(pattern))
		if err != nil {
			continue // a generated duplicate name
		}
		for range 10 {
			var event string
			switch r.IntN(4) {
			case 0:
				event = genEventObject(r, 0)
			case 1:
				event = `{"a":` + genEventObject(r, 1) + `,"b":` + genEventValue(r, 2) + `}`
			case 2:
				event = `{"a":[` + genEventObject(r, 1) + `,` + genEventValue(r, 2) + `,` + genEventObject(r, 1) + `]}`
			default:
				event = `{"a":` + genEventObject(r, 1) + `,"a":` + genEventObject(r, 1) + `}`
			}
			got, want := f.Match([]byte(event)), refMatch([]byte(pattern), []byte(event))
			if got != want {
				t.Fatalf("pattern %s\nevent %s\nMatch = %v, reference %v", pattern, event, got, want)
			}
			pairs++
			if got {
				matches++
			}
		}
	}
	t.Logf("%d of %d pairs matched", matches, pairs)
}

func FuzzMatch(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		f.Add([]byte(genPattern(r, 0)), []byte(genEventObject(r, 0)))
	}
	f.Add([]byte(`{"a":[{"prefix":"x"}]}`), []byte(`{"a":"xy","a":"z"}`))
	f.Add([]byte(`{"a":{"b":[{"exists":false}]}}`), []byte(`{"a":[{"b":1},{"c":2}]}`))
	for range 50 {
		f.Add([]byte(genSharedOr(r, 0)), []byte(`{"a":`+genEventObject(r, 1)+`}`))
	}
	f.Fuzz(func(t *testing.T, pattern, event []byte) {
		flt, err := Compile(pattern)
		if err != nil {
			return
		}
		if got, want := flt.Match(event), refMatch(pattern, event); got != want {
			t.Fatalf("pattern %s\nevent %q\nMatch = %v, reference %v", pattern, event, got, want)
		}
	})
}
