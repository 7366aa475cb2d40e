// Package backoff is the one retry-delay policy every Sluice stage uses:
// capped exponential backoff with jitter, and bounded retry loops.
package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy is capped exponential backoff: attempt n (0-based) waits a random
// duration in [d/2, d] where d = Base*2^n capped at Max ("equal jitter": a
// fleet of replicas retrying the same failure spreads out, yet no wait is
// shorter than half the nominal one). Attempts bounds Retry (0: unbounded,
// until ctx ends).
type Policy struct {
	Base     time.Duration
	Max      time.Duration
	Attempts int
}

// Delay returns the wait before retry attempt n (0-based).
func (p Policy) Delay(n int) time.Duration {
	d := p.nominal(n)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func (p Policy) nominal(n int) time.Duration {
	base, ceil := p.Base, p.Max
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if ceil < base {
		ceil = base
	}
	d := base
	for i := 0; i < n && d < ceil; i++ {
		d *= 2
	}
	return min(d, ceil)
}

// Permanent wraps an error that Retry must not retry.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanent
	return errors.As(err, &p)
}

// ErrExhausted is wrapped by Retry's error when every attempt failed.
var ErrExhausted = errors.New("retries exhausted")

// Retry calls fn until it returns nil, a Permanent error, ctx ends, or
// Attempts calls failed, waiting Delay between calls. The error of the
// last call is returned (wrapped with ErrExhausted when attempts ran out,
// unwrapped from Permanent when fn said so; ctx's error when it ended).
// onRetry, if not nil, sees each failure that will be retried and the wait.
func (p Policy) Retry(ctx context.Context, fn func(ctx context.Context) error, onRetry func(err error, wait time.Duration)) error {
	for n := 0; ; n++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		var perm *permanent
		if errors.As(err, &perm) {
			return perm.err
		}
		if p.Attempts > 0 && n+1 >= p.Attempts {
			return errors.Join(ErrExhausted, err)
		}
		wait := p.Delay(n)
		if onRetry != nil {
			onRetry(err, wait)
		}
		if !Sleep(ctx, wait) {
			return errors.Join(ctx.Err(), err)
		}
	}
}

// Sleep waits d or until ctx ends; it reports whether d elapsed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
