package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router/jetstream"
)

// DeadLetterService is what the Configuration API needs of the dead
// letters.
type DeadLetterService interface {
	DeadLetters(ctx context.Context, f jetstream.DeadLetterFilter) ([]jetstream.DeadLetter, string, error)
	Replay(ctx context.Context, id string) error
	ReplayAll(ctx context.Context, subscriptionID string) (int, error)
	DeleteDeadLetter(ctx context.Context, id string) error
}

type deadLetterList struct {
	DeadLetters []jetstream.DeadLetter `json:"deadletters"`
	// Next is the cursor of the following page: pass it as ?after=.
	Next string `json:"next,omitempty"`
}

type replayed struct {
	Replayed int `json:"replayed"`
}

func (c *Config) routeDeadLetters(r *httprouter.Router) {
	r.GET("/v1/deadletters", c.handle(c.listDeadLetters))
	r.POST("/v1/deadletters/:id/replay", c.handle(c.replayDeadLetter))
	r.DELETE("/v1/deadletters/:id", c.handle(c.deleteDeadLetter))
	r.POST("/v1/subscriptions/:id/deadletters/replay", c.handle(c.replaySubscriptionDeadLetters))
}

func (c *Config) listDeadLetters(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	q := r.URL.Query()
	f := jetstream.DeadLetterFilter{
		Space:          q.Get("space"),
		SubscriptionID: q.Get("subscriptionId"),
		FunctionID:     q.Get("functionId"),
		After:          q.Get("after"),
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return errkind.New(errkind.Invalid, "limit must be a number from 1 to 1000")
		}
		f.Limit = n
	}
	items, next, err := c.dead.DeadLetters(r.Context(), f)
	if err != nil {
		return err
	}
	if items == nil {
		items = []jetstream.DeadLetter{}
	}
	writeJSON(w, http.StatusOK, deadLetterList{DeadLetters: items, Next: next})
	return nil
}

func (c *Config) replayDeadLetter(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	id := ps.ByName("id")
	if err := c.dead.Replay(r.Context(), id); err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "dead letter replayed", "id", id)
	writeJSON(w, http.StatusOK, replayed{Replayed: 1})
	return nil
}

func (c *Config) replaySubscriptionDeadLetters(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	id := ps.ByName("id")
	n, err := c.dead.ReplayAll(r.Context(), id)
	if err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "dead letters replayed", "subscriptionId", id, "count", n)
	writeJSON(w, http.StatusOK, replayed{Replayed: n})
	return nil
}

func (c *Config) deleteDeadLetter(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	id := ps.ByName("id")
	if err := c.dead.DeleteDeadLetter(r.Context(), id); err != nil {
		return err
	}
	c.log.InfoContext(r.Context(), "dead letter deleted", "id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
