package api

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
)

// Lists are paginated on request: ?limit=N (1 to functions.MaxPageLimit)
// returns at most N items, ordered by id, and, when more may follow, a
// cursor in the list object's "next" field and a Link header with
// rel="next" for the following page; ?cursor=<next> continues there.
// Without limit and cursor a list is whole, as before pagination. Filters
// (metadata.<key>=<value>) select items before they are counted, so a
// page may hold fewer than N items and the last cursor may lead to an
// empty page.
const (
	limitParam  = "limit"
	cursorParam = "cursor"
	// cursorTag starts every decoded cursor, so cursors can change form.
	cursorTag = "c1:"
)

// encodeCursor makes the opaque cursor of the page after id.
func encodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorTag + id))
}

// pageQuery reads the limit and cursor of a list from q, and removes them
// from q.
func pageQuery(q url.Values) (functions.Page, error) {
	var page functions.Page
	one := func(name string) (string, bool, error) {
		vals, ok := q[name]
		if !ok {
			return "", false, nil
		}
		delete(q, name)
		if len(vals) != 1 {
			return "", false, errkind.New(errkind.Invalid, "query parameter %q is given %d times", name, len(vals))
		}
		return vals[0], true, nil
	}
	if v, ok, err := one(limitParam); err != nil {
		return page, err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > functions.MaxPageLimit {
			return page, errkind.New(errkind.Invalid, "limit %q must be a number from 1 to %d", v, functions.MaxPageLimit)
		}
		page.Limit = n
	}
	if v, ok, err := one(cursorParam); err != nil {
		return page, err
	} else if ok {
		b, err := base64.RawURLEncoding.DecodeString(v)
		id, tagged := strings.CutPrefix(string(b), cursorTag)
		if err != nil || !tagged || id == "" {
			return page, errkind.New(errkind.Invalid, "cursor %q is not one this API returned", v)
		}
		page.After = id
	}
	return page, nil
}

// listQuery reads the page and, if filters, the metadata filters of a
// list request. Without filters, other query parameters are ignored, as
// the first-generation API always did.
func listQuery(r *http.Request, filters bool) (functions.Page, map[string]string, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return functions.Page{}, nil, errkind.New(errkind.Invalid, "query string: %v", err)
	}
	page, err := pageQuery(q)
	if err != nil || !filters {
		return page, nil, err
	}
	filter, err := functions.ParseFilter(q)
	return page, filter, err
}

// paged reports whether a list was asked for by pages.
func paged(p functions.Page) bool { return p != functions.Page{} }

// nextPage sets the Link header of the page after id, and returns the
// cursor of the list object's "next" field ("" when id is: the list ends).
func nextPage(w http.ResponseWriter, r *http.Request, id string) string {
	if id == "" {
		return ""
	}
	cur := encodeCursor(id)
	q := r.URL.Query()
	q.Set(cursorParam, cur)
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Set("Link", "<"+u.String()+`>; rel="next"`)
	return cur
}

// writeList answers a list request of the spaces API: the whole list, or
// the page its limit and cursor ask for, keeping the items whose metadata
// matches its metadata.<key>= filters (metadata nil: whole and page
// filter themselves), each shown by show, as {<list>: [...], "next":
// cursor}.
func writeList[T, V any](w http.ResponseWriter, r *http.Request, list string,
	whole func(ctx context.Context, filter map[string]string) ([]T, error),
	page func(ctx context.Context, p functions.Page, filter map[string]string) ([]T, string, error),
	metadata func(*T) map[string]string, show func(T) V) error {
	p, filter, err := listQuery(r, true)
	if err != nil {
		return err
	}
	var items []T
	var next string
	if paged(p) {
		items, next, err = page(r.Context(), p, filter)
	} else {
		items, err = whole(r.Context(), filter)
	}
	if err != nil {
		return err
	}
	out := make([]V, 0, len(items))
	for i := range items {
		if metadata == nil || functions.MatchMetadata(metadata(&items[i]), filter) {
			out = append(out, show(items[i]))
		}
	}
	body := map[string]any{list: out}
	if next := nextPage(w, r, next); next != "" {
		body["next"] = next
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}
