package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelayBoundsAndJitter(t *testing.T) {
	t.Parallel()
	p := Policy{Base: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	cases := []struct {
		attempt int
		nominal time.Duration
	}{{0, 10 * time.Millisecond}, {1, 20 * time.Millisecond}, {3, 80 * time.Millisecond}, {10, 80 * time.Millisecond}, {1000, 80 * time.Millisecond}}
	for _, tc := range cases {
		distinct := map[time.Duration]bool{}
		for range 200 {
			d := p.Delay(tc.attempt)
			if d < tc.nominal/2 || d > tc.nominal {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", tc.attempt, d, tc.nominal/2, tc.nominal)
			}
			distinct[d] = true
		}
		if len(distinct) < 10 {
			t.Fatalf("attempt %d: only %d distinct delays in 200: no jitter", tc.attempt, len(distinct))
		}
	}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	fast := Policy{Base: time.Microsecond, Max: time.Microsecond, Attempts: 4}
	cases := []struct {
		name      string
		failFirst int   // calls that fail before success
		errOf     error // what the failures return
		calls     int
		want      func(error) bool
	}{
		{"succeeds at once", 0, boom, 1, func(err error) bool { return err == nil }},
		{"succeeds on the third", 2, boom, 3, func(err error) bool { return err == nil }},
		{"exhausted", 99, boom, 4, func(err error) bool { return errors.Is(err, ErrExhausted) && errors.Is(err, boom) }},
		{"permanent not retried", 99, Permanent(boom), 1, func(err error) bool { return err == boom }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls, retries := 0, 0
			err := fast.Retry(context.Background(), func(context.Context) error {
				calls++
				if calls <= tc.failFirst {
					return tc.errOf
				}
				return nil
			}, func(error, time.Duration) { retries++ })
			if !tc.want(err) || calls != tc.calls || retries != calls-1 {
				t.Fatalf("err=%v calls=%d retries=%d, want %d calls", err, calls, retries, tc.calls)
			}
		})
	}
}

func TestRetryStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Policy{Base: time.Hour}.Retry(ctx, func(context.Context) error {
		calls++
		cancel()
		return errors.New("down")
	}, nil)
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("err=%v calls=%d", err, calls)
	}
	if IsPermanent(errors.New("x")) || !IsPermanent(Permanent(errors.New("x"))) || Permanent(nil) != nil {
		t.Fatal("IsPermanent/Permanent")
	}
}
