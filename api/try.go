package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router/event"
	"github.com/event-gateway/event-gateway/router/pipeline"
	"github.com/event-gateway/event-gateway/router/pipeline/transform"
)

// The try endpoint runs a filter and scripts on a sample, as a
// subscription would, without saving anything: users test their pattern
// or code before it goes live (docs/transformations.md).

// tryRequest is what the try endpoint takes.
type tryRequest struct {
	Filter            json.RawMessage `json:"filter"`
	Transform         string          `json:"transform"`
	TransformResponse string          `json:"transformResponse"`
	// Event is the event as the subscriber would receive it: its
	// envelope, or for http events the request data the filter sees.
	Event json.RawMessage `json:"event"`
	// Response is a function's response object, for transformResponse.
	Response json.RawMessage `json:"response"`
	// Context is what the scripts are told; space defaults to the URL's.
	Context *tryContext `json:"context"`
}

type tryContext struct {
	Space          string `json:"space"`
	SubscriptionID string `json:"subscriptionId"`
	FunctionID     string `json:"functionId"`
	Attempt        int    `json:"attempt"`
}

// tryResult is the answer: what the subscriber would receive.
type tryResult struct {
	// Matched tells whether the filter matches the event (true without
	// a filter).
	Matched bool `json:"matched"`
	// Dropped tells whether the transform returned null.
	Dropped bool `json:"dropped"`
	// Event is what the function would receive: the event, transformed;
	// absent when it would receive nothing.
	Event json.RawMessage `json:"event,omitempty"`
	// Response is the response object transformResponse returned.
	Response *tryResponse `json:"response,omitempty"`
	// Error is the failure of a stage; the stages after it did not run.
	Error *tryError `json:"error,omitempty"`
	// Took is the time each stage took, in microseconds: compile,
	// filter, transform, transformResponse.
	Took map[string]float64 `json:"tookMicros"`
}

type tryResponse struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers,omitempty"`
	Body       string            `json:"body"`
}

type tryError struct {
	// Stage is filter, transform or transformResponse.
	Stage   string `json:"stage"`
	Message string `json:"message"`
	// Path and Offset place an error of a filter pattern.
	Path   string `json:"path,omitempty"`
	Offset *int   `json:"offset,omitempty"`
	// Line and Column place an error of a script.
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
}

// try answers what a subscription with the request's filter and scripts
// would do with the sample event (and response). A pattern or script
// that does not compile, or fails on the sample, is an answer (200 with
// error), not a failed request: that is what the caller came to learn.
func (c *Config) try(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	var req tryRequest
	if err := c.decode(w, r, &req); err != nil {
		return err
	}
	spec := pipeline.Spec{Filter: req.Filter, Transform: req.Transform, TransformResponse: req.TransformResponse}
	if spec.Empty() {
		return errkind.New(errkind.Invalid, "send a filter, a transform or a transformResponse to try")
	}
	if len(req.Event) == 0 && req.TransformResponse == "" {
		return errkind.New(errkind.Invalid, "event is required: the sample event the filter or transform gets")
	}
	if len(req.Response) == 0 && req.TransformResponse != "" {
		return errkind.New(errkind.Invalid, "response is required: the sample response object transformResponse gets")
	}
	pc := pipeline.Context{Space: functions.DefaultSpace, Attempt: 1}
	if ps.ByName("space") != "" {
		sp, err := space(ps)
		if err != nil {
			return err
		}
		pc.Space = sp
	}
	if x := req.Context; x != nil {
		if x.Space != "" {
			pc.Space = x.Space
		}
		pc.SubscriptionID, pc.FunctionID = x.SubscriptionID, x.FunctionID
		if x.Attempt > 0 {
			pc.Attempt = x.Attempt
		}
	}
	res := tryResult{Matched: true, Took: make(map[string]float64, 4)}
	stage := func(name string, began time.Time) {
		res.Took[name] = float64(time.Since(began).Nanoseconds()) / 1e3
	}

	began := time.Now()
	p, err := pipeline.Compile(spec, pipeline.Options{})
	stage("compile", began)
	if err != nil {
		res.Error = tryErrorOf(err)
		writeJSON(w, http.StatusOK, res)
		return nil
	}
	ev := []byte(req.Event)
	if len(ev) > 0 {
		if p.HasFilter() {
			began = time.Now()
			res.Matched = p.Match(ev)
			stage("filter", began)
			if !res.Matched {
				writeJSON(w, http.StatusOK, res)
				return nil
			}
		}
		if p.HasRequest() {
			began = time.Now()
			out, drop, err := p.Request(r.Context(), ev, pc)
			stage("transform", began)
			if err != nil {
				res.Error = scriptErrorOf("transform", err)
				writeJSON(w, http.StatusOK, res)
				return nil
			}
			res.Dropped = drop
			ev = out
		}
		if !res.Dropped {
			res.Event = ev
		}
	}
	if p.HasResponse() {
		resp, err := event.ParseHTTPResponse(req.Response)
		if err != nil {
			return errkind.Wrap(errkind.Invalid, err, "response is not a response object: %s", err)
		}
		began = time.Now()
		out, err := p.Response(r.Context(), resp, pc)
		stage("transformResponse", began)
		if err != nil {
			res.Error = scriptErrorOf("transformResponse", err)
		} else {
			res.Response = &tryResponse{StatusCode: out.StatusCode, Headers: out.Headers, Body: string(out.Body)}
		}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// tryErrorOf describes a compilation error.
func tryErrorOf(err error) *tryError {
	var pe *pipeline.Error
	if !errors.As(err, &pe) {
		return &tryError{Message: err.Error()}
	}
	e := &tryError{Stage: pe.Field, Message: pe.Reason, Path: pe.Path, Line: pe.Line, Column: pe.Column}
	if pe.Offset >= 0 {
		e.Offset = &pe.Offset
	}
	return e
}

// scriptErrorOf describes the failure of a script's call.
func scriptErrorOf(stage string, err error) *tryError {
	e := &tryError{Stage: stage, Message: err.Error()}
	var se *transform.ScriptError
	if errors.As(err, &se) {
		e.Line, e.Column = se.Line, se.Column
	}
	return e
}
