// Package cors holds the CORS configuration model of the spaces
// Configuration API (/v1/spaces/<space>/cors), its validation, its key
// layout and the configuration service that stores the configurations.
//
// A configuration applies to the http subscriptions of one method and
// path of a space: it says which cross-origin requests browsers may make
// to them. Its id derives from the method and the path, so there is at
// most one per method and path.
package cors

import (
	"strings"

	"github.com/google/uuid"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/subscriptions"
)

// Config is the CORS configuration of one method and path of a space.
type Config struct {
	// Space is the space of the configuration. It is not stored: the
	// service fills it in from the key on every read and ignores it on
	// writes.
	Space string `json:"space"`
	// ID derives from Method and Path (NewID). It is URL-path-safe as it
	// is: clients send it back unescaped.
	ID     string `json:"corsId"`
	Method string `json:"method"`
	Path   string `json:"path"`
	// AllowedOrigins may contain '*' to stand for any run of characters,
	// as in "https://*.example.com".
	AllowedOrigins   []string          `json:"allowedOrigins"`
	AllowedMethods   []string          `json:"allowedMethods"`
	AllowedHeaders   []string          `json:"allowedHeaders"`
	AllowCredentials bool              `json:"allowCredentials"`
	Metadata         map[string]string `json:"metadata,omitempty"`
}

// stored is what the store holds of a configuration: all but the space.
type stored struct {
	ID               string            `json:"corsId"`
	Method           string            `json:"method"`
	Path             string            `json:"path"`
	AllowedOrigins   []string          `json:"allowedOrigins"`
	AllowedMethods   []string          `json:"allowedMethods"`
	AllowedHeaders   []string          `json:"allowedHeaders"`
	AllowCredentials bool              `json:"allowCredentials"`
	Metadata         map[string]string `json:"metadata,omitempty"`
}

func (c Config) stored() stored {
	return stored{ID: c.ID, Method: c.Method, Path: c.Path, AllowedOrigins: c.AllowedOrigins,
		AllowedMethods: c.AllowedMethods, AllowedHeaders: c.AllowedHeaders,
		AllowCredentials: c.AllowCredentials, Metadata: c.Metadata}
}

func (s stored) in(space string) Config {
	return Config{Space: space, ID: s.ID, Method: s.Method, Path: s.Path, AllowedOrigins: s.AllowedOrigins,
		AllowedMethods: s.AllowedMethods, AllowedHeaders: s.AllowedHeaders,
		AllowCredentials: s.AllowCredentials, Metadata: s.Metadata}
}

// The defaults of the lists left out of a configuration, as in 0.9.
var (
	DefaultAllowedOrigins = []string{"*"}
	DefaultAllowedMethods = []string{"HEAD", "GET", "POST"}
	DefaultAllowedHeaders = []string{"Origin", "Accept", "Content-Type"}
)

// Bounds of the lists of a configuration, which end up in response
// headers of the Events API.
const (
	MaxListEntries = 100
	MaxEntryLen    = 1024 // bytes
)

// The methods of configurations and of their allowed methods: those of
// http subscriptions.
var httpMethods = map[string]bool{
	"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "HEAD": true, "OPTIONS": true,
}

const methodList = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"

// idNamespace makes ids name-based UUIDs (version 5) of method and path.
var idNamespace = uuid.MustParse("0c7d4f5e-9b1a-4a52-8e3f-6d2c1b0a9e84")

// NewID returns the id of the configuration of a method and path, both in
// normal form (Normalize). It is the same in every space: the key, not the
// id, tells spaces apart.
func NewID(method, path string) string {
	return uuid.NewSHA1(idNamespace, []byte(method+"\x00"+path)).String()
}

// normalizeRoute validates and normalizes a method and a path.
func normalizeRoute(method, path string) (string, string, []subscriptions.Segment, error) {
	method = strings.ToUpper(method)
	if method == "" {
		return "", "", nil, errkind.New(errkind.Invalid, "method is required")
	}
	if !httpMethods[method] {
		return "", "", nil, errkind.New(errkind.Invalid, "method %q is not one of %s", method, methodList)
	}
	path, segs, err := subscriptions.ParsePath(path)
	if err != nil {
		return "", "", nil, err
	}
	return method, path, segs, nil
}

// Normalize validates c and brings it to its stored form: method upper
// case, path normalized (an empty path is "/"), defaults filled in for the
// lists left out, allowed methods upper case, id derived. It returns the
// path's segments.
func (c *Config) Normalize() ([]subscriptions.Segment, error) {
	method, path, segs, err := normalizeRoute(c.Method, c.Path)
	if err != nil {
		return nil, err
	}
	id := NewID(method, path)
	if c.ID != "" && c.ID != id {
		return nil, errkind.New(errkind.Invalid, "corsId %q does not match method and path: leave it out, it is derived from them", c.ID)
	}
	c.ID, c.Method, c.Path = id, method, path
	if err := c.normalizeRules(); err != nil {
		return nil, err
	}
	return segs, nil
}

// normalizeRules validates and fills in everything but method, path and id.
func (c *Config) normalizeRules() error {
	fill := func(field string, v *[]string, def []string) error {
		if *v == nil {
			*v = append([]string(nil), def...)
			return nil
		}
		if len(*v) == 0 {
			return errkind.New(errkind.Invalid, "%s is an empty list: leave it out for the defaults", field)
		}
		if len(*v) > MaxListEntries {
			return errkind.New(errkind.Invalid, "%s has %d entries, more than %d", field, len(*v), MaxListEntries)
		}
		for _, s := range *v {
			switch {
			case strings.TrimSpace(s) == "":
				return errkind.New(errkind.Invalid, "%s has an empty entry", field)
			case len(s) > MaxEntryLen:
				return errkind.New(errkind.Invalid, "%s has an entry longer than %d bytes", field, MaxEntryLen)
			case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
				// They end up in response headers.
				return errkind.New(errkind.Invalid, "%s entry %q contains a control character", field, s)
			}
		}
		// Normalizing must not write into the caller's slice.
		*v = append([]string(nil), (*v)...)
		return nil
	}
	if err := fill("allowedOrigins", &c.AllowedOrigins, DefaultAllowedOrigins); err != nil {
		return err
	}
	if err := fill("allowedMethods", &c.AllowedMethods, DefaultAllowedMethods); err != nil {
		return err
	}
	if err := fill("allowedHeaders", &c.AllowedHeaders, DefaultAllowedHeaders); err != nil {
		return err
	}
	for i, m := range c.AllowedMethods {
		m = strings.ToUpper(m)
		if !httpMethods[m] {
			return errkind.New(errkind.Invalid, "allowedMethods: %q is not one of %s", m, methodList)
		}
		c.AllowedMethods[i] = m
	}
	if c.AllowCredentials {
		for _, o := range c.AllowedOrigins {
			if o == "*" {
				// Browsers refuse credentials with a wildcard origin.
				return errkind.New(errkind.Invalid, "allowCredentials needs explicit allowedOrigins, not \"*\"")
			}
		}
	}
	if len(c.Metadata) == 0 {
		c.Metadata = nil
	}
	return functions.ValidateMetadata(c.Metadata)
}
