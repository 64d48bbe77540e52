package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/event-gateway/event-gateway/router/event"
)

// tag appends its name to events and response bodies, so the order of
// the stages shows in the result.
type tag string

func (t tag) Request(_ context.Context, ev []byte, _ Context) ([]byte, bool, error) {
	if string(t) == "drop" {
		return nil, true, nil
	}
	// ev is {"tags": [...]}: the tag is added to the list.
	var v struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(ev, &v); err != nil {
		return nil, false, err
	}
	v.Tags = append(v.Tags, string(t))
	out, err := json.Marshal(v)
	return out, false, err
}

func (t tag) Response(_ context.Context, r event.HTTPResponse, _ Context) (event.HTTPResponse, error) {
	r.Body = []byte(string(r.Body) + "+" + string(t))
	return r, nil
}

func (t tag) Error(_ context.Context, err error, _ Context) (event.HTTPResponse, bool, error) {
	if string(t) == "pass" {
		return event.HTTPResponse{}, false, nil
	}
	return event.HTTPResponse{StatusCode: 200, Body: []byte(string(t) + ":" + err.Error())}, true, nil
}

func TestChainOrder(t *testing.T) {
	sub, err := Compile(Spec{
		Transform:         `function transform(e) { e.tags.push("sub"); return e }`,
		TransformResponse: `function transformResponse(r) { r.body = r.body + "+sub"; return r }`,
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := &Stages{Request: []RequestStage{tag("p1"), tag("p2")}, Response: []ResponseStage{tag("p1"), tag("p2")}, Error: []ErrorStage{tag("p1"), tag("pass")}}
	c := g.Wrap(sub)
	if !c.HasRequest() || !c.HasResponse() || !c.HasError() {
		t.Fatal("a chain with stages says it has none")
	}
	out, _, err := c.Request(t.Context(), []byte(`{"tags":[]}`), Context{})
	if err != nil || string(out) != `{"tags":["p1","p2","sub"]}` {
		t.Fatalf("request order: %s %v", out, err)
	}
	resp, err := c.Response(t.Context(), event.HTTPResponse{StatusCode: 200, Body: []byte(`r`)}, Context{})
	if err != nil || !strings.HasSuffix(string(resp.Body), `+sub+p2+p1`) {
		t.Fatalf("response order: %s %v", resp.Body, err)
	}
	resp, handled, err := c.Error(t.Context(), errors.New("boom"), Context{})
	if err != nil || !handled || string(resp.Body) != "p1:boom" {
		t.Fatalf("error: %s %v %v", resp.Body, handled, err)
	}
	// A drop ends the chain.
	out, drop, err := (&Stages{Request: []RequestStage{tag("drop"), tag("p2")}}).Wrap(sub).Request(t.Context(), []byte(`{"tags":[]}`), Context{})
	if !drop || out != nil || err != nil {
		t.Fatalf("drop: %s %v %v", out, drop, err)
	}
	// Without global stages the chain is the subscription's pipeline.
	var none *Stages
	if c := none.Wrap(nil); c.HasRequest() || c.HasResponse() || c.HasError() {
		t.Fatal("an empty chain has stages")
	}
}
