package rules

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAppendCapped(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 200) // 400 bytes
	cases := []struct {
		name string
		in   string
		cut  bool
	}{
		{"short stays", "eu-west", false},
		{"exactly the bound stays", strings.Repeat("x", 64), false},
		{"longer is cut", strings.Repeat("x", 65), true},
		{"multi-byte runes are not split", long, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, cut := appendCapped(nil, tc.in, 64)
			if cut != tc.cut || len(got) > 64 || !utf8.Valid(got) {
				t.Fatalf("appendCapped(%d bytes) = %q (%d bytes), cut %v", len(tc.in), got, len(got), cut)
			}
			if !cut && string(got) != tc.in {
				t.Fatalf("short value changed: %q", got)
			}
			again, _ := appendCapped(nil, tc.in, 64)
			if !bytes.Equal(got, again) {
				t.Fatal("not deterministic")
			}
		})
	}
	a, _ := appendCapped(nil, strings.Repeat("x", 100)+"a", 64)
	b, _ := appendCapped(nil, strings.Repeat("x", 100)+"b", 64)
	if bytes.Equal(a, b) {
		t.Fatalf("values differing after the cut map to the same term %q", a)
	}
}

// TestLongValuesAreCut: group-by values and new terms of any length are
// stored (and alerted) cut to the term bound, and counted.
func TestLongValuesAreCut(t *testing.T) {
	t.Parallel()
	f, err := Parse([]byte(`rules:
- {name: nt, type: new_term, field: country, group_by: [shop], warmup: 0}`))
	if err != nil {
		t.Fatal(err)
	}
	var alerts []Alert
	st := &countStats{}
	e := NewEngine(f, func(a Alert) { alerts = append(alerts, a) }, st, WithLimits(Limits{TermBytes: 40}))
	huge := strings.Repeat("A", 1<<20)
	e.Observe("t", t0, map[string]any{"shop": huge, "country": huge + "1"})
	e.Observe("t", t0.Add(time.Second), map[string]any{"shop": huge, "country": huge + "1"}) // same term: no alert
	e.Observe("t", t0.Add(2*time.Second), map[string]any{"shop": huge, "country": huge + "2"})
	if len(alerts) != 2 {
		t.Fatalf("%d alerts, want 2 (two distinct long terms)", len(alerts))
	}
	for _, a := range alerts {
		if len(a.Group["shop"]) > 40 || len(a.Message) > 200 || len(a.Key) > 100 {
			t.Fatalf("alert carries a long value: group %d bytes, message %d bytes", len(a.Group["shop"]), len(a.Message))
		}
	}
	if st.cut == 0 {
		t.Fatal("cut values not counted")
	}
	if b := e.StateBytes(); b > 4096 {
		t.Fatalf("state is %d bytes for one key and two terms of 1 MiB each", b)
	}
}

// TestNewTermsExpire: a term not seen for term_expiry (record time) is
// forgotten and alerts again; memory goes back down.
func TestNewTermsExpire(t *testing.T) {
	t.Parallel()
	f, err := Parse([]byte(`rules:
- {name: nt, type: new_term, field: user, warmup: 0, term_expiry: 1h, realert: 1s}`))
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	e := NewEngine(f, func(a Alert) { alerts = append(alerts, a.Key) }, nil)
	for i := 0; i < 1000; i++ {
		e.Observe("t", t0.Add(time.Duration(i)*time.Second), map[string]any{"user": fmt.Sprintf("u%d", i)})
	}
	full := e.StateBytes()
	e.Observe("t", t0.Add(30*time.Minute), map[string]any{"user": "u0"}) // seen 30m ago: known
	if len(alerts) != 1000 {
		t.Fatalf("%d alerts, want 1000", len(alerts))
	}
	// Three hours later only the recent terms are remembered.
	for i := 0; i < 10; i++ {
		e.Observe("t", t0.Add(3*time.Hour+time.Duration(i)*time.Second), map[string]any{"user": "late"})
	}
	if got := e.StateBytes(); got >= full/10 {
		t.Fatalf("state %d bytes after expiry, was %d", got, full)
	}
	e.Observe("t", t0.Add(3*time.Hour+time.Minute), map[string]any{"user": "u5"})
	if last := alerts[len(alerts)-1]; !strings.HasSuffix(last, "u5") {
		t.Fatalf("forgotten term did not alert again: last alert %q", last)
	}
}

// TestStateBudget: with a small byte budget, new series and terms beyond
// it are dropped, counted per rule and kind and logged with the rule
// name; existing state keeps working and memory stays bounded.
func TestStateBudget(t *testing.T) {
	t.Parallel()
	f, err := Parse([]byte(`rules:
- {name: per-user, type: threshold, agg: count, window: 1m, op: ">", value: 1000, group_by: [user]}
- {name: users, type: cardinality, field: user, window: 1m, op: ">", value: 1000000}
- {name: nt, type: new_term, field: user, warmup: 1000000}`))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	st := &countStats{}
	const limit = 64 << 10
	e := NewEngine(f, nil, st, WithLimits(Limits{StateBytes: limit}), WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	for i := 0; i < 50000; i++ {
		e.Observe("t", t0.Add(time.Duration(i)*time.Millisecond), map[string]any{"user": fmt.Sprintf("user-%08d-%s", i, strings.Repeat("x", 40))})
	}
	if b := e.StateBytes(); b > limit || b < limit/2 {
		t.Fatalf("state %d bytes, want close to the %d limit", b, limit)
	}
	for _, kind := range []string{DropSeries, DropValue} {
		if st.dropped[kind] == 0 {
			t.Errorf("no %s drops counted: %v", kind, st.dropped)
		}
	}
	for _, name := range []string{`"rule":"per-user"`, `"kind":"series"`, `"msg":"rule state bound reached; not remembering new state"`} {
		if !strings.Contains(logs.String(), name) {
			t.Errorf("log lacks %s: %s", name, logs.String())
		}
	}
	if n := strings.Count(logs.String(), "\n"); n > 10 {
		t.Errorf("%d log lines for 50000 drops: not rate-limited", n)
	}
	// Windows close and series expire: memory is given back.
	e.Flush(t0.Add(24 * time.Hour))
	e.Observe("t", t0.Add(24*time.Hour), map[string]any{"user": "after"})
	if b := e.StateBytes(); b > limit/4 {
		t.Fatalf("state %d bytes after every window closed", b)
	}
}

func TestAlertIDFitsElasticsearch(t *testing.T) {
	t.Parallel()
	short := Alert{Rule: "r", Key: "eu", RecordTime: t0}
	if got := short.ID(); got != "r|eu|"+fmt.Sprint(t0.UnixMilli()) {
		t.Fatalf("short id = %q", got)
	}
	long := Alert{Rule: "r", Key: strings.Repeat("k", 300) + "," + strings.Repeat("v", 300), RecordTime: t0}
	other := long
	other.Key += "x"
	if a, b := long.ID(), other.ID(); len(a) > 512 || !strings.HasPrefix(a, "sha256:") || a == b {
		t.Fatalf("long ids %q %q", a, b)
	}
}
