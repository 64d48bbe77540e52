// Package functions holds the Function model, its validation and the
// configuration service that stores functions. Providers that call a
// function live in sub-packages, one per provider type.
package functions

import (
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/event-gateway/event-gateway/internal/errkind"
)

// ProviderType names the kind of backend a function runs on.
type ProviderType string

// The provider types the gateway can invoke.
const (
	HTTP      ProviderType = "http"
	AWSLambda ProviderType = "awslambda"
)

// Function is a registered function: an id and where to reach it.
type Function struct {
	ID       string   `json:"functionId"`
	Provider Provider `json:"provider"`
	// Timeout bounds one invocation, as a duration string ("5s", "500ms").
	// Empty means the gateway's default (-function-timeout).
	Timeout string `json:"timeout,omitempty"`
}

// MaxTimeout is the longest per-function timeout, as long as AWS Lambda's.
const MaxTimeout = 15 * time.Minute

// TimeoutOr returns the function's timeout, or def when it has none.
// Validate has checked the value, so a parse error cannot happen here.
func (f *Function) TimeoutOr(def time.Duration) time.Duration {
	if f.Timeout == "" {
		return def
	}
	d, err := time.ParseDuration(f.Timeout)
	if err != nil || d <= 0 {
		return def
	}
	return d
}

// Provider says how to invoke a function. Which fields apply depends on Type.
type Provider struct {
	Type ProviderType `json:"type"`

	// http
	URL string `json:"url,omitempty"`

	// awslambda
	ARN                string `json:"arn,omitempty"`
	Region             string `json:"region,omitempty"`
	AWSAccessKeyID     string `json:"awsAccessKeyId,omitempty"`
	AWSSecretAccessKey string `json:"awsSecretAccessKey,omitempty"`
	AWSSessionToken    string `json:"awsSessionToken,omitempty"`
}

// Redacted is what API responses show in place of a secret. Sending it back
// in an update keeps the stored secret, so a client can GET, edit and PUT.
const Redacted = "*****"

// Redact returns a copy of f with its secrets replaced by Redacted.
func (f Function) Redact() Function {
	if f.Provider.AWSSecretAccessKey != "" {
		f.Provider.AWSSecretAccessKey = Redacted
	}
	if f.Provider.AWSSessionToken != "" {
		f.Provider.AWSSessionToken = Redacted
	}
	return f
}

// maxIDLen bounds ids, which become etcd keys and URL segments.
const maxIDLen = 256

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9.\-_]+$`)

// ValidateID checks a function id (and, by the same rule, an event name).
func ValidateID(field, id string) error {
	switch {
	case id == "":
		return errkind.New(errkind.Invalid, "%s is required", field)
	case len(id) > maxIDLen:
		return errkind.New(errkind.Invalid, "%s is longer than %d characters", field, maxIDLen)
	case !idPattern.MatchString(id):
		return errkind.New(errkind.Invalid, "%s %q may contain only letters, digits, '.', '-' and '_'", field, id)
	}
	return nil
}

// Validate checks a function before it is stored.
func (f *Function) Validate() error {
	if err := ValidateID("functionId", f.ID); err != nil {
		return err
	}
	if f.Timeout != "" {
		d, err := time.ParseDuration(f.Timeout)
		if err != nil || d < time.Millisecond || d > MaxTimeout {
			return errkind.New(errkind.Invalid, "timeout %q must be a duration from 1ms to %v, such as \"5s\" or \"500ms\"", f.Timeout, MaxTimeout)
		}
	}
	return f.Provider.Validate()
}

var regionPattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// Validate checks the provider fields that its type needs.
func (p *Provider) Validate() error {
	switch p.Type {
	case "":
		return errkind.New(errkind.Invalid, "provider.type is required")
	case HTTP:
		if p.ARN != "" || p.Region != "" || p.AWSAccessKeyID != "" || p.AWSSecretAccessKey != "" || p.AWSSessionToken != "" {
			return errkind.New(errkind.Invalid, "provider of type http takes only url")
		}
		return validateURL(p.URL)
	case AWSLambda:
		if p.URL != "" {
			return errkind.New(errkind.Invalid, "provider of type awslambda does not take url")
		}
		if p.ARN == "" {
			return errkind.New(errkind.Invalid, "provider.arn is required for type awslambda")
		}
		if p.Region == "" {
			return errkind.New(errkind.Invalid, "provider.region is required for type awslambda")
		}
		if !regionPattern.MatchString(p.Region) {
			return errkind.New(errkind.Invalid, "provider.region %q is not a region name", p.Region)
		}
		if (p.AWSAccessKeyID == "") != (p.AWSSecretAccessKey == "") {
			return errkind.New(errkind.Invalid, "provider.awsAccessKeyId and provider.awsSecretAccessKey go together")
		}
		if p.AWSSessionToken != "" && p.AWSAccessKeyID == "" {
			return errkind.New(errkind.Invalid, "provider.awsSessionToken needs provider.awsAccessKeyId and provider.awsSecretAccessKey")
		}
		return nil
	default:
		return errkind.New(errkind.Invalid, "provider.type %q is not supported (use %q or %q)", p.Type, HTTP, AWSLambda)
	}
}

func validateURL(raw string) error {
	if raw == "" {
		return errkind.New(errkind.Invalid, "provider.url is required for type http")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasPrefix(u.Host, ":") {
		return errkind.New(errkind.Invalid, "provider.url %q must be an absolute http or https URL", raw)
	}
	if u.User != nil {
		// Credentials in the URL would be shown back by GET.
		return errkind.New(errkind.Invalid, "provider.url must not carry credentials")
	}
	return nil
}
