package httpfn

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/event-gateway/event-gateway/functions"
	"github.com/event-gateway/event-gateway/internal/errkind"
)

// A function with several backends: instead of its one "url", it lists
// "backends", each with a weight and an optional version label, and says
// how calls are spread over them ("balance"), which share of them goes to
// a canary version, and how a failing backend is found and left out
// ("health"). docs/api.md shows the fields; docs/reliability.md the health
// rules.

// Backend is one endpoint of a function with several.
type Backend struct {
	URL string `json:"url"`
	// Weight is the backend's share of calls relative to the others of
	// its version group, 1 when absent. A pointer, so that an explicit 0
	// is refused rather than read as absent.
	Weight *int `json:"weight,omitempty"`
	// Version labels the backend, for Canary.
	Version string `json:"version,omitempty"`
	// ProbeURL is where the active health check probes this backend,
	// instead of Health.Active.Path on the backend's own host.
	ProbeURL string `json:"probeUrl,omitempty"`
}

// Canary sends Percent of the calls to the backends whose Version is
// Version, and the rest to the others.
type Canary struct {
	Version string `json:"version"`
	Percent int    `json:"percent"`
}

// Health configures how failing backends are left out.
type Health struct {
	Passive *Passive `json:"passive,omitempty"`
	Active  *Active  `json:"active,omitempty"`
}

// Passive ejects a backend after Failures consecutive failed calls (no
// answer, a timeout, or a 5xx status) for Ejection, twice as long at each
// ejection that follows without a healthy spell in between, at most
// MaxEjection.
type Passive struct {
	Failures    int    `json:"failures,omitempty"`
	Ejection    string `json:"ejection,omitempty"`
	MaxEjection string `json:"maxEjection,omitempty"`
}

// Active probes every backend with a GET every Interval: Failures
// consecutive failed probes (no 2xx within Timeout) mark it down, Passes
// consecutive passed ones up again.
type Active struct {
	Path     string `json:"path,omitempty"`
	Interval string `json:"interval,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
	Failures int    `json:"failures,omitempty"`
	Passes   int    `json:"passes,omitempty"`
}

// Balance policies.
const (
	BalanceWeighted         = "weighted"
	BalanceRoundRobin       = "round-robin"
	BalanceLeastOutstanding = "least-outstanding"
	BalanceHash             = "hash"
)

// Limits and defaults of the backends configuration.
const (
	MaxBackends  = 64
	MaxWeight    = 10_000
	maxLabelLen  = 256
	maxProbePath = 1024

	DefaultPassiveFailures = 5
	DefaultEjection        = 10 * time.Second
	DefaultMaxEjection     = 5 * time.Minute
	DefaultProbeInterval   = 10 * time.Second
	DefaultProbeTimeout    = 2 * time.Second
	DefaultProbeFailures   = 2
	DefaultProbePasses     = 1

	minProbeInterval = 50 * time.Millisecond
	maxThreshold     = 1000
)

// validateDiscovery checks the configuration of a function with
// discovery: its url or backends, both optional (what applies while the
// source does not know it), and the policy and health fields, which apply
// to the discovered backends too.
func (c *Config) validateDiscovery() error {
	switch {
	case c.URL != "" && c.Backends != nil:
		return errkind.New(errkind.Invalid, "provider.url and provider.backends exclude each other: give one url, or list the backends")
	case c.Canary != nil:
		return errkind.New(errkind.Invalid, "provider.canary is not available with provider.discovery: discovered backends have no version")
	case c.URL != "":
		if err := ValidateURL("provider.url", c.URL); err != nil {
			return err
		}
	}
	return c.validateBackends()
}

// validateBackends checks the configuration of a function with backends
// (or discovery); c.URL is empty (or checked).
func (c *Config) validateBackends() error {
	if len(c.Backends) == 0 && !c.Discovery {
		return errkind.New(errkind.Invalid, "provider.backends must list at least one backend")
	}
	if len(c.Backends) > MaxBackends {
		return errkind.New(errkind.Invalid, "provider.backends lists %d backends, more than %d", len(c.Backends), MaxBackends)
	}
	versions := map[string]int{}
	seen := map[string]int{}
	for i, b := range c.Backends {
		field := fmt.Sprintf("provider.backends[%d]", i)
		if b.URL == "" {
			return errkind.New(errkind.Invalid, "%s.url is required", field)
		}
		if err := ValidateURL(field+".url", b.URL); err != nil {
			return err
		}
		if j, dup := seen[b.URL]; dup {
			return errkind.New(errkind.Invalid, "%s.url %q is also provider.backends[%d].url: list a backend once and give it a weight", field, b.URL, j)
		}
		seen[b.URL] = i
		if b.Weight != nil && (*b.Weight < 1 || *b.Weight > MaxWeight) {
			return errkind.New(errkind.Invalid, "%s.weight %d must be from 1 to %d (remove the backend to send it nothing)", field, *b.Weight, MaxWeight)
		}
		if b.Weight != nil && *b.Weight != 1 && c.Balance == BalanceRoundRobin {
			return errkind.New(errkind.Invalid, "%s.weight is ignored by provider.balance %q: use %q to weigh backends", field, BalanceRoundRobin, BalanceWeighted)
		}
		if b.Version != "" {
			if err := functions.ValidateID(field+".version", b.Version); err != nil {
				return err
			}
		}
		versions[b.Version]++
		if b.ProbeURL != "" {
			if c.Health == nil || c.Health.Active == nil {
				return errkind.New(errkind.Invalid, "%s.probeUrl needs provider.health.active", field)
			}
			if err := ValidateURL(field+".probeUrl", b.ProbeURL); err != nil {
				return err
			}
		}
	}
	switch c.Balance {
	case "", BalanceWeighted, BalanceRoundRobin, BalanceLeastOutstanding:
		if c.HashOn != "" {
			return errkind.New(errkind.Invalid, "provider.hashOn is only for provider.balance %q", BalanceHash)
		}
	case BalanceHash:
		if c.HashOn == "" {
			return errkind.New(errkind.Invalid, "provider.hashOn is required for provider.balance %q: \"header:NAME\" or \"param:NAME\"", BalanceHash)
		}
		if _, _, err := parseHashOn(c.HashOn); err != nil {
			return err
		}
	default:
		return errkind.New(errkind.Invalid, "provider.balance %q is not supported (use %q, %q, %q or %q)", c.Balance, BalanceWeighted, BalanceRoundRobin, BalanceLeastOutstanding, BalanceHash)
	}
	if cn := c.Canary; cn != nil {
		switch {
		case cn.Version == "":
			return errkind.New(errkind.Invalid, "provider.canary.version is required")
		case versions[cn.Version] == 0:
			return errkind.New(errkind.Invalid, "provider.canary.version %q is the version of no backend", cn.Version)
		case versions[cn.Version] == len(c.Backends):
			return errkind.New(errkind.Invalid, "provider.canary.version %q is the version of every backend: there is nothing to share the calls with", cn.Version)
		case cn.Percent < 0 || cn.Percent > 100:
			return errkind.New(errkind.Invalid, "provider.canary.percent %d must be from 0 to 100", cn.Percent)
		}
	}
	if h := c.Health; h != nil {
		if p := h.Passive; p != nil {
			if p.Failures < 0 || p.Failures > maxThreshold {
				return errkind.New(errkind.Invalid, "provider.health.passive.failures %d must be from 1 to %d", p.Failures, maxThreshold)
			}
			ej, err := duration("provider.health.passive.ejection", p.Ejection, DefaultEjection, time.Millisecond, time.Hour)
			if err != nil {
				return err
			}
			mx, err := duration("provider.health.passive.maxEjection", p.MaxEjection, max(DefaultMaxEjection, ej), time.Millisecond, 24*time.Hour)
			if err != nil {
				return err
			}
			if mx < ej {
				return errkind.New(errkind.Invalid, "provider.health.passive.maxEjection %v is shorter than provider.health.passive.ejection %v", mx, ej)
			}
		}
		if a := h.Active; a != nil {
			if a.Path == "" && c.Discovery {
				return errkind.New(errkind.Invalid, "provider.health.active.path is required with provider.discovery: discovered backends have no probeUrl")
			}
			if a.Path == "" {
				for i, b := range c.Backends {
					if b.ProbeURL == "" {
						return errkind.New(errkind.Invalid, "provider.health.active.path is required unless every backend has a probeUrl (provider.backends[%d] has none)", i)
					}
				}
			}
			if a.Path != "" && (!strings.HasPrefix(a.Path, "/") || len(a.Path) > maxProbePath || strings.ContainsAny(a.Path, " \t\r\n#")) {
				return errkind.New(errkind.Invalid, "provider.health.active.path %q must be a URL path starting with '/', of at most %d bytes", a.Path, maxProbePath)
			}
			iv, err := duration("provider.health.active.interval", a.Interval, DefaultProbeInterval, minProbeInterval, time.Hour)
			if err != nil {
				return err
			}
			to, err := duration("provider.health.active.timeout", a.Timeout, min(DefaultProbeTimeout, iv), time.Millisecond, time.Hour)
			if err != nil {
				return err
			}
			if to > iv {
				return errkind.New(errkind.Invalid, "provider.health.active.timeout %v is longer than provider.health.active.interval %v", to, iv)
			}
			if a.Failures < 0 || a.Failures > maxThreshold {
				return errkind.New(errkind.Invalid, "provider.health.active.failures %d must be from 1 to %d", a.Failures, maxThreshold)
			}
			if a.Passes < 0 || a.Passes > maxThreshold {
				return errkind.New(errkind.Invalid, "provider.health.active.passes %d must be from 1 to %d", a.Passes, maxThreshold)
			}
		}
	}
	return nil
}

// onlyWithBackends refuses the backends fields on a function with one url.
func (c *Config) onlyWithBackends() error {
	for _, f := range []struct {
		name string
		set  bool
	}{{"balance", c.Balance != ""}, {"hashOn", c.HashOn != ""}, {"canary", c.Canary != nil}, {"health", c.Health != nil}} {
		if f.set {
			return errkind.New(errkind.Invalid, "provider.%s needs provider.backends: a function with one provider.url has one backend", f.name)
		}
	}
	return nil
}

// parseHashOn reads "header:NAME" or "param:NAME".
func parseHashOn(s string) (header, param string, err error) {
	kind, name, ok := strings.Cut(s, ":")
	switch {
	case !ok || name == "" || len(name) > maxLabelLen:
	case kind == "header" && validToken(name):
		return http.CanonicalHeaderKey(name), "", nil
	case kind == "param" && !strings.ContainsAny(name, "/{}*: "):
		return "", name, nil
	}
	return "", "", errkind.New(errkind.Invalid, "provider.hashOn %q must be \"header:NAME\" (a request header) or \"param:NAME\" (a path parameter of the route)", s)
}

// validToken reports whether s is an HTTP token (a header name).
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

// duration parses an optional duration field, def when empty, and checks
// it is within [lo, hi].
func duration(field, s string, def, lo, hi time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		return 0, errkind.New(errkind.Invalid, "%s %q must be a duration from %v to %v, such as \"10s\"", field, s, lo, hi)
	}
	return d, nil
}

// orDefault is n, or def when n is 0.
func orDefault(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}
