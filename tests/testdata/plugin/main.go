// Command plugin is a test plugin whose behaviour depends on the name it is
// built as, so one source gives the end-to-end tests several plugins.
package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/event-gateway/event-gateway/plugin"
)

type reacter struct {
	mode string
	mu   sync.Mutex
	out  *os.File // record of what arrived, one JSON line per event
}

func (r *reacter) Subscriptions() []plugin.Subscription {
	switch r.mode {
	case "recorder":
		return []plugin.Subscription{
			{EventType: plugin.EventReceived, Type: plugin.Async},
			{EventType: plugin.FunctionInvoking, Type: plugin.Async},
			{EventType: plugin.FunctionInvoked, Type: plugin.Async},
			{EventType: plugin.FunctionInvocationFailed, Type: plugin.Async},
		}
	case "guard": // vetoes received events that carry X-Block
		return []plugin.Subscription{{EventType: plugin.EventReceived, Type: plugin.Sync}}
	case "gatekeeper": // vetoes calls to the function "forbidden"
		return []plugin.Subscription{{EventType: plugin.FunctionInvoking, Type: plugin.Sync}}
	case "fragile": // crashes on X-Crash, hangs on X-Hang
		return []plugin.Subscription{{EventType: plugin.EventReceived, Type: plugin.Sync}}
	case "slowpoke": // takes 500ms over every event, asynchronously
		return []plugin.Subscription{{EventType: plugin.EventReceived, Type: plugin.Async}}
	case "brittle": // crashes on calls of functions to events whose data holds "crash"
		return []plugin.Subscription{{EventType: plugin.FunctionInvoking, Type: plugin.Sync}}
	case "sluggish": // blocks on every event until the file "release" exists
		return []plugin.Subscription{{EventType: plugin.EventReceived, Type: plugin.Async}}
	}
	return nil
}

type receivedData struct {
	Headers map[string]string `json:"headers"`
}

type invokingData struct {
	FunctionID string `json:"functionId"`
}

func (r *reacter) React(ev plugin.Event) error {
	r.record(ev)
	switch r.mode {
	case "guard":
		var d receivedData
		json.Unmarshal(ev.Data, &d)
		if d.Headers["X-Block"] != "" {
			return errors.New("blocked by the guard plugin")
		}
	case "gatekeeper":
		var d invokingData
		json.Unmarshal(ev.Data, &d)
		if d.FunctionID == "forbidden" {
			return errors.New("calls to forbidden are not allowed")
		}
	case "fragile":
		var d receivedData
		json.Unmarshal(ev.Data, &d)
		if d.Headers["X-Crash"] != "" {
			os.Exit(3)
		}
		if d.Headers["X-Hang"] != "" {
			select {}
		}
	case "slowpoke":
		time.Sleep(500 * time.Millisecond)
	case "brittle":
		if strings.Contains(string(ev.Data), "crash") {
			os.Exit(3)
		}
	case "sluggish":
		for {
			if _, err := os.Stat(filepath.Join(os.Getenv("PLUGIN_DIR"), "release")); err == nil {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func (r *reacter) record(ev plugin.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := json.Marshal(ev)
	r.out.Write(append(b, '\n'))
}

func main() {
	mode := strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe")
	out, err := os.OpenFile(filepath.Join(os.Getenv("PLUGIN_DIR"), mode+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	plugin.Serve(&reacter{mode: mode, out: out})
}
