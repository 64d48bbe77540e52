// Command hello is a tiny HTTP function for trying Event Gateway: it answers
// http events with a greeting and logs every other event it receives.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
)

type event struct {
	Event string          `json:"event"`
	ID    string          `json:"id"`
	Data  json.RawMessage `json:"data"`
}

type httpData struct {
	Method string            `json:"method"`
	Path   string            `json:"path"`
	Params map[string]string `json:"params"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var ev event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, "not an event", http.StatusBadRequest)
			return
		}
		log.Info("event received", "event", ev.Event, "id", ev.ID, "data", string(ev.Data))
		w.Header().Set("Content-Type", "application/json")
		if ev.Event != "http" {
			fmt.Fprint(w, `{"ok":true}`)
			return
		}
		// An http event is answered with a response object.
		var d httpData
		json.Unmarshal(ev.Data, &d)
		body, _ := json.Marshal(map[string]any{"hello": d.Params["name"], "method": d.Method, "path": d.Path})
		json.NewEncoder(w).Encode(map[string]any{
			"statusCode": 200,
			"headers":    map[string]string{"Content-Type": "application/json"},
			"body":       string(body),
		})
	})
	log.Info("hello function listening", "addr", *addr)
	if err := http.ListenAndServe(*addr, nil); err != nil {
		log.Error("hello function stopped", "error", err)
		os.Exit(1)
	}
}
