// Package etcdtest runs a real embedded etcd for tests, on random loopback
// ports, and hands out stores isolated from each other by key prefix.
package etcdtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/libkv"
)

// Server is an embedded etcd for one test binary.
type Server struct {
	emb *libkv.Embedded
	dir string
	n   atomic.Int64
}

// Start starts an etcd server. Call it from TestMain and Stop it after m.Run.
func Start() (*Server, error) {
	dir, err := os.MkdirTemp("", "etcdtest-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := libkv.StartEmbedded(ctx, libkv.EmbedConfig{
		DataDir:   dir,
		ClientURL: "http://127.0.0.1:0",
		PeerURL:   "http://127.0.0.1:0",
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Server{emb: emb, dir: dir}, nil
}

// Stop stops the server and removes its data.
func (s *Server) Stop() {
	s.emb.Close()
	os.RemoveAll(s.dir)
}

// Endpoints are the server's client addresses.
func (s *Server) Endpoints() []string { return s.emb.Endpoints() }

// Store opens a store on a key prefix no other call of Store uses, and
// closes it when t ends.
func (s *Server) Store(t testing.TB) *libkv.Store {
	t.Helper()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	st, err := libkv.Open(libkv.Config{
		Endpoints: s.Endpoints(),
		Prefix:    fmt.Sprintf("/test/%s-%d/", name, s.n.Add(1)),
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Main runs the tests of a package against one etcd server, which it
// passes to setup before m.Run, and exits.
func Main(m *testing.M, setup func(*Server)) {
	srv, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdtest:", err)
		os.Exit(1)
	}
	setup(srv)
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}
