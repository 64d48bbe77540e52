package tests

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/openapitest"
)

// TestHostileInput sends malformed and hostile requests to both APIs: each
// gets a clear 4xx, and the gateway keeps serving.
func TestHostileInput(t *testing.T) {
	gw := startDev(t, "")
	fn := newFunction(t, respondJSON(`{"body":"ok"}`))
	routeHTTP(t, gw, "fn", "POST", "/in", fn)

	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	cfg, ev := gw.ConfigURL, gw.EventsURL
	for _, tt := range []struct {
		name, method, url, body string
		headers                 []string
		want                    int
	}{
		{"invalid JSON", "POST", cfg + "/v1/functions", `{"functionId":`, nil, 400},
		{"deep nesting", "POST", cfg + "/v1/functions", deep, nil, 400},
		{"deep nesting in a field", "POST", cfg + "/v1/subscriptions", `{"event":"e","functionId":"f","cors":` + deep + `}`, nil, 400},
		{"invalid UTF-8 id", "POST", cfg + "/v1/functions", "{\"functionId\":\"a\xff\",\"provider\":{\"type\":\"http\",\"url\":\"http://h\"}}", nil, 400},
		{"NUL in id", "POST", cfg + "/v1/functions", `{"functionId":"a\u0000b","provider":{"type":"http","url":"http://h"}}`, nil, 400},
		{"traversal id", "GET", cfg + "/v1/functions/..%2F..%2Fetc%2Fpasswd", "", nil, 404},
		{"dot-dot id", "DELETE", cfg + "/v1/functions/..", "", nil, 404},
		{"encoded traversal subscription", "DELETE", cfg + "/v1/subscriptions/%2e%2e%2f%2e%2e", "", nil, 404},
		{"unknown fields", "POST", cfg + "/v1/subscriptions", `{"event":"e","functionId":"f","admin":true}`, nil, 400},
		{"number for string", "POST", cfg + "/v1/functions", `{"functionId":1}`, nil, 400},
		{"array body", "POST", cfg + "/v1/subscriptions", `[]`, nil, 400},
		{"huge body", "POST", cfg + "/v1/functions", `{"functionId":"` + strings.Repeat("x", 2<<20) + `"}`, nil, 413},
		{"events: invalid JSON under a JSON type", "POST", ev + "/", `{oops`, []string{"Event", "e", "Content-Type", "application/json"}, 400},
		{"events: JSON nested past the decoder's limit", "POST", ev + "/", deep, []string{"Event", "e", "Content-Type", "application/json"}, 400},
		{"events: bad event name", "POST", ev + "/", `{}`, []string{"Event", "a/../b"}, 400},
		{"events: invalid UTF-8 event name", "POST", ev + "/", `{}`, []string{"Event", "e\xff"}, 400},
		{"events: huge body", "POST", ev + "/in", strings.Repeat("x", 7<<20), nil, 413},
		{"events: invalid UTF-8 in a JSON custom event", "POST", ev + "/", "{\"a\":\"x\xffy\"}", []string{"Event", "e", "Content-Type", "application/json"}, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, tt.method, tt.url, tt.body, tt.headers...)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %.200s", r.status, tt.want, r.body)
			}
			if r.status >= 400 && r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("error with Content-Type %q", r.header.Get("Content-Type"))
			}
		})
	}

	// Invalid UTF-8 in a CloudEvent's data is refused as such, before its
	// type is looked up.
	expect(t, call(t, "POST", ev+"/", "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\",\"type\":\"e\",\"data\":\"x\xff\"}",
		"Content-Type", "application/cloudevents+json"), 400, "UTF-8")

	// Headers larger than -max-header-bytes (64 KiB by default) are refused
	// by the server before any handler runs: its answers, not the
	// gateway's, are not in the OpenAPI document.
	serverAnswers := openapitest.Unchecked(context.Background(), "answered by the HTTP server before any handler")
	for _, base := range []string{cfg, ev} {
		req, _ := http.NewRequestWithContext(serverAnswers, "GET", base+"/v1/status", nil)
		req.Header.Set("X-Big", strings.Repeat("h", 100<<10))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%s: huge header: %d, want 431", base, resp.StatusCode)
		}
		req, _ = http.NewRequestWithContext(serverAnswers, "GET", base+"/"+strings.Repeat("u", 100<<10), nil)
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge && resp.StatusCode != http.StatusRequestURITooLong {
			t.Fatalf("%s: huge URL: %d, want 431 or 414", base, resp.StatusCode)
		}
	}

	// A client that sends half a request line and stops is cut off by the
	// header timeout instead of holding a connection for ever; the gateway
	// serves others meanwhile.
	conn, err := net.Dial("tcp", strings.TrimPrefix(ev, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST /in HTTP/1.1\r\nHost: x\r\n")
	expect(t, call(t, "POST", ev+"/in", `{}`, "Content-Type", "application/json"), 200, "")
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
		// The server may answer 408 before closing: fine too.
		t.Log("slow client got an answer before being cut off")
	}

	// Still serving.
	expect(t, call(t, "GET", cfg+"/v1/status", ""), 200, "")
	expect(t, call(t, "POST", ev+"/in", `{}`, "Content-Type", "application/json"), 200, "")
}
