package tests

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/event-gateway/event-gateway/internal/gwproc"
	"github.com/event-gateway/event-gateway/router/jetstream"
)

// trailEvent is the trail of an event as the Configuration API shows it.
type trailEvent struct {
	Space       string `json:"space"`
	EventID     string `json:"eventId"`
	Type        string `json:"type"`
	AcceptedAt  string `json:"acceptedAt"`
	Outcome     string `json:"outcome"`
	Subscribers []struct {
		SubscriptionID string `json:"subscriptionId"`
		FunctionID     string `json:"functionId"`
		Outcome        string `json:"outcome"`
		Sync           bool   `json:"sync"`
		Attempts       []struct {
			Attempt       int     `json:"attempt"`
			At            string  `json:"at"`
			DurationMs    float64 `json:"durationMs"`
			Result        string  `json:"result"`
			Error         string  `json:"error"`
			Outcome       string  `json:"outcome"`
			NextAttemptAt string  `json:"nextAttemptAt"`
		} `json:"attempts"`
	} `json:"subscribers"`
}

type trailList struct {
	Events []trailEvent `json:"events"`
	Next   string       `json:"next"`
}

// getTrail returns the trail of event id, or nil while there is none.
func getTrail(t *testing.T, gw *gwproc.Process, path string) *trailEvent {
	t.Helper()
	r := call(t, "GET", gw.ConfigURL+path, "")
	if r.status == http.StatusNotFound {
		return nil
	}
	expect(t, r, 200, "")
	var ev trailEvent
	decode(t, r, &ev)
	return &ev
}

// within polls check until it passes or d is over.
func within(t *testing.T, d time.Duration, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func listEvents(t *testing.T, gw *gwproc.Process, query string) trailList {
	t.Helper()
	r := call(t, "GET", gw.ConfigURL+"/v1/spaces/default/events?"+query, "")
	expect(t, r, 200, "")
	var l trailList
	decode(t, r, &l)
	return l
}

func eventIDs(l trailList) []string {
	var ids []string
	for _, e := range l.Events {
		ids = append(ids, e.EventID)
	}
	return ids
}

// TestTrailAcrossRestart: an event to two subscribers, one that takes it
// at once and one that always fails; the gateway is stopped after the
// failing one's first attempt and started again on the same data; the
// trail shows the delivery, all three attempts of the other, made by two
// processes, and the dead letter. Then the lists by type, subscription and
// outcome, their pages, and the API's errors.
func TestTrailAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	args := devArgs(filepath.Join(dir, "etcd"), "-nats-data-dir", filepath.Join(dir, "nats"))
	gw := start(t, gwproc.Options{Args: args})

	good := newFunction(t, respondJSON(`{}`))
	bad := newFunction(t, func(w http.ResponseWriter, _ envelope) { w.WriteHeader(500) })
	registerHTTP(t, gw, "good", good)
	registerHTTP(t, gw, "bad", bad)
	goodSub := subscribe(t, gw, `{"functionId":"good","event":"order"}`)
	// The second attempt is due 3 s after the first: the restart falls
	// between them.
	badSub := subscribe(t, gw, `{"functionId":"bad","event":"order","retry":{"maxAttempts":3,"initialBackoff":"3s","maxBackoff":"3s"}}`)
	otherSub := subscribe(t, gw, `{"functionId":"good","event":"other"}`)

	expect(t, call(t, "POST", gw.EventsURL+"/", `{"n":1}`, "Event", "order", "Content-Type", "application/json"), 202, "")
	id := good.next(t).ID
	if got := bad.next(t).ID; got != id {
		t.Fatalf("bad got event %q, good %q", got, id)
	}
	var ev *trailEvent
	within(t, 10*time.Second, "first attempts in the trail", func() bool {
		ev = getTrail(t, gw, "/v1/events/"+id)
		return ev != nil && ev.Outcome == "inflight" && len(ev.Subscribers) == 2 &&
			len(ev.Subscribers[0].Attempts) > 0 && len(ev.Subscribers[1].Attempts) > 0
	})
	if ev.Type != "order" || ev.AcceptedAt == "" || ev.Space != "default" {
		t.Fatalf("trail %+v", ev)
	}
	gw.Stop(10 * time.Second)
	t.Log("gateway stopped after the first attempts")
	gw = start(t, gwproc.Options{Args: args})

	within(t, 60*time.Second, "dead letter in the trail", func() bool {
		ev = getTrail(t, gw, "/v1/spaces/default/events/"+id)
		return ev != nil && ev.Outcome == "deadletter"
	})
	for _, s := range ev.Subscribers {
		switch s.SubscriptionID {
		case goodSub:
			if s.FunctionID != "good" || s.Outcome != "delivered" || len(s.Attempts) != 1 || s.Attempts[0].Result != "ok" || s.Attempts[0].Outcome != "delivered" {
				t.Fatalf("good subscriber's trail %+v", s)
			}
		case badSub:
			if s.FunctionID != "bad" || s.Outcome != "deadletter" || len(s.Attempts) != 3 {
				t.Fatalf("bad subscriber's trail %+v", s)
			}
			for i, a := range s.Attempts {
				want := "retrying"
				if i == 2 {
					want = "deadletter"
				}
				if a.Attempt != i+1 || a.Outcome != want || a.Result != "failed" || a.Error == "" || a.At == "" {
					t.Fatalf("attempt %d: %+v", i+1, a)
				}
				if (want == "retrying") != (a.NextAttemptAt != "") {
					t.Fatalf("attempt %d: next attempt at %q", i+1, a.NextAttemptAt)
				}
			}
		default:
			t.Fatalf("unknown subscriber %+v", s)
		}
	}

	// Two more events: one to the good function, one to nobody.
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"n":2}`, "Event", "other", "Content-Type", "application/json"), 202, "")
	other := good.next(t).ID
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"n":3}`, "Event", "nobody", "Content-Type", "application/json"), 202, "")
	var l trailList
	within(t, 10*time.Second, "three events listed", func() bool {
		l = listEvents(t, gw, "")
		return len(l.Events) == 3 && l.Events[1].Outcome == "delivered"
	})
	if l.Events[0].Type != "nobody" || l.Events[0].Outcome != "unmatched" || l.Events[1].EventID != other || l.Events[2].EventID != id {
		t.Fatalf("list, newest first: %+v", l.Events)
	}
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"type=order", []string{id}},
		{"type=other", []string{other}},
		{"type=none", nil},
		{"subscriptionId=" + badSub, []string{id}},
		{"subscriptionId=" + goodSub, []string{id}},
		{"subscriptionId=" + otherSub, []string{other}},
		{"outcome=deadletter", []string{id}},
		{"outcome=delivered", []string{other, id}},
		{"outcome=delivered&subscriptionId=" + badSub, nil},
		{"outcome=unmatched", []string{l.Events[0].EventID}},
		{"type=order&outcome=deadletter&subscriptionId=" + badSub, []string{id}},
	} {
		if got := eventIDs(listEvents(t, gw, c.query)); !slices.Equal(got, c.want) {
			t.Errorf("?%s: %v, want %v", c.query, got, c.want)
		}
	}
	// Pages.
	var paged []string
	q := "limit=1"
	for range 5 {
		r := call(t, "GET", gw.ConfigURL+"/v1/spaces/default/events?"+q, "")
		expect(t, r, 200, "")
		var p trailList
		decode(t, r, &p)
		paged = append(paged, eventIDs(p)...)
		if p.Next == "" {
			break
		}
		if r.header.Get("Link") == "" {
			t.Fatal("a page with a next cursor has no Link header")
		}
		q = "limit=1&cursor=" + url.QueryEscape(p.Next)
	}
	if !slices.Equal(paged, eventIDs(l)) {
		t.Fatalf("paged: %v, whole: %v", paged, eventIDs(l))
	}

	// A synchronous subscription's call is in its event's trail.
	quoter := newFunction(t, respondJSON(`{"statusCode":200,"body":"42"}`))
	registerHTTP(t, gw, "quoter", quoter)
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/spaces/default/eventtypes", `{"name":"quote"}`), 201, "")
	r := call(t, "POST", gw.ConfigURL+"/v1/spaces/default/subscriptions", `{"type":"sync","eventType":"quote","functionId":"quoter","method":"POST","path":"/quote","envelope":"legacy"}`)
	expect(t, r, 201, "")
	var syncSub struct {
		SubscriptionID string `json:"subscriptionId"`
	}
	decode(t, r, &syncSub)
	r = call(t, "POST", gw.EventsURL+"/quote", `{}`, "Event", "quote", "Content-Type", "application/json")
	if r.status != 200 || r.body != "42" {
		t.Fatalf("sync answer %d %q", r.status, r.body)
	}
	quote := quoter.next(t).ID
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ev = getTrail(t, gw, "/v1/events/"+quote)
		if ev != nil && len(ev.Subscribers) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sync call in the trail: not within 10s: %+v", ev)
		}
	}
	if s := ev.Subscribers[0]; ev.Outcome != "delivered" || !s.Sync || s.SubscriptionID != syncSub.SubscriptionID || s.FunctionID != "quoter" ||
		len(s.Attempts) != 1 || s.Attempts[0].Result != "ok" || s.Attempts[0].Outcome != "delivered" {
		t.Fatalf("trail of a sync call: %+v", ev)
	}

	expect(t, call(t, "GET", gw.ConfigURL+"/v1/events/no-such-event", ""), 404, "no trail")
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/spaces/default/events?outcome=maybe", ""), 400, "outcome")
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/spaces/default/events?limit=1000", ""), 400, "limit")
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/spaces/default/events?cursor=bogus", ""), 400, "cursor")
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/spaces/Bad%20Space/events", ""), 400, "")
}

// TestTrailOffAndRetention: with -trail-retention 0 nothing is recorded
// and no stream created; with a short retention, the records go when it
// is over.
func TestTrailOffAndRetention(t *testing.T) {
	ns, err := jetstream.StartEmbedded(jetstream.EmbedOptions{DataDir: t.TempDir(), Port: freePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	fn := newFunction(t, respondJSON(`{}`))
	off := startDev(t, "", "-nats-url", ns.ClientURL(), "-trail-retention", "0")
	registerHTTP(t, off, "f", fn)
	subscribe(t, off, `{"functionId":"f","event":"ping"}`)
	expect(t, call(t, "POST", off.EventsURL+"/", `{}`, "Event", "ping", "Content-Type", "application/json"), 202, "")
	id := fn.next(t).ID
	expect(t, call(t, "GET", off.ConfigURL+"/v1/events/"+id, ""), 404, "trail is off")
	expect(t, call(t, "GET", off.ConfigURL+"/v1/spaces/default/events", ""), 404, "trail is off")
	if _, err := js.Stream(ctx, jetstream.DeliveriesStream); err != nil {
		t.Fatalf("the gateway's deliveries stream: %v", err)
	}
	if _, err := js.Stream(ctx, "EG_TRAIL"); !errors.Is(err, natsjs.ErrStreamNotFound) {
		t.Fatalf("with the trail off, stream EG_TRAIL: %v, want not found", err)
	}
	off.Stop(10 * time.Second)

	const retention = 2 * time.Second
	on := startDev(t, "", "-nats-url", ns.ClientURL(), "-trail-retention", retention.String())
	registerHTTP(t, on, "f", fn)
	subscribe(t, on, `{"functionId":"f","event":"ping"}`)
	expect(t, call(t, "POST", on.EventsURL+"/", `{}`, "Event", "ping", "Content-Type", "application/json"), 202, "")
	id = fn.next(t).ID
	st, err := js.Stream(ctx, "EG_TRAIL")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.MaxAge; got != retention {
		t.Fatalf("stream MaxAge %s, want %s", got, retention)
	}
	within(t, 10*time.Second, "the trail of "+id, func() bool {
		ev := getTrail(t, on, "/v1/events/"+id)
		return ev != nil && ev.Outcome == "delivered"
	})
	within(t, 20*time.Second, fmt.Sprintf("the trail gone after %s", retention), func() bool {
		return getTrail(t, on, "/v1/events/"+id) == nil
	})
}

// TestAcceptedEventID: the 202 that accepts an event names its id, by
// which its trail is found, with a filter's skipped subscriber in it.
func TestAcceptedEventID(t *testing.T) {
	gw := startDev(t, "")
	fn := newRawFunction(t, answer(`{}`))
	register(t, gw, "a", fmt.Sprintf(`{"functionId":"a","provider":{"type":"http","url":%q}}`, fn.srv.URL))
	register(t, gw, "b", fmt.Sprintf(`{"functionId":"b","provider":{"type":"http","url":%q}}`, fn.srv.URL))
	subscribe(t, gw, `{"functionId":"a","event":"signup","path":"/"}`)
	skipped := subscribeWith(t, gw, map[string]any{"functionId": "b", "event": "signup", "path": "/", "filter": map[string]any{"data": map[string]any{"plan": []string{"pro"}}}})
	r := call(t, "POST", gw.EventsURL+"/", `{"plan":"free"}`, "Event", "signup", "Content-Type", "application/json")
	expect(t, r, 202, "")
	id := r.header.Get("Event-Id")
	if id == "" {
		t.Fatalf("202 without Event-Id: %v", r.header)
	}
	fn.next(t)
	var tr *trailEvent
	eventually(t, "the trail of "+id, func() bool {
		tr = getTrail(t, gw, "/v1/events/"+id)
		return tr != nil && tr.Outcome == "delivered"
	})
	var found bool
	for _, s := range tr.Subscribers {
		if s.SubscriptionID == skipped {
			found = s.Outcome == "skipped"
		}
	}
	if !found {
		t.Fatalf("trail %+v does not show subscription %s skipped by its filter", tr, skipped)
	}
}
