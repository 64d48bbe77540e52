package tests

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/gwproc"
)

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary(t), "-version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "event-gateway ") {
		t.Fatalf("-version: %v: %s", err, out)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-log-format", "xml"},
		{"-log-level", "loud"},
		{"-config-port", "70000"},
		{"-no-such-flag"},
		{"stray"},
	} {
		out, err := exec.Command(binary(t), args...).CombinedOutput()
		if code := exitCode(err); code != 2 {
			t.Errorf("%v: exit code %d, want 2; output %s", args, code, out)
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// TestConfigurationAPI drives every Configuration API endpoint of a -dev
// gateway, with the error cases a client can hit.
func TestConfigurationAPI(t *testing.T) {
	gw := startDev(t, "")
	cfg := gw.ConfigURL

	expect(t, call(t, "GET", cfg+"/v1/status", ""), 200, "")
	var ready struct {
		Status   string
		Revision int64
	}
	r0 := call(t, "GET", cfg+"/v1/status/ready", "")
	expect(t, r0, 200, "")
	decode(t, r0, &ready)
	if ready.Status != "ready" || ready.Revision <= 0 {
		t.Fatalf("readiness %s", r0.body)
	}

	// Functions.
	expect(t, call(t, "POST", cfg+"/v1/functions", `{"functionId":"hello","provider":{"type":"http","url":"http://127.0.0.1:1/hello"}}`, "Content-Type", "application/json"), 200, "")
	expect(t, call(t, "POST", cfg+"/v1/functions", `{"functionId":"hello","provider":{"type":"http","url":"http://127.0.0.1:1/hello"}}`), 409, "already exists")
	expect(t, call(t, "POST", cfg+"/v1/functions", `{"functionId":"bad id","provider":{"type":"http","url":"http://h"}}`), 400, "functionId")
	expect(t, call(t, "POST", cfg+"/v1/functions", `{"functionId":"f","provider":{"type":"lambda"}}`), 400, "not supported")
	expect(t, call(t, "POST", cfg+"/v1/functions", `{"functionId":"f","provider":{"type":"http","url":"not a url"}}`), 400, "absolute")
	expect(t, call(t, "POST", cfg+"/v1/functions", `{"functionId":"f","provider":{"type":"awslambda","arn":"a"}}`), 400, "region")
	expect(t, call(t, "POST", cfg+"/v1/functions", `{"functionId":`), 400, "not valid JSON")
	expect(t, call(t, "POST", cfg+"/v1/functions", `{"functionId":"f","provider":{"type":"http","url":"http://h/`+strings.Repeat("x", 1<<20)+`"}}`), 413, "larger than")

	lam := call(t, "POST", cfg+"/v1/functions", `{"functionId":"lam","provider":{"type":"awslambda","arn":"arn:aws:lambda:us-east-1:1:function:f","region":"us-east-1","awsAccessKeyId":"AKID","awsSecretAccessKey":"TOPSECRET","awsSessionToken":"SESSIONTOKEN"}}`)
	expect(t, lam, 200, "")
	for _, r := range []response{lam, call(t, "GET", cfg+"/v1/functions/lam", ""), call(t, "GET", cfg+"/v1/functions", "")} {
		if strings.Contains(r.body, "TOPSECRET") || strings.Contains(r.body, "SESSIONTOKEN") {
			t.Fatalf("a secret is returned in clear: %s", r.body)
		}
	}
	var list struct {
		Functions []struct {
			FunctionID string `json:"functionId"`
		} `json:"functions"`
	}
	decode(t, call(t, "GET", cfg+"/v1/functions", ""), &list)
	if len(list.Functions) != 2 {
		t.Fatalf("functions: %+v", list)
	}
	expect(t, call(t, "GET", cfg+"/v1/functions/hello", ""), 200, "")
	expect(t, call(t, "GET", cfg+"/v1/functions/nope", ""), 404, "not found")
	expect(t, call(t, "PUT", cfg+"/v1/functions/hello", `{"provider":{"type":"http","url":"http://127.0.0.1:2/v2"}}`), 200, "")
	expect(t, call(t, "PUT", cfg+"/v1/functions/hello", `{"provider":{"type":"http"}}`), 400, "url is required")
	expect(t, call(t, "PUT", cfg+"/v1/functions/nope", `{"provider":{"type":"http","url":"http://h"}}`), 404, "not found")

	// Subscriptions.
	var sub struct {
		SubscriptionID string `json:"subscriptionId"`
		Method, Path   string
	}
	r := call(t, "POST", cfg+"/v1/subscriptions", `{"functionId":"hello","event":"http","method":"get","path":"/users/:id"}`)
	expect(t, r, 200, "")
	decode(t, r, &sub)
	if sub.SubscriptionID == "" || sub.Method != "GET" || sub.Path != "/users/:id" {
		t.Fatalf("subscription %+v", sub)
	}
	expect(t, call(t, "POST", cfg+"/v1/subscriptions", `{"functionId":"hello","event":"http","method":"GET","path":"/users/:id"}`), 409, "already exists")
	expect(t, call(t, "POST", cfg+"/v1/subscriptions", `{"functionId":"hello","event":"http","method":"GET","path":"/users/admin"}`), 409, "conflicts")
	expect(t, call(t, "POST", cfg+"/v1/subscriptions", `{"functionId":"hello","event":"http","method":"GET","path":"/users/:name"}`), 409, "conflicts")
	expect(t, call(t, "POST", cfg+"/v1/subscriptions", `{"functionId":"hello","event":"http","method":"GET","path":"/users/*all"}`), 409, "conflicts")
	expect(t, call(t, "POST", cfg+"/v1/subscriptions", `{"functionId":"hello","event":"http","path":"/x"}`), 400, "method is required")
	expect(t, call(t, "POST", cfg+"/v1/subscriptions", `{"functionId":"hello","event":"http","method":"BREW","path":"/x"}`), 400, "method")
	expect(t, call(t, "POST", cfg+"/v1/subscriptions", `{"functionId":"nope","event":"user.created"}`), 400, "does not exist")
	expect(t, call(t, "POST", cfg+"/v1/subscriptions", `{"functionId":"hello","event":"user created"}`), 400, "event")
	expect(t, call(t, "POST", cfg+"/v1/subscriptions", `{"functionId":"hello","event":"http","method":"GET","path":"/c","cors":{"methods":[]}}`), 400, "empty list")
	expect(t, call(t, "GET", cfg+"/v1/subscriptions/"+sub.SubscriptionID, ""), 200, "")
	expect(t, call(t, "GET", cfg+"/v1/subscriptions/nope", ""), 404, "not found")

	expect(t, call(t, "DELETE", cfg+"/v1/functions/hello", ""), 409, "used by a subscription")
	expect(t, call(t, "DELETE", cfg+"/v1/subscriptions/"+sub.SubscriptionID, ""), 204, "")
	expect(t, call(t, "DELETE", cfg+"/v1/subscriptions/"+sub.SubscriptionID, ""), 404, "not found")
	expect(t, call(t, "DELETE", cfg+"/v1/functions/hello", ""), 204, "")
	expect(t, call(t, "DELETE", cfg+"/v1/functions/hello", ""), 404, "not found")

	// Protocol errors.
	expect(t, call(t, "GET", cfg+"/v2/things", ""), 404, "no endpoint")
	expect(t, call(t, "DELETE", cfg+"/v1/functions", ""), 405, "not allowed")
}

// TestDevDataSurvivesRestart: the embedded etcd keeps its data dir.
func TestDevDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	gw := startDev(t, dir)
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/functions", `{"functionId":"kept","provider":{"type":"http","url":"http://127.0.0.1:1/"}}`), 200, "")
	if code, err := gw.Stop(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("stop: exit %d, %v\n%s", code, err, gw.Logs())
	}
	gw = startDev(t, dir)
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/functions/kept", ""), 200, "")
}

// TestWithoutEtcd: with no reachable etcd the gateway keeps running, says
// why, and the Configuration API answers 503 rather than hanging.
func TestWithoutEtcd(t *testing.T) {
	gw := start(t, gwproc.Options{Args: []string{"-db-hosts", "127.0.0.1:1", "-db-timeout", "300ms"}, Ready: "waiting for etcd"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := gw.WaitLog(ctx, "waiting for etcd", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/status", ""), 200, "")
	r := call(t, "GET", gw.ConfigURL+"/v1/status/ready", "")
	if r.status != 503 || !strings.Contains(r.body, "not loaded") {
		t.Fatalf("readiness without etcd: %d %s", r.status, r.body)
	}
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/functions", ""), 503, "unavailable")
	// Without its configuration the Events API accepts nothing: a 202
	// now would be an event that goes nowhere.
	r = call(t, "POST", gw.EventsURL+"/", "{}", "Event", "user.created")
	expect(t, r, 503, "not loaded")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	expect(t, call(t, "GET", gw.EventsURL+"/users/1", ""), 503, "not loaded")
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/functions", `{"functionId":"f","provider":{"type":"http","url":"http://h"}}`), 503, "unavailable")
	// Still alive after several retries.
	if err := gw.WaitLog(ctx, `"attempt":3`, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := gw.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("gateway died: %v", err)
	}
}

// TestGracefulShutdown: SIGTERM exits 0.
func TestGracefulShutdown(t *testing.T) {
	gw := startDev(t, "")
	code, err := gw.Stop(10 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	if !strings.Contains(gw.Logs(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop logged:\n%s", gw.Logs())
	}
}

// TestSecondSignalExitsAtOnce: a second signal does not wait for the
// graceful shutdown the first one started.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	gw := startDev(t, "")
	release := make(chan struct{})
	fn := newFunction(t, func(w http.ResponseWriter, _ envelope) {
		<-release
		w.Write([]byte(`{}`))
	})
	t.Cleanup(func() { close(release) })
	// A long timeout, so only a signal can end the request.
	register(t, gw, "blocking", fmt.Sprintf(`{"functionId":"blocking","timeout":"1m","provider":{"type":"http","url":%q}}`, fn.srv.URL))
	subscribe(t, gw, `{"functionId":"blocking","event":"http","method":"GET","path":"/block"}`)
	// Routes are applied in the order they were written: once a later
	// one is routable, /block is too.
	probe := newFunction(t, respondJSON(`{}`))
	routeHTTP(t, gw, "probe", "GET", "/probe", probe)
	done := make(chan error, 1)
	go func() {
		// openapitest: not checked: the request is cut off, no response is read
		resp, err := http.Get(gw.EventsURL + "/block")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-fn.received
	gw.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.WaitLog(ctx, "shutting down", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	gw.Signal(syscall.SIGTERM)
	if _, err := gw.Wait(10 * time.Second); err != nil {
		t.Fatal("the second signal did not end the process")
	}
	if err := <-done; err == nil {
		t.Fatal("the in-flight request was answered: the process waited for it")
	}
}
