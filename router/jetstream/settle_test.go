package jetstream

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/event-gateway/event-gateway/internal/errkind"
	"github.com/event-gateway/event-gateway/router"
)

func TestSettle(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 3, InitialBackoff: 10 * time.Second, MaxBackoff: 25 * time.Second}
	// The middle of the jitter's range: the pause is the backoff itself.
	mid := func(n int64) int64 { return n / 2 }
	failed := errors.New("function returned 500")
	for _, c := range []struct {
		name     string
		err      error
		attempt  int
		p        RetryPolicy
		stopping bool
		want     outcome
	}{
		{"made", nil, 1, p, false, outcome{action: done}},
		{"made on the last attempt", nil, 3, p, false, outcome{action: done}},
		{"made while stopping", nil, 1, p, true, outcome{action: done}},
		{"subscription gone", router.ErrSubscriptionGone, 1, p, false, outcome{action: drop}},
		{"subscription gone, wrapped, while stopping", fmt.Errorf("deliver: %w", router.ErrSubscriptionGone), 3, p, true, outcome{action: drop}},
		{"failed while stopping", failed, 1, p, true, outcome{action: handBack}},
		{"refused while stopping", errkind.New(errkind.Forbidden, "no"), 1, p, true, outcome{action: handBack}},
		{"first failure", failed, 1, p, false, outcome{action: retry, after: 10 * time.Second}},
		{"second failure doubles", failed, 2, p, false, outcome{action: retry, after: 20 * time.Second}},
		{"backoff capped", failed, 2, RetryPolicy{MaxAttempts: 9, InitialBackoff: 20 * time.Second, MaxBackoff: 25 * time.Second}, false, outcome{action: retry, after: 25 * time.Second}},
		{"last attempt", failed, 3, p, false, outcome{action: deadLetter, after: 25 * time.Second}},
		{"past the last attempt", failed, 7, p, false, outcome{action: deadLetter, after: 25 * time.Second}},
		{"refused by a plugin", errkind.New(errkind.Forbidden, "refused"), 1, p, false, outcome{action: deadLetter, after: 10 * time.Second}},
		{"invalid", errkind.New(errkind.Invalid, "bad"), 1, p, false, outcome{action: deadLetter, after: 10 * time.Second}},
		{"no function", fmt.Errorf("call: %w", errkind.New(errkind.NotFound, "function f not found")), 2, p, false, outcome{action: deadLetter, after: 20 * time.Second}},
		{"unavailable is retried", errkind.New(errkind.Unavailable, "later"), 1, p, false, outcome{action: retry, after: 10 * time.Second}},
		{"deferred", &router.DeferredError{After: time.Second, Reason: "bulkhead full"}, 1, p, false, outcome{action: postpone, after: time.Second}},
		{"deferred on the last attempt", fmt.Errorf("x: %w", &router.DeferredError{After: 2 * time.Second}), 3, p, false, outcome{action: postpone, after: 2 * time.Second}},
		{"zero policy is the default", failed, DefaultMaxAttempts - 1, RetryPolicy{}, false, outcome{action: retry, after: DefaultMaxBackoff}},
		{"zero policy's last attempt", failed, DefaultMaxAttempts, RetryPolicy{}, false, outcome{action: deadLetter, after: DefaultMaxBackoff}},
	} {
		got := settle(c.err, c.attempt, c.p, c.stopping, mid)
		// mid picks the middle of [d-d/5, d+d/5]; allow its rounding.
		if got.action != c.want.action || (got.after-c.want.after).Abs() > time.Nanosecond {
			t.Errorf("%s: %v after %v, want %v after %v", c.name, got.action, got.after, c.want.action, c.want.after)
		}
	}
}

// The jitter stays within ±20% of the backoff.
func TestSettleJitter(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Second, MaxBackoff: time.Minute}
	low := settle(errors.New("x"), 1, p, false, func(int64) int64 { return 0 })
	high := settle(errors.New("x"), 1, p, false, func(n int64) int64 { return n - 1 })
	if low.after != 800*time.Millisecond || high.after != 1200*time.Millisecond {
		t.Errorf("jitter spans %v to %v, want 800ms to 1.2s", low.after, high.after)
	}
}
