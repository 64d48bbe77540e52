package api_test

import (
	"context"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/event-gateway/event-gateway/api/openapi"
)

// TestOpenAPIDocumentServed checks that the Configuration API serves the
// embedded document, as JSON and YAML, and that what it serves loads and
// validates as OpenAPI 3.
func TestOpenAPIDocumentServed(t *testing.T) {
	srv := newConfigServer(t, etcd.Store(t))
	wantJSON, err := openapi.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path, contentType string
		want              []byte
	}{
		{"/v1/openapi.json", "application/json", wantJSON},
		{"/v1/openapi.yaml", "application/yaml", openapi.YAML()},
	} {
		r := do(t, srv, "GET", tt.path, "")
		if r.status != 200 || r.header.Get("Content-Type") != tt.contentType {
			t.Fatalf("GET %s: %d %s, want 200 %s", tt.path, r.status, r.header.Get("Content-Type"), tt.contentType)
		}
		if r.body != string(tt.want) {
			t.Fatalf("GET %s: not the embedded document", tt.path)
		}
		doc, err := openapi3.NewLoader().LoadFromData([]byte(r.body))
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		if err := doc.Validate(context.Background()); err != nil {
			t.Fatalf("GET %s: not a valid OpenAPI 3 document: %v", tt.path, err)
		}
		if doc.Paths.Value("/v1/spaces/{space}/functions") == nil || doc.Paths.Value("/{path}") == nil {
			t.Fatalf("GET %s: the document lacks the spaces API or the Events API", tt.path)
		}
	}
}
