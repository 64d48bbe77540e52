package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// repoRoot is the gateway repository, the parent of this module.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(root, "cmd", "event-gateway")); err != nil {
		t.Fatalf("repository root not found above %s: %v", wd, err)
	}
	return root
}

var (
	gatewayOnce sync.Once
	gatewayBin  string
	gatewayErr  error
	gatewayDir  string
)

// gatewayBinary builds the gateway with the build command of the
// Dockerfile's build stage (see buildCommand) once per test run.
func gatewayBinary(t testing.TB) string {
	t.Helper()
	gatewayOnce.Do(func() {
		root := repoRoot(t)
		df, err := parseDockerfile(filepath.Join(root, "Dockerfile"))
		if err != nil {
			gatewayErr = err
			return
		}
		cmd, out, err := df.buildCommand()
		if err != nil {
			gatewayErr = err
			return
		}
		gatewayDir, err = os.MkdirTemp("", "eg-deploy-test")
		if err != nil {
			gatewayErr = err
			return
		}
		gatewayBin = filepath.Join(gatewayDir, "event-gateway")
		// The same command, writing the binary into a temporary directory
		// rather than the image's /out.
		local := strings.Replace(cmd, "-o "+out+" ", "-o "+gatewayBin+" ", 1)
		c := exec.Command("sh", "-c", local)
		c.Dir = root
		c.Env = append(os.Environ(), "VERSION="+testVersion)
		if b, err := c.CombinedOutput(); err != nil {
			gatewayErr = &buildError{cmd: local, out: string(b), err: err}
		}
	})
	if gatewayErr != nil {
		t.Fatal(gatewayErr)
	}
	return gatewayBin
}

const testVersion = "v0.0.0-deploy-test"

type buildError struct {
	cmd, out string
	err      error
}

func (e *buildError) Error() string { return e.cmd + ": " + e.err.Error() + "\n" + e.out }

func TestMain(m *testing.M) {
	code := m.Run()
	if gatewayDir != "" {
		os.RemoveAll(gatewayDir)
	}
	os.Exit(code)
}

var flagLine = regexp.MustCompile(`^  -([a-z0-9-]+)`)

// gatewayFlags are the flags the built gateway lists in its -h output,
// with whether each takes a value.
func gatewayFlags(t testing.TB) map[string]bool {
	t.Helper()
	c := exec.Command(gatewayBinary(t), "-h")
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		t.Fatalf("event-gateway -h: %v\n%s", err, out.String())
	}
	flags := map[string]bool{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
			// "  -name value" for flags with a value, "  -name" for bools.
			flags[m[1]] = strings.TrimSpace(strings.TrimPrefix(sc.Text(), "  -"+m[1])) != ""
		}
	}
	if len(flags) < 40 || !flags["db-hosts"] || flags["dev"] {
		t.Fatalf("event-gateway -h listed %d flags, not the expected ones:\n%s", len(flags), out.String())
	}
	return flags
}

// checkGatewayArgs checks command-line arguments of the gateway: every
// one is -name=value (or a bool -name) of a flag the gateway has, none
// twice.
func checkGatewayArgs(t *testing.T, where string, args []string) map[string]string {
	t.Helper()
	flags := gatewayFlags(t)
	got := map[string]string{}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			t.Errorf("%s: argument %q is not a flag", where, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := flags[name]
		switch {
		case !ok:
			t.Errorf("%s: the gateway has no flag -%s", where, name)
		case takesValue && !hasValue:
			t.Errorf("%s: -%s needs a value, written -%s=value", where, name, name)
		case !takesValue && hasValue && value != "true" && value != "false":
			t.Errorf("%s: -%s is a bool flag, given %q", where, name, value)
		}
		if _, dup := got[name]; dup && name != "plugin" && name != "space-domain" {
			t.Errorf("%s: -%s given twice", where, name)
		}
		got[name] = value
	}
	return got
}

// strictDecode decodes YAML (or JSON) into v as the Kubernetes API server
// does in strict mode: field names match case-sensitively (encoding/json
// alone would take readOnlyRootFileSystem for readOnlyRootFilesystem), and
// unknown or duplicate fields are errors.
func strictDecode(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}
