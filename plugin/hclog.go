package plugin

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger gives go-plugin, which logs through hclog, a logger that
// writes into the gateway's slog logger. hclog renders each record as one
// JSON line; slogWriter turns it back into a structured record. Only
// warnings and errors: go-plugin repeats every line of the plugin's
// standard error at lower levels, and those reach the log through
// stderrWriter instead.
func newHCLogger(log *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "plugin",
		Level:      hclog.Warn,
		JSONFormat: true,
		Output:     slogWriter{log},
	})
}

// stderrWriter logs what a plugin writes to its standard error, one line
// per call (as go-plugin writes it). A JSON line from log/slog keeps its
// level, message and fields; any other line is logged as it is.
type stderrWriter struct{ log *slog.Logger }

func (w stderrWriter) Write(b []byte) (int, error) {
	line := strings.TrimSpace(string(b))
	if line == "" {
		return len(b), nil
	}
	var rec map[string]any
	if json.Unmarshal([]byte(line), &rec) != nil {
		// go-plugin's own chatter inside the plugin process is not news.
		if !strings.Contains(line, "[DEBUG]") && !strings.Contains(line, "[TRACE]") {
			w.log.Info("plugin output", "line", line)
		}
		return len(b), nil
	}
	if _, ok := rec["@message"]; ok {
		// An hclog record from go-plugin inside the plugin process.
		if l := rec["@level"]; l == "debug" || l == "trace" {
			return len(b), nil
		}
		return slogWriter(w).Write(b)
	}
	msg, _ := rec["msg"].(string)
	var level slog.Level
	if s, ok := rec["level"].(string); !ok || level.UnmarshalText([]byte(s)) != nil {
		level = slog.LevelInfo
	}
	attrs := make([]slog.Attr, 0, len(rec))
	for k, v := range rec {
		switch k {
		case "msg", "level", "time":
		default:
			attrs = append(attrs, slog.Any(k, v))
		}
	}
	w.log.LogAttrs(context.Background(), level, msg, attrs...)
	return len(b), nil
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	for line := range strings.Lines(string(b)) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			w.log.Info(strings.TrimSpace(line))
			continue
		}
		msg, _ := rec["@message"].(string)
		level := slog.LevelInfo
		switch rec["@level"] {
		case "trace", "debug":
			level = slog.LevelDebug
		case "warn":
			level = slog.LevelWarn
		case "error":
			level = slog.LevelError
		}
		attrs := make([]slog.Attr, 0, len(rec))
		for k, v := range rec {
			if !strings.HasPrefix(k, "@") {
				attrs = append(attrs, slog.Any(k, v))
			}
		}
		w.log.LogAttrs(context.Background(), level, msg, attrs...)
	}
	return len(b), nil
}
