package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestServesTheAssets(t *testing.T) {
	for path, typ := range map[string]string{
		"/dashboard/":          "text/html",
		"/dashboard/app.js":    "text/javascript", // modules load only with a JavaScript type
		"/dashboard/api.js":    "text/javascript",
		"/dashboard/ui.js":     "text/javascript",
		"/dashboard/chart.js":  "text/javascript",
		"/dashboard/style.css": "text/css",
	} {
		rec := get(t, "GET", path)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), typ) {
			t.Errorf("%s: %d %q, want 200 %s", path, rec.Code, rec.Header().Get("Content-Type"), typ)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	if rec := get(t, "GET", "/dashboard"); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/dashboard/" {
		t.Errorf("/dashboard: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := get(t, "GET", "/dashboard/nope.js"); rec.Code != 404 {
		t.Errorf("missing file: %d", rec.Code)
	}
	if rec := get(t, "POST", "/dashboard/"); rec.Code != 405 {
		t.Errorf("POST: %d", rec.Code)
	}
}

func TestServes(t *testing.T) {
	for path, want := range map[string]bool{"/dashboard": true, "/dashboard/x.js": true, "/dashboards": false, "/v1/functions": false} {
		if Serves(path) != want {
			t.Errorf("Serves(%q) = %v", path, !want)
		}
	}
}
