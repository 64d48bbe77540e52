package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router/trail"
)

// TrailService is what the Configuration API needs of the event trail.
type TrailService interface {
	Event(ctx context.Context, space, id string) (*trail.Event, error)
	List(ctx context.Context, space string, f trail.ListFilter) ([]trail.Event, string, error)
}

type eventList struct {
	Events []trail.Event `json:"events"`
	// Next is the cursor of the following page: pass it as ?cursor=.
	Next string `json:"next,omitempty"`
}

// routeTrail serves the event trail: in a space, and in the default space
// at the first generation's /v1/events.
func (c *Config) routeTrail(r *httprouter.Router) {
	r.GET("/v1/events", c.handle(c.listEvents))
	r.GET("/v1/events/:id", c.handle(c.getEvent))
	r.GET("/v1/spaces/:space/events", c.handle(c.listEvents))
	r.GET("/v1/spaces/:space/events/:id", c.handle(c.getEvent))
}

// trailSpace is the space of a trail request: the URL's, or the default
// space.
func (c *Config) trailSpace(ps httprouter.Params) (string, error) {
	if c.trail == nil {
		return "", errkind.New(errkind.NotFound, "the event trail is off on this gateway (-trail-retention 0)")
	}
	if ps.ByName("space") == "" {
		return functions.DefaultSpace, nil
	}
	return space(ps)
}

func (c *Config) getEvent(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := c.trailSpace(ps)
	if err != nil {
		return err
	}
	ev, err := c.trail.Event(r.Context(), sp, ps.ByName("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ev)
	return nil
}

// listEvents lists recent events, newest first, by pages (?limit= from 1
// to trail.MaxLimit, default trail.DefaultLimit; ?cursor= from the last
// page's next), selected by ?type=, ?subscriptionId= and ?outcome=.
func (c *Config) listEvents(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := c.trailSpace(ps)
	if err != nil {
		return err
	}
	p, _, err := listQuery(r, false)
	if err != nil {
		return err
	}
	if p.Limit > trail.MaxLimit {
		return errkind.New(errkind.Invalid, "limit %d: at most %d events are listed at once", p.Limit, trail.MaxLimit)
	}
	if p.After != "" {
		if _, err := strconv.ParseUint(p.After, 10, 64); err != nil {
			return errkind.New(errkind.Invalid, "cursor %q is not one this API returned", r.URL.Query().Get(cursorParam))
		}
	}
	q := r.URL.Query()
	items, next, err := c.trail.List(r.Context(), sp, trail.ListFilter{
		Type:           q.Get("type"),
		SubscriptionID: q.Get("subscriptionId"),
		Outcome:        q.Get("outcome"),
		Before:         p.After,
		Limit:          p.Limit,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, eventList{Events: items, Next: nextPage(w, r, next)})
	return nil
}
