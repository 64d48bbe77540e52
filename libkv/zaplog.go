package libkv

import (
	"context"
	"log/slog"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func nopLogger() *zap.Logger { return zap.NewNop() }

// slogCore forwards the etcd server's zap records at or above a level to a
// slog.Logger, so the embedded etcd logs in the gateway's own format. It can
// be muted, to drop the errors etcd logs while it is being shut down on
// purpose.
type slogCore struct {
	log    *slog.Logger
	min    zapcore.Level
	muted  *atomic.Bool
	fields []zapcore.Field
}

func newSlogZap(log *slog.Logger, min zapcore.Level, muted *atomic.Bool) *zap.Logger {
	return zap.New(&slogCore{log: log, min: min, muted: muted})
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.min && !c.muted.Load() }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	cp := *c
	cp.fields = append(append([]zapcore.Field(nil), c.fields...), fields...)
	return &cp
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// benign reports etcd error messages that are not errors for a gateway:
// etcd 3.6 logs this one on the first start of a new data dir, before the
// first raft term is written, and retries by itself.
func benign(msg string) bool { return msg == "failed to update storage version" }

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if benign(e.Message) {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	level := slog.LevelInfo
	switch {
	case e.Level >= zapcore.ErrorLevel:
		level = slog.LevelError
	case e.Level == zapcore.WarnLevel:
		level = slog.LevelWarn
	case e.Level <= zapcore.DebugLevel:
		level = slog.LevelDebug
	}
	c.log.LogAttrs(context.Background(), level, "etcd: "+e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }
