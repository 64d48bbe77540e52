package openapitest_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exempt is the comment that lets an HTTP client of an API test skip the
// checks, on its line or the line before: "// openapitest: not checked:
// <reason>".
const exempt = "openapitest: not checked:"

// apiTestDirs hold the tests that talk to the gateway's APIs over HTTP,
// relative to the module root.
var apiTestDirs = []string{"tests", "api"}

// TestAPITestClientsAreChecked keeps the checks from being skipped by
// accident: in the API tests, every HTTP client is made by
// validator.Client (or takes the Transport), and none uses
// http.DefaultClient or the http.Get family, unless a comment says why
// not (exempt).
func TestAPITestClientsAreChecked(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, dir := range apiTestDirs {
		files, err := filepath.Glob(filepath.Join(root, dir, "*_test.go"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no test files in %s: has it moved? update apiTestDirs", dir)
		}
		for _, f := range files {
			found = append(found, uncheckedClients(t, root, f)...)
		}
	}
	if len(found) > 0 {
		t.Errorf("HTTP clients of API tests that do not check the exchanges against %s: use validator.Client(...) (tests/main_test.go, api/config_test.go), or say why not in a comment %q:\n%s",
			"api/openapi/openapi.yaml", "// "+exempt+" <reason>", strings.Join(found, "\n"))
	}
}

// TestUncheckedClientsFound checks that the scan finds what it is meant to.
func TestUncheckedClientsFound(t *testing.T) {
	src := `package x

func f() {
	a := &http.Client{Timeout: 1}
	b := validator.Client(&http.Client{Timeout: 1})
	http.Get("u")
	http.DefaultClient.Do(nil)
	srv.Client().Do(nil)
	validator.Client(srv.Client()).Do(nil)
	// openapitest: not checked: the request is cut off, no response
	http.Get("v")
	c := http.Client{Transport: validator.Transport(nil)}
}
`
	dir := t.TempDir()
	f := filepath.Join(dir, "x_test.go")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got := uncheckedClients(t, dir, f)
	want := []string{"x_test.go:4", "x_test.go:6", "x_test.go:7", "x_test.go:8"}
	if len(got) != len(want) {
		t.Fatalf("found %q, want lines %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+":") {
			t.Fatalf("found %q, want lines %q", got, want)
		}
	}
}

// uncheckedClients returns "file:line: what" for each HTTP client of file
// that bypasses the checks.
func uncheckedClients(t *testing.T, root, file string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	exemptLines := map[int]bool{}
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if strings.Contains(c.Text, exempt) {
				line := fset.Position(c.Slash).Line
				exemptLines[line], exemptLines[line+1] = true, true
			}
		}
	}
	rel, _ := filepath.Rel(root, file)
	var found []string
	report := func(n ast.Node, what string) {
		line := fset.Position(n.Pos()).Line
		if !exemptLines[line] {
			found = append(found, fmt.Sprintf("%s:%d: %s", rel, line, what))
		}
	}
	// stack holds the ancestors of the node being visited.
	var stack []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		defer func() { stack = append(stack, n) }()
		switch n := n.(type) {
		case *ast.CompositeLit:
			if isSel(n.Type, "http", "Client") && !wrapped(stack) && !hasTransport(n) {
				report(n, "an http.Client that is not validator.Client(...)")
			}
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok && id.Name == "http" {
				switch n.Sel.Name {
				case "DefaultClient", "Get", "Post", "Head", "PostForm":
					report(n, "http."+n.Sel.Name)
				}
			}
		case *ast.CallExpr:
			// httptest.Server.Client(): a client of its own.
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Client" && len(n.Args) == 0 && !isValidator(sel.X) && !wrapped(stack) {
				report(n, "a server's Client() that is not validator.Client(...)")
			}
		}
		return true
	})
	return found
}

// wrapped reports whether the node whose ancestors are stack is an
// argument of validator.Client, directly or as &http.Client{…}.
func wrapped(stack []ast.Node) bool {
	for i := len(stack) - 1; i >= 0; i-- {
		switch p := stack[i].(type) {
		case *ast.UnaryExpr:
			continue
		case *ast.CallExpr:
			sel, ok := p.Fun.(*ast.SelectorExpr)
			return ok && sel.Sel.Name == "Client" && isValidator(sel.X)
		default:
			return false
		}
	}
	return false
}

// hasTransport reports whether a client literal sets its Transport to
// validator.Transport(…).
func hasTransport(lit *ast.CompositeLit) bool {
	for _, e := range lit.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Transport" {
			if call, ok := kv.Value.(*ast.CallExpr); ok {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Transport" && isValidator(sel.X) {
					return true
				}
			}
		}
	}
	return false
}

func isValidator(e ast.Expr) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == "validator"
}

func isSel(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg && sel.Sel.Name == name
}
