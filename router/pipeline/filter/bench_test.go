package filter

import (
	"strings"
	"testing"
	"time"
)

// padded returns sampleEvent grown to about n bytes by a member the
// patterns do not name (placed first, so the matcher must read past it).
func padded(n int) []byte {
	if n <= len(sampleEvent) {
		return []byte(sampleEvent)
	}
	var b strings.Builder
	b.WriteString(`{"padding":[`)
	for i := 0; b.Len() < n-len(sampleEvent); i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"k":"some text value \u00e9 number","n":12345.678,"ok":true}`)
	}
	b.WriteString(`],`)
	b.WriteString(sampleEvent[1:])
	return []byte(b.String())
}

var benchPatterns = []struct{ name, pattern string }{
	{"exact1", `{"event":["user.created"]}`},
	{"typical3", `{"event":["user.created"],"data":{"user":{"name":[{"prefix":"Jane"}]},"size":[{"numeric":[">",0,"<=",5]}]}}`},
	{"nested6", `{"event":[{"prefix":"user."}],"dataType":["application/json"],"data":{"user":{"roles":["admin"],"address":{"country":["US","CA"]}},"order":{"items":{"qty":[{"numeric":[">=",2]}]}},"source":[{"anything-but":["cron","test"]}]}}`},
	{"or3", `{"event":["user.created"],"$or":[{"data":{"order":{"total":[{"numeric":[">",1000]}]}}},{"data":{"user":{"tags":["premium"]}}},{"data":{"source":["mobile"]}}]}`},
	{"strops", `{"data":{"user":{"email":[{"suffix":{"equals-ignore-case":"@EXAMPLE.COM"}}],"name":[{"equals-ignore-case":"jane doe"}],"createdAt":[{"wildcard":"2024-*T*Z"}]},"ip":[{"cidr":"10.0.0.0/24"}],"meta":{"note":[{"prefix":"café"}]}}}`},
	{"set50", `{"data":{"user":{"id":[` + manyStrings(50) + `,"u-123456"]}}}`},
	{"exists", `{"data":{"user":{"deletedAt":[{"exists":false}],"email":[{"exists":true}]}}}`},
	{"nomatch", `{"event":["order.paid"],"data":{"size":[{"numeric":[">",10]}]}}`},
}

func manyStrings(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"u-` + itoa(900000+i) + `"`
	}
	return strings.Join(parts, ",")
}

func BenchmarkMatch(b *testing.B) {
	for _, size := range []int{1 << 10, 10 << 10, 100 << 10} {
		ev := padded(size)
		for _, p := range benchPatterns {
			f := MustCompile(p.pattern)
			want := refMatch([]byte(p.pattern), ev)
			if f.Match(ev) != want {
				b.Fatalf("%s: Match disagrees with the reference", p.name)
			}
			b.Run(p.name+"/"+sizeName(size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(ev)))
				for b.Loop() {
					f.Match(ev)
				}
			})
		}
	}
}

// BenchmarkReference is the encoding/json reference on the typical
// pattern, for comparison.
func BenchmarkReference(b *testing.B) {
	ev := padded(1 << 10)
	p := []byte(benchPatterns[1].pattern)
	b.ReportAllocs()
	for b.Loop() {
		refMatch(p, ev)
	}
}

func BenchmarkCompile(b *testing.B) {
	p := []byte(benchPatterns[2].pattern)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(p); err != nil {
			b.Fatal(err)
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return itoa(n>>10) + "KiB"
	}
	return itoa(n) + "B"
}

// TestHostilePatterns: the worst patterns within the limits compile fast
// and match a large event in time linear in the event per condition.
func TestHostilePatterns(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	// 1024 wildcards of many stars against a long string that nearly
	// matches each: no backtracking, so linear in the string each.
	var conds []string
	for len(conds) < MaxConditions {
		conds = append(conds, `{"wildcard":"*a*a*a*a*a*a*a*a*a*c*b"}`)
	}
	pattern := `{"s":[` + strings.Join(conds, ",") + `]}`
	if len(pattern) > MaxPatternBytes {
		t.Fatalf("pattern of %d bytes", len(pattern))
	}
	start := time.Now()
	f, err := Compile([]byte(pattern))
	if err != nil {
		t.Fatal(err)
	}
	compileTime := time.Since(start)
	ev := []byte(`{"s":"` + strings.Repeat("a", 100<<10) + `b"}`)
	start = time.Now()
	if f.Match(ev) {
		t.Fatal("matched")
	}
	matchTime := time.Since(start)
	t.Logf("compile %v, match of a 100 KiB string against %d wildcards %v", compileTime, MaxConditions, matchTime)
	if compileTime > time.Second || matchTime > 5*time.Second {
		t.Errorf("too slow: compile %v, match %v", compileTime, matchTime)
	}

	// Deeply nested $or: evaluation is linear in the pattern, no
	// expansion into combinations.
	or := `{"x":[1]}`
	for range 8 { // 256 fields: MaxFieldsPerObject
		or = `{"$or":[` + or + `,` + or + `]}`
		if len(or) > MaxPatternBytes/2 {
			break
		}
	}
	f, err = Compile([]byte(or))
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if !f.Match([]byte(`{"x":1}`)) {
		t.Fatal("no match")
	}
	t.Logf("nested $or of %d bytes: match %v", len(or), time.Since(start))
}
