package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router"
	"github.com/event-gateway/event-gateway/router/event"
)

// An authorizer is a function of the space that an event type names: it
// is called with every event of the type before anything else sees it,
// and its answer lets the event in or refuses it.
//
// It receives {"event": <the event as CloudEvents 1.0>, "request": <the
// HTTP request as the data of an http event: path, method, headers, host,
// query, params, body>} and answers
//
//	{"authorization": {"principalId": "…", "context": {…}}}   to let it in
//	{"error": {"message": "…"}}                                to refuse it
//
// An event let in carries the principal id and the context to its
// subscribers as the CloudEvents extensions principalid and authcontext
// (the context's JSON text). A refusal answers 403 with the authorizer's
// message; an authorizer that cannot be called, fails or answers anything
// else refuses too (503 when it could not be asked, so the sender retries).

type authorizerRequest struct {
	Event   json.RawMessage `json:"event"`
	Request json.RawMessage `json:"request"`
}

type authorizerResponse struct {
	Authorization *struct {
		PrincipalID string          `json:"principalId"`
		Context     json.RawMessage `json:"context"`
	} `json:"authorization"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// Extensions an authorized event carries.
const (
	extPrincipalID = "principalid"
	extAuthContext = "authcontext"
)

// authorize asks the event type's authorizer about an event that came in
// request r; request is r as the data of an http event (event.EncodeHTTP).
func (e *Events) authorize(r *http.Request, space string, et *router.EventType, in *router.Incoming, request json.RawMessage) error {
	if et.Authorizer == nil {
		e.log.WarnContext(r.Context(), "authorizer function missing", "space", space, "eventType", et.Name, "authorizerId", et.AuthorizerID)
		return errkind.New(errkind.Forbidden, "event refused: the authorizer of event type %q is not available", et.Name)
	}
	ce := in.CloudEvent()
	req, err := json.Marshal(authorizerRequest{Event: ce.AppendJSON(nil), Request: request})
	if err != nil {
		return err
	}
	out, err := e.router.Call(r.Context(), et.Authorizer, req)
	if err != nil {
		e.log.WarnContext(r.Context(), "authorizer failed", "space", space, "eventType", et.Name, "authorizerId", et.AuthorizerID, "error", err)
		return errkind.New(errkind.Unavailable, "event not accepted: its authorizer failed, retry later")
	}
	var resp authorizerResponse
	if err := json.Unmarshal(out, &resp); err != nil || (resp.Authorization == nil && resp.Error == nil) {
		e.log.WarnContext(r.Context(), "authorizer answered neither authorization nor error", "space", space, "eventType", et.Name, "authorizerId", et.AuthorizerID)
		return errkind.New(errkind.Forbidden, "event refused by its authorizer")
	}
	if resp.Error != nil || resp.Authorization == nil {
		msg := "event refused by its authorizer"
		if resp.Error != nil && resp.Error.Message != "" {
			msg += ": " + resp.Error.Message
		}
		return errkind.New(errkind.Forbidden, "%s", msg)
	}
	if ce.Extensions == nil {
		ce.Extensions = make(map[string]any, 2)
	}
	if id := resp.Authorization.PrincipalID; id != "" {
		ce.Extensions[extPrincipalID] = id
	}
	if c := resp.Authorization.Context; len(c) > 0 && string(c) != "null" {
		ce.Extensions[extAuthContext] = string(c)
	}
	return nil
}

// requestData is a request as the data of an http event, for authorizers.
func requestData(r *http.Request, body []byte, now time.Time) json.RawMessage {
	ev, _ := event.EncodeHTTP(r, nil, body, now)
	return ev.Data
}
