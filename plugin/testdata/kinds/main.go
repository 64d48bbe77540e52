// Command kinds is a test plugin whose kinds and behaviour depend on the
// name it is built as, so one source gives the tests a plugin of each
// kind. Whatever it is asked, it records in $PLUGIN_DIR/<name>.log, one
// JSON line per call. Each kind crashes on "crash" and hangs on "hang" in
// what it is given.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/event-gateway/event-gateway/plugin"
)

type rec struct {
	mu  sync.Mutex
	out *os.File
}

func (r *rec) write(v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := json.Marshal(v)
	r.out.Write(append(b, '\n'))
}

// trouble crashes or hangs when s says so.
func trouble(s string) {
	if strings.Contains(s, "crash") {
		os.Exit(3)
	}
	if strings.Contains(s, "hang") {
		select {}
	}
}

type modifier struct{ r *rec }

func (m modifier) ModifyRequest(c plugin.Call, ev []byte) ([]byte, error) {
	m.r.write(map[string]any{"stage": "request", "call": c, "event": json.RawMessage(ev)})
	trouble(string(ev))
	if strings.Contains(string(ev), "refuse") {
		return nil, errors.New("refused by the modifier")
	}
	var env map[string]json.RawMessage
	if json.Unmarshal(ev, &env) != nil {
		return ev, nil
	}
	// Marked in its data, when an object: what a function sees first.
	var data map[string]json.RawMessage
	if json.Unmarshal(env["data"], &data) == nil && data != nil {
		data["modified"] = json.RawMessage(`true`)
		env["data"], _ = json.Marshal(data)
	} else {
		env["modified"] = json.RawMessage(`true`)
	}
	return json.Marshal(env)
}

func (m modifier) ModifyResponse(c plugin.Call, r plugin.Response) (plugin.Response, error) {
	m.r.write(map[string]any{"stage": "response", "call": c, "status": r.StatusCode})
	trouble(string(r.Body))
	h := map[string]string{"X-Modified": "yes"}
	for k, v := range r.Headers {
		h[k] = v
	}
	r.Headers = h
	return r, nil
}

func (m modifier) ModifyError(c plugin.Call, e plugin.CallError) (*plugin.Response, error) {
	m.r.write(map[string]any{"stage": "error", "call": c, "error": e})
	if c.FunctionID == "unrescued" {
		return nil, nil
	}
	return &plugin.Response{StatusCode: 299, Headers: map[string]string{"Content-Type": "text/plain"}, Body: []byte("rescued: " + c.FunctionID)}, nil
}

// source knows the function "known" of each space, and pushes what the
// file $PLUGIN_DIR/push.json says ({"space/fn": [backends] or null}).
type source struct{ r *rec }

func (s source) Backends(space, functionID string) ([]plugin.Backend, bool, error) {
	s.r.write(map[string]any{"pull": space + "/" + functionID})
	trouble(functionID)
	if functionID == "broken" {
		return nil, false, errors.New("the registry is down")
	}
	if functionID != "known" {
		return nil, false, nil
	}
	return []plugin.Backend{{URL: "http://" + space + ".known:1", Weight: 2}, {URL: "http://" + space + ".known:2", Weight: 1}}, true, nil
}

func (s source) WatchBackends(ctx context.Context, push func(space, functionID string, backends []plugin.Backend)) {
	last := map[string]string{}
	for {
		b, _ := os.ReadFile(filepath.Join(os.Getenv("PLUGIN_DIR"), "push.json"))
		var m map[string]json.RawMessage
		json.Unmarshal(b, &m)
		for k, raw := range m {
			if last[k] == string(raw) {
				continue
			}
			last[k] = string(raw)
			var bs []plugin.Backend
			json.Unmarshal(raw, &bs)
			space, fn, _ := strings.Cut(k, "/")
			push(space, fn, bs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// selector picks the backend with the fewest outstanding calls.
type selector struct{ r *rec }

func (s selector) Select(key string, backends []plugin.BackendStat) (int, error) {
	s.r.write(map[string]any{"key": key, "backends": backends})
	trouble(key)
	switch key {
	case "bad":
		return len(backends), nil
	case "none":
		return -1, nil
	case "error":
		return 0, errors.New("no policy for this")
	}
	best := -1
	for i, b := range backends {
		if b.Healthy && (best < 0 || b.Outstanding < backends[best].Outstanding) {
			best = i
		}
	}
	return best, nil
}

type sink struct{ r *rec }

func (s sink) Record(batch []plugin.Measurement) error {
	for _, m := range batch {
		trouble(m.FunctionID)
	}
	s.r.write(map[string]any{"batch": batch})
	return nil
}

type observer struct{ r *rec }

func (o observer) Subscriptions() []plugin.Subscription {
	return []plugin.Subscription{{EventType: plugin.EventReceived, Type: plugin.Sync}}
}

func (o observer) React(ev plugin.Event) error {
	o.r.write(map[string]any{"event": ev.Event})
	trouble(string(ev.Data))
	return nil
}

func main() {
	name := strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe")
	out, err := os.OpenFile(filepath.Join(os.Getenv("PLUGIN_DIR"), name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	r := &rec{out: out}
	var k plugin.Kinds
	for _, kind := range strings.Split(name, "+") {
		switch kind {
		case "modifier":
			k.Modifier = modifier{r}
		case "backends":
			k.Backends = source{r}
		case "selector":
			k.Selector = selector{r}
		case "metrics":
			k.Metrics = sink{r}
		case "observer":
			k.Observer = observer{r}
		}
	}
	plugin.ServeKinds(k)
}
