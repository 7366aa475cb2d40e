package limits

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func TestTimeWindow(t *testing.T) {
	t.Parallel()
	w := TimeWindow{MaxAge: 30 * 24 * time.Hour, AgeVar: "SEARCH_SINK_RETENTION_DAYS", MaxSkew: time.Hour, SkewVar: "SEARCH_SINK_MAX_FUTURE_SKEW", Now: func() time.Time { return now }}
	cases := []struct {
		name       string
		w          TimeWindow
		t          time.Time
		kind, text string
	}{
		{"now", w, now, "", ""},
		{"29 days old", w, now.Add(-29 * 24 * time.Hour), "", ""},
		{"6 years old", w, time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC), TooOld, "record time 2019-03-01T00:00:00Z is older than the retention window of 30d (SEARCH_SINK_RETENTION_DAYS)"},
		{"within the skew", w, now.Add(59 * time.Minute), "", ""},
		{"far future", w, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), TooNew, "record time 2099-01-01T00:00:00Z is more than 1h0m0s ahead of the clock (SEARCH_SINK_MAX_FUTURE_SKEW)"},
		{"no timestamp", w, time.Time{}, NoTimestamp, "record has no timestamp"},
		{"no bounds", TimeWindow{}, time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kind, text := tc.w.Check(tc.t)
			if kind != tc.kind || text != tc.text {
				t.Fatalf("Check(%s) = %q %q, want %q %q", tc.t, kind, text, tc.kind, tc.text)
			}
		})
	}
}

func TestIndexBudget(t *testing.T) {
	t.Parallel()
	clock := now
	existing := map[string]bool{"orders-2026.03.09": true}
	checks := 0
	var down bool
	b := &IndexBudget{PerHour: 3, Now: func() time.Time { return clock }, Exists: func(_ context.Context, index string) (bool, error) {
		checks++
		if down {
			return false, errors.New("connection refused")
		}
		return existing[index], nil
	}}
	ctx := context.Background()
	admit := func(topic, index string) Admission {
		t.Helper()
		a, err := b.Admit(ctx, topic, index)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := admit("orders", "orders-2026.03.09"); !a.OK || a.New {
		t.Fatalf("existing index: %+v", a)
	}
	for i, idx := range []string{"orders-2026.03.10", "orders-2026.03.08", "orders-2026.03.07"} {
		if a := admit("orders", idx); !a.OK || !a.New {
			t.Fatalf("new index %d: %+v", i, a)
		}
	}
	// The fourth new index within the hour waits for the first slot.
	a := admit("orders", "orders-2019.01.01")
	if a.OK || !a.RetryAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("over budget: %+v, want a retry at %s", a, now.Add(time.Hour))
	}
	// Indices already admitted stay admitted, without another check.
	before := checks
	if a := admit("orders", "orders-2026.03.10"); !a.OK || checks != before {
		t.Fatalf("known index: %+v, %d checks", a, checks-before)
	}
	// The budget is per topic.
	if a := admit("payments", "payments-2026.03.10"); !a.OK || !a.New {
		t.Fatalf("other topic: %+v", a)
	}
	// An hour later the slots are free again.
	clock = now.Add(time.Hour + time.Second)
	if a := admit("orders", "orders-2019.01.01"); !a.OK || !a.New {
		t.Fatalf("after an hour: %+v", a)
	}
	// A failed existence check is an error (transient), not an admission.
	down = true
	if _, err := b.Admit(ctx, "orders", "orders-2020.01.01"); err == nil || !strings.Contains(err.Error(), "orders-2020.01.01") {
		t.Fatalf("err = %v", err)
	}
	if len(b.created) > 2 || len(b.created["orders"]) > 3 {
		t.Fatalf("creation history not bounded: %v", b.created)
	}
}
