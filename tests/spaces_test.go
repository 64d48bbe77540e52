package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	ceevent "github.com/cloudevents/sdk-go/v2/event"

	"github.com/event-gateway/event-gateway/internal/gwproc"
)

// rawFunction is an HTTP function on loopback that records the raw bodies
// and content types it receives and answers with respond.
type rawFunction struct {
	srv      *httptest.Server
	received chan rawCall
}

type rawCall struct {
	contentType string
	body        []byte
}

func newRawFunction(t *testing.T, respond func(w http.ResponseWriter, body []byte)) *rawFunction {
	t.Helper()
	f := &rawFunction{received: make(chan rawCall, 100)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.received <- rawCall{r.Header.Get("Content-Type"), b}
		respond(w, b)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *rawFunction) next(t *testing.T) rawCall {
	t.Helper()
	return called(t, f.received, 10*time.Second)
}

func (f *rawFunction) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case c := <-f.received:
		t.Fatalf("function called with %s, want no call", c.body)
	case <-time.After(within):
	}
}

func answer(body string) func(http.ResponseWriter, []byte) {
	return func(w http.ResponseWriter, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

// space is a client of one space of the spaces API.
type spaceClient struct {
	t    *testing.T
	gw   *gwproc.Process
	name string
}

func (s spaceClient) url(kind string) string {
	return s.gw.ConfigURL + "/v1/spaces/" + s.name + "/" + kind
}

func (s spaceClient) create(kind, body string) map[string]any {
	s.t.Helper()
	r := call(s.t, "POST", s.url(kind), body)
	expect(s.t, r, 201, "")
	var out map[string]any
	decode(s.t, r, &out)
	if out["space"] != s.name {
		s.t.Fatalf("created %s in space %v, want %s: %s", kind, out["space"], s.name, r.body)
	}
	return out
}

func (s spaceClient) function(id string, f *rawFunction) {
	s.t.Helper()
	s.create("functions", fmt.Sprintf(`{"functionId":%q,"type":"http","provider":{"url":%q}}`, id, f.srv.URL))
}

// TestSpacesStayApart: two spaces with the same function ids, event types
// and paths: the Configuration API lists each its own, and the Events API
// routes each request to the space it names (Space header or host), never
// the other's.
func TestSpacesStayApart(t *testing.T) {
	gw := startDev(t, "", "-space-domain", "events.test")
	fns := map[string]*rawFunction{}
	for _, sp := range []string{"alpha", "beta"} {
		name := sp
		fns[sp] = newRawFunction(t, answer(fmt.Sprintf(`{"statusCode":200,"body":%q}`, name)))
		c := spaceClient{t, gw, sp}
		c.function("f", fns[sp])
		c.create("eventtypes", `{"name":"user.created"}`)
		c.create("subscriptions", `{"type":"sync","eventType":"http.request","functionId":"f","method":"GET","path":"/hello"}`)
		c.create("subscriptions", `{"type":"async","eventType":"user.created","functionId":"f","path":"/"}`)
	}
	for _, sp := range []string{"alpha", "beta"} {
		var list struct{ Functions []map[string]any }
		decode(t, call(t, "GET", spaceClient{t, gw, sp}.url("functions"), ""), &list)
		if len(list.Functions) != 1 || list.Functions[0]["provider"].(map[string]any)["url"] != fns[sp].srv.URL {
			t.Fatalf("space %s lists %+v", sp, list.Functions)
		}
	}
	// Nothing of either space is in the default one.
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/functions/f", ""), 404, "not found")
	expect(t, call(t, "GET", gw.EventsURL+"/hello", ""), 404, "no http subscription")

	for _, sp := range []string{"alpha", "beta"} {
		r := call(t, "GET", gw.EventsURL+"/hello", "", "Space", sp)
		if r.status != 200 || r.body != sp {
			t.Fatalf("GET /hello in %s: %d %s", sp, r.status, r.body)
		}
		fns[sp].next(t)
		// The same space named by the host.
		req, _ := http.NewRequest("GET", gw.EventsURL+"/hello", nil)
		req.Host = sp + ".events.test"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != sp {
			t.Fatalf("GET /hello to host %s: %d %s", req.Host, resp.StatusCode, b)
		}
		fns[sp].next(t)
	}

	// An event to alpha reaches alpha's subscriber only.
	ev := `{"cloudEventsVersion":"0.1","eventType":"user.created","eventID":"e-1","source":"/test","contentType":"application/json","data":{"n":1}}`
	expect(t, call(t, "POST", gw.EventsURL+"/", ev, "Space", "alpha", "Content-Type", "application/cloudevents+json"), 202, "")
	got := fns["alpha"].next(t)
	var v01 map[string]any
	if err := json.Unmarshal(got.body, &v01); err != nil || v01["eventID"] != "e-1" || v01["cloudEventsVersion"] != "0.1" {
		t.Fatalf("alpha's subscriber got %s", got.body)
	}
	fns["beta"].none(t, 300*time.Millisecond)

	// An invalid space name is refused.
	expect(t, call(t, "GET", gw.EventsURL+"/hello", "", "Space", "a/b"), 400, "space")
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/spaces/a%20b/functions", ""), 400, "space")
}

// TestEnvelopePerGeneration: one event, three subscribers: the one made
// through /v1/subscriptions gets the seed's envelope, the one made through
// the spaces API CloudEvents v0.1, the one that asked for it CloudEvents
// 1.0; an event posted with the official CloudEvents Go SDK reaches the
// last with every attribute and extension intact.
func TestEnvelopePerGeneration(t *testing.T) {
	gw := startDev(t, "")
	seed, v01, v10 := newRawFunction(t, answer(`{}`)), newRawFunction(t, answer(`{}`)), newRawFunction(t, answer(`{}`))
	c := spaceClient{t, gw, "default"}
	registerFn := func(id string, f *rawFunction) {
		expect(t, call(t, "POST", gw.ConfigURL+"/v1/functions", fmt.Sprintf(`{"functionId":%q,"provider":{"type":"http","url":%q}}`, id, f.srv.URL)), 200, "")
	}
	registerFn("seed", seed)
	registerFn("v01", v01)
	registerFn("v10", v10)
	subscribe(t, gw, `{"functionId":"seed","event":"order.placed","path":"/"}`)
	c.create("eventtypes", `{"name":"order.placed"}`)
	sub := c.create("subscriptions", `{"type":"async","eventType":"order.placed","functionId":"v01"}`)
	if sub["envelope"] != "cloudevents-0.1" {
		t.Fatalf("spaces API subscription envelope %v", sub["envelope"])
	}
	c.create("subscriptions", `{"type":"async","eventType":"order.placed","functionId":"v10","envelope":"cloudevents-1.0"}`)

	// Legacy mode: the Event header.
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"id":7}`, "Event", "order.placed", "Content-Type", "application/json"), 202, "")
	var env envelope
	if err := json.Unmarshal(seed.next(t).body, &env); err != nil || env.Event != "order.placed" || string(env.Data) != `{"id":7}` {
		t.Fatalf("seed subscriber got %+v (%v)", env, err)
	}
	var ce01 map[string]any
	json.Unmarshal(v01.next(t).body, &ce01)
	if ce01["eventType"] != "order.placed" || ce01["cloudEventsVersion"] != "0.1" || ce01["eventID"] != env.ID {
		t.Fatalf("v0.1 subscriber got %v", ce01)
	}
	var ce10 ceevent.Event
	if err := json.Unmarshal(v10.next(t).body, &ce10); err != nil || ce10.Type() != "order.placed" || ce10.ID() != env.ID {
		t.Fatalf("1.0 subscriber got %v (%v)", ce10, err)
	}

	// CloudEvents 1.0 from the official Go SDK, in binary mode (its
	// default) and in structured mode.
	for _, structured := range []bool{false, true} {
		sent := cloudevents.NewEvent()
		sent.SetID(fmt.Sprintf("sdk-%v", structured))
		sent.SetSource("urn:test:sdk")
		sent.SetType("order.placed")
		sent.SetSubject("orders/42")
		sent.SetTime(time.Date(2026, 12, 1, 8, 0, 0, 123000000, time.UTC))
		sent.SetDataSchema("https://example.com/order.json")
		sent.SetExtension("tenant", "acme")
		sent.SetExtension("priority", 3)
		sent.SetExtension("urgent", true)
		if err := sent.SetData(cloudevents.ApplicationJSON, map[string]any{"id": 42}); err != nil {
			t.Fatal(err)
		}
		cl, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(gw.EventsURL + "/"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if structured {
			ctx = cloudevents.WithEncodingStructured(ctx)
		}
		res := cl.Send(ctx, sent)
		cancel()
		if !cloudevents.IsACK(res) {
			t.Fatalf("SDK send (structured %v): %v", structured, res)
		}
		got := v10.next(t)
		var recv ceevent.Event
		if err := json.Unmarshal(got.body, &recv); err != nil {
			t.Fatalf("1.0 subscriber got %s: %v", got.body, err)
		}
		if recv.ID() != sent.ID() || recv.Source() != sent.Source() || recv.Type() != sent.Type() ||
			recv.Subject() != sent.Subject() || !recv.Time().Equal(sent.Time()) || recv.DataSchema() != sent.DataSchema() ||
			recv.DataContentType() != sent.DataContentType() || string(recv.Data()) != string(sent.Data()) {
			t.Fatalf("structured %v: sent\n%v\nreceived\n%v", structured, sent, recv)
		}
		for name, want := range sent.Extensions() {
			if fmt.Sprint(recv.Extensions()[name]) != fmt.Sprint(want) {
				t.Fatalf("structured %v: extension %s = %v, want %v (received %v)", structured, name, recv.Extensions()[name], want, recv.Extensions())
			}
		}
		v01.next(t)
		seed.next(t)
	}

	// A CloudEvent of a type nobody registered is refused; so is an
	// invalid one, with what is wrong.
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"specversion":"1.0","id":"x","source":"/s","type":"never.registered"}`, "Content-Type", "application/cloudevents+json"), 400, "not registered")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"specversion":"1.0","source":"/s","type":"order.placed"}`, "Content-Type", "application/cloudevents+json"), 400, "id")
}

// TestAuthorizerAndSyncEvents: an event type's authorizer lets events in
// or refuses them (403), and the subscriber sees who was let in; a
// synchronous subscription to a custom event answers the request; an
// asynchronous subscription to http requests gets a copy of each.
func TestAuthorizerAndSyncEvents(t *testing.T) {
	gw := startDev(t, "")
	authz := newRawFunction(t, func(w http.ResponseWriter, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(string(body), `"let-me-in"`) {
			io.WriteString(w, `{"authorization":{"principalId":"user-1","context":{"role":"admin"}}}`)
			return
		}
		io.WriteString(w, `{"error":{"message":"no key"}}`)
	})
	sub := newRawFunction(t, answer(`{}`))
	syncFn := newRawFunction(t, answer(`{"statusCode":201,"headers":{"X-Fn":"sync"},"body":"done"}`))
	tap := newRawFunction(t, answer(`{}`))
	web := newRawFunction(t, answer(`{"statusCode":200,"body":"page"}`))
	c := spaceClient{t, gw, "shop"}
	c.function("authz", authz)
	c.function("sub", sub)
	c.function("sync", syncFn)
	c.function("tap", tap)
	c.function("web", web)
	c.create("eventtypes", `{"name":"payment.made","authorizerId":"authz"}`)
	c.create("eventtypes", `{"name":"cart.checkout"}`)
	c.create("subscriptions", `{"type":"async","eventType":"payment.made","functionId":"sub","envelope":"cloudevents-1.0"}`)
	c.create("subscriptions", `{"type":"sync","eventType":"cart.checkout","functionId":"sync","method":"POST","path":"/checkout"}`)
	c.create("subscriptions", `{"type":"sync","eventType":"http.request","functionId":"web","method":"GET","path":"/page"}`)
	c.create("subscriptions", `{"type":"async","eventType":"http.request","functionId":"tap","method":"GET","path":"/page"}`)
	// The authorizer cannot be deleted while an event type uses it.
	expect(t, call(t, "DELETE", c.url("functions")+"/authz", ""), 409, "")

	ce := func(typ, id, data string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/t","type":%q,"datacontenttype":"application/json","data":%s}`, id, typ, data)
	}
	expect(t, call(t, "POST", gw.EventsURL+"/", ce("payment.made", "p1", `{"key":"wrong"}`), "Space", "shop", "Content-Type", "application/cloudevents+json"), 403, "no key")
	authz.next(t)
	sub.none(t, 200*time.Millisecond)
	expect(t, call(t, "POST", gw.EventsURL+"/", ce("payment.made", "p2", `{"key":"let-me-in"}`), "Space", "shop", "Content-Type", "application/cloudevents+json"), 202, "")
	if got := authz.next(t); !strings.Contains(string(got.body), `"p2"`) || !strings.Contains(string(got.body), `"request"`) {
		t.Fatalf("authorizer got %s", got.body)
	}
	var recv ceevent.Event
	if err := json.Unmarshal(sub.next(t).body, &recv); err != nil || recv.ID() != "p2" || recv.Extensions()["principalid"] != "user-1" {
		t.Fatalf("subscriber got %v (%v)", recv, err)
	}

	// A synchronous subscription answers the event's request.
	r := call(t, "POST", gw.EventsURL+"/checkout", ce("cart.checkout", "c1", `{}`), "Space", "shop", "Content-Type", "application/cloudevents+json")
	if r.status != 201 || r.body != "done" || r.header.Get("X-Fn") != "sync" {
		t.Fatalf("sync event: %d %v %s", r.status, r.header, r.body)
	}
	syncFn.next(t)

	// An http request: answered by the sync subscription, copied to the
	// async one.
	r = call(t, "GET", gw.EventsURL+"/page", "", "Space", "shop")
	if r.status != 200 || r.body != "page" {
		t.Fatalf("GET /page: %d %s", r.status, r.body)
	}
	web.next(t)
	var tapped map[string]any
	json.Unmarshal(tap.next(t).body, &tapped)
	if tapped["eventType"] != "http.request" || tapped["data"].(map[string]any)["path"] != "/page" {
		t.Fatalf("async http subscriber got %v", tapped)
	}
}

// TestCORSPreflights: a preflight asking for headers in any case is
// answered as browsers' lowercase one is; CORS configurations of the
// spaces API apply to their routes; a preflight for an event echoes the
// origin and allows credentials.
func TestCORSPreflights(t *testing.T) {
	gw := startDev(t, "")
	f := newFunction(t, respondJSON(`{"statusCode":200,"body":"ok"}`))
	registerHTTP(t, gw, "f", f)
	subscribe(t, gw, `{"functionId":"f","event":"http","method":"POST","path":"/legacy","cors":{"origins":["http://app.example"]}}`)
	subscribe(t, gw, `{"functionId":"f","event":"http","method":"PUT","path":"/spaced"}`)
	spaceClient{t, gw, "default"}.create("cors", `{"method":"PUT","path":"/spaced","allowedOrigins":["http://other.example"],"allowedMethods":["PUT"],"allowedHeaders":["Content-Type","X-Token"]}`)

	preflight := func(path, origin, method, headers string) response {
		return call(t, "OPTIONS", gw.EventsURL+path, "", "Origin", origin, "Access-Control-Request-Method", method, "Access-Control-Request-Headers", headers)
	}
	for _, h := range []string{"content-type", "Content-Type", "CONTENT-TYPE"} {
		r := preflight("/legacy", "http://app.example", "POST", h)
		if r.header.Get("Access-Control-Allow-Origin") != "http://app.example" {
			t.Fatalf("preflight with %q: %d %v", h, r.status, r.header)
		}
	}
	r := preflight("/spaced", "http://other.example", "PUT", "Content-Type, X-Token")
	if r.header.Get("Access-Control-Allow-Origin") != "http://other.example" {
		t.Fatalf("preflight of a CORS configuration: %d %v", r.status, r.header)
	}
	if r := preflight("/spaced", "http://evil.example", "PUT", "Content-Type"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin allowed: %v", r.header)
	}
	r = preflight("/", "http://anywhere.example", "POST", "Event, Content-Type")
	if r.header.Get("Access-Control-Allow-Origin") != "http://anywhere.example" || r.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("event preflight: %d %v", r.status, r.header)
	}
}

// TestSpaceKeys: a space with ingest keys takes events that carry one and
// refuses the rest with 401, storing nothing; a configuration key opens
// its own space's Configuration API and no other, beside the gateway's
// token; keys are shown once and listed without their secret.
func TestSpaceKeys(t *testing.T) {
	gw := startDev(t, "", "-config-token", "global-token")
	auth := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	c := func(method, url, body, tok string) response {
		return call(t, method, url, body, auth(tok)...)
	}
	sub := newRawFunction(t, answer(`{}`))
	base := gw.ConfigURL + "/v1/spaces/"
	r := c("POST", base+"tenant/functions", fmt.Sprintf(`{"functionId":"f","type":"http","provider":{"url":%q}}`, sub.srv.URL), "global-token")
	expect(t, r, 201, "")
	expect(t, c("POST", base+"tenant/subscriptions", `{"functionId":"f","event":"ping"}`, "global-token"), 201, "")

	// No keys yet: events come in as before.
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Space", "tenant", "Event", "ping", "Content-Type", "application/json"), 202, "")
	sub.next(t)

	r = c("POST", base+"tenant/keys", `{"kind":"ingest","name":"web app"}`, "global-token")
	expect(t, r, 201, "")
	var ingest struct{ KeyID, Key, Kind string }
	decode(t, r, &ingest)
	if !strings.HasPrefix(ingest.Key, "egk_") || ingest.Kind != "ingest" {
		t.Fatalf("created key %s", r.body)
	}
	r = c("GET", base+"tenant/keys", "", "global-token")
	if strings.Contains(r.body, ingest.Key) || !strings.Contains(r.body, ingest.KeyID) {
		t.Fatalf("key list shows the secret or misses the key: %s", r.body)
	}

	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Space", "tenant", "Event", "ping", "Content-Type", "application/json"), 401, "ingest key")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Space", "tenant", "Event", "ping", "Content-Type", "application/json", "Event-Gateway-Key", "egk_wrong"), 401, "invalid ingest key")
	sub.none(t, 300*time.Millisecond)
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Space", "tenant", "Event", "ping", "Content-Type", "application/json", "Event-Gateway-Key", ingest.Key), 202, "")
	sub.next(t)
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Space", "tenant", "Event", "ping", "Content-Type", "application/json", "Authorization", "Bearer "+ingest.Key), 202, "")
	sub.next(t)
	// Another space is not affected.
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Event", "ping", "Content-Type", "application/json"), 202, "")

	// A configuration key of tenant: its space only.
	r = c("POST", base+"tenant/keys", `{"kind":"config"}`, "global-token")
	expect(t, r, 201, "")
	var cfgKey struct{ Key string }
	decode(t, r, &cfgKey)
	expect(t, c("GET", base+"tenant/functions", "", cfgKey.Key), 200, "")
	expect(t, c("GET", base+"other/functions", "", cfgKey.Key), 401, "token")
	expect(t, c("GET", gw.ConfigURL+"/v1/functions", "", cfgKey.Key), 401, "token")
	expect(t, c("GET", base+"tenant/functions", "", "nope"), 401, "token")
	expect(t, c("GET", base+"tenant/functions", "", ingest.Key), 401, "token")

	// A revoked key stops working while the space's other keys still do;
	// with no ingest key left, the space takes events without one again.
	r = c("POST", base+"tenant/keys", `{"kind":"ingest"}`, cfgKey.Key)
	expect(t, r, 201, "")
	var second struct{ KeyID, Key string }
	decode(t, r, &second)
	expect(t, c("DELETE", base+"tenant/keys/"+ingest.KeyID, "", cfgKey.Key), 204, "")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Space", "tenant", "Event", "ping", "Content-Type", "application/json", "Event-Gateway-Key", ingest.Key), 401, "invalid ingest key")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Space", "tenant", "Event", "ping", "Content-Type", "application/json", "Event-Gateway-Key", second.Key), 202, "")
	sub.next(t)
	expect(t, c("DELETE", base+"tenant/keys/"+second.KeyID, "", cfgKey.Key), 204, "")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{}`, "Space", "tenant", "Event", "ping", "Content-Type", "application/json"), 202, "")
	sub.next(t)
	expect(t, c("POST", base+"tenant/keys", `{"kind":"admin"}`, "global-token"), 400, "kind")
}

// TestSpaceKeysWithoutToken: without a gateway token, a space that has
// configuration keys is closed to requests without one, and the others
// stay open.
func TestSpaceKeysWithoutToken(t *testing.T) {
	gw := startDev(t, "")
	base := gw.ConfigURL + "/v1/spaces/"
	r := call(t, "POST", base+"locked/keys", `{"kind":"config"}`)
	expect(t, r, 201, "")
	var k struct{ Key string }
	decode(t, r, &k)
	expect(t, call(t, "GET", base+"locked/functions", ""), 401, "token")
	expect(t, call(t, "GET", base+"locked/functions", "", "Authorization", "Bearer "+k.Key), 200, "")
	expect(t, call(t, "GET", base+"open/functions", ""), 200, "")
	expect(t, call(t, "GET", gw.ConfigURL+"/v1/functions", ""), 200, "")
}
