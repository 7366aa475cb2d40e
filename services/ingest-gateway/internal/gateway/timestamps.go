package gateway

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// timeWindow is the range of producer-given record timestamps a batch
// accepts, computed once per batch from the gateway's clock.
type timeWindow struct {
	min, max time.Time // zero: unbounded
	skew     time.Duration
	age      time.Duration
}

// epoch is the earliest timestamp Kafka can carry: record batches hold
// epoch milliseconds and -1 means "none".
var epoch = time.UnixMilli(0)

func (e *Engine) window(now time.Time) timeWindow {
	w := timeWindow{skew: e.cfg.MaxTimestampSkew, age: e.cfg.MaxTimestampAge, min: epoch}
	if w.skew > 0 {
		w.max = now.Add(w.skew)
	}
	if w.age > 0 {
		if m := now.Add(-w.age); m.After(epoch) {
			w.min = m
		}
	}
	return w
}

// check returns the record error for a timestamp outside the window.
func (w *timeWindow) check(ts, now time.Time) *Error {
	switch {
	case ts.Before(epoch):
		return &Error{Kind: KindInvalidTimestamp, Field: "timestamp", Message: fmt.Sprintf(
			"timestamp: %s is before 1970-01-01T00:00:00Z (Kafka timestamps are non-negative epoch milliseconds)", formatTS(ts))}
	case !w.max.IsZero() && ts.After(w.max):
		return &Error{Kind: KindInvalidTimestamp, Field: "timestamp", Message: fmt.Sprintf(
			"timestamp: %s is %s in the future, more than GATEWAY_MAX_TIMESTAMP_SKEW=%s", formatTS(ts), roughDuration(ts.Sub(now)), shortDuration(w.skew))}
	case w.age > 0 && ts.Before(w.min):
		return &Error{Kind: KindInvalidTimestamp, Field: "timestamp", Message: fmt.Sprintf(
			"timestamp: %s is %s old, more than GATEWAY_MAX_TIMESTAMP_AGE=%s", formatTS(ts), roughDuration(now.Sub(ts)), shortDuration(w.age))}
	}
	return nil
}

func formatTS(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// roughDuration renders d in its two largest units (y = 365 days), e.g.
// "5y12d", "3h20m", "45s": enough to see how far off a clock is.
func roughDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	units := []struct {
		d time.Duration
		s string
	}{{365 * 24 * time.Hour, "y"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	var b strings.Builder
	n := 0
	for _, u := range units {
		if q := d / u.d; q > 0 || (n > 0) {
			if q > 0 {
				b.WriteString(strconv.FormatInt(int64(q), 10))
				b.WriteString(u.s)
			}
			d -= q * u.d
			n++
			if n == 2 {
				break
			}
		}
	}
	if b.Len() == 0 {
		return d.String()
	}
	return b.String()
}

// shortDuration is time.Duration's String without trailing zero units
// ("1h", not "1h0m0s"), as an operator writes it in an env var.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
