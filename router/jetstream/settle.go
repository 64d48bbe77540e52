package jetstream

import (
	"github.com/event-gateway/event-gateway/internal/errkind"
)

// retryable reports whether trying a failed delivery again can help.
func retryable(err error) bool {
	switch errkind.Of(err) {
	case errkind.Forbidden, errkind.Invalid, errkind.NotFound:
		return false
	}
	return true
}
