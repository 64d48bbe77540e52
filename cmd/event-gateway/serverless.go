package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The Serverless Framework's `serverless run` (serverless 1.20–1.28) runs
// ~/.serverless/event-gateway/event-gateway and accepts it only if
// `--version` prints "Event Gateway version: 0.5.15"; anything else makes
// it download that release over the network. This gateway serves what
// serverless run needs of 0.5.15 (docs/serverless.md), but it is not
// 0.5.15, and its own -version says what it is. So the answer to that one
// probe lives outside the binary: install-serverless writes a small
// wrapper script where serverless looks, which answers the probe and runs
// this binary for everything else.

// serverlessWantsVersion is the release serverless run checks for.
const serverlessWantsVersion = "0.5.15"

// wrapperMarker is in every wrapper script written here, so that
// install-serverless replaces its own script but no other file.
const wrapperMarker = "# Written by `event-gateway install-serverless`."

// installServerless runs the install-serverless subcommand.
func installServerless(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("event-gateway install-serverless", flag.ContinueOnError)
	fs.SetOutput(stderr)
	home, _ := os.UserHomeDir()
	dir := fs.String("dir", filepath.Join(home, ".serverless", "event-gateway"), "directory where serverless run looks for the gateway")
	bin := fs.String("binary", "", "the gateway the wrapper runs (default: this executable)")
	force := fs.Bool("force", false, "replace an event-gateway in -dir that install-serverless did not write (such as a downloaded 0.5.15)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: event-gateway install-serverless [-dir DIR] [-binary PATH] [-force]

Writes DIR/event-gateway, a wrapper script that lets the Serverless
Framework's "serverless run" (serverless@1.28.0) start this gateway: it
answers serverless's version probe ("--version") with
"Event Gateway version: %s", the release serverless insists on, and runs
this gateway with any other arguments. "event-gateway -version" keeps
printing this gateway's own version. See docs/serverless.md.

`, serverlessWantsVersion)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "event-gateway install-serverless: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	target := *bin
	if target == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(stderr, "event-gateway install-serverless: cannot find this executable (pass -binary):", err)
			return 1
		}
		if strings.Contains(filepath.ToSlash(exe), "/go-build") {
			// go run's binary is deleted when it exits.
			fmt.Fprintf(stderr, "event-gateway install-serverless: %s is a temporary build of go run; build the gateway (go build -o event-gateway ./cmd/event-gateway) and run install-serverless from it\n", exe)
			return 1
		}
		target = exe
	}
	path, err := writeServerlessWrapper(*dir, target, *force)
	if err != nil {
		fmt.Fprintln(stderr, "event-gateway install-serverless:", err)
		return 1
	}
	fmt.Fprintf(stdout, "Wrote %s: serverless run now starts %s.\n", path, target)
	return 0
}

// writeServerlessWrapper writes dir/event-gateway, a script that answers
// serverless's version probe and execs target otherwise, and returns its
// path.
func writeServerlessWrapper(dir, target string, force bool) (string, error) {
	if dir == "" {
		return "", errors.New("-dir is empty (is $HOME set?)")
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return "", err
	}
	// The real file, so that the wrapper keeps working if a symlink
	// (go install's, a package manager's) moves; and never the wrapper
	// itself, which would exec itself forever.
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		abs = resolved
	}
	info, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("the gateway to run: %w", err)
	}
	if info.IsDir() || info.Mode()&0o111 == 0 {
		return "", fmt.Errorf("the gateway to run, %s, is not an executable file", abs)
	}
	path := filepath.Join(dir, "event-gateway")
	if same, _ := filepath.EvalSymlinks(path); same == abs {
		return "", fmt.Errorf("%s is the gateway itself: pass -binary with the gateway's path elsewhere", path)
	}
	switch old, err := os.ReadFile(path); {
	case err == nil && !bytes.Contains(old, []byte(wrapperMarker)) && !force:
		return "", fmt.Errorf("%s exists and was not written by install-serverless (the downloaded Event Gateway %s?); move it away or pass -force", path, serverlessWantsVersion)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	script := serverlessWrapper(abs, versionString())
	// Written beside and renamed: serverless never runs half a script.
	tmp, err := os.CreateTemp(dir, ".event-gateway-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(script); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// serverlessWrapper is the wrapper script that runs the gateway at bin.
func serverlessWrapper(bin, version string) string {
	return `#!/bin/sh
` + wrapperMarker + `
#
# serverless run (serverless@1.28.0) starts the Event Gateway found here, but
# first runs it with --version and accepts only "Event Gateway version: ` + serverlessWantsVersion + `"
# (else it downloads that release). The gateway this script runs, Event
# Gateway ` + sanitizeComment(version) + `, serves what serverless run needs of ` + serverlessWantsVersion + `
# (docs/serverless.md in its repository) and reports its own version with
# -version. This script answers the probe, and runs the gateway for anything
# else. Written by "event-gateway install-serverless"; run it again to
# update it, or delete this file to undo it.
if [ "$#" -eq 1 ] && [ "$1" = "--version" ]; then
  echo "Event Gateway version: ` + serverlessWantsVersion + `"
  exit 0
fi
exec ` + shellQuote(bin) + ` "$@"
`
}

// shellQuote quotes s as one word for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sanitizeComment keeps s on one comment line.
func sanitizeComment(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
