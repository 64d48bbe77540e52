package openapi_test

import (
	"context"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/event-gateway/event-gateway/api/openapi"
)

func TestDocumentIsValidOpenAPI3(t *testing.T) {
	for name, load := range map[string]func() ([]byte, error){
		"yaml": func() ([]byte, error) { return openapi.YAML(), nil },
		"json": openapi.JSON,
	} {
		t.Run(name, func(t *testing.T) {
			b, err := load()
			if err != nil {
				t.Fatal(err)
			}
			doc, err := openapi3.NewLoader().LoadFromData(b)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if err := doc.Validate(context.Background()); err != nil {
				t.Fatalf("not a valid OpenAPI 3 document: %v", err)
			}
		})
	}
}
