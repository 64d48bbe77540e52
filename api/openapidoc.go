package api

import (
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/event-gateway/event-gateway/api/openapi"
)

// routeOpenAPI serves the OpenAPI document of both APIs, as JSON and as
// the YAML it is kept in. It describes this release, not this gateway's
// configuration, so it needs no token (RequireToken lets it through).
func (c *Config) routeOpenAPI(r *httprouter.Router) {
	r.GET(openAPIJSONPath, c.handle(func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
		doc, err := openapi.JSON()
		if err != nil {
			return err // a bug: the document is checked by its tests
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
		return nil
	}))
	r.GET(openAPIYAMLPath, c.handle(func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openapi.YAML())
		return nil
	}))
}

// Where the Configuration API serves the OpenAPI document.
const (
	openAPIJSONPath = "/v1/openapi.json"
	openAPIYAMLPath = "/v1/openapi.yaml"
)
