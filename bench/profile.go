package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/event-gateway/event-gateway/internal/gwproc"
)

// With -cpuprofile the gateway is built with one more file, given to the
// compiler through -overlay so the repository is not touched: it serves
// net/http/pprof on the address in $pprofEnv, for the first gateway only.
// The profiles are taken during extra runs after the measured ones, so the
// report's figures are not made with the profiler on.
const pprofEnv = "EVENT_GATEWAY_BENCH_PPROF"

const pprofSource = `package main

import (
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("` + pprofEnv + `")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return
	}
	go http.Serve(ln, nil)
}
`

// buildGateway builds the gateway, with the pprof file when profiling.
func buildGateway(ctx context.Context, tmp string, profile bool) (string, error) {
	if !profile {
		return gwproc.Build(ctx, tmp, false)
	}
	root, err := gwproc.ModuleRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(tmp, "zz_bench_pprof.go")
	if err := os.WriteFile(src, []byte(pprofSource), 0o644); err != nil {
		return "", err
	}
	overlay, err := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(root, "cmd", "event-gateway", "zz_bench_pprof.go"): src},
	})
	if err != nil {
		return "", err
	}
	ov := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o644); err != nil {
		return "", err
	}
	return gwproc.BuildPackage(ctx, "./cmd/event-gateway", filepath.Join(tmp, "event-gateway"), "-overlay", ov)
}

// profileRun loads the gateway with t in a closed loop while it takes a CPU
// profile, writes it to dir/name.pprof and its top functions to
// dir/name.top.txt.
func profileRun(ctx context.Context, pprofAddr, dir, name string, t vegeta.Target, conns int, d time.Duration) error {
	progress("profile %s: closed loop for %v with the gateway's CPU profiler on", name, d)
	secs := max(1, int(d.Seconds())-1)
	// The CPU profile and, over the same seconds, the allocations (a
	// delta profile), each fetched as the pprof handler serves it.
	fetch := func(kind string) <-chan error {
		ch := make(chan error, 1)
		go func() {
			// Start profiling a moment after the load, so the profile is
			// all steady state.
			time.Sleep(500 * time.Millisecond)
			ch <- fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", pprofAddr, kind, secs), secs,
				filepath.Join(dir, name+map[string]string{"profile": ".pprof", "allocs": ".allocs.pprof"}[kind]))
		}()
		return ch
	}
	cpuDone, allocsDone := fetch("profile"), fetch("allocs")
	closedLoop(ctx, t, conns, d)
	if err := errors.Join(<-cpuDone, <-allocsDone); err != nil {
		return err
	}
	file := filepath.Join(dir, name+".pprof")
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=40", file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %v: %s", err, top)
	}
	cum, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=40", file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %v: %s", err, cum)
	}
	text := string(top) + "\n--- sorted by cumulative time ---\n" + string(cum)
	return os.WriteFile(filepath.Join(dir, name+".top.txt"), []byte(strings.TrimSpace(text)+"\n"), 0o644)
}

// fetchProfile saves the profile at url to file.
func fetchProfile(ctx context.Context, url string, secs int, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: time.Duration(secs+30) * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("pprof: %s: %s", resp.Status, b)
	}
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// heapProfile saves the heap profile of the gateway serving pprof on addr,
// taken after a GC, with its top functions by live bytes, and returns the
// live heap (HeapAlloc).
func heapProfile(ctx context.Context, addr, file string) (int64, error) {
	_, b, err := get(ctx, "http://"+addr+"/debug/pprof/heap?gc=1")
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return 0, err
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-sample_index=inuse_space", "-nodecount=30", file).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("go tool pprof: %v: %s", err, top)
	}
	if err := os.WriteFile(strings.TrimSuffix(file, ".pprof")+".top.txt", top, 0o644); err != nil {
		return 0, err
	}
	_, text, err := get(ctx, "http://"+addr+"/debug/pprof/heap?debug=1")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no HeapAlloc in the heap profile of %s", addr)
}
