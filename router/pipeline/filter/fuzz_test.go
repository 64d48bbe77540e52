package filter

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// FuzzCompile: Compile never panics, answers in bounded time, returns a
// *PatternError with an offset inside the pattern, and what it compiles
// can match.
func FuzzCompile(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 100 {
		f.Add([]byte(genPattern(r, 0)))
	}
	for _, c := range compileErrorCases {
		f.Add([]byte(c.pattern))
	}
	events := [][]byte{
		[]byte(`{}`),
		[]byte(`{"a":"abc","b":[1,2,{"c":null}],"c":{"a":5}}`),
		[]byte(sampleEvent),
	}
	f.Fuzz(func(t *testing.T, pattern []byte) {
		start := time.Now()
		flt, err := Compile(pattern)
		// Generous: the fuzzer's workers stall now and then; the real
		// bound is TestHostilePatterns'.
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Compile took %v", d)
		}
		if err != nil {
			var pe *PatternError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v", err, err)
			}
			if pe.Offset < 0 || pe.Offset > len(pattern) {
				t.Fatalf("offset %d outside the pattern of %d bytes: %v", pe.Offset, len(pattern), err)
			}
			return
		}
		for _, e := range events {
			if got, want := flt.Match(e), refMatch(pattern, e); got != want {
				t.Fatalf("pattern %s\nevent %s\nMatch = %v, reference %v", pattern, e, got, want)
			}
		}
	})
}

// FuzzScan: the scanner accepts exactly what encoding/json accepts.
func FuzzScan(f *testing.F) {
	f.Add([]byte(sampleEvent))
	f.Add([]byte(`[1,{"a":[true,false,null,"x\u00e9"]},-0.5e+3]`))
	f.Add([]byte(`{"a":[[[[{"b":{}}]]]],"c":""}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		i := skipWS(doc, 0)
		end, ok := skipValue(doc, i, 0)
		got := ok && skipWS(doc, end) == len(doc)
		if want := json.Valid(doc); got != want {
			t.Fatalf("%q: scanner %v, encoding/json %v", doc, got, want)
		}
	})
}
