// Package dashboard serves the gateway's web dashboard: plain HTML, CSS
// and JavaScript modules embedded in the binary, with no build step. The
// assets hold no data and need no token; every call the page makes to the
// Configuration API carries the token the user typed, which the page
// keeps in the browser's sessionStorage only.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// Prefix is where the dashboard is served on the Configuration API.
const Prefix = "/dashboard/"

//go:embed static
var static embed.FS

// Handler serves the dashboard under Prefix, and redirects the bare
// /dashboard to it.
func Handler() http.Handler {
	sub, _ := fs.Sub(static, "static") // cannot fail: the directory is embedded
	files := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		h := w.Header()
		// The page talks only to its own origin; nothing may frame it.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// Serves reports whether path is the dashboard's.
func Serves(path string) bool {
	return path == strings.TrimSuffix(Prefix, "/") || strings.HasPrefix(path, Prefix)
}
