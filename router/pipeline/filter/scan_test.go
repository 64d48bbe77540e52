package filter

import (
	"encoding/json"
	"strings"
	"testing"
)

// scanValid is what Match's scanner says of a whole document.
func scanValid(doc []byte) bool {
	end, ok := skipValue(doc, skipWS(doc, 0), 0)
	return ok && skipWS(doc, end) == len(doc)
}

// TestScanBoundaries: the scanner reads strings and integers eight bytes
// at a time while the document has eight more, byte by byte after; every
// token here is met at every offset of the word (the document is shifted
// by 0 to 8 bytes) and at every distance from the end (every prefix of
// the document), and the scanner must agree with encoding/json each time.
func TestScanBoundaries(t *testing.T) {
	docs := []string{
		`{"a":"x","bb":"0123456789abcdef","c":[1,-0,0.5,1e3,-12.5E-7,1234567890123,0],"d":{"e":true,"f":false,"g":null}}`,
		`["\u00e9\uD83D\uDE00","\"\\\/\b\f\n\r\t",["",""],{"":""},123456789012345678901234567890]`,
		`{ "a" : [ 1 , "b" , { } , [ ] , true ] , "c" : "d" }`,
		"{\"a\":\"\xff\xfe \xe2\x82\",\"b\":\"tab\there\"}", // invalid UTF-8 is valid JSON; a raw tab is not
		"{\"b\":\"x\ty\"}", "[\"\x01\"]", "\"\x1f\"", "[\"\x7f\x80\"]", // control characters near the end
		`{"a":01}`, `{"a":1.}`, `{"a":1e}`, `{"a":-}`, `{"a":1.5x}`, `{"a":12345678x}`, `{"a":123456789012.}`,
		`{"a":"\u12G4"}`, `{"a":"\x"}`, `{"a" "b"}`, `{"a":1,}`, `[1,]`, `{"a":tru}`, `{"a":nul}`, `{"a":fals}`, `{"a":falsy}`,
		`{"a":[}`, `{"a":{]}`, `{,}`, `[,1]`, `{"a":1 "b":2}`, `"abc\`, `{"a":"b"}}`, `{"a":"b"]`,
	}
	for _, doc := range docs {
		for shift := 0; shift <= 8; shift++ {
			full := strings.Repeat(" ", shift) + doc
			for n := 0; n <= len(full); n++ {
				b := []byte(full[:n])
				if got, want := scanValid(b), json.Valid(b); got != want {
					t.Fatalf("%q: scanner %v, encoding/json %v", b, got, want)
				}
			}
			// The same document as a member of an object, after one
			// of shift bytes, so that it starts anywhere in a word.
			wrapped := []byte(`{"` + strings.Repeat("k", shift) + `":` + doc + `}`)
			if got, want := scanValid(wrapped), json.Valid(wrapped); got != want {
				t.Fatalf("%q: scanner %v, encoding/json %v", wrapped, got, want)
			}
		}
	}
}

// TestScanNesting: containers nested around the 64 levels that the
// scanner keeps in one word and around encoding/json's limit, objects
// and arrays mixed.
func TestScanNesting(t *testing.T) {
	for _, depth := range []int{1, 2, 63, 64, 65, 66, 127, 128, 129, 9999, 10000, 10001} {
		for _, inner := range []string{`1`, `"s"`, `{}`, `[]`, `{"a":[1,{"b":2}]}`} {
			var open, cl strings.Builder
			for k := range depth {
				if k%3 == 1 {
					open.WriteString(`[0,`)
					cl.WriteString(`]`)
				} else {
					open.WriteString(`{"k":`)
					cl.WriteString(`}`)
				}
			}
			c := cl.String()
			closing := []byte(c)
			for l, r := 0, len(closing)-1; l < r; l, r = l+1, r-1 {
				closing[l], closing[r] = closing[r], closing[l]
			}
			doc := []byte(open.String() + inner + string(closing))
			if got, want := scanValid(doc), json.Valid(doc); got != want {
				t.Fatalf("depth %d, inner %s: scanner %v, encoding/json %v", depth, inner, got, want)
			}
			// A closing of the wrong kind at the innermost level.
			if depth > 1 {
				bad := append([]byte{}, doc...)
				j := len(open.String()) + len(inner)
				if bad[j] == '}' {
					bad[j] = ']'
				} else {
					bad[j] = '}'
				}
				if scanValid(bad) {
					t.Fatalf("depth %d, inner %s: a wrong closing accepted", depth, inner)
				}
			}
		}
	}
}
