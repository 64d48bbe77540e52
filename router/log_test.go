package router_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/event"
)

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.b.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

type fixedInvoker []byte

func (f fixedInvoker) Invoke(context.Context, []byte) ([]byte, error) { return f, nil }

func loggingRouter(t *testing.T, level slog.Level) (*router.Router, *lockedBuffer) {
	t.Helper()
	var buf lockedBuffer
	r := router.New(router.Options{
		Store:    etcd.Store(t),
		Queue:    &recordingQueue{},
		Invokers: func(functions.Function) (functions.Invoker, error) { return fixedInvoker(nil), nil },
		Logger:   slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level})),
	})
	return r, &buf
}

// At debug level, an event and a call write the lines serverless run
// shows, with their JSON fields as JSON strings (docs/serverless.md).
func TestDebugLinesOfEventsAndCalls(t *testing.T) {
	r, buf := loggingRouter(t, slog.LevelDebug)
	ctx := context.Background()
	ev, err := event.New("user.created", []byte(`{"id":7}`), "application/json", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Received(ctx, functions.DefaultSpace, &ev, "/", http.Header{}); err != nil {
		t.Fatal(err)
	}
	payload := ev.AppendJSON(nil)
	for _, out := range []string{`{"statusCode":200,"body":"hi"}`, "not json", ""} {
		target := &router.Target{Space: functions.DefaultSpace, Function: functions.Function{ID: "svc-hello"}, Invoker: fixedInvoker(out), Timeout: time.Second}
		if _, err := r.Call(ctx, target, payload); err != nil {
			t.Fatal(err)
		}
	}

	lines := buf.lines(t)
	want := []string{"Event received.", "Function triggered.", "Function finished.", "Function triggered.", "Function finished.", "Function triggered.", "Function finished."}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d: %v", len(lines), len(want), lines)
	}
	responses := []string{`{"statusCode":200,"body":"hi"}`, `"not json"`, `null`}
	for i, l := range lines {
		if l["msg"] != want[i] || l["level"] != "DEBUG" {
			t.Fatalf("line %d: %v, want DEBUG %q", i, l, want[i])
		}
		field := "event"
		if want[i] == "Function finished." {
			field = "response"
		}
		s, ok := l[field].(string)
		if !ok || !json.Valid([]byte(s)) {
			t.Fatalf("line %d (%s): %s is %#v, want a JSON text in a string", i, want[i], field, l[field])
		}
		if field == "event" {
			var env struct{ Event string }
			json.Unmarshal([]byte(s), &env)
			if env.Event != "user.created" {
				t.Fatalf("line %d: event %s, want the envelope of user.created", i, s)
			}
		} else if s != responses[(i-2)/2] {
			t.Fatalf("line %d: response %s, want %s", i, s, responses[(i-2)/2])
		}
		if want[i] != "Event received." && l["functionId"] != "svc-hello" {
			t.Fatalf("line %d: functionId %v", i, l["functionId"])
		}
	}
}

// Above debug level, the per-event lines are not built at all: receiving
// an event allocates nothing for them.
func TestNoDebugLinesAtInfo(t *testing.T) {
	r, buf := loggingRouter(t, slog.LevelInfo)
	ctx := context.Background()
	ev, err := event.New("user.created", []byte(`{"id":7}`), "application/json", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	allocs := testing.AllocsPerRun(100, func() {
		if err := r.Received(ctx, functions.DefaultSpace, &ev, "/", h); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Received allocates %v times per event at info level, want 0", allocs)
	}
	target := &router.Target{Space: functions.DefaultSpace, Function: functions.Function{ID: "f"}, Invoker: fixedInvoker(`{}`), Timeout: time.Second}
	if _, err := r.Call(ctx, target, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if lines := buf.lines(t); len(lines) != 0 {
		t.Fatalf("logged at info level: %v", lines)
	}
}
