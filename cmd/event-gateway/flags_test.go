package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/router/jetstream"
	"github.com/event-gateway/event-gateway/router/trail"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.configPort != 4001 || o.eventsPort != 4000 || o.dev || len(o.dbHosts) != 1 || o.dbHosts[0] != "127.0.0.1:2379" ||
		o.embedCliAddr != "http://127.0.0.1:2379" || o.embedPeerAddr != "http://127.0.0.1:2380" ||
		o.logLevel != slog.LevelInfo || o.logFormat != "text" || o.maxBody != 6<<20 || o.functionTimeout != 5*time.Second {
		t.Fatalf("defaults: %+v", o)
	}
}

// The queue's flags default to the queue's own defaults.
func TestQueueFlagDefaults(t *testing.T) {
	o, err := parseFlags(nil, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	def := jetstream.DefaultRetryPolicy()
	if o.workers != jetstream.DefaultWorkers || int64(o.workersBacklog) != jetstream.DefaultMaxMsgs || o.natsMaxBytes != jetstream.DefaultMaxBytes ||
		o.natsReplicas != jetstream.DefaultReplicas || o.deliveryAckWait != jetstream.DefaultAckWait || o.deadLetterMaxAge != jetstream.DefaultDeadLetterMaxAge ||
		o.deliveryAttempts != def.MaxAttempts || o.deliveryInitialBackoff != def.InitialBackoff || o.deliveryMaxBackoff != def.MaxBackoff {
		t.Fatalf("queue flags: %+v", o)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-dev", "-db-hosts", "a:1, b:2,", "-plugin", "/p1", "-plugin", "/p2", "-log-level", "debug", "-log-format", "json"}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !o.dev || strings.Join(o.dbHosts, "|") != "a:1|b:2" || strings.Join(o.plugins, "|") != "/p1|/p2" || o.logLevel != slog.LevelDebug || o.logFormat != "json" {
		t.Fatalf("parsed %+v", o)
	}
	for _, args := range [][]string{
		{"-db-hosts", " , "},
		{"-log-level", "loud"},
		{"-log-format", "xml"},
		{"-events-port", "-1"},
		{"-max-body", "0"},
		{"-function-timeout", "16m"},
		{"-workers", "0"},
		{"-db-prefix", "no-slash"},
		{"extra"},
		{"-db-username", "u"},
		{"-db-cert", "c.pem"},
		{"-history-max-entries", "0"},
		{"-history-max-age", "-1h"},
		{"-trail-retention", "-1s"},
		{"-trail-max-bytes", "0"},
	} {
		if _, err := parseFlags(args, io.Discard, noEnv); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func noEnv(string) string { return "" }

func TestPasswordFromEnvironment(t *testing.T) {
	env := func(k string) string {
		if k == "EVENT_GATEWAY_DB_PASSWORD" {
			return "s3cret"
		}
		return ""
	}
	o, err := parseFlags([]string{"-db-username", "gw"}, io.Discard, env)
	if err != nil || o.dbPassword != "s3cret" {
		t.Fatalf("password from the environment: %v, %q", err, o.dbPassword)
	}
}

// -dev with an -embed-data-dir keeps the NATS data under it, unless
// -nats-data-dir says otherwise; without -dev or -embed-data-dir the
// default stays ./event-gateway.nats.
func TestNATSDataDirFollowsEmbedDataDir(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "event-gateway.nats"},
		{[]string{"-dev"}, "event-gateway.nats"},
		{[]string{"-embed-data-dir=/tmp/x"}, "event-gateway.nats"},
		{[]string{"-embed-data-dir=/tmp/x", "-dev"}, "/tmp/x/nats"},
		{[]string{"-dev", "-embed-data-dir", "rel/dir"}, "rel/dir/nats"},
		{[]string{"-dev", "-embed-data-dir=/tmp/x", "-nats-data-dir=/var/q"}, "/var/q"},
	} {
		o, err := parseFlags(tc.args, io.Discard, noEnv)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if o.natsDataDir != tc.want {
			t.Errorf("%q: -nats-data-dir %q, want %q", tc.args, o.natsDataDir, tc.want)
		}
	}
}

// The trail is on by default, for its default retention; 0 is off.
func TestTrailFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.trailRetention != trail.DefaultRetention || o.trailMaxBytes != trail.DefaultMaxBytes {
		t.Fatalf("trail defaults: %s, %d", o.trailRetention, o.trailMaxBytes)
	}
	o, err = parseFlags([]string{"-trail-retention", "0"}, io.Discard, noEnv)
	if err != nil || o.trailRetention != 0 {
		t.Fatalf("-trail-retention 0: %v, %+v", err, o)
	}
}
