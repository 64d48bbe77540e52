package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/event-gateway/event-gateway/internal/gwproc"
)

// runCLI runs a subcommand of the gateway binary, as an operator or a CI
// job does, with env added to the environment.
func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

// spaceYAML is a state file: an http route to hello, a custom event
// delivered to a lambda whose secret comes from the environment.
const spaceYAML = `space: default
functions:
  - functionId: hello
    provider:
      type: http
      url: %s
  - functionId: lambda
    provider:
      type: awslambda
      arn: arn:aws:lambda:us-east-1:123456789012:function:f
      region: us-east-1
      awsAccessKeyId: AKIAEXAMPLE
      awsSecretAccessKey: {fromEnv: TEST_AWS_SECRET}
eventTypes:
  - name: user.created
subscriptions:
  - event: http
    method: GET
    path: /hello
    functionId: hello
  - event: user.created
    type: async
    path: /
    functionId: lambda
cors:
  - method: GET
    path: /hello
    allowedOrigins: ["https://example.com"]
`

const awsSecret = "aws-secret-value-never-shown"

// TestApplyHistoryRollback drives the declarative workflow through the
// CLI and the API of a real gateway: dry run, apply, history with the
// names of the token and key that made each change, export, rollback
// after a function was deleted.
func TestApplyHistoryRollback(t *testing.T) {
	const token = "global-token-value"
	gw := startDev(t, "", "-config-token", token)
	fn := newRawFunction(t, answer(`{"statusCode":200,"body":"hi"}`))
	bearer := []string{"Authorization", "Bearer " + token}

	// A configuration key of the default space for the CI job.
	r := call(t, "POST", gw.ConfigURL+"/v1/spaces/default/keys", `{"kind":"config","name":"ci-deployer"}`, bearer...)
	expect(t, r, 201, "")
	var key struct {
		ID  string `json:"keyId"`
		Key string `json:"key"`
	}
	decode(t, r, &key)

	dir := t.TempDir()
	file := filepath.Join(dir, "space.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, spaceYAML, fn.srv.URL), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"EVENT_GATEWAY_CONFIG_URL=" + gw.ConfigURL, "EVENT_GATEWAY_TOKEN=" + key.Key, "TEST_AWS_SECRET=" + awsSecret}

	// A dry run plans and changes nothing.
	out, errOut, code := runCLI(t, env, "apply", "-f", file, "-dry-run")
	if code != 0 || !strings.Contains(out, "6 to create, 0 to update, 0 to delete") || !strings.Contains(out, "Dry run: nothing changed") {
		t.Fatalf("dry run: code %d\n%s%s", code, out, errOut)
	}
	r = call(t, "GET", gw.ConfigURL+"/v1/functions", "", bearer...)
	expect(t, r, 200, "")
	if strings.Contains(r.body, "hello") {
		t.Fatalf("dry run registered functions: %s", r.body)
	}
	// A secret named in the file must be in the environment.
	_, errOut, code = runCLI(t, env[:2], "apply", "-f", file)
	if code != 1 || !strings.Contains(errOut, "functions[1].provider.awsSecretAccessKey: environment variable TEST_AWS_SECRET is not set") {
		t.Fatalf("apply without the secret's variable: code %d, %s", code, errOut)
	}

	out, errOut, code = runCLI(t, env, "apply", "-f", file)
	if code != 0 || !strings.Contains(out, "Applied to space \"default\"") {
		t.Fatalf("apply: code %d\n%s%s", code, out, errOut)
	}
	// The gateway routes by the applied state.
	r = call(t, "GET", gw.EventsURL+"/hello", "")
	if r.status != 200 {
		t.Fatalf("GET /hello after apply: %d %s", r.status, r.body)
	}
	fn.next(t)

	// An invalid file says where it is wrong, and changes nothing.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(fmt.Sprintf(spaceYAML, fn.srv.URL), "functionId: lambda\n", "functionId: nope\n", 1)), 0o600)
	_, errOut, code = runCLI(t, env, "apply", "-f", bad)
	if code != 1 || !strings.Contains(errOut, `subscriptions[1] (user.created / → lambda): function "lambda" does not exist`) || !strings.Contains(errOut, "HTTP 400") {
		t.Fatalf("invalid file: code %d, %s", code, errOut)
	}
	os.WriteFile(bad, []byte("functions:\n  - functionId: x\n   provider: {}\n"), 0o600)
	_, errOut, code = runCLI(t, env, "apply", "-f", bad, "-space", "default")
	if code != 1 || !strings.Contains(errOut, "bad.yaml: yaml: line ") {
		t.Fatalf("YAML syntax error: code %d, %s", code, errOut)
	}

	// Changes through both API generations, with the token and the key.
	r = call(t, "POST", gw.ConfigURL+"/v1/functions", fmt.Sprintf(`{"functionId":"extra","provider":{"type":"http","url":%q}}`, fn.srv.URL), bearer...)
	expect(t, r, 200, "")
	r = call(t, "PUT", gw.ConfigURL+"/v1/spaces/default/functions/extra", fmt.Sprintf(`{"type":"http","provider":{"url":%q},"metadata":{"team":"a"}}`, fn.srv.URL+"/v2"), "Authorization", "Bearer "+key.Key)
	expect(t, r, 200, "")

	var hist struct {
		History []struct {
			Revision int64 `json:"revision"`
			Actor    struct {
				Kind, KeyID, Name string
			} `json:"actor"`
			Via     string `json:"via"`
			Changes []struct {
				Kind, ID, Action string
				Before, After    map[string]any
			} `json:"changes"`
		} `json:"history"`
	}
	r = call(t, "GET", gw.ConfigURL+"/v1/spaces/default/history", "", bearer...)
	expect(t, r, 200, "")
	for _, secret := range []string{token, key.Key, awsSecret} {
		if strings.Contains(r.body, secret) {
			t.Fatalf("history shows a secret: %s", r.body)
		}
	}
	decode(t, r, &hist)
	if len(hist.History) != 4 || strings.Contains(r.body, "sha256") {
		t.Fatalf("history has %d entries, want 4, without key digests: %s", len(hist.History), r.body)
	}
	upd, created, applied, keyMade := hist.History[0], hist.History[1], hist.History[2], hist.History[3]
	if keyMade.Actor.Kind != "token" || keyMade.Changes[0].Kind != "keys" || keyMade.Changes[0].After["name"] != "ci-deployer" {
		t.Fatalf("key creation entry: %+v", keyMade)
	}
	if upd.Actor.Kind != "key" || upd.Actor.Name != "ci-deployer" || upd.Actor.KeyID != key.ID || upd.Changes[0].Action != "update" ||
		upd.Changes[0].Before["provider"].(map[string]any)["url"] != fn.srv.URL || upd.Changes[0].After["provider"].(map[string]any)["url"] != fn.srv.URL+"/v2" {
		t.Fatalf("spaces API update entry: %+v", upd)
	}
	if created.Actor.Kind != "token" || created.Actor.Name != "config-token" || created.Via != "api" || created.Changes[0].ID != "extra" || created.Changes[0].Action != "create" {
		t.Fatalf("first-generation create entry: %+v", created)
	}
	if applied.Actor.Name != "ci-deployer" || applied.Via != "apply" || len(applied.Changes) != 6 {
		t.Fatalf("apply entry: %+v", applied)
	}

	// Delete the route and its function through the first generation;
	// then roll back to the apply.
	r = call(t, "GET", gw.ConfigURL+"/v1/subscriptions", "", bearer...)
	var subs struct {
		Subscriptions []struct{ SubscriptionID, FunctionID string }
	}
	decode(t, r, &subs)
	for _, s := range subs.Subscriptions {
		if s.FunctionID == "hello" {
			expect(t, call(t, "DELETE", gw.ConfigURL+"/v1/subscriptions/"+s.SubscriptionID, "", bearer...), 204, "")
		}
	}
	expect(t, call(t, "DELETE", gw.ConfigURL+"/v1/functions/hello", "", bearer...), 204, "")
	if r := call(t, "GET", gw.EventsURL+"/hello", ""); r.status != 404 {
		t.Fatalf("GET /hello after deleting its subscription: %d", r.status)
	}
	out, errOut, code = runCLI(t, env, "rollback", "-space", "default", "-revision", fmt.Sprint(applied.Revision))
	if code != 0 || !strings.Contains(out, "2 to create, 0 to update, 1 to delete") {
		t.Fatalf("rollback: code %d\n%s%s", code, out, errOut)
	}
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/functions/hello", "", bearer...), 200, "")
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/functions/extra", "", bearer...), 404, "")
	if r := call(t, "GET", gw.EventsURL+"/hello", ""); r.status != 200 {
		t.Fatalf("GET /hello after the rollback: %d %s", r.status, r.body)
	}
	fn.next(t)
	out, _, _ = runCLI(t, env, "history", "-space", "default", "-limit", "1")
	if !strings.Contains(out, fmt.Sprintf("rollback to %d", applied.Revision)) || !strings.Contains(out, "key:ci-deployer") {
		t.Fatalf("history after the rollback:\n%s", out)
	}

	// Export gives the same state, secrets redacted; applied as it is,
	// it changes nothing (a redacted secret keeps the stored one).
	exported, errOut, code := runCLI(t, env, "export", "-space", "default")
	if code != 0 || strings.Contains(exported, awsSecret) || !strings.Contains(exported, "awsSecretAccessKey: '*****'") || !strings.Contains(exported, "path: /hello") {
		t.Fatalf("export: code %d\n%s%s", code, exported, errOut)
	}
	os.WriteFile(filepath.Join(dir, "exported.yaml"), []byte(exported), 0o600)
	out, errOut, code = runCLI(t, env, "apply", "-f", filepath.Join(dir, "exported.yaml"))
	if code != 0 || !strings.Contains(out, "0 to create, 0 to update, 0 to delete, 6 unchanged") {
		t.Fatalf("apply of the export: code %d\n%s%s", code, out, errOut)
	}

	// An empty file is refused, not read as "delete everything" (which
	// takes an explicit {}).
	_, errOut, code = runCLI(t, env, "apply", "-f", "-", "-space", "default")
	if code != 1 || !strings.Contains(errOut, "must be an object") {
		t.Fatalf("empty standard input: code %d %s", code, errOut)
	}
}

// TestApplyRaceBetweenGateways sends two different states to two gateways
// on one etcd at the same moment, again and again: each apply either
// commits whole or is refused with 409 and nothing of it written.
func TestApplyRaceBetweenGateways(t *testing.T) {
	etcd := newEtcdCluster(t, 1)
	gws := []*gwproc.Process{
		start(t, gwproc.Options{Args: []string{"-db-hosts", etcd.endpoints()}}),
		start(t, gwproc.Options{Args: []string{"-db-hosts", etcd.endpoints()}}),
	}
	state := func(tag string, n int) string {
		var fns []string
		for i := range n {
			fns = append(fns, fmt.Sprintf(`{"functionId":"f%d","provider":{"type":"http","url":"http://127.0.0.1:9/%s"}}`, i, tag))
		}
		return `{"functions":[` + strings.Join(fns, ",") + `]}`
	}
	conflicts := 0
	for round := 0; round < 60 && conflicts < 3; round++ {
		tags := []string{fmt.Sprintf("a%d", round), fmt.Sprintf("b%d", round)}
		var wg sync.WaitGroup
		results := make([]response, 2)
		start := make(chan struct{})
		for i := range 2 {
			wg.Go(func() {
				<-start
				results[i] = call(t, "POST", gws[i].ConfigURL+"/v1/spaces/race/apply", state(tags[i], 20))
			})
		}
		close(start)
		wg.Wait()
		var won []string
		for i, r := range results {
			switch r.status {
			case http.StatusOK:
				won = append(won, tags[i])
			case http.StatusConflict:
				conflicts++
				expect(t, r, http.StatusConflict, "was changed by another writer after it was read at revision")
			default:
				t.Fatalf("apply answered %d: %s", r.status, r.body)
			}
		}
		if len(won) == 0 {
			t.Fatalf("round %d: neither apply committed", round)
		}
		// Every function holds the state of the last apply that
		// committed: never a mix.
		r := call(t, "GET", gws[0].ConfigURL+"/v1/spaces/race/state", "")
		expect(t, r, 200, "")
		last := won[len(won)-1]
		if len(won) == 2 && strings.Count(r.body, "/"+won[0]+`"`) == 20 {
			last = won[0]
		}
		if n := strings.Count(r.body, "/"+last+`"`); n != 20 {
			t.Fatalf("round %d: %d of 20 functions hold state %s: %s", round, n, last, r.body)
		}
	}
	if conflicts == 0 {
		t.Fatal("no two applies ever raced in 60 rounds: the test did not test the race")
	}
	t.Logf("%d applies refused with 409", conflicts)
}

// TestHistoryRetentionAndPages runs a gateway that keeps three records
// per space and reads its history by pages.
func TestHistoryRetentionAndPages(t *testing.T) {
	gw := startDev(t, "", "-history-max-entries", "3")
	for i := range 5 {
		r := call(t, "POST", gw.ConfigURL+"/v1/spaces/kept/functions", fmt.Sprintf(`{"functionId":"f%d","type":"http","provider":{"url":"http://127.0.0.1:9/"}}`, i))
		expect(t, r, 201, "")
	}
	type page struct {
		History []struct {
			Revision int64
			Changes  []struct{ ID string }
		}
		Next string
	}
	var all page
	r := call(t, "GET", gw.ConfigURL+"/v1/spaces/kept/history", "")
	expect(t, r, 200, "")
	decode(t, r, &all)
	var ids []string
	for _, e := range all.History {
		ids = append(ids, e.Changes[0].ID)
	}
	if strings.Join(ids, ",") != "f4,f3,f2" || all.Next != "" {
		t.Fatalf("kept %v (next %q), want the three newest changes f4,f3,f2", ids, all.Next)
	}
	var p1, p2 page
	r = call(t, "GET", gw.ConfigURL+"/v1/spaces/kept/history?limit=2", "")
	decode(t, r, &p1)
	if len(p1.History) != 2 || p1.Next == "" || !strings.Contains(r.header.Get("Link"), `rel="next"`) {
		t.Fatalf("first page: %s (Link %q)", r.body, r.header.Get("Link"))
	}
	r = call(t, "GET", gw.ConfigURL+"/v1/spaces/kept/history?limit=2&cursor="+p1.Next, "")
	decode(t, r, &p2)
	if len(p2.History) != 1 || p2.History[0].Revision != all.History[2].Revision || p2.Next != "" {
		t.Fatalf("second page: %s", r.body)
	}
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/spaces/kept/history?cursor=bogus", ""), 400, "cursor")
	// Before the oldest record kept there is nothing to roll back to.
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/spaces/kept/rollback", fmt.Sprintf(`{"revision":%d}`, all.History[2].Revision-1)), 400, "older than the history kept")
}
