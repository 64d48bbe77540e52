package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/event-gateway/event-gateway/api"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/jetstream"
	"github.com/event-gateway/event-gateway/router/trail"
)

// trailHooks are the event trail as each part of the gateway sees it: all
// nil interfaces when -trail-retention is 0, so that the request path
// skips it at the cost of a nil check.
type trailHooks struct {
	router router.Trail
	queue  jetstream.AttemptObserver
	api    api.TrailService
	// close stores what is still buffered; call it once the deliveries
	// are done.
	close func()
}

// startTrail creates the event trail's stream and its recorder, unless the
// trail is off, in which case nothing is created.
func startTrail(ctx context.Context, opts *options, nc *nats.Conn, log *slog.Logger) (trailHooks, error) {
	if opts.trailRetention == 0 {
		log.Info("event trail off (-trail-retention 0)")
		return trailHooks{close: func() {}}, nil
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rec, err := trail.New(tctx, trail.Options{
		Conn:      nc,
		Replicas:  opts.natsReplicas,
		Retention: opts.trailRetention,
		MaxBytes:  opts.trailMaxBytes,
		Logger:    log.With("component", "trail"),
	})
	if err != nil {
		return trailHooks{}, fmt.Errorf("event trail: %w", err)
	}
	return trailHooks{router: rec, queue: rec, api: rec, close: func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rec.Close(cctx); err != nil {
			log.Warn("event trail: records left unstored at shutdown", "error", err)
		}
		if s := rec.Stats(); s.Dropped > 0 || s.Failed > 0 {
			log.Warn("event trail: records lost since start", "dropped", s.Dropped, "failed", s.Failed, "stored", s.Stored)
		}
	}}, nil
}
