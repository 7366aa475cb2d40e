package gateway

import (
	"strings"
	"testing"
	"time"
)

func TestTimeWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	e := &Engine{cfg: Config{MaxTimestampSkew: time.Hour, MaxTimestampAge: 168 * time.Hour}}
	w := e.window(now)
	off := &Engine{}
	wOff := off.window(now)
	cases := []struct {
		name string
		ts   time.Time
		w    *timeWindow
		want string // "" = accepted
	}{
		{"now", now, &w, ""},
		{"at the skew", now.Add(time.Hour), &w, ""},
		{"just past the skew", now.Add(time.Hour + time.Millisecond), &w, "is 1h in the future, more than GATEWAY_MAX_TIMESTAMP_SKEW=1h"},
		{"years ahead", now.AddDate(5, 0, 12), &w, "2031-06-13T12:00:00Z is 5y13d in the future"},
		{"at the age", now.Add(-168 * time.Hour), &w, ""},
		{"just past the age", now.Add(-168*time.Hour - time.Second), &w, "is 7d old, more than GATEWAY_MAX_TIMESTAMP_AGE=168h"},
		{"epoch itself when age is off", time.UnixMilli(0), &wOff, ""},
		{"before 1970", time.UnixMilli(-1), &wOff, "1969-12-31T23:59:59.999Z is before 1970-01-01T00:00:00Z"},
		{"far future with skew off", now.AddDate(100, 0, 0), &wOff, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.w.check(c.ts, now)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Kind != KindInvalidTimestamp || err.Field != "timestamp" || !strings.Contains(err.Message, c.want) ||
				err.Kind.Code() != 42207 || err.Kind.Status() != 422 || !err.Kind.DeadLetterable() {
				t.Fatalf("got %+v, want 422 42207 containing %q", err, c.want)
			}
		})
	}
	if got := shortDuration(168 * time.Hour); got != "168h" {
		t.Fatalf("shortDuration = %s", got)
	}
	if got := shortDuration(90 * time.Second); got != "1m30s" {
		t.Fatalf("shortDuration = %s", got)
	}
}

func TestHoldGrow(t *testing.T) {
	t.Parallel()
	e := &Engine{cfg: Config{InflightBytes: 100, ProduceTimeout: time.Second}}
	a := e.NewHold()
	if err := a.Grow(150); err != nil {
		t.Fatalf("a hold alone may grow past the budget: %v", err)
	}
	if _, err := e.Reserve(1); err == nil || err.Kind != KindBusy {
		t.Fatalf("reserving beside a hold over budget: %v", err)
	}
	b := e.NewHold()
	if err := b.Grow(1); err == nil || err.Kind != KindBusy {
		t.Fatalf("growing beside a hold over budget: %v", err)
	}
	a.Shrink(100)
	if err := b.Grow(40); err != nil {
		t.Fatalf("after shrinking: %v", err)
	}
	b.Absorb(a)
	if b.Bytes() != 90 || a.Bytes() != 0 || e.Inflight() != 90 {
		t.Fatalf("absorb: b %d a %d inflight %d", b.Bytes(), a.Bytes(), e.Inflight())
	}
	a.Release() // absorbed: nothing left to return
	b.Release()
	b.Release()
	if e.Inflight() != 0 {
		t.Fatalf("inflight %d after release", e.Inflight())
	}
	if err := b.Grow(10); err != nil || e.Inflight() != 0 {
		t.Fatalf("growing a released hold must not leak: %v, inflight %d", err, e.Inflight())
	}
}
