package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/api"
	"github.com/event-gateway/event-gateway/functions"
	httpfn "github.com/event-gateway/event-gateway/functions/http"
	"github.com/event-gateway/event-gateway/internal/openapitest"
	"github.com/event-gateway/event-gateway/subscriptions"
	"github.com/event-gateway/event-gateway/subscriptions/cors"
	"github.com/event-gateway/event-gateway/subscriptions/eventtypes"
)

// TestListPages fills every list with 25 items, 10 of them labelled, and
// reads them back whole, by pages, and by pages of the labelled ones.
func TestListPages(t *testing.T) {
	st := etcd.Store(t)
	reg := functions.NewRegistry(httpfn.New(httpfn.Options{}))
	sp := api.NewStoreSpaces(st, reg, nil)
	h := api.NewConfig(api.ConfigOptions{
		Functions:     sp.Functions(functions.DefaultSpace),
		Subscriptions: sp.Subscriptions(functions.DefaultSpace),
		Spaces:        sp,
		StoreTimeout:  5 * time.Second,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	validator.Register(t, srv.URL, openapitest.ConfigAPI)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const n = 25
	for _, space := range []string{functions.DefaultSpace, "s"} {
		fns := sp.Functions(space)
		for i := range n {
			md := map[string]string{"i": fmt.Sprint(i)}
			if i%5 < 2 {
				md["team"] = "blue"
			}
			id := fmt.Sprintf("f%02d", i)
			if _, err := fns.Create(ctx, functions.Function{ID: id, Provider: httpfn.Config{URL: "http://127.0.0.1:1/"}.Provider(), Metadata: md}); err != nil {
				t.Fatal(err)
			}
			if _, err := sp.Subscriptions(space).Create(ctx, subscriptions.Subscription{Event: fmt.Sprintf("e%d", i), FunctionID: id, Metadata: md}); err != nil {
				t.Fatal(err)
			}
			if space != functions.DefaultSpace {
				if _, err := sp.EventTypes(space).Create(ctx, eventtypes.EventType{Name: fmt.Sprintf("t%02d", i), Metadata: md}); err != nil {
					t.Fatal(err)
				}
				if _, err := sp.CORS(space).Create(ctx, cors.Config{Method: "GET", Path: fmt.Sprintf("/p%d", i), Metadata: md}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	// ids reads a list object's items' ids (the field id of the items of
	// the array field list) and its next cursor.
	ids := func(r result, list, id string) ([]string, string) {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var body map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.body), &body); err != nil {
			t.Fatal(err)
		}
		var items []map[string]any
		if err := json.Unmarshal(body[list], &items); err != nil {
			t.Fatalf("%s: %v", r.body, err)
		}
		var out []string
		for _, it := range items {
			out = append(out, fmt.Sprint(it[id]))
		}
		var next string
		if raw, ok := body["next"]; ok {
			json.Unmarshal(raw, &next)
		}
		return out, next
	}
	for _, tc := range []struct{ path, list, id string }{
		{"/v1/functions", "functions", "functionId"},
		{"/v1/subscriptions", "subscriptions", "subscriptionId"},
		{"/v1/spaces/s/functions", "functions", "functionId"},
		{"/v1/spaces/s/subscriptions", "subscriptions", "subscriptionId"},
		{"/v1/spaces/s/eventtypes", "eventTypes", "name"},
		{"/v1/spaces/s/cors", "cors", "corsId"},
	} {
		t.Run(strings.ReplaceAll(tc.path, "/", "_"), func(t *testing.T) {
			whole := do(t, srv, "GET", tc.path, "")
			all, next := ids(whole, tc.list, tc.id)
			if len(all) != n || next != "" || whole.header.Get("Link") != "" {
				t.Fatalf("whole list: %d items, next %q, Link %q; want %d, none", len(all), next, whole.header.Get("Link"), n)
			}
			slices.Sort(all)
			pages := func(query string, limit int) []string {
				var got []string
				url := fmt.Sprintf("%s?limit=%d%s", tc.path, limit, query)
				for range 2*n + 2 {
					r := do(t, srv, "GET", url, "")
					page, next := ids(r, tc.list, tc.id)
					if len(page) > limit {
						t.Fatalf("%s: %d items, limit %d", url, len(page), limit)
					}
					got = append(got, page...)
					if next == "" {
						if r.header.Get("Link") != "" {
							t.Fatalf("last page has a Link header %q", r.header.Get("Link"))
						}
						return got
					}
					link := r.header.Get("Link")
					if !strings.HasPrefix(link, "<"+tc.path+"?") || !strings.HasSuffix(link, `>; rel="next"`) || !strings.Contains(link, "cursor="+next) {
						t.Fatalf("Link %q for next %q", link, next)
					}
					url = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
				}
				t.Fatalf("%s: pages do not end", tc.path)
				return nil
			}
			for _, limit := range []int{1, 7, 10, 25, 1000} {
				if got := pages("", limit); !slices.Equal(got, all) {
					t.Fatalf("limit %d: pages hold %q, want %q", limit, got, all)
				}
			}
			if !strings.HasPrefix(tc.path, "/v1/spaces/") {
				return
			}
			// Filters select before the count.
			blue := pages("&metadata.team=blue", 3)
			if len(blue) != 10 {
				t.Fatalf("blue pages: %q, want 10 items", blue)
			}
			if r := do(t, srv, "GET", tc.path+"?metadata.team=blue", ""); len(must(ids(r, tc.list, tc.id))) != 10 {
				t.Fatalf("blue list: %s", r.body)
			}
			wantError(t, do(t, srv, "GET", tc.path+"?limit=2&color=red", ""), 400, "not a filter")
		})
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "limit=1&limit=2", "cursor=nope", "cursor=" + "Yzox"} {
		wantError(t, do(t, srv, "GET", "/v1/spaces/s/functions?"+q, ""), 400, "")
		wantError(t, do(t, srv, "GET", "/v1/subscriptions?"+q, ""), 400, "")
	}
}

func must(ids []string, _ string) []string { return ids }
