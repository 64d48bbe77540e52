package errkind

import (
	"errors"
	"testing"
)

// TestErrorSaysItOnce: wrapping an error with its own text as the message
// (as the router does with a plugin's veto) does not repeat the text.
func TestErrorSaysItOnce(t *testing.T) {
	veto := errors.New("vetoed by guard")
	if got := Wrap(Forbidden, veto, "%s", veto).Error(); got != "vetoed by guard" {
		t.Errorf("Error() = %q, want it once", got)
	}
	if got := Wrap(Unavailable, veto, "a plugin could not check the event").Error(); got != "a plugin could not check the event: vetoed by guard" {
		t.Errorf("Error() = %q", got)
	}
}
