package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/gwproc"
)

// jsonBody marshals v for a request body.
func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// subscribeWith subscribes through the first generation's API with the
// given fields, returning the subscription id.
func subscribeWith(t *testing.T, gw *gwproc.Process, fields map[string]any) string {
	t.Helper()
	return subscribe(t, gw, jsonBody(t, fields))
}

// emit sends a custom event in the seed's form.
func emit(t *testing.T, gw *gwproc.Process, event, data string, headers ...string) {
	t.Helper()
	h := append([]string{"Event", event, "Content-Type", "application/json"}, headers...)
	expect(t, call(t, "POST", gw.EventsURL+"/", data, h...), 202, "")
}

func dataOf(t *testing.T, c rawCall) map[string]any {
	t.Helper()
	var ev struct {
		Event string         `json:"event"`
		Data  map[string]any `json:"data"`
	}
	if err := json.Unmarshal(c.body, &ev); err != nil {
		t.Fatalf("delivery %s: %v", c.body, err)
	}
	return ev.Data
}

// TestFilteredCustomEvents: a subscriber with a filter gets the events it
// matches and no other; a subscriber of the same event without one gets
// them all.
func TestFilteredCustomEvents(t *testing.T) {
	gw := startDev(t, "")
	picky := newRawFunction(t, answer(`{}`))
	all := newRawFunction(t, answer(`{}`))
	register(t, gw, "picky", fmt.Sprintf(`{"functionId":"picky","provider":{"type":"http","url":%q}}`, picky.srv.URL))
	register(t, gw, "all", fmt.Sprintf(`{"functionId":"all","provider":{"type":"http","url":"%s/?a=1&b=2"}}`, all.srv.URL))
	subscribe(t, gw, `{"functionId":"picky","event":"order.placed","path":"/",
		"filter":{"data":{"country":["DE","FR"],"sku":[{"prefix":"BK-"}],"total":[{"numeric":[">",100,"<=",1000]}]}}}`)
	subscribe(t, gw, `{"functionId":"all","event":"order.placed","path":"/"}`)
	// The filter and the URL read back as they were sent, not
	// HTML-escaped (\u003e, \u0026).
	for url, want := range map[string]string{
		gw.ConfigURL + "/v1/subscriptions":                `[">",100,"<=",1000]`,
		gw.ConfigURL + "/v1/spaces/default/subscriptions": `[">",100,"<=",1000]`,
		gw.ConfigURL + "/v1/functions/all":                `/?a=1&b=2"`,
		gw.ConfigURL + "/v1/spaces/default/state":         `/?a=1&b=2"`,
	} {
		if r := call(t, "GET", url, ""); !strings.Contains(r.body, want) {
			t.Fatalf("GET %s: %s does not read back as sent: %s", url, want, r.body)
		}
	}

	sent := []string{
		`{"n":1,"country":"DE","sku":"BK-1","total":500}`,   // matches
		`{"n":2,"country":"US","sku":"BK-1","total":500}`,   // country
		`{"n":3,"country":"FR","sku":"CD-1","total":500}`,   // prefix
		`{"n":4,"country":"FR","sku":"BK-2","total":1001}`,  // range
		`{"n":5,"country":"FR","sku":"BK-3","total":100.5}`, // matches
		`{"n":6,"country":"FR","sku":"BK-3"}`,               // no total
	}
	for _, d := range sent {
		emit(t, gw, "order.placed", d)
	}
	seen := map[float64]bool{}
	for range sent {
		seen[dataOf(t, all.next(t))["n"].(float64)] = true
	}
	if len(seen) != len(sent) {
		t.Fatalf("unfiltered subscriber got %v", seen)
	}
	got := map[float64]bool{}
	for range 2 {
		got[dataOf(t, picky.next(t))["n"].(float64)] = true
	}
	if !got[1] || !got[5] {
		t.Fatalf("filtered subscriber got %v, want 1 and 5", got)
	}
	picky.none(t, 300*time.Millisecond)
}

// TestTransformedDeliveries: transforms that rename, add and drop fields,
// that drop events, and that see the attempt number.
func TestTransformedDeliveries(t *testing.T) {
	gw := startDev(t, "")
	fn := newRawFunction(t, answer(`{}`))
	register(t, gw, "f", fmt.Sprintf(`{"functionId":"f","provider":{"type":"http","url":%q}}`, fn.srv.URL))
	subscribeWith(t, gw, map[string]any{"functionId": "f", "event": "user.signedup", "path": "/", "transform": `
function transform(event, context) {
  if (event.data.test) return null;              // drop test traffic
  event.data.fullName = event.data.name;         // rename
  delete event.data.name;
  delete event.data.password;                    // strip a secret
  event.data.seenBy = context.functionId + "@" + context.space + "#" + context.attempt;
  return event;
}`})
	emit(t, gw, "user.signedup", `{"test":true,"name":"T"}`)
	emit(t, gw, "user.signedup", `{"name":"Ada","password":"hunter2","age":36}`)
	d := dataOf(t, fn.next(t))
	if d["fullName"] != "Ada" || d["name"] != nil || d["password"] != nil || d["age"] != float64(36) || d["seenBy"] != "f@default#1" {
		t.Fatalf("transformed delivery data %v", d)
	}
	fn.none(t, 300*time.Millisecond) // the test event was dropped
}

// TestTransformFailures: a script that throws, loops forever or reaches
// for the network fails its delivery, which is retried and then
// dead-lettered with the script's error; the other subscribers of the
// gateway are served all along.
func TestTransformFailures(t *testing.T) {
	gw := startDev(t, "", "-transform-timeout", "50ms")
	bad := newRawFunction(t, answer(`{}`))
	good := newRawFunction(t, answer(`{}`))
	register(t, gw, "bad", fmt.Sprintf(`{"functionId":"bad","provider":{"type":"http","url":%q}}`, bad.srv.URL))
	register(t, gw, "good", fmt.Sprintf(`{"functionId":"good","provider":{"type":"http","url":%q}}`, good.srv.URL))
	retry := map[string]any{"maxAttempts": 2, "initialBackoff": "10ms", "maxBackoff": "10ms"}
	scripts := map[string]struct{ src, want string }{
		"throws":  {`function transform(e) { if (e.data.n > 0) throw new Error("boom " + e.data.n); return e }`, "Error: boom 1"},
		"loops":   {`function transform(e) { while (true) {} }`, "timed out"},
		"network": {`function transform(e) { fetch("http://127.0.0.1:1/"); return e }`, "ReferenceError: fetch is not defined"},
		"require": {`function transform(e) { require("fs").readFileSync("/etc/passwd"); return e }`, "ReferenceError: require is not defined"},
	}
	subs := map[string]string{}
	for name, s := range scripts {
		subs[name] = subscribeWith(t, gw, map[string]any{"functionId": "bad", "event": "job." + name, "path": "/", "transform": s.src, "retry": retry})
	}
	subscribe(t, gw, `{"functionId":"good","event":"job.ok","path":"/"}`)
	for name := range scripts {
		emit(t, gw, "job."+name, `{"n":1}`)
	}
	// While four scripts fail and are retried, another subscriber is
	// served as ever.
	for i := range 5 {
		emit(t, gw, "job.ok", fmt.Sprintf(`{"n":%d}`, i))
		good.next(t)
	}
	for name, s := range scripts {
		var list struct {
			DeadLetters []deadLetter `json:"deadletters"`
		}
		eventually(t, name+" dead-lettered", func() bool {
			decode(t, call(t, "GET", gw.ConfigURL+"/v1/deadletters?subscriptionId="+subs[name], ""), &list)
			return len(list.DeadLetters) == 1
		})
		dl := list.DeadLetters[0]
		if dl.Attempts != 2 || !strings.Contains(dl.LastError, s.want) || !strings.Contains(dl.LastError, subs[name]) {
			t.Fatalf("%s: dead letter after %d attempts with error %q, want 2 and %q", name, dl.Attempts, dl.LastError, s.want)
		}
	}
	bad.none(t, 100*time.Millisecond) // no script let an event through
}

// TestHTTPRoutePipeline: an http route with a filter answers 404 to the
// requests it does not match; its transform changes the request its
// function gets and transformResponse the answer; a failing script is
// 502 naming the subscription.
func TestHTTPRoutePipeline(t *testing.T) {
	gw := startDev(t, "")
	fn := newRawFunction(t, func(w http.ResponseWriter, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		var ev struct{ Data json.RawMessage }
		json.Unmarshal(body, &ev)
		fmt.Fprintf(w, `{"statusCode":200,"headers":{"X-From":"fn"},"body":%q}`, ev.Data)
	})
	register(t, gw, "api", fmt.Sprintf(`{"functionId":"api","provider":{"type":"http","url":%q}}`, fn.srv.URL))
	id := subscribeWith(t, gw, map[string]any{"functionId": "api", "event": "http", "method": "POST", "path": "/orders/:id",
		"filter": json.RawMessage(`{"headers":{"X-Tenant":[{"equals-ignore-case":"acme"}]},"params":{"id":[{"wildcard":"o-*"}]},"body":{"qty":[{"numeric":[">",0]}]}}`),
		"transform": `function transform(event, ctx) {
  event.data.body.qty = event.data.body.qty * 2;
  if (event.data.body.qty > 100) throw new RangeError("too many");
  event.data.headers = {};                       // the function sees no headers
  return event;
}`,
		"transformResponse": `function transformResponse(resp, ctx) {
  return {statusCode: 201, headers: {"X-Sub": ctx.subscriptionId, "Content-Type": "application/json"}, body: JSON.parse(resp.body)};
}`})

	url := gw.EventsURL + "/orders/o-7"
	r := call(t, "POST", url, `{"qty":3}`, "X-Tenant", "ACME", "Content-Type", "application/json")
	if r.status != 201 || r.header.Get("X-Sub") != id || r.header.Get("X-From") != "" {
		t.Fatalf("transformed answer: %d %v %s", r.status, r.header, r.body)
	}
	var data struct {
		Body    map[string]any
		Headers map[string]any
		Params  map[string]string
	}
	if err := json.Unmarshal([]byte(r.body), &data); err != nil || data.Body["qty"] != float64(6) || len(data.Headers) != 0 || data.Params["id"] != "o-7" {
		t.Fatalf("function saw %s", r.body)
	}
	fn.next(t)

	// Not matched: 404, and the function is not called.
	expect(t, call(t, "POST", url, `{"qty":3}`, "X-Tenant", "other", "Content-Type", "application/json"), 404, "filter of subscription "+id)
	expect(t, call(t, "POST", gw.EventsURL+"/orders/x-7", `{"qty":3}`, "X-Tenant", "acme", "Content-Type", "application/json"), 404, "does not")
	expect(t, call(t, "POST", url, `{"qty":0}`, "X-Tenant", "acme", "Content-Type", "application/json"), 404, "does not")
	fn.none(t, 100*time.Millisecond)

	// The transform throws: 502 naming the subscription and the error.
	expect(t, call(t, "POST", url, `{"qty":60}`, "X-Tenant", "acme", "Content-Type", "application/json"), 502, "transform of subscription "+id+" failed: transform: script threw: RangeError: too many (line 3")
	fn.none(t, 100*time.Millisecond)
}

// TestInvokePipeline: invoke subscriptions filter, transform and
// transform the response too.
func TestInvokePipeline(t *testing.T) {
	gw := startDev(t, "")
	fn := newRawFunction(t, func(w http.ResponseWriter, body []byte) {
		var ev struct{ Data json.RawMessage }
		json.Unmarshal(body, &ev)
		w.Write(ev.Data)
	})
	register(t, gw, "calc", fmt.Sprintf(`{"functionId":"calc","provider":{"type":"http","url":%q}}`, fn.srv.URL))
	subscribeWith(t, gw, map[string]any{"functionId": "calc", "event": "invoke", "path": "/",
		"filter":            json.RawMessage(`{"data":{"op":["add"]}}`),
		"transform":         `function transform(e) { e.data.sum = e.data.a + e.data.b; return e }`,
		"transformResponse": `function transformResponse(r) { var v = JSON.parse(r.body); return {statusCode: 200, headers: {"Content-Type": "text/plain"}, body: "sum=" + v.sum} }`})
	r := call(t, "POST", gw.EventsURL+"/", `{"op":"add","a":2,"b":3}`, "Event", "invoke", "Function-ID", "calc", "Content-Type", "application/json")
	if r.status != 200 || r.body != "sum=5" || r.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("invoke: %d %q %v", r.status, r.body, r.header)
	}
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"op":"mul","a":2,"b":3}`, "Event", "invoke", "Function-ID", "calc", "Content-Type", "application/json"), 404, "does not match the filter")
}

// TestPipelineWithSpaces: the same event type in two spaces, each with
// its own filter and CloudEvents envelope: each space's subscriber gets
// what its own filter matches; a filter is edited in place with PUT.
func TestPipelineWithSpaces(t *testing.T) {
	gw := startDev(t, "")
	fns := map[string]*rawFunction{}
	subs := map[string]string{}
	for sp, region := range map[string]string{"eu": "eu-*", "us": "us-*"} {
		fns[sp] = newRawFunction(t, answer(`{}`))
		c := spaceClient{t, gw, sp}
		c.function("f", fns[sp])
		c.create("eventtypes", `{"name":"shipment.sent"}`)
		out := c.create("subscriptions", jsonBody(t, map[string]any{"type": "async", "eventType": "shipment.sent", "functionId": "f", "path": "/",
			"envelope": "cloudevents-1.0", "filter": map[string]any{"type": []string{"shipment.sent"}, "data": map[string]any{"region": []any{map[string]string{"wildcard": region}}}},
			"transform": `function transform(ce, ctx) { ce.data.space = ctx.space; return ce }`}))
		subs[sp] = out["subscriptionId"].(string)
		if out["filter"] == nil || out["transform"] == nil {
			t.Fatalf("created subscription shows no pipeline: %v", out)
		}
	}
	for _, sp := range []string{"eu", "us"} {
		for _, region := range []string{"eu-west", "us-east"} {
			ce := fmt.Sprintf(`{"specversion":"1.0","type":"shipment.sent","source":"/t","id":"%s-%s","data":{"region":%q}}`, sp, region, region)
			expect(t, call(t, "POST", gw.EventsURL+"/", ce, "Space", sp, "Content-Type", "application/cloudevents+json"), 202, "")
		}
	}
	for sp, want := range map[string]string{"eu": "eu-west", "us": "us-east"} {
		var ce struct {
			ID   string
			Data map[string]string
		}
		got := fns[sp].next(t)
		if err := json.Unmarshal(got.body, &ce); err != nil || ce.Data["region"] != want || ce.Data["space"] != sp || ce.ID != sp+"-"+want {
			t.Fatalf("space %s got %s", sp, got.body)
		}
		fns[sp].none(t, 200*time.Millisecond)
	}

	// PUT changes the filter in place; null removes it.
	c := spaceClient{t, gw, "eu"}
	r := call(t, "PUT", c.url("subscriptions/"+subs["eu"]), `{"filter":{"data":{"region":["eu-north"]}}}`)
	expect(t, r, 200, "")
	if !strings.Contains(r.body, `"eu-north"`) || !strings.Contains(r.body, `"transform"`) {
		t.Fatalf("PUT answered %s", r.body)
	}
	expect(t, call(t, "PUT", c.url("subscriptions/"+subs["eu"]), `{"filter":{"data":{"region":[{"numeric":["<"]}]}}}`), 400, "filter: at data.region[0].numeric")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"specversion":"1.0","type":"shipment.sent","source":"/t","id":"x1","data":{"region":"eu-west"}}`, "Space", "eu", "Content-Type", "application/cloudevents+json"), 202, "")
	expect(t, call(t, "POST", gw.EventsURL+"/", `{"specversion":"1.0","type":"shipment.sent","source":"/t","id":"x2","data":{"region":"eu-north"}}`, "Space", "eu", "Content-Type", "application/cloudevents+json"), 202, "")
	if got := fns["eu"].next(t); !strings.Contains(string(got.body), `"x2"`) {
		t.Fatalf("after the PUT the subscriber got %s", got.body)
	}
	r = call(t, "PUT", c.url("subscriptions/"+subs["eu"]), `{"filter":null,"transform":""}`)
	expect(t, r, 200, "")
	if strings.Contains(r.body, `"filter"`) || strings.Contains(r.body, `"transform"`) {
		t.Fatalf("PUT with null filter and empty transform answered %s", r.body)
	}
}

// TestPipelineValidation: patterns and scripts are checked when the
// subscription is made, in both generations, with the place of the error.
func TestPipelineValidation(t *testing.T) {
	gw := startDev(t, "")
	fn := newRawFunction(t, answer(`{}`))
	register(t, gw, "f", fmt.Sprintf(`{"functionId":"f","provider":{"type":"http","url":%q}}`, fn.srv.URL))
	for _, c := range []struct {
		fields map[string]any
		want   string
	}{
		{map[string]any{"filter": json.RawMessage(`{"data":{"n":[{"numeric":[">","x"]}]}}`)}, "filter: at data.n[0].numeric[1]"},
		{map[string]any{"filter": json.RawMessage(`{"data":{"n":[{"prefx":"a"}]}}`)}, `filter: at data.n[0]`},
		{map[string]any{"filter": json.RawMessage(`{"data":{"n":"a"}}`)}, "filter: at data.n"},
		{map[string]any{"filter": json.RawMessage(`{"$or":[{"a":[1]}]}`)}, "filter: at $or"},
		{map[string]any{"filter": json.RawMessage(`[1]`)}, "filter:"},
		{map[string]any{"transform": "function transform(e) {\n  return e +;\n}"}, "transform: line 2"},
		{map[string]any{"transform": "var x = 1;"}, "must define function transform"},
		{map[string]any{"transform": "function transformResponse(r) { return r }"}, "must define function transform"},
		{map[string]any{"transform": strings.Repeat(" ", 70000) + "function transform(e){return e}"}, "too large"},
		{map[string]any{"transformResponse": "function transformResponse(r) { return r }"}, "synchronous"},
	} {
		body := map[string]any{"functionId": "f", "event": "thing.happened", "path": "/"}
		for k, v := range c.fields {
			body[k] = v
		}
		expect(t, call(t, "POST", gw.ConfigURL+"/v1/subscriptions", jsonBody(t, body)), 400, c.want)
		// The spaces API checks the same.
		body = map[string]any{"type": "async", "eventType": "thing.happened", "functionId": "f", "path": "/"}
		for k, v := range c.fields {
			body[k] = v
		}
		spaceClient{t, gw, "default"}.create("eventtypes", `{"name":"thing.happened"}`)
		expect(t, call(t, "POST", gw.ConfigURL+"/v1/spaces/default/subscriptions", jsonBody(t, body)), 400, c.want)
		call(t, "DELETE", gw.ConfigURL+"/v1/spaces/default/eventtypes/thing.happened", "")
	}
}

// TestTryEndpoint: a filter and scripts tried on a sample, nothing saved.
func TestTryEndpoint(t *testing.T) {
	gw := startDev(t, "")
	try := func(body any) map[string]any {
		t.Helper()
		r := call(t, "POST", gw.ConfigURL+"/v1/try", jsonBody(t, body))
		expect(t, r, 200, "")
		var out map[string]any
		decode(t, r, &out)
		return out
	}
	ev := json.RawMessage(`{"event":"user.created","data":{"email":"ada@example.com","plan":"pro"}}`)
	out := try(map[string]any{"filter": json.RawMessage(`{"data":{"plan":["pro"]}}`), "event": ev,
		"transform": `function transform(e, c) { e.data.email = "***"; e.data.by = c.space + "/" + c.subscriptionId; return e }`,
		"context":   map[string]any{"subscriptionId": "s-1"}})
	res, _ := json.Marshal(out["event"])
	if out["matched"] != true || out["dropped"] != false || !strings.Contains(string(res), `"email":"***"`) || !strings.Contains(string(res), `"by":"default/s-1"`) || out["error"] != nil {
		t.Fatalf("try answered %v", out)
	}
	if took := out["tookMicros"].(map[string]any); took["filter"] == nil || took["transform"] == nil {
		t.Fatalf("try took %v", took)
	}
	out = try(map[string]any{"filter": json.RawMessage(`{"data":{"plan":["free"]}}`), "event": ev})
	if out["matched"] != false || out["event"] != nil {
		t.Fatalf("unmatched try answered %v", out)
	}
	out = try(map[string]any{"transform": "function transform(e) {\n  return e.data.nope.x;\n}", "event": ev})
	e := out["error"].(map[string]any)
	if e["stage"] != "transform" || e["line"] != float64(2) || e["column"] == nil || !strings.Contains(e["message"].(string), "TypeError") {
		t.Fatalf("failing try answered %v", out)
	}
	out = try(map[string]any{"filter": json.RawMessage(`{"a":[{"numeric":[">"]}]}`), "event": ev})
	e = out["error"].(map[string]any)
	if e["stage"] != "filter" || e["path"] != "a[0].numeric" || e["offset"] == nil {
		t.Fatalf("bad pattern try answered %v", out)
	}
	out = try(map[string]any{"transformResponse": `function transformResponse(r) { r.statusCode = 418; return r }`,
		"response": map[string]any{"statusCode": 200, "body": "hi"}})
	if resp := out["response"].(map[string]any); resp["statusCode"] != float64(418) || resp["body"] != "hi" {
		t.Fatalf("response try answered %v", out)
	}
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/try", `{"event":{}}`), 400, "send a filter")
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/try", `{"filter":{"a":[1]}}`), 400, "event is required")
	expect(t, call(t, "POST", gw.ConfigURL+"/v1/spaces/acme/try", jsonBody(t, map[string]any{"transform": `function transform(e, c) { e.s = c.space; return e }`, "event": map[string]any{}})), 200, "")
}
