package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGateway writes an executable that prints its arguments.
func fakeGateway(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "real gateway's")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho \"ran with: $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func runWrapper(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", path, args, err, out)
	}
	return string(out)
}

// The wrapper answers serverless's probe exactly as serverless reads it,
// and runs the gateway with every other argument list.
func TestInstallServerlessWrapper(t *testing.T) {
	tmp := t.TempDir()
	bin := fakeGateway(t, tmp)
	dir := filepath.Join(tmp, "home", ".serverless", "event-gateway")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"install-serverless", "-dir", dir, "-binary", bin}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	path := filepath.Join(dir, "event-gateway")
	if !strings.Contains(stdout.String(), path) {
		t.Fatalf("output %q does not name %s", stdout.String(), path)
	}
	out := runWrapper(t, path, "--version")
	// serverless: stdout.replace('Event Gateway version: ', '').trim() === '0.5.15'
	if got := strings.TrimSpace(strings.Replace(out, "Event Gateway version: ", "", 1)); got != serverlessWantsVersion {
		t.Fatalf("--version printed %q", out)
	}
	for _, args := range [][]string{
		{"-embed-data-dir=/tmp/x", "-dev", "-log-level=debug"},
		{"-version"},
		{"--version", "-dev"},
		{},
	} {
		if got, want := runWrapper(t, path, args...), "ran with: "+strings.Join(args, " ")+"\n"; got != want {
			t.Fatalf("%q: %q, want %q", args, got, want)
		}
	}

	// Running it again replaces its own script.
	if code := run([]string{"install-serverless", "-dir", dir, "-binary", bin}, &stdout, &stderr); code != 0 {
		t.Fatalf("second install: exit %d: %s", code, stderr.String())
	}
}

// A file install-serverless did not write (the downloaded 0.5.15) is
// left alone unless -force.
func TestInstallServerlessKeepsOtherFiles(t *testing.T) {
	tmp := t.TempDir()
	bin := fakeGateway(t, tmp)
	dir := filepath.Join(tmp, "eg")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "event-gateway")
	if err := os.WriteFile(path, []byte("\x7fELF original"), 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"install-serverless", "-dir", dir, "-binary", bin}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "-force") {
		t.Fatalf("exit %d, stderr %q; want 1 and a hint at -force", code, stderr.String())
	}
	if b, _ := os.ReadFile(path); string(b) != "\x7fELF original" {
		t.Fatal("the original file was changed")
	}
	if code := run([]string{"install-serverless", "-dir", dir, "-binary", bin, "-force"}, &stdout, &stderr); code != 0 {
		t.Fatalf("-force: exit %d: %s", code, stderr.String())
	}
	if out := runWrapper(t, path, "--version"); out != "Event Gateway version: 0.5.15\n" {
		t.Fatalf("--version printed %q", out)
	}

	// The wrapper never runs itself.
	stderr.Reset()
	if code := run([]string{"install-serverless", "-dir", dir, "-binary", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("wrapping the wrapper: exit %d, %s", code, stderr.String())
	}
}

// -version stays truthful: it names this binary, not 0.5.15.
func TestVersionIsOwn(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if out := stdout.String(); !strings.HasPrefix(out, "event-gateway ") || strings.Contains(out, serverlessWantsVersion) {
		t.Fatalf("--version printed %q", out)
	}
}
