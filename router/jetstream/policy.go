package jetstream

import (
	"math/rand/v2"
	"time"
)

// Defaults of RetryPolicy, also those of the gateway's -delivery-* flags.
const (
	DefaultMaxAttempts    = 10
	DefaultInitialBackoff = 20 * time.Second
	DefaultMaxBackoff     = 15 * time.Minute
)

// RetryPolicy says how often and how soon a failed delivery is tried
// again.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first one included.
	MaxAttempts int
	// InitialBackoff is the pause after the first failure; each further
	// one doubles it, up to MaxBackoff. Each pause is jittered by ±20%.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

// PolicyFunc gives the retry policy of a subscription of a space. Zero
// fields of what it returns are the default's.
type PolicyFunc func(space, subscriptionID string) RetryPolicy

// DefaultRetryPolicy is 10 attempts with pauses of 20s, 40s, 80s, ...
// capped at 15 minutes: about an hour from the first attempt to the last.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: DefaultMaxAttempts, InitialBackoff: DefaultInitialBackoff, MaxBackoff: DefaultMaxBackoff}
}

// normalized fills zero fields from the default.
func (p RetryPolicy) normalized() RetryPolicy {
	def := DefaultRetryPolicy()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = def.MaxAttempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = def.InitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = max(def.MaxBackoff, p.InitialBackoff)
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	return p
}

// Backoff is the pause after failed attempt number attempt (1 for the
// first): InitialBackoff·2^(attempt-1), at most MaxBackoff, ±20% jitter so
// the retries of one burst of failures spread out.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	return p.backoff(attempt, rand.Int64N)
}

// backoff is Backoff with its jitter drawn by rnd, which returns a number
// in [0, n): rand.Int64N, or a fixed choice where a test needs one.
func (p RetryPolicy) backoff(attempt int, rnd func(n int64) int64) time.Duration {
	p = p.normalized()
	d := p.InitialBackoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	return d - d/5 + time.Duration(rnd(int64(d)*2/5+1))
}
