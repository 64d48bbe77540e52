package libkv

import (
	"context"

	"google.golang.org/grpc/connectivity"
)

// MonitorConnection calls lost once when the connection to etcd fails
// (every endpoint unreachable), and back once when it is up again, for as
// long as ctx lasts. Between the two, the client keeps reconnecting by
// itself; calls made meanwhile fail with ErrUnavailable. Call it once the
// connection is up: the first failure it reports is a loss.
func (s *Store) MonitorConnection(ctx context.Context, lost, back func()) {
	conn := s.cli.ActiveConnection()
	up := true
	for {
		state := conn.GetState()
		switch state {
		case connectivity.Ready:
			if !up {
				up = true
				back()
			}
		case connectivity.TransientFailure:
			// Connecting and TransientFailure alternate while etcd is
			// away: only the first failure after Ready is a loss.
			if up {
				up = false
				lost()
			}
		case connectivity.Shutdown:
			return
		}
		if !conn.WaitForStateChange(ctx, state) {
			return // ctx ended
		}
	}
}
