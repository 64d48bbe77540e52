package libkv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
)

// EmbedConfig configures an etcd server that runs inside the gateway process.
type EmbedConfig struct {
	// DataDir holds the server's data; it survives restarts.
	DataDir string
	// ClientURL is where clients connect, e.g. http://127.0.0.1:2379. Port 0
	// picks a free port: Endpoints reports the one chosen.
	ClientURL string
	// PeerURL is the raft peer listener, e.g. http://127.0.0.1:2380.
	PeerURL string
	// Logger receives the server's errors. Nil discards them.
	Logger *slog.Logger

	// Name, InitialCluster and Existing make the server one member of a
	// cluster ("name1=peerURL1,name2=peerURL2,…"). Existing restarts a
	// member of a cluster already formed. By default the server is a
	// cluster of one, named "event-gateway".
	Name           string
	InitialCluster string
	Existing       bool
	// ClientTLS serves clients over TLS with these files when CertFile is
	// set; ClientCertAuth then requires client certificates signed by CAFile.
	ClientTLS EmbedTLS
}

// EmbedTLS names the files of a TLS configuration.
type EmbedTLS struct {
	CertFile, KeyFile, CAFile string
	ClientCertAuth            bool
}

// EmbeddedMaxTxnOps is the most operations one transaction may have in an
// embedded etcd.
const EmbeddedMaxTxnOps = 8192

// Embedded is a single-member etcd cluster running in this process.
type Embedded struct {
	etcd  *embed.Etcd
	muted *atomic.Bool
}

// StartEmbedded starts a single-member etcd and waits until it serves.
func StartEmbedded(ctx context.Context, cfg EmbedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("libkv: embedded etcd needs a data dir")
	}
	curl, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("libkv: embedded etcd client URL %q: %w", cfg.ClientURL, err)
	}
	purl, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("libkv: embedded etcd peer URL %q: %w", cfg.PeerURL, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	muted := new(atomic.Bool)

	ec := embed.NewConfig()
	ec.Name = "event-gateway"
	if cfg.Name != "" {
		ec.Name = cfg.Name
	}
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{*curl}
	ec.AdvertiseClientUrls = []url.URL{*curl}
	ec.ListenPeerUrls = []url.URL{*purl}
	ec.AdvertisePeerUrls = []url.URL{*purl}
	ec.InitialCluster = ec.Name + "=" + purl.String()
	if cfg.InitialCluster != "" {
		ec.InitialCluster = cfg.InitialCluster
		ec.InitialClusterToken = "event-gateway"
	}
	if cfg.Existing {
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	if cfg.ClientTLS.CertFile != "" {
		ec.ClientTLSInfo.CertFile = cfg.ClientTLS.CertFile
		ec.ClientTLSInfo.KeyFile = cfg.ClientTLS.KeyFile
		ec.ClientTLSInfo.TrustedCAFile = cfg.ClientTLS.CAFile
		ec.ClientTLSInfo.ClientCertAuth = cfg.ClientTLS.ClientCertAuth
	}
	// Short ticks: a lone member becomes leader in tens of milliseconds
	// instead of the default second, and a test cluster on loopback
	// elects a new leader quickly when one is stopped.
	ec.TickMs = 10
	ec.ElectionMs = 100
	// Keep the history small; the gateway only ever needs recent revisions.
	ec.AutoCompactionMode = embed.CompactorModeRevision
	ec.AutoCompactionRetention = "10000"
	// A declarative apply or a rollback changes a whole space in one
	// transaction: each resource is a few operations (its key and its
	// index keys). etcd's default of 128 operations would cap a space at
	// a few dozen resources; an external etcd needs --max-txn-ops raised
	// the same way (docs/operations.md).
	ec.MaxTxnOps = EmbeddedMaxTxnOps
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newSlogZap(log, zapcore.ErrorLevel, muted))

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("libkv: start embedded etcd in %s: %w", cfg.DataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return &Embedded{etcd: e, muted: muted}, nil
	case err := <-e.Err():
		muted.Store(true)
		e.Close()
		return nil, fmt.Errorf("libkv: embedded etcd: %w", err)
	case <-ctx.Done():
		muted.Store(true)
		e.Close()
		return nil, fmt.Errorf("libkv: embedded etcd not ready: %w", ctx.Err())
	case <-time.After(30 * time.Second):
		muted.Store(true)
		e.Close()
		return nil, errors.New("libkv: embedded etcd not ready after 30s")
	}
}

// Endpoints are the addresses clients connect to.
func (e *Embedded) Endpoints() []string {
	eps := make([]string, len(e.etcd.Clients))
	for i, l := range e.etcd.Clients {
		eps[i] = l.Addr().String()
	}
	return eps
}

// Close stops the server. The errors etcd logs while its listeners close are
// expected and not reported.
func (e *Embedded) Close() {
	e.muted.Store(true)
	e.etcd.Close()
}

// IsLeader reports whether this member is the raft leader of its cluster.
func (e *Embedded) IsLeader() bool {
	return e.etcd.Server.Leader() == e.etcd.Server.MemberID()
}
