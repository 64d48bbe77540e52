package tests

import (
	"testing"

	"github.com/event-gateway/event-gateway/api/openapi"
)

// TestOpenAPIDocument checks that the gateway serves the embedded OpenAPI
// document without the token, and exercises, through the checking client,
// what the other tests leave out: the emulator provider in both
// generations.
func TestOpenAPIDocument(t *testing.T) {
	gw := startDev(t, "", "-config-token", "tok")
	want, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	r := call(t, "GET", gw.ConfigURL+"/v1/openapi.json", "")
	expect(t, r, 200, "")
	if r.body != string(want) {
		t.Fatal("GET /v1/openapi.json is not the embedded document")
	}
	r = call(t, "GET", gw.ConfigURL+"/v1/openapi.yaml", "")
	expect(t, r, 200, "")
	if r.body != string(openapi.YAML()) {
		t.Fatal("GET /v1/openapi.yaml is not the embedded document")
	}
	// The rest of the port still needs the token.
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/functions", ""), 401, "token")

	auth := []string{"Authorization", "Bearer tok"}
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/functions", `{"functionId":"emu","provider":{"type":"emulator","emulatorUrl":"http://127.0.0.1:1/"}}`, auth...), 200, "")
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/functions/emu", "", auth...), 200, "")
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/spaces/s/functions", `{"functionId":"emu","type":"emulator","provider":{"emulatorUrl":"http://127.0.0.1:1/","apiVersion":"v0"}}`, auth...), 201, "")
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/spaces/s/functions", "", auth...), 200, "")
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/spaces/default/functions/emu", "", auth...), 200, "")
}
