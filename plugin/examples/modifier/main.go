// Command modifier is an Event Gateway modifier plugin. It changes every
// call made by the gateway:
//
//   - the event: a JSON object's data gets "modifiedBy": "modifier";
//   - the response of a synchronous call: the header X-Modified-By;
//   - a failed synchronous call: answered 503 with a JSON body and
//     Retry-After, instead of the gateway's 502 or 504.
//
// Build it and load it with -plugin:
//
//	go build -o /tmp/modifier ./plugin/examples/modifier
//	go run ./cmd/event-gateway -dev -plugin /tmp/modifier
package main

import (
	"encoding/json"

	"github.com/event-gateway/event-gateway/plugin"
)

type modifier struct{}

// ModifyRequest adds a field to the data of the event. An envelope whose
// data is not a JSON object goes as it is.
func (modifier) ModifyRequest(c plugin.Call, ev []byte) ([]byte, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(ev, &env); err != nil {
		return ev, nil
	}
	var data map[string]any
	if err := json.Unmarshal(env["data"], &data); err != nil || data == nil {
		return ev, nil
	}
	data["modifiedBy"] = "modifier"
	b, err := json.Marshal(data)
	if err != nil {
		return ev, nil
	}
	env["data"] = b
	return json.Marshal(env)
}

// ModifyResponse marks the response.
func (modifier) ModifyResponse(c plugin.Call, r plugin.Response) (plugin.Response, error) {
	h := make(map[string]string, len(r.Headers)+1)
	for k, v := range r.Headers {
		h[k] = v
	}
	h["X-Modified-By"] = "modifier"
	r.Headers = h
	return r, nil
}

// ModifyError answers a failed call with a body a client can act on.
func (modifier) ModifyError(c plugin.Call, e plugin.CallError) (*plugin.Response, error) {
	body, _ := json.Marshal(map[string]any{"error": "the service is unavailable, try again", "function": c.FunctionID, "timeout": e.Timeout})
	return &plugin.Response{
		StatusCode: 503,
		Headers:    map[string]string{"Content-Type": "application/json", "Retry-After": "1"},
		Body:       body,
	}, nil
}

func main() {
	plugin.ServeKinds(plugin.Kinds{Modifier: modifier{}})
}
