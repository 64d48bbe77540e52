// Package openapi holds the OpenAPI 3 document of the gateway's two HTTP
// APIs, openapi.yaml, which the Configuration API serves and the project's
// API tests check every response against (internal/openapitest).
package openapi

import (
	_ "embed"
	"sync"

	"sigs.k8s.io/yaml"
)

//go:embed openapi.yaml
var document []byte

// YAML returns the document as it is kept: YAML.
func YAML() []byte { return document }

// JSON returns the document as JSON. It is converted once, on first use.
func JSON() ([]byte, error) { return toJSON() }

var toJSON = sync.OnceValues(func() ([]byte, error) { return yaml.YAMLToJSON(document) })
