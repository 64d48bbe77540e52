package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/event-gateway/event-gateway/router/jetstream"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// connectNATS connects to the NATS server that stores deliveries: an
// external one (-nats-url), or one embedded in this process, reachable
// only from inside it. The returned func closes what was opened.
func connectNATS(opts *options, log *slog.Logger) (*nats.Conn, func(), error) {
	if opts.natsURL != "" {
		nopts := []nats.Option{
			nats.Name("event-gateway"),
			nats.MaxReconnects(-1), // a gateway outlives NATS outages
			nats.ReconnectWait(500 * time.Millisecond),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				log.Warn("disconnected from NATS", "error", err)
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
			}),
		}
		if opts.natsCreds != "" {
			nopts = append(nopts, nats.UserCredentials(opts.natsCreds))
		}
		if opts.natsCert != "" {
			nopts = append(nopts, nats.ClientCert(opts.natsCert, opts.natsKey))
		}
		if opts.natsCA != "" {
			nopts = append(nopts, nats.RootCAs(opts.natsCA))
		}
		nc, err := nats.Connect(opts.natsURL, nopts...)
		if err != nil {
			return nil, nil, fmt.Errorf("connect to NATS at %s: %w", opts.natsURL, err)
		}
		log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
		return nc, nc.Close, nil
	}

	start := time.Now()
	emb, err := jetstream.StartEmbedded(jetstream.EmbedOptions{
		DataDir:    opts.natsDataDir,
		Port:       -1,
		SyncAlways: opts.natsSync,
		Logger:     log.With("component", "nats"),
	})
	if err != nil {
		return nil, nil, err
	}
	nc, err := emb.Connect()
	if err != nil {
		emb.Close()
		return nil, nil, err
	}
	log.Info("embedded NATS JetStream started", "dataDir", opts.natsDataDir, "syncAlways", opts.natsSync, "took", time.Since(start).Round(time.Millisecond))
	return nc, func() { nc.Close(); emb.Close() }, nil
}

// retryPolicy is a subscription's retry policy: its own settings over the
// gateway's defaults.
func retryPolicy(sub *subscriptions.Subscription, def jetstream.RetryPolicy) jetstream.RetryPolicy {
	if sub == nil || sub.Retry == nil {
		return def
	}
	p := def
	if sub.Retry.MaxAttempts > 0 {
		p.MaxAttempts = sub.Retry.MaxAttempts
	}
	initial, max := sub.Retry.Durations()
	if initial > 0 {
		p.InitialBackoff = initial
	}
	if max > 0 {
		p.MaxBackoff = max
	}
	if p.InitialBackoff > p.MaxBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	return p
}
