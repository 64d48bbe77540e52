package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/instances"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/libkv"
	"github.com/event-gateway/event-gateway/router/fnstats"
	"github.com/event-gateway/event-gateway/router/tail"
)

// The endpoints the dashboard reads beside the resources: the names of
// the spaces, the live tail of a space, the figures of a function and the
// instances of the cluster. Each is left out when its source is nil.

// DashboardSources are what those endpoints read.
type DashboardSources struct {
	// SpaceNames lists the spaces that hold anything.
	SpaceNames func(ctx context.Context) ([]string, error)
	// Tail streams what this instance sees.
	Tail *tail.Broadcaster
	// Stats are this instance's figures of each function.
	Stats interface {
		Hour(space, functionID string) []fnstats.Point
	}
	// Instances lists the instances of the cluster.
	Instances func(ctx context.Context) ([]instances.Info, error)
}

func (c *Config) routeDashboard(r *httprouter.Router, d DashboardSources) {
	if d.SpaceNames != nil {
		r.GET("/v1/spaces", c.handle(func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
			names, err := d.SpaceNames(r.Context())
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, struct {
				Spaces []string `json:"spaces"`
			}{names})
			return nil
		}))
	}
	if d.Tail != nil {
		// Not through handle: a stream outlives the store timeout.
		r.GET("/v1/spaces/:space/tail", func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
			if err := c.tail(w, r, ps, d.Tail); err != nil {
				writeError(w, r, c.log, err)
			}
		})
	}
	if d.Stats != nil && c.spaces != nil {
		r.GET("/v1/spaces/:space/functions/:id/stats", c.handle(func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
			sp, err := space(ps)
			if err != nil {
				return err
			}
			id := ps.ByName("id")
			if _, err := c.spaces.Functions(sp).Get(r.Context(), id); err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, struct {
				Space      string          `json:"space"`
				FunctionID string          `json:"functionId"`
				Minutes    []fnstats.Point `json:"minutes"`
			}{sp, id, d.Stats.Hour(sp, id)})
			return nil
		}))
	}
	if d.Instances != nil {
		r.GET("/v1/instances", c.handle(func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
			list, err := d.Instances(r.Context())
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, struct {
				Instances []instances.Info `json:"instances"`
			}{list})
			return nil
		}))
	}
}

// tailBuffer is how many items a tail client may fall behind by before it
// loses some; tailHeartbeat how often an idle stream says it is alive
// (and learns that its client left).
const (
	tailBuffer    = 256
	tailHeartbeat = 15 * time.Second
)

// tail streams, as server-sent events, what this instance sees of a
// space: an "item" event per event received or system event, a "dropped"
// event when the client fell behind and lost items. ?types=a,b keeps only
// the items of those types.
func (c *Config) tail(w http.ResponseWriter, r *http.Request, ps httprouter.Params, b *tail.Broadcaster) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	var types map[string]bool
	if v := r.URL.Query().Get("types"); v != "" {
		types = make(map[string]bool)
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				types[t] = true
			}
		}
	}
	wt, ok := b.Watch(sp, tailBuffer)
	if !ok {
		w.Header().Set("Retry-After", "5")
		return errkind.New(errkind.Unavailable, "too many live tails open on this instance, retry later")
	}
	defer wt.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The server's timeouts would cut the stream: the read deadline
	// (which would end the request's context) goes, and each write moves
	// the write deadline.
	rc.SetReadDeadline(time.Time{})
	send := func(s string) error {
		rc.SetWriteDeadline(time.Now().Add(2 * tailHeartbeat))
		if _, err := fmt.Fprint(w, s); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(": the events this gateway instance sees in space " + sp + "\nretry: 2000\n\n"); err != nil {
		return nil
	}
	beat := time.NewTicker(tailHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-beat.C:
			if err := send(": alive\n\n"); err != nil {
				return nil
			}
		case it := <-wt.C():
			var msg strings.Builder
			if n := wt.Dropped(); n > 0 {
				fmt.Fprintf(&msg, "event: dropped\ndata: {\"dropped\":%d}\n\n", n)
			}
			if types == nil || types[it.Type] {
				data, _ := json.Marshal(it)
				fmt.Fprintf(&msg, "event: item\ndata: %s\n\n", data)
			}
			if msg.Len() > 0 {
				if err := send(msg.String()); err != nil {
					return nil
				}
			}
		}
	}
}

// SpaceNames lists the spaces that hold any key, jumping from one space
// to the next rather than reading their keys: "default" always, then the
// others by name.
func (s *StoreSpaces) SpaceNames(ctx context.Context) ([]string, error) {
	names := []string{functions.DefaultSpace}
	from, end := functions.SpacesRoot, libkv.PrefixEnd(functions.SpacesRoot)
	var rev int64
	for {
		key, ok, got, err := s.store.NextKey(ctx, from, end, rev)
		if err != nil {
			return nil, err
		}
		rev = got
		if !ok {
			slices.Sort(names[1:])
			return names, nil
		}
		sp, _, _ := strings.Cut(strings.TrimPrefix(key, functions.SpacesRoot), "/")
		if sp == "" {
			from = key + "\x00" // not a key of a space: step over it
			continue
		}
		if sp != functions.DefaultSpace {
			names = append(names, sp)
		}
		from = libkv.PrefixEnd(functions.SpaceRoot(sp))
	}
}
