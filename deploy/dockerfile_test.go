package deploy

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd   string // upper case: FROM, RUN, …
	args  string
	stage int // index of its build stage (-1 before the first FROM)
	line  int
}

type dockerfile struct {
	ins    []instruction
	stages []string // stage names (FROM … AS name), "" when unnamed
}

func parseDockerfile(name string) (*dockerfile, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	df := &dockerfile{}
	sc := bufio.NewScanner(f)
	var cur strings.Builder
	n, start := 0, 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), stage: len(df.stages) - 1, line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			name := ""
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				name = f[2]
			}
			df.stages = append(df.stages, name)
			in.stage = len(df.stages) - 1
		}
		df.ins = append(df.ins, in)
	}
	return df, sc.Err()
}

func (df *dockerfile) stage(i int) []instruction {
	var r []instruction
	for _, in := range df.ins {
		if in.stage == i {
			r = append(r, in)
		}
	}
	return r
}

var outFlag = regexp.MustCompile(`\s-o\s+(\S+)\s`)

// buildCommand is the RUN of the build stage that runs go build, and the
// path it writes the binary to.
func (df *dockerfile) buildCommand() (cmd, out string, err error) {
	if len(df.stages) < 2 || df.stages[0] != "build" {
		return "", "", fmt.Errorf("Dockerfile: want a first stage named build and a final stage, have %q", df.stages)
	}
	var found []string
	for _, in := range df.stage(0) {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			found = append(found, in.args)
		}
	}
	if len(found) != 1 {
		return "", "", fmt.Errorf("Dockerfile: want one RUN … go build in the build stage, have %d", len(found))
	}
	m := outFlag.FindStringSubmatch(found[0] + " ")
	if m == nil {
		return "", "", fmt.Errorf("Dockerfile: the go build command has no -o path: %s", found[0])
	}
	return found[0], m[1], nil
}

// TestDockerfileBuild runs the build stage's go build command (in the
// repository, writing to a temporary directory) and checks the binary is
// what the image promises: static, built with -trimpath and without cgo,
// stamped with the VERSION build argument.
func TestDockerfileBuild(t *testing.T) {
	root := repoRoot(t)
	df, err := parseDockerfile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	cmd, out, err := df.buildCommand()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0 ", " -trimpath ", "-X main.version=${VERSION}", " ./cmd/event-gateway"} {
		if !strings.Contains(cmd+" ", want) {
			t.Errorf("Dockerfile: the go build command lacks %q: %s", want, cmd)
		}
	}

	bin := gatewayBinary(t)
	v, err := exec.Command(bin, "-version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(v)) != "event-gateway "+testVersion {
		t.Errorf("event-gateway -version: %q, %v; want the VERSION build argument", v, err)
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings: CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (program header %v); the distroless static image cannot run it", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if st, err := os.Stat(bin); err == nil {
		t.Logf("binary: %.1f MiB", float64(st.Size())/(1<<20))
	}

	// The final stage copies exactly that binary and runs it as non-root.
	final := df.stage(len(df.stages) - 1)
	var from, user, entry, health, copyFrom string
	for _, in := range final {
		switch in.cmd {
		case "FROM":
			from = in.args
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "HEALTHCHECK":
			health = in.args
		case "COPY":
			if strings.HasPrefix(in.args, "--from=build ") {
				copyFrom = in.args
			}
		}
	}
	if !strings.HasPrefix(from, "gcr.io/distroless/static") || !strings.HasSuffix(from, ":nonroot") {
		t.Errorf("final stage FROM %q, want a distroless static nonroot image", from)
	}
	if !regexp.MustCompile(`^[1-9][0-9]*(:[0-9]+)?$`).MatchString(user) {
		t.Errorf("USER %q, want a numeric non-root user (runAsNonRoot needs a number)", user)
	}
	f2 := strings.Fields(copyFrom)
	if len(f2) != 3 || f2[1] != out {
		t.Errorf("final stage: COPY --from=build %q, want the build's -o path %s", copyFrom, out)
	} else if entry != fmt.Sprintf("[%q]", f2[2]) {
		t.Errorf("ENTRYPOINT %s, want the exec form of the copied binary %s", entry, f2[2])
	}
	if health != "NONE" {
		t.Errorf("HEALTHCHECK %q: the image has no shell nor HTTP client, and the binary no probe command; want NONE (docs/deployment.md)", health)
	}
}

// TestDockerignore checks that .dockerignore keeps out of the build
// context no package the gateway is built from, nor go.mod and go.sum.
func TestDockerignore(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			if strings.HasPrefix(l, "!") {
				t.Fatalf(".dockerignore: exceptions (%s) are not checked by this test", l)
			}
			patterns = append(patterns, strings.TrimPrefix(l, "/"))
		}
	}
	ignored := func(rel string) string {
		// A path is ignored when it or a parent directory matches.
		for p := rel; p != "." && p != "/"; p = path.Dir(p) {
			for _, pat := range patterns {
				if ok, _ := path.Match(strings.TrimPrefix(pat, "**/"), p); ok {
					return pat
				}
				if ok, _ := path.Match(strings.TrimPrefix(pat, "**/"), path.Base(p)); ok && strings.HasPrefix(pat, "**/") {
					return pat
				}
			}
		}
		return ""
	}
	c := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/event-gateway")
	c.Dir = root
	listed, err := c.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	paths := []string{"go.mod", "go.sum"}
	for _, d := range strings.Fields(string(listed)) {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, filepath.ToSlash(rel))
	}
	if len(paths) < 5 {
		t.Fatalf("go list found only %v", paths)
	}
	for _, p := range paths {
		if pat := ignored(p); pat != "" {
			t.Errorf(".dockerignore: %q keeps %s out of the build context, but the gateway needs it", pat, p)
		}
	}
	for _, p := range []string{".git", "deploy", "tests/fdk/node_modules"} {
		if ignored(p) == "" {
			t.Errorf(".dockerignore: %s is sent to the builder; it is not needed", p)
		}
	}
}
