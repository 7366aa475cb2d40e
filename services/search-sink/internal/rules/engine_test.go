package rules

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

type rec struct {
	at     time.Duration // offset from t0
	fields map[string]any
}

func r(at time.Duration, kv ...any) rec {
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return rec{at: at, fields: m}
}

// run feeds recs (optionally shuffled within a bound) and returns alerts as
// "rule|key|value" sorted.
func run(t *testing.T, yml string, recs []rec, shuffle time.Duration, flushAt time.Duration) []string {
	t.Helper()
	f, err := Parse([]byte(yml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var got []string
	e := NewEngine(f, func(a Alert) { got = append(got, fmt.Sprintf("%s|%s|%g", a.Rule, a.Key, a.Value)) }, nil)
	recs = slices.Clone(recs)
	if shuffle > 0 {
		// Swap neighbours whose times differ by less than the bound: out of
		// order, but within allowed lateness.
		rng := rand.New(rand.NewSource(7))
		for i := 0; i < len(recs)*3; i++ {
			j := rng.Intn(len(recs) - 1)
			if d := recs[j+1].at - recs[j].at; d >= 0 && d < shuffle {
				recs[j], recs[j+1] = recs[j+1], recs[j]
			}
		}
	}
	for _, x := range recs {
		e.Observe("orders", t0.Add(x.at), x.fields)
	}
	if flushAt > 0 {
		e.Flush(t0.Add(flushAt))
	}
	slices.Sort(got)
	return got
}

func sorted(recs []rec) []rec {
	slices.SortStableFunc(recs, func(a, b rec) int { return int(a.at - b.at) })
	return recs
}

func every(n int, step time.Duration, from time.Duration, f func(i int) rec) []rec {
	out := make([]rec, 0, n)
	for i := 0; i < n; i++ {
		x := f(i)
		x.at = from + time.Duration(i)*step
		out = append(out, x)
	}
	return out
}

func TestRuleTypes(t *testing.T) {
	t.Parallel()
	// Two regions: eu steady at 10/min; us steady at 10/min, then 50 in minute 5.
	steady := func(region string, perMin int, minutes int) []rec {
		var out []rec
		for m := 0; m < minutes; m++ {
			for i := 0; i < perMin; i++ {
				out = append(out, r(time.Duration(m)*time.Minute+time.Duration(i)*time.Minute/time.Duration(perMin), "region", region, "latency_ms", int64(100)))
			}
		}
		return out
	}
	spikeUS := append(steady("eu", 10, 8), steady("us", 10, 8)...)
	for i := 0; i < 40; i++ {
		spikeUS = append(spikeUS, r(5*time.Minute+time.Duration(i)*time.Second, "region", "us", "latency_ms", int64(100)))
	}
	slices.SortStableFunc(spikeUS, func(a, b rec) int { return int(a.at - b.at) })

	cases := []struct {
		name    string
		yml     string
		recs    []rec
		flushAt time.Duration
		want    []string
	}{
		{
			name: "threshold on field, per key, deduplicated",
			yml: `rules:
- {name: slow, type: threshold, field: latency_ms, op: ">", value: 1000, group_by: [region], realert: 10m, allowed_lateness: 0s}`,
			recs: []rec{
				r(0, "region", "eu", "latency_ms", int64(10)),
				r(time.Second, "region", "eu", "latency_ms", int64(2000)),
				r(2*time.Second, "region", "eu", "latency_ms", int64(3000)), // suppressed
				r(3*time.Second, "region", "us", "latency_ms", 1500.5),
				r(11*time.Minute, "region", "eu", "latency_ms", int64(1200)), // re-alert after 10m
			},
			want: []string{"slow|eu|1200", "slow|eu|2000", "slow|us|1500.5"},
		},
		{
			name: "threshold on count over window",
			yml: `rules:
- {name: busy, type: threshold, agg: count, window: 1m, op: ">=", value: 45, group_by: [region], allowed_lateness: 20s}`,
			recs:    spikeUS,
			flushAt: 10 * time.Minute,
			want:    []string{"busy|us|50"},
		},
		{
			name: "threshold on avg over window",
			yml: `rules:
- {name: avg, type: threshold, agg: avg, field: latency_ms, window: 1m, op: ">", value: 150, allowed_lateness: 10s}`,
			recs: []rec{
				r(0, "latency_ms", int64(100)), r(10*time.Second, "latency_ms", int64(100)),
				r(70*time.Second, "latency_ms", int64(100)), r(80*time.Second, "latency_ms", int64(300)),
			},
			flushAt: 5 * time.Minute,
			want:    []string{"avg||200"},
		},
		{
			name: "spike up vs reference window with group-by",
			yml: `rules:
- {name: spike, type: spike, window: 1m, factor: 3, reference_windows: 2, group_by: [region], allowed_lateness: 20s}`,
			recs:    spikeUS,
			flushAt: 10 * time.Minute,
			want:    []string{"spike|us|50"},
		},
		{
			name: "drop to zero is seen even without records in the window",
			yml: `rules:
- {name: drop, type: drop, window: 1m, factor: 4, group_by: [region], allowed_lateness: 0s}`,
			recs:    append(steady("eu", 10, 3), r(6*time.Minute+time.Second, "region", "eu")),
			flushAt: 0,
			want:    []string{"drop|eu|0"}, // minute 3 is empty; minutes 4,5 are suppressed by realert (default 10m)
		},
		{
			name: "flatline per key",
			yml: `rules:
- {name: quiet, type: flatline, window: 1m, min_count: 5, group_by: [region], allowed_lateness: 0s, realert: 1h}`,
			recs: sorted(append(steady("eu", 10, 4), append(steady("us", 10, 2), r(4*time.Minute, "region", "eu"))...)),
			want: []string{"quiet|us|0"},
		},
		{
			name: "outlier after warm-up only",
			yml: `rules:
- {name: out, type: outlier, field: latency_ms, alpha: 0.1, z: 4, warmup: 20, group_by: [region]}`,
			recs: append(
				// warm-up: an early extreme value must not alert
				[]rec{r(0, "region", "eu", "latency_ms", 100.0), r(time.Second, "region", "eu", "latency_ms", 5000.0)},
				append(every(100, time.Second, 2*time.Second, func(i int) rec {
					return r(0, "region", "eu", "latency_ms", 100+float64(i%5))
				}), r(200*time.Second, "region", "eu", "latency_ms", 900.0), r(201*time.Second, "region", "us", "latency_ms", 900.0))...),
			want: []string{"out|eu|900"},
		},
		{
			name: "new_term after warm-up, per key",
			yml: `rules:
- {name: newcountry, type: new_term, field: country, warmup: 3, group_by: [shop]}`,
			recs: []rec{
				r(0, "shop", "a", "country", "de"), r(1, "shop", "a", "country", "fr"), r(2, "shop", "a", "country", "de"),
				r(3, "shop", "a", "country", "it"), r(4, "shop", "a", "country", "it"),
				r(5, "shop", "b", "country", "it"),
			},
			want: []string{"newcountry|a,it|1"},
		},
		{
			name: "cardinality over window",
			yml: `rules:
- {name: users, type: cardinality, field: user, window: 1m, op: ">", value: 3, allowed_lateness: 5s}`,
			recs: []rec{
				r(0, "user", "a"), r(time.Second, "user", "a"), r(2*time.Second, "user", "b"),
				r(61*time.Second, "user", "a"), r(62*time.Second, "user", "b"), r(63*time.Second, "user", "c"), r(64*time.Second, "user", int64(4)),
			},
			flushAt: 5 * time.Minute,
			want:    []string{"users||4"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := run(t, tc.yml, tc.recs, 0, tc.flushAt)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("alerts = %v, want %v", got, tc.want)
			}
			if strings.Contains(tc.yml, "window") {
				// Windowed rules must not depend on arrival order within the lateness.
				shuffled := run(t, tc.yml, tc.recs, 5*time.Second, tc.flushAt)
				if !slices.Equal(shuffled, tc.want) {
					t.Fatalf("out-of-order alerts = %v, want %v", shuffled, tc.want)
				}
			}
		})
	}
}

func TestLateRecordsBeyondLatenessAreDropped(t *testing.T) {
	t.Parallel()
	f, err := Parse([]byte(`rules:
- {name: c, type: threshold, agg: count, window: 1m, op: ">=", value: 3, allowed_lateness: 10s}`))
	if err != nil {
		t.Fatal(err)
	}
	var alerts []Alert
	st := &countStats{}
	e := NewEngine(f, func(a Alert) { alerts = append(alerts, a) }, st)
	e.Observe("t", t0, nil)
	e.Observe("t", t0.Add(30*time.Second), nil)
	e.Observe("t", t0.Add(75*time.Second), nil)  // closes [0,1m) since 75-10 >= 60
	e.Observe("t", t0.Add(50*time.Second), nil)  // late: window closed
	e.Observe("t", t0.Add(65*time.Second), nil)  // within lateness for [1m,2m)
	e.Observe("t", t0.Add(58*time.Second), nil)  // late
	e.Observe("t", t0.Add(119*time.Second), nil) // third in [1m,2m)
	e.Flush(t0.Add(10 * time.Minute))
	if st.late != 2 {
		t.Fatalf("late = %d, want 2", st.late)
	}
	if len(alerts) != 1 || alerts[0].Value != 3 || !alerts[0].WindowStart.Equal(t0.Add(time.Minute)) {
		t.Fatalf("alerts = %+v, want one for window 12:01 with count 3", alerts)
	}
}

type countStats struct {
	fired, suppressed, late, cut int
	dropped                      map[string]int // kind -> count
}

func (c *countStats) Fired(string)      { c.fired++ }
func (c *countStats) Suppressed(string) { c.suppressed++ }
func (c *countStats) Late(string)       { c.late++ }
func (c *countStats) Cut(string)        { c.cut++ }
func (c *countStats) Dropped(_, kind string) {
	if c.dropped == nil {
		c.dropped = map[string]int{}
	}
	c.dropped[kind]++
}

func TestValidationNamesRuleAndField(t *testing.T) {
	t.Parallel()
	cases := []struct{ yml, want string }{
		{`rules: [{name: a, type: threshold, field: x, op: ">"}]`, `rule "a": value:`},
		{`rules: [{name: a, type: threshold, field: x, op: "=>", value: 1}]`, `rule "a": op:`},
		{`rules: [{name: b, type: spike, window: 1m, factor: 0.5}]`, `rule "b": factor:`},
		{`rules: [{name: c, type: spike, factor: 2}]`, `rule "c": window:`},
		{`rules: [{name: d, type: outlier}]`, `rule "d": field:`},
		{`rules: [{name: e, type: flatline, window: 1m}]`, `rule "e": min_count:`},
		{`rules: [{name: f, type: wat}]`, `rule "f": type:`},
		{`rules: [{name: g, type: new_term, field: x, notify: [pager]}]`, `rule "g": notify:`},
		{`rules: [{name: h, type: cardinality, field: x, window: 1m, op: ">", value: 1, severity: huge}]`, `rule "h": severity:`},
		{`rules: [{name: i, type: threshold, agg: sum, window: 1m, op: ">", value: 1}]`, `rule "i": field:`},
		{`rules: [{name: j, type: threshold, field: x, op: ">", value: 1}, {name: j, type: threshold, field: x, op: ">", value: 1}]`, `rule "j": name:`},
		{`rules: [{type: threshold}]`, `rule "#1": name:`},
		{`rules: [{name: k, type: spike, window: 1m, factor: 2, direction: sideways}]`, `rule "k": direction:`},
		{`rules: [{name: l, type: threshold, field: x, op: ">", value: 1, windw: 1m}]`, `field windw not found`},
		{`rules: [{name: m, type: flatline, window: soon, min_count: 1}]`, `time: invalid duration`},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want error containing %q", tc.yml, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`rules: [{name: a, type: threshold, field: x, op: ">", value: 1}]`))
	f.Add([]byte(`rules: [{name: b, type: spike, window: 1m, factor: 3, group_by: [a, b.c]}]`))
	f.Add([]byte(`defaults: {allowed_lateness: 30s}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		if err != nil {
			return
		}
		e := NewEngine(file, func(Alert) {}, nil)
		e.Observe("t", t0, map[string]any{"x": int64(5), "a": "k"})
		e.Flush(t0.Add(time.Hour))
	})
}

// Each rule type reports its own threshold in alerts: the value, the
// factor, or (flatline, outlier) the setting the type compares with.
func TestAlertThresholdPerType(t *testing.T) {
	t.Parallel()
	var recs []rec
	for i := range 40 {
		recs = append(recs, r(time.Duration(i)*time.Second, "x", float64(10+i%2)))
	}
	recs = append(recs, r(41*time.Second, "x", float64(1000)))
	for _, tc := range []struct {
		name, yml string
		want      float64
	}{
		{"threshold", `{name: a, type: threshold, field: x, op: ">", value: 500}`, 500},
		{"flatline", `{name: a, type: flatline, window: 1m, min_count: 100}`, 100},
		{"outlier", `{name: a, type: outlier, field: x, z: 4, warmup: 10}`, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := Parse([]byte("rules:\n- " + tc.yml))
			if err != nil {
				t.Fatal(err)
			}
			var got []Alert
			e := NewEngine(f, func(a Alert) { got = append(got, a) }, nil)
			for _, x := range recs {
				e.Observe("orders", t0.Add(x.at), x.fields)
			}
			e.Flush(t0.Add(5 * time.Minute))
			if len(got) == 0 {
				t.Fatal("no alert")
			}
			if got[0].Threshold != tc.want || got[0].Type != tc.name {
				t.Fatalf("alert type %s threshold %g, want %s %g", got[0].Type, got[0].Threshold, tc.name, tc.want)
			}
		})
	}
}
