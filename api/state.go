package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/event-gateway/event-gateway/history"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/spacestate"
)

// StateService is what the Configuration API needs for the declarative
// state of a space: apply, export, history and rollback.
type StateService interface {
	Apply(ctx context.Context, space string, state []byte, dryRun bool) (spacestate.Plan, error)
	Export(ctx context.Context, space string) (json.RawMessage, error)
	Rollback(ctx context.Context, space string, revision int64, dryRun bool) (spacestate.Plan, error)
	History(ctx context.Context, space string, before int64, limit int) ([]history.Entry, int64, error)
}

func (c *Config) routeState(r *httprouter.Router) {
	const root = "/v1/spaces/:space/"
	r.POST(root+"apply", c.handle(c.spaceApply))
	r.GET(root+"state", c.handle(c.spaceExport))
	r.GET(root+"history", c.handle(c.spaceHistory))
	r.POST(root+"rollback", c.handle(c.spaceRollback))
}

// dryRunQuery reads ?dryRun=true|false.
func dryRunQuery(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("dryRun")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errkind.New(errkind.Invalid, "dryRun %q must be true or false", v)
	}
	return b, nil
}

// spaceApply makes the space match the state in the body (JSON; the CLI
// converts YAML), in one transaction, and answers the plan it carried
// out, or with ?dryRun=true the plan alone.
func (c *Config) spaceApply(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	dry, err := dryRunQuery(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.maxBody))
	if err != nil {
		return decodeError(err, c.maxBody)
	}
	plan, err := c.state.Apply(r.Context(), sp, body, dry)
	if err != nil {
		return err
	}
	if !dry {
		c.log.InfoContext(r.Context(), "space applied", "space", sp, "changes", len(plan.Changes), "revision", plan.Revision)
	}
	writeJSON(w, http.StatusOK, plan)
	return nil
}

// spaceExport answers the state of the space in the form apply takes.
func (c *Config) spaceExport(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	st, err := c.state.Export(r.Context(), sp)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// defaultHistoryPage is the page of history entries a request without
// ?limit= gets.
const defaultHistoryPage = 100

// spaceHistory lists the recorded changes of the space, newest first, by
// pages (?limit=, default defaultHistoryPage, and ?cursor=) as every list.
func (c *Config) spaceHistory(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return errkind.New(errkind.Invalid, "query string: %v", err)
	}
	page, err := pageQuery(q)
	if err != nil {
		return err
	}
	var before int64
	if page.After != "" {
		// The cursor holds the revision of the last entry shown.
		if before, err = strconv.ParseInt(page.After, 10, 64); err != nil || before <= 0 {
			return errkind.New(errkind.Invalid, "cursor is not one this API returned")
		}
	}
	if page.Limit == 0 {
		// Records can be large (an apply holds a whole space before and
		// after): unlike other lists, the history is always paged.
		page.Limit = defaultHistoryPage
	}
	entries, next, err := c.state.History(r.Context(), sp, before, page.Limit)
	if err != nil {
		return err
	}
	body := map[string]any{"history": entries}
	if next > 0 {
		body["next"] = nextPage(w, r, strconv.FormatInt(next, 10))
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

type rollbackRequest struct {
	Revision int64 `json:"revision"`
	DryRun   bool  `json:"dryRun"`
}

// spaceRollback makes the space what it was at a revision of its
// history, in one transaction, itself recorded.
func (c *Config) spaceRollback(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	sp, err := space(ps)
	if err != nil {
		return err
	}
	var req rollbackRequest
	if err := c.decode(w, r, &req); err != nil {
		return err
	}
	dry, err := dryRunQuery(r)
	if err != nil {
		return err
	}
	plan, err := c.state.Rollback(r.Context(), sp, req.Revision, req.DryRun || dry)
	if err != nil {
		return err
	}
	if !plan.DryRun {
		c.log.InfoContext(r.Context(), "space rolled back", "space", sp, "to", req.Revision, "changes", len(plan.Changes), "revision", plan.Revision)
	}
	writeJSON(w, http.StatusOK, plan)
	return nil
}
