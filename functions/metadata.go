package functions

import "github.com/event-gateway/event-gateway/internal/errkind"

// Bounds of metadata, the user's own labels of a resource (function,
// subscription, event type, CORS configuration), which is stored with it
// and shown in every list.
const (
	MaxMetadataKeys  = 64
	MaxMetadataKey   = 256
	MaxMetadataValue = 1024
)

// ValidateMetadata checks the user's labels of a resource.
func ValidateMetadata(m map[string]string) error {
	if len(m) > MaxMetadataKeys {
		return errkind.New(errkind.Invalid, "metadata has %d keys, more than %d", len(m), MaxMetadataKeys)
	}
	for k, v := range m {
		switch {
		case k == "":
			return errkind.New(errkind.Invalid, "metadata has an empty key")
		case len(k) > MaxMetadataKey:
			return errkind.New(errkind.Invalid, "metadata key %.32q… is longer than %d bytes", k, MaxMetadataKey)
		case len(v) > MaxMetadataValue:
			return errkind.New(errkind.Invalid, "metadata %q is longer than %d bytes", k, MaxMetadataValue)
		}
	}
	return nil
}

// MatchMetadata reports whether m has every key of filter with its value,
// as the spaces API's ?metadata.<key>=<value> asks.
func MatchMetadata(m, filter map[string]string) bool {
	for k, v := range filter {
		if got, ok := m[k]; !ok || got != v {
			return false
		}
	}
	return true
}
