package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/openapitest"
)

// slsDir holds the pinned serverless CLI (package.json), the emulator and
// the service the test runs (docs/serverless.md walks through the same).
const (
	slsDir     = "testdata/serverless"
	slsVersion = "1.28.0"
	// slsInner marks the test process that runs inside the private network
	// namespace.
	slsInner = "EG_SERVERLESS_INNER"
)

// TestServerlessRun runs the Serverless Framework's own `serverless run`
// (serverless@1.28.0 from npm, unmodified) against the gateway built from
// this tree, as docs/serverless.md tells a user to: the gateway is
// installed with `event-gateway install-serverless`, serverless starts the
// emulator and the gateway, registers both functions of the service, and
// shows the gateway's activity; GET /hello answers from the function
// through the emulator, `serverless emit` reaches the subscriber, and the
// service folder holds nothing new afterwards.
//
// serverless uses the fixed ports 4000, 4001, 4002 and the gateway's etcd
// 2379 and 2380, so this process runs the test body again, in a private
// network namespace (unshare -n) where they clash with nothing.
func TestServerlessRun(t *testing.T) {
	if os.Getenv(slsInner) != "" {
		serverlessRunInside(t)
		return
	}
	// go test caches a passing result keyed on the files this process
	// reads; node's reads are not seen.
	for _, f := range []string{"package.json", "package-lock.json", "install.sh", "service/serverless.yml", "service/handler.js"} {
		if _, err := os.ReadFile(filepath.Join(slsDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range []string{"node", "npm", "unshare", "ip"} {
		slsTool(t, tool)
	}
	installServerless(t)
	unshareArgs := []string{"-n"}
	if os.Geteuid() != 0 {
		unshareArgs = []string{"-r", "-n"} // a user namespace grants the network one
	}
	if out, err := exec.Command("unshare", append(unshareArgs, "true")...).CombinedOutput(); err != nil {
		slsMissing(t, "unshare "+strings.Join(unshareArgs, " ")+" does not work here: "+err.Error()+" "+string(out))
	}

	gateway := binary(t)
	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	binDir := filepath.Join(tmp, "bin")
	for _, d := range []string{home, binDir, filepath.Join(tmp, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The login marker `run` and `emit` want; no account is contacted.
	rc := `{"userId":"local-test","frameworkId":"local-test","trackingDisabled":true,"users":{"local-test":{"userId":"local-test","dashboard":{"idToken":"local-test-marker"},"auth":{"id_token":"local-test-marker"}}}}`
	if err := os.WriteFile(filepath.Join(home, ".serverlessrc"), []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	emulator, err := filepath.Abs(filepath.Join(slsDir, "emulator", "bin", "emulator"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(emulator, filepath.Join(binDir, "sle")); err != nil {
		t.Fatal(err)
	}
	// The one command docs/serverless.md gives.
	install := exec.Command(gateway, "install-serverless")
	install.Env = append(os.Environ(), "HOME="+home)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("event-gateway install-serverless: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append(unshareArgs, "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`,
		self, "-test.run=^TestServerlessRun$", "-test.v", "-test.count=1")
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Env = append(os.Environ(),
		slsInner+"=1",
		"HOME="+home,
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		// os.tmpdir(): where serverless puts the gateway's -embed-data-dir.
		"TMPDIR="+filepath.Join(tmp, "tmp"),
		"EG_SERVERLESS_WORK="+tmp,
	)
	// Its own process group, all of which goes if the test times out.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("inside unshare -n (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	if ctx.Err() != nil {
		t.Fatal("the serverless run test did not finish within 90s")
	}
	if err != nil {
		t.Fatalf("the serverless run test failed inside its network namespace: %v", err)
	}
}

// serverlessRunInside is the test body, in the private network namespace.
func serverlessRunInside(t *testing.T) {
	work := os.Getenv("EG_SERVERLESS_WORK")
	if work == "" {
		t.Fatal("EG_SERVERLESS_WORK is not set")
	}
	sls, err := filepath.Abs(filepath.Join(slsDir, "node_modules", "serverless", "bin", "serverless"))
	if err != nil {
		t.Fatal(err)
	}
	node := slsTool(t, "node")

	// The user's service, in a folder of its own.
	service := filepath.Join(work, "slsdemo")
	if err := os.CopyFS(service, os.DirFS(filepath.Join(slsDir, "service"))); err != nil {
		t.Fatal(err)
	}
	before := listFiles(t, service)

	run := exec.Command(node, sls, "run")
	run.Dir = service
	var console syncBuffer
	run.Stdout = &console
	run.Stderr = &console
	// serverless kills the emulator and the gateway only when it exits
	// normally: they share its process group, which the test ends.
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		syscall.Kill(-run.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		// The gateway drains on SIGTERM: wait until the whole group is
		// gone before looking at what it left behind.
		for deadline := time.Now().Add(15 * time.Second); syscall.Kill(-run.Process.Pid, 0) == nil; {
			if time.Now().After(deadline) {
				syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
				t.Error("serverless run's children did not exit within 15s of SIGTERM")
				time.Sleep(100 * time.Millisecond)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	defer func() {
		stop()
		t.Logf("serverless run console:\n%s", stripANSI(console.String()))
	}()

	waitConsole := func(what string, d time.Duration) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !strings.Contains(stripANSI(console.String()), what) {
			select {
			case err := <-exited:
				exited <- err
				t.Fatalf("serverless run exited (%v) before showing %q", err, what)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("serverless run did not show %q within %v", what, d)
			}
		}
	}

	// Started, probed, registered: everything the console shows of it.
	for _, line := range []string{
		"Emulator listening on: http://localhost:4002",
		"Function 'slsdemo-hello' loaded",
		"Event Gateway initialized",
		"Event Gateway  Event API listening on: http://localhost:4000",
		"Event Gateway  Config API listening on: http://localhost:4001",
		"Event Gateway  Function 'slsdemo-hello' registered",
		"Event Gateway  Function 'slsdemo-welcome' registered",
		"Event Gateway  Subscription created for event 'http' and function 'slsdemo-hello'",
		"Event Gateway  Subscription created for event 'user.created' and function 'slsdemo-welcome'",
	} {
		waitConsole(line, 45*time.Second)
	}
	t.Logf("gateway started and both functions registered after %v", time.Since(start).Round(time.Millisecond))

	// GET /hello answers from the function, through the emulator.
	validator.Register(t, "http://localhost:4000", openapitest.EventsAPI)
	resp, err := client.Get("http://localhost:4000/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /hello: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var hello struct{ Message, Path string }
	if err := json.Unmarshal(body, &hello); err != nil || hello.Message != "Hello from the emulator" || hello.Path != "/hello" {
		t.Fatalf("GET /hello answered %s (%v)", body, err)
	}
	waitConsole("Event Gateway  Event 'http' received:", 5*time.Second)
	waitConsole("Function 'slsdemo-hello' triggered by event 'http'", 5*time.Second)
	waitConsole("Function 'slsdemo-hello' finished:", 5*time.Second)

	// serverless emit reaches the subscriber.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emit := exec.CommandContext(ctx, node, sls, "emit", "-n", "user.created", "-d", `{"name":"Max"}`)
	emit.Dir = service
	out, err := emit.CombinedOutput()
	if err != nil || !strings.Contains(stripANSI(string(out)), "Emitted the event user.created as datatype application/json") {
		t.Fatalf("serverless emit: %v\n%s", err, out)
	}
	waitConsole("Event Gateway  Event 'user.created' received:", 5*time.Second)
	waitConsole("Function 'slsdemo-welcome' triggered by event 'user.created'", 10*time.Second)
	waitConsole("Function 'slsdemo-welcome' finished:", 10*time.Second)
	waitConsole(`"welcomed": "Max"`, 5*time.Second)

	stop()
	shown := stripANSI(console.String())
	for _, bad := range []string{"raw output:", "Installing Event Gateway", "Installing Emulator", "Serverless Error"} {
		if strings.Contains(shown, bad) {
			t.Errorf("the console shows %q", bad)
		}
	}
	// The service folder holds nothing new: the gateway kept its state
	// under the -embed-data-dir serverless gave it.
	if after := listFiles(t, service); !slices.Equal(before, after) {
		t.Errorf("service folder holds %v after serverless run, had %v", after, before)
	}
	dataDirs, _ := filepath.Glob(filepath.Join(os.Getenv("TMPDIR"), "tmpdirs-serverless", "serverless", "*", "nats"))
	if len(dataDirs) != 1 {
		t.Errorf("want the gateway's NATS data under its -embed-data-dir, found %v", dataDirs)
	}
	t.Logf("whole flow took %v", time.Since(start).Round(time.Millisecond))
}

// listFiles lists every path below dir.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, strings.TrimPrefix(p, dir))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

// syncBuffer collects a child's output, written from two pipes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// slsMissing skips the test for something missing, or fails it in CI,
// which must install it (.ci/run).
func slsMissing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s; CI must provide it (.ci/run)", what)
	}
	t.Skipf("skipping the serverless run test: %s", what)
}

func slsTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		slsMissing(t, name+" is not installed ("+err.Error()+")")
	}
	return p
}

// installServerless runs testdata/serverless/install.sh when serverless or
// the emulator is missing there, and checks the version of serverless.
func installServerless(t *testing.T) {
	t.Helper()
	pkg := filepath.Join(slsDir, "node_modules", "serverless", "package.json")
	_, errSls := os.Stat(pkg)
	_, errEmu := os.Stat(filepath.Join(slsDir, "emulator", "node_modules"))
	if errors.Is(errSls, fs.ErrNotExist) || errors.Is(errEmu, fs.ErrNotExist) {
		root, err := filepath.Abs("..")
		if err != nil {
			t.Fatal(err)
		}
		tgz := filepath.Join(filepath.Dir(root), "shared", "clients", "serverless-emulator-0.1.18.tgz")
		if _, err := os.Stat(tgz); err != nil {
			slsMissing(t, "serverless and the emulator are not installed in tests/"+slsDir+" and "+tgz+" is not there to install the emulator from")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "./install.sh", filepath.Dir(tgz))
		cmd.Dir = slsDir
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tests/%s/install.sh: %v\n%s", slsDir, err, out)
		}
		t.Logf("installed serverless and the emulator in %v", time.Since(start).Round(time.Millisecond))
	}
	b, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct{ Version string }
	if err := json.Unmarshal(b, &meta); err != nil || meta.Version != slsVersion {
		t.Fatalf("tests/%s has serverless %q (%v), want %s; run tests/%s/install.sh", slsDir, meta.Version, err, slsVersion, slsDir)
	}
}
