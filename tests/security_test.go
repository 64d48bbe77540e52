package tests

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/etcdtest"
	"github.com/event-gateway/event-gateway/internal/gwproc"
)

// TestTLSAndToken serves both APIs over TLS and requires a token on the
// Configuration API, taken from the environment as the JS client does.
func TestTLSAndToken(t *testing.T) {
	dir := t.TempDir()
	certs, err := etcdtest.WriteCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	gw := start(t, gwproc.Options{
		Args: devArgs(t.TempDir(),
			"-config-tls-cert", certs.ServerCert, "-config-tls-key", certs.ServerKey,
			"-events-tls-cert", certs.ServerCert, "-events-tls-key", certs.ServerKey),
		Env: []string{"EVENT_GATEWAY_TOKEN=t0ps3cret"},
	})
	if !strings.HasPrefix(gw.ConfigURL, "https://") || !strings.HasPrefix(gw.EventsURL, "https://") {
		t.Fatalf("URLs %s %s are not https", gw.ConfigURL, gw.EventsURL)
	}
	pem, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tc := validator.Client(&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}})
	do := func(method, url, body string, headers ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := tc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		resp.Body.Close()
		return resp
	}

	if r := do("GET", gw.ConfigURL+"/v1/status", ""); r.StatusCode != 200 {
		t.Fatalf("status without a token: %d, want 200 (open)", r.StatusCode)
	}
	if r := do("GET", gw.ConfigURL+"/v1/functions", ""); r.StatusCode != 401 {
		t.Fatalf("no token: %d, want 401", r.StatusCode)
	}
	for _, path := range []string{"/metrics", "/v1/metrics"} {
		if r := do("GET", gw.ConfigURL+path, ""); r.StatusCode != 401 {
			t.Fatalf("%s without a token: %d, want 401", path, r.StatusCode)
		}
	}
	if r := do("GET", gw.ConfigURL+"/v1/functions", "", "Authorization", "Bearer wrong"); r.StatusCode != 401 {
		t.Fatalf("wrong token: %d, want 401", r.StatusCode)
	}
	r := do("POST", gw.ConfigURL+"/v1/functions", `{"functionId":"f","provider":{"type":"http","url":"http://127.0.0.1:1/"}}`, "Authorization", "bearer t0ps3cret")
	if r.StatusCode != 200 {
		t.Fatalf("right token (lower-case scheme): %d", r.StatusCode)
	}
	if r.Header.Get("X-Request-Id") == "" {
		t.Fatal("no X-Request-Id on the response")
	}
	if r := do("POST", gw.EventsURL+"/", `{}`, "Event", "e", "X-Request-Id", "trace-42"); r.StatusCode != 202 || r.Header.Get("X-Request-Id") != "trace-42" {
		t.Fatalf("event over TLS: %d, request id %q", r.StatusCode, r.Header.Get("X-Request-Id"))
	}
	if strings.Contains(gw.Logs(), "t0ps3cret") {
		t.Fatal("the token appears in the logs")
	}
	// Plain HTTP to a TLS port is refused.
	if resp, err := client.Get(strings.Replace(gw.ConfigURL, "https://", "http://", 1) + "/v1/status"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS port")
		}
	}
}
