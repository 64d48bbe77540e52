package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// metricDoc is one metric of the table in docs/metrics.md.
type metricDoc struct {
	typ    string
	labels map[string]bool
}

var (
	metricRow  = regexp.MustCompile("^\\| `(eventgateway_[a-z_]+)` \\| ([a-z]+) \\|([^|]*)\\|")
	backticked = regexp.MustCompile("`([a-z_]+)`")
	parens     = regexp.MustCompile(`\([^)]*\)`)
)

// documentedMetrics reads the metric table of docs/metrics.md and checks
// each metric is defined in the gateway's code (api/metrics/metrics.go, or
// registered by name from cmd/event-gateway).
func documentedMetrics(t *testing.T) map[string]metricDoc {
	t.Helper()
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	var src []byte
	files, _ := filepath.Glob(filepath.Join(root, "api", "metrics", "*.go"))
	more, _ := filepath.Glob(filepath.Join(root, "cmd", "event-gateway", "*.go"))
	for _, f := range append(files, more...) {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, b...)
	}
	m := map[string]metricDoc{}
	for _, line := range strings.Split(string(doc), "\n") {
		r := metricRow.FindStringSubmatch(line)
		if r == nil {
			continue
		}
		md := metricDoc{typ: r[2], labels: map[string]bool{}}
		for _, l := range backticked.FindAllStringSubmatch(parens.ReplaceAllString(r[3], ""), -1) {
			md.labels[l[1]] = true
		}
		m[r[1]] = md
		short := strings.TrimPrefix(r[1], "eventgateway")
		if !strings.Contains(string(src), `"`+short+`"`) && !strings.Contains(string(src), `"`+short[1:]+`"`) {
			t.Errorf("docs/metrics.md documents %s, which the gateway (api/metrics, cmd/event-gateway) does not define", r[1])
		}
	}
	if len(m) < 10 {
		t.Fatalf("docs/metrics.md: only %d metrics found in the table", len(m))
	}
	return m
}

// promQL functions and aggregations the dashboard may use.
var promFuncs = map[string]bool{
	"sum": true, "max": true, "min": true, "avg": true, "count": true, "rate": true, "irate": true, "increase": true,
	"histogram_quantile": true, "scalar": true, "vector": true, "clamp_min": true, "topk": true, "bottomk": true,
	"delta": true, "deriv": true, "label_values": true, "absent": true,
}

var labelListKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// promRefs lists what a PromQL expression refers to: metric names with the
// label names of their matchers, and the label names of by/without/on
// clauses and of label_values. It knows PromQL's lexical structure
// (strings, {matchers}, [ranges], identifiers), not its whole grammar.
type promRef struct {
	metric string
	labels []string
}

func promRefs(expr string) (refs []promRef, grouping []string, err string) {
	s := []rune(expr)
	i := 0
	skipSpace := func() {
		for i < len(s) && unicode.IsSpace(s[i]) {
			i++
		}
	}
	readUntil := func(close rune) string {
		start := i
		for i < len(s) && s[i] != close {
			if s[i] == '"' || s[i] == '\'' {
				q := s[i]
				for i++; i < len(s) && s[i] != q; i++ {
					if s[i] == '\\' {
						i++
					}
				}
			}
			i++
		}
		r := string(s[start:min(i, len(s))])
		i++
		return r
	}
	matcherLabels := func(m string) []string {
		var ls []string
		for _, part := range regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'[^']*')`).FindAllStringSubmatch(m, -1) {
			ls = append(ls, part[1])
		}
		return ls
	}
	var prevIdent string
	for i < len(s) {
		c := s[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '"' || c == '\'':
			i++
			readUntil(c)
		case c == '[':
			i++
			readUntil(']')
		case c == '{':
			// A matcher with no metric name in front: not used here.
			return nil, nil, "label matchers without a metric name"
		case c == '$':
			return nil, nil, "a Grafana variable outside a matcher or range"
		case unicode.IsLetter(c) || c == '_':
			start := i
			for i < len(s) && (unicode.IsLetter(s[i]) || unicode.IsDigit(s[i]) || s[i] == '_' || s[i] == ':') {
				i++
			}
			id := string(s[start:i])
			skipSpace()
			next := rune(0)
			if i < len(s) {
				next = s[i]
			}
			switch {
			case labelListKeywords[id]:
				if next == '(' {
					i++
					for _, l := range strings.Split(readUntil(')'), ",") {
						if l = strings.TrimSpace(l); l != "" {
							grouping = append(grouping, l)
						}
					}
				}
			case next == '(' || promFuncs[id]:
				if !promFuncs[id] {
					return nil, nil, "unknown function " + id
				}
				if id == "label_values" && next == '(' {
					// label_values(metric{…}, label): the label is a grouping.
					i++
					args := readUntil(')')
					comma := strings.LastIndex(args, ",")
					if comma < 0 {
						return nil, nil, "label_values without a label"
					}
					r, g, e := promRefs(args[:comma])
					if e != "" {
						return nil, nil, e
					}
					refs, grouping = append(refs, r...), append(append(grouping, g...), strings.TrimSpace(args[comma+1:]))
				}
			case id == "and" || id == "or" || id == "unless" || id == "bool" || id == "offset":
			default:
				ref := promRef{metric: id}
				if next == '{' {
					i++
					ref.labels = matcherLabels(readUntil('}'))
				}
				refs = append(refs, ref)
			}
			prevIdent = id
		default:
			i++
		}
	}
	_ = prevIdent
	return refs, grouping, ""
}

type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// TestDashboard parses deploy/grafana/event-gateway.json and checks that
// every PromQL expression (panels and template variables) names only
// metrics of docs/metrics.md, with labels those metrics have, and that
// every documented metric is on the dashboard.
func TestDashboard(t *testing.T) {
	metrics := documentedMetrics(t)
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "grafana", "event-gateway.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("event-gateway.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("event-gateway.json: title, uid, schemaVersion or panels missing")
	}
	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	var exprs []struct{ where, expr string }
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type == "query" {
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Fatalf("variable %s: %v", v.Name, err)
			}
			exprs = append(exprs, struct{ where, expr string }{"variable " + v.Name, q.Query})
		}
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
			}
			if p.Type != "row" {
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q: its data source is not the dashboard's ${datasource}", p.Title)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q: no query", p.Title)
				}
			}
			for _, tg := range p.Targets {
				exprs = append(exprs, struct{ where, expr string }{"panel " + p.Title + " " + tg.RefID, tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	used := map[string]bool{}
	for _, e := range exprs {
		for _, v := range regexp.MustCompile(`\$\{?([a-zA-Z_]+)`).FindAllStringSubmatch(e.expr, -1) {
			if !vars[v[1]] {
				t.Errorf("%s: variable $%s is not defined", e.where, v[1])
			}
		}
		refs, grouping, perr := promRefs(e.expr)
		if perr != "" {
			t.Errorf("%s: %s: %s", e.where, perr, e.expr)
			continue
		}
		if len(refs) == 0 {
			t.Errorf("%s: no metric: %s", e.where, e.expr)
		}
		known := map[string]bool{"job": true, "instance": true}
		for _, r := range refs {
			name, suffix := r.metric, ""
			md, ok := metrics[name]
			if !ok {
				for _, sfx := range []string{"_bucket", "_count", "_sum"} {
					if base := strings.TrimSuffix(name, sfx); base != name {
						md, ok = metrics[base]
						name, suffix = base, sfx
						break
					}
				}
				if ok && md.typ != "histogram" {
					ok = false
				}
			}
			if !ok {
				t.Errorf("%s: %s is not a metric of docs/metrics.md", e.where, r.metric)
				continue
			}
			if suffix == "" && md.typ == "histogram" {
				t.Errorf("%s: histogram %s is used without _bucket, _count or _sum", e.where, name)
			}
			used[name] = true
			for l := range md.labels {
				known[l] = true
			}
			if suffix == "_bucket" {
				known["le"] = true
			}
			for _, l := range r.labels {
				if !md.labels[l] && l != "job" && l != "instance" && !(l == "le" && suffix == "_bucket") {
					t.Errorf("%s: %s has no label %s", e.where, r.metric, l)
				}
			}
		}
		for _, l := range grouping {
			if !known[l] {
				t.Errorf("%s: groups by %s, a label none of its metrics has", e.where, l)
			}
		}
	}
	var missing []string
	for name := range metrics {
		if !used[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("documented metrics not on the dashboard: %v", missing)
	}
}

// TestPromRefs checks the expression reader on cases the dashboard does
// not all have.
func TestPromRefs(t *testing.T) {
	refs, grouping, err := promRefs(`histogram_quantile(0.9, sum by (le, api) (rate(a_bucket{x="}", y=~"$v"}[$__rate_interval]))) / on(instance) b`)
	if err != "" || len(refs) != 2 || refs[0].metric != "a_bucket" || !slices.Equal(refs[0].labels, []string{"x", "y"}) ||
		refs[1].metric != "b" || !slices.Equal(grouping, []string{"le", "api", "instance"}) {
		t.Errorf("got %+v %v %q", refs, grouping, err)
	}
	if _, _, err := promRefs(`nosuchfunc(a)`); err == "" {
		t.Error("an unknown function passed")
	}
}
