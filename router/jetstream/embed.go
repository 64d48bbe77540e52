package jetstream

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbedOptions configures the nats-server that runs inside the gateway
// process when no external NATS cluster is given.
type EmbedOptions struct {
	// DataDir holds the JetStream file store (in DataDir/jetstream). Keep
	// it across restarts: it is where accepted events wait.
	DataDir string
	// Port is the client port, on 127.0.0.1 only. 0 picks a free port; -1
	// opens no port at all, so only this process can connect (through
	// Connect, in process).
	Port int
	// SyncAlways makes the store fsync every write before it acknowledges
	// it, so an accepted event survives the loss of the machine, not only
	// a crash of the process. Without it a write reaches the operating
	// system before the acknowledgement (it survives kill -9) and is
	// synced to disk every two minutes.
	SyncAlways bool
	// MaxStore bounds the disk used by JetStream; 0 lets the server pick
	// (most of the free space of DataDir's disk).
	MaxStore int64
	// MaxPayload is the largest message the server takes. Default 16 MiB,
	// above the Events API's 6 MiB body once encoded in an envelope.
	MaxPayload int32
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
}

// Embedded is a nats-server with JetStream running in this process.
type Embedded struct {
	srv    *server.Server
	listen bool
}

// DefaultMaxPayload is EmbedOptions.MaxPayload's default.
const DefaultMaxPayload = 16 << 20

// StartEmbedded starts a nats-server with JetStream and waits until it
// takes connections. Its streams are recovered from DataDir.
func StartEmbedded(o EmbedOptions) (*Embedded, error) {
	if o.DataDir == "" {
		return nil, errors.New("jetstream: EmbedOptions.DataDir is required")
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:        "event-gateway",
		Host:              "127.0.0.1",
		Port:              port,
		DontListen:        o.Port == -1,
		JetStream:         true,
		StoreDir:          o.DataDir,
		JetStreamMaxStore: o.MaxStore,
		SyncAlways:        o.SyncAlways,
		MaxPayload:        o.MaxPayload,
		NoSigs:            true,
		NoLog:             o.Logger == nil,
	}
	if opts.DontListen {
		opts.Port = 0
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("jetstream: nats-server: %w", err)
	}
	if o.Logger != nil {
		srv.SetLogger(slogAdapter{o.Logger.With("component", "nats-server")}, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("jetstream: nats-server did not start within 30s")
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("jetstream: nats-server started without JetStream (is DataDir writable?)")
	}
	return &Embedded{srv: srv, listen: !opts.DontListen}, nil
}

// ClientURL is the server's address for other clients (tools, another
// process), or "" when it listens on no port.
func (e *Embedded) ClientURL() string {
	if !e.listen {
		return ""
	}
	return e.srv.ClientURL()
}

// Connect opens a client connection through memory, not the network.
func (e *Embedded) Connect() (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(e.srv), nats.Name("event-gateway"))
}

// Close shuts the server down gracefully (the store is flushed) and waits
// until it has stopped.
func (e *Embedded) Close() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// slogAdapter is nats-server's Logger on top of slog. The embedded server
// is a part of the gateway, not a service of its own: its notices (a
// start-up banner of some thirty lines among them) are debug output here.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }

func (a slogAdapter) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "Maximum payloads over") {
		// The payload limit is raised on purpose: a 6 MiB body becomes an
		// 8 MiB base64 envelope.
		a.l.Debug(msg)
		return
	}
	a.l.Warn(msg)
}
func (a slogAdapter) Fatalf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
