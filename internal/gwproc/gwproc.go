// Package gwproc builds the event-gateway binary from this repository and
// runs it as a child process, for end-to-end tests and the bench tool. It
// learns the ports the gateway chose from its JSON logs, so every instance
// can listen on port 0.
package gwproc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles ./cmd/event-gateway into dir and returns the binary's path.
func Build(ctx context.Context, dir string, race bool) (string, error) {
	var flags []string
	if race {
		flags = append(flags, "-race")
	}
	return BuildPackage(ctx, "./cmd/event-gateway", filepath.Join(dir, "event-gateway"), flags...)
}

// BuildPackage compiles the main package pkg (a path relative to the
// module root, such as ./plugin/example) into the file out.
func BuildPackage(ctx context.Context, pkg, out string, flags ...string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	if err := touchSources(root); err != nil {
		return "", err
	}
	args := append(append([]string{"build", "-o", out}, flags...), pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// touchSources stats every Go source and module file of the module. go test
// caches a package's result against the files its tests looked at: without
// this, a test that runs a binary built by Build would pass from the cache
// after the gateway's code changed.
func touchSources(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") || d.Name() == "go.mod" || d.Name() == "go.sum" {
			_, err := os.Stat(path)
			return err
		}
		return nil
	})
}

// ModuleRoot finds the directory of go.mod above the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("gwproc: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Process is a running gateway.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, set before done closes

	// ConfigURL and EventsURL are the base URLs of the two APIs.
	ConfigURL, EventsURL string

	mu   sync.Mutex
	logs bytes.Buffer
}

// Options for Start.
type Options struct {
	// Args are extra flags. Ports default to 0 and the log format to json.
	Args []string
	// Env is added to the child's environment.
	Env []string
	// Wait bounds how long Start waits for the gateway to be ready.
	Wait time.Duration
	// Ready is the log message that means the gateway serves. Default
	// "event-gateway ready".
	Ready string
	// Dir is the gateway's working directory, where relative data
	// directories go. Default: a new temporary directory, removed when the
	// gateway exits.
	Dir string
}

// Start runs the binary and waits until it logs that it is ready.
func Start(bin string, o Options) (*Process, error) {
	if o.Wait == 0 {
		o.Wait = 30 * time.Second
	}
	if o.Ready == "" {
		o.Ready = "event-gateway ready"
	}
	args := append([]string{"-log-format", "json", "-config-port", "0", "-events-port", "0", "-config-host", "127.0.0.1", "-events-host", "127.0.0.1"}, o.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), o.Env...)
	cleanup := func() {}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "gwproc-")
		if err != nil {
			return nil, err
		}
		o.Dir = dir
		cleanup = func() { os.RemoveAll(dir) }
	}
	cmd.Dir = o.Dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go p.readLogs(stderr, o.Ready, ready)
	go func() {
		p.err = cmd.Wait()
		cleanup()
		close(p.done)
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("gwproc: gateway exited before it was ready (%v):\n%s", p.err, p.Logs())
	case <-time.After(o.Wait):
		p.Kill()
		return nil, fmt.Errorf("gwproc: gateway not ready after %v:\n%s", o.Wait, p.Logs())
	}
}

func (p *Process) readLogs(r io.Reader, readyMsg string, ready chan<- struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	signalled, seenReady := false, false
	for sc.Scan() {
		line := sc.Bytes()
		p.mu.Lock()
		p.logs.Write(line)
		p.logs.WriteByte('\n')
		p.mu.Unlock()
		var rec struct {
			Msg    string `json:"msg"`
			API    string `json:"api"`
			Addr   string `json:"addr"`
			Scheme string `json:"scheme"`
		}
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		if rec.Msg == "listening" {
			_, port, _ := net.SplitHostPort(rec.Addr)
			scheme := rec.Scheme
			if scheme == "" {
				scheme = "http"
			}
			u := scheme + "://127.0.0.1:" + port
			p.mu.Lock()
			switch rec.API {
			case "config":
				p.ConfigURL = u
			case "events":
				p.EventsURL = u
			}
			p.mu.Unlock()
		}
		if rec.Msg == readyMsg {
			seenReady = true
		}
		// Ready once the message was seen and both APIs listen, in
		// whatever order the gateway logged them.
		p.mu.Lock()
		listening := p.ConfigURL != "" && p.EventsURL != ""
		p.mu.Unlock()
		if seenReady && listening && !signalled {
			signalled = true
			close(ready)
		}
	}
	io.Copy(io.Discard, r)
}

// Logs returns everything the gateway has logged so far.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// PID is the child's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the gateway.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits for the gateway to exit, at most d, and returns its exit code.
func (p *Process) Wait(d time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(d):
		return -1, fmt.Errorf("gwproc: gateway still running after %v", d)
	}
}

// Stop sends SIGTERM and waits for the exit; it kills the process if it
// does not exit within d. It returns the exit code.
func (p *Process) Stop(d time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	default:
	}
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return -1, err
	}
	code, err := p.Wait(d)
	if err != nil {
		p.Kill()
	}
	return code, err
}

// Kill ends the gateway at once (SIGKILL) and waits for it.
func (p *Process) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// WaitLog waits until the logs contain substr, at most d.
func (p *Process) WaitLog(ctx context.Context, substr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Logs(), substr) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("gwproc: %q not logged within %v", substr, d)
}
