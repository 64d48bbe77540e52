package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/gwproc"
)

// preSpacesCommit is the last commit whose binary stored configuration
// before the core knew of spaces: the data its users have.
const preSpacesCommit = "8b89684"

// TestUpgradeFromPreSpacesData: a gateway started on a data directory
// written by the binary of before spaces serves that configuration
// unchanged: the same subscription ids, its routes and events, and the
// index keys that guard deletes and path conflicts. This is the proof that
// no migration is needed.
func TestUpgradeFromPreSpacesData(t *testing.T) {
	root, err := gwproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("git", "-C", root, "cat-file", "-e", preSpacesCommit+"^{commit}").Run(); err != nil {
		if out, _ := exec.Command("git", "-C", root, "rev-parse", "--is-shallow-repository").Output(); strings.TrimSpace(string(out)) == "true" {
			t.Skipf("commit %s is not in this shallow clone: run in a full clone", preSpacesCommit)
		}
		t.Fatalf("commit %s is not in this clone's history: %v", preSpacesCommit, err)
	}
	// Build the old binary from its own sources.
	src := t.TempDir()
	archive := exec.Command("sh", "-c", "git -C \"$1\" archive \"$2\" | tar -x -C \"$3\"", "sh", root, preSpacesCommit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	oldBin := filepath.Join(t.TempDir(), "event-gateway-old")
	build := exec.CommandContext(ctx, "go", "build", "-o", oldBin, "./cmd/event-gateway")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", preSpacesCommit, err, out)
	}

	fn := newFunction(t, respondJSON(`{"statusCode":200,"body":"hi"}`))
	dir := t.TempDir()
	args := devArgs(filepath.Join(dir, "etcd"), "-nats-data-dir", filepath.Join(dir, "nats"))

	old, err := gwproc.Start(oldBin, gwproc.Options{Args: args})
	if err != nil {
		t.Fatal(err)
	}
	checkAPIs(t, old)
	registerHTTP(t, old, "f", fn)
	httpID := subscribe(t, old, `{"functionId":"f","event":"http","method":"GET","path":"/users/:id"}`)
	customID := subscribe(t, old, `{"functionId":"f","event":"user.created","path":"/"}`)
	subscribe(t, old, `{"functionId":"f","event":"invoke","path":"/"}`)
	oldList := call(t, "GET", old.ConfigURL+"/v1/subscriptions", "")
	if code, err := old.Stop(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop the old gateway: exit %d, %v\n%s", code, err, old.Logs())
	}

	gw := start(t, gwproc.Options{Args: args})
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/subscriptions/"+httpID, ""), 200, "")
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/subscriptions/"+customID, ""), 200, "")
	if got := call(t, "GET", gw.ConfigURL+"/v1/subscriptions", ""); got.body != oldList.body {
		t.Fatalf("subscriptions after the upgrade:\n%s\nbefore:\n%s", got.body, oldList.body)
	}
	// The same subscription made again is the same one: its id did not
	// change.
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/subscriptions", `{"functionId":"f","event":"user.created","path":"/"}`), 409, "already")
	// The index keys still guard: a conflicting path and deleting a
	// function in use are refused.
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/subscriptions", `{"functionId":"f","event":"http","method":"GET","path":"/users/:name"}`), 409, "conflicts")
	expect(t, call(t, "DELETE", gw.ConfigURL+"/v1/functions/f", ""), 409, "used by a subscription")

	// Routes, events and invoke work.
	r := call(t, "GET", gw.EventsURL+"/users/7", "")
	if r.status != 200 || r.body != "hi" {
		t.Fatalf("GET /users/7 after the upgrade: %d %s", r.status, r.body)
	}
	fn.next(t)
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"a":1}`, "Event", "user.created", "Content-Type", "application/json"), 202, "")
	if ev := fn.next(t); ev.Event != "user.created" {
		t.Fatalf("delivered %+v", ev)
	}
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "invoke", "Function-ID", "f", "Content-Type", "application/json"), 200, "")

	// And deleting works through the old index keys.
	expect(t, call(t, "DELETE", gw.ConfigURL+"/v1/subscriptions/"+httpID, ""), 204, "")
	eventually(t, "route gone", func() bool { return call(t, "GET", gw.EventsURL+"/users/7", "").status == 404 })
}
