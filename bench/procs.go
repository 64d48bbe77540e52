package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process the tool started. Every child is registered in procs
// and stopped by stopAll, by its PID, whatever way the tool ends.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu  sync.Mutex
	out bytes.Buffer // stderr (and stdout, except for role children)
}

func (c *child) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out.Len() < 1<<20 {
		c.out.Write(p)
	}
	return len(p), nil
}

func (c *child) logs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child and waits for it, at most d, then kills it.
func (c *child) stop(d time.Duration) {
	if c.exited() {
		return
	}
	// The child leads its own process group (startChild): signal the
	// group, so what it started itself (go test's test binary) ends too.
	pid := c.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(d):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-c.done
	}
}

var procs struct {
	sync.Mutex
	list []*child
}

// startChild starts cmd as a registered child. Children get their own
// process group, so a Ctrl-C in the terminal reaches only the tool, which
// then stops them in order; and they are killed by the kernel should the
// tool itself die without cleaning up.
func startChild(name string, cmd *exec.Cmd) (*child, error) {
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if cmd.Stderr == nil {
		cmd.Stderr = c
	}
	if cmd.Stdout == nil {
		cmd.Stdout = c
	}
	procs.Lock()
	defer procs.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	procs.list = append(procs.list, c)
	go func() {
		cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stopAll stops every child still running, the last started first.
func stopAll() {
	procs.Lock()
	list := append([]*child(nil), procs.list...)
	procs.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop(10 * time.Second)
	}
}

// startRole re-executes this binary with a hidden -role flag. The child
// prints the address it listens on as its first line of standard output.
func startRole(ctx context.Context, role string, args ...string) (*child, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, append([]string{"-role", role}, args...)...)
	stdout, w, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	cmd.Stdout = w
	c, err := startChild(role, cmd)
	w.Close()
	if err != nil {
		stdout.Close()
		return nil, "", err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			addr <- strings.TrimSpace(sc.Text())
		}
		close(addr)
		io.Copy(io.Discard, stdout)
		stdout.Close()
	}()
	select {
	case a, ok := <-addr:
		if !ok || a == "" {
			<-c.done
			return nil, "", fmt.Errorf("%s exited before listening: %s", role, c.logs())
		}
		return c, "http://" + a, nil
	case <-ctx.Done():
		return nil, "", ctx.Err()
	case <-time.After(10 * time.Second):
		return nil, "", fmt.Errorf("%s did not start within 10s: %s", role, c.logs())
	}
}

// freePort asks the kernel for a free loopback port. The port is released
// before it is used, which leaves a small race with other programs; on a
// bench machine that is acceptable, and it lets the gateway run at
// -log-level warn, where it does not log the ports it chose itself.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// gateway is a running event-gateway instance.
type gateway struct {
	*child
	events, config string // base URLs of the two APIs
	etcd           string // host:port of its embedded etcd (-dev only)
	started, ready time.Time
}

// gatewayOpts configures startGateway.
type gatewayOpts struct {
	name    string
	tmp     string // the tool's temporary directory
	dev     bool
	dataDir string // -dev: the embedded etcd's data directory
	dbHosts string // without -dev: the etcd endpoint
	args    []string
	env     []string
	wait    time.Duration
}

// startGateway runs the gateway binary on loopback ports and waits until
// /v1/status/ready answers 200, polling every few milliseconds: that is
// when the instance routes from a configuration it has read from etcd.
func startGateway(ctx context.Context, bin string, o gatewayOpts) (*gateway, error) {
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	eport, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{
		"-log-format", "json", "-log-level", "warn",
		"-config-host", "127.0.0.1", "-config-port", strconv.Itoa(cport),
		"-events-host", "127.0.0.1", "-events-port", strconv.Itoa(eport),
	}
	g := &gateway{
		events: fmt.Sprintf("http://127.0.0.1:%d", eport),
		config: fmt.Sprintf("http://127.0.0.1:%d", cport),
	}
	if o.dev {
		kport, err := freePort()
		if err != nil {
			return nil, err
		}
		g.etcd = fmt.Sprintf("127.0.0.1:%d", kport)
		args = append(args, "-dev", "-embed-data-dir", o.dataDir,
			"-embed-cli-addr", "http://"+g.etcd, "-embed-peer-addr", "http://127.0.0.1:0")
	} else {
		args = append(args, "-db-hosts", o.dbHosts)
	}
	args = append(args, o.args...)
	cmd := exec.Command(bin, args...)
	// Its own working directory, so data directories with relative
	// defaults (the embedded NATS server's) are its own and go away with
	// the tool's temporary directory.
	cmd.Dir = filepath.Join(o.tmp, o.name)
	if err := os.MkdirAll(cmd.Dir, 0o755); err != nil {
		return nil, err
	}
	if len(o.env) > 0 {
		cmd.Env = append(os.Environ(), o.env...)
	}
	g.started = time.Now()
	c, err := startChild(o.name, cmd)
	if err != nil {
		return nil, err
	}
	g.child = c
	if o.wait == 0 {
		o.wait = 60 * time.Second
	}
	deadline := time.Now().Add(o.wait)
	for {
		if code, _, err := get(ctx, g.config+"/v1/status/ready"); err == nil && code == http.StatusOK {
			g.ready = time.Now()
			return g, nil
		}
		if c.exited() {
			return nil, fmt.Errorf("%s exited before it was ready:\n%s", o.name, c.logs())
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			c.stop(5 * time.Second)
			return nil, fmt.Errorf("%s not ready after %v:\n%s", o.name, o.wait, c.logs())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// vmStatus reads a field of /proc/<pid>/status in bytes (VmRSS, VmHWM).
func vmStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", field, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// ctl is the client of control requests (configuration, polling, counts),
// kept apart from the load generator's connections.
var ctl = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func get(ctx context.Context, url string) (int, []byte, error) {
	return do(ctx, http.MethodGet, url, nil, nil)
}

func do(ctx context.Context, method, url string, body []byte, header http.Header) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := ctl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// postJSON sends a configuration request and fails unless it answers 200.
func postJSON(ctx context.Context, url, body string) error {
	code, b, err := do(ctx, http.MethodPost, url, []byte(body), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("POST %s %s: %d %s", url, body, code, b)
	}
	return nil
}

// waitStatus polls url until it answers want, at most d.
func waitStatus(ctx context.Context, url string, want int, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		code, b, err := get(ctx, url)
		if err == nil && code == want {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", code, b)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(2 * time.Millisecond)
	}
	return errors.New("GET " + url + ": still " + last + " after " + d.String())
}
