package status

import (
	"testing"
	"time"
)

// TestScriptedHistories drives one partition through offset histories
// observed every 10s and checks the status after each script.
func TestScriptedHistories(t *testing.T) {
	t.Parallel()
	type step struct{ committed, end int64 }
	cases := []struct {
		name    string
		members int
		steps   []step
		extra   time.Duration // time after the last observation when judged
		want    Code
	}{
		{"caught up once", 1, []step{{10, 20}, {20, 20}, {25, 40}, {30, 60}, {35, 80}}, 0, OK},
		{"lag shrinking", 1, []step{{0, 100}, {40, 120}, {90, 130}, {120, 140}, {139, 140}}, 0, OK},
		{"falling behind", 1, []step{{0, 10}, {5, 20}, {10, 30}, {15, 40}, {20, 50}}, 0, WARN},
		{"steady lag", 1, []step{{0, 10}, {10, 20}, {20, 30}, {30, 40}, {40, 50}}, 0, WARN},
		{"stalled with members", 2, []step{{7, 10}, {7, 20}, {7, 30}, {7, 40}, {7, 50}}, 0, STALL},
		{"stalled, no producers", 1, []step{{7, 10}, {7, 10}, {7, 10}, {7, 10}, {7, 10}}, 0, STALL},
		{"stopped without members", 0, []step{{7, 10}, {7, 20}, {7, 30}, {7, 40}, {7, 50}}, 0, STOP},
		{"moving without members", 0, []step{{0, 100}, {10, 120}, {20, 140}, {30, 160}, {40, 180}}, 0, WARN},
		{"catching up without members", 0, []step{{0, 100}, {10, 100}, {20, 100}, {30, 100}, {40, 100}}, 0, OK},
		{"recently stopped without members", 0, []step{{0, 100}, {10, 120}, {20, 140}, {30, 160}, {30, 180}}, 0, WARN},
		{"quiet too long without members", 0, []step{{0, 100}, {10, 120}, {20, 140}, {30, 160}, {30, 180}}, 40 * time.Second, STOP},
		{"rewind", 1, []step{{50, 100}, {60, 110}, {20, 120}, {30, 130}, {40, 140}}, 0, ERR},
		{"window not full", 1, []step{{7, 10}, {7, 20}, {7, 30}}, 0, OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			t0 := time.Unix(1_700_000_000, 0)
			tr := NewTracker(5)
			k := PartitionKey{"orders", 0}
			var now time.Time
			for i, s := range tc.steps {
				now = t0.Add(time.Duration(i) * 10 * time.Second)
				tr.Begin()
				tr.Observe("g", k, Observation{Time: now, Committed: s.committed, End: s.end})
				tr.End()
			}
			if got := tr.Evaluate("g", now.Add(tc.extra), tc.members); got != tc.want {
				t.Fatalf("status = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestTransitions walks one group OK -> WARN -> STALL -> OK as its history
// rolls through the window, and checks the worst partition wins.
func TestTransitions(t *testing.T) {
	t.Parallel()
	tr := NewTracker(3)
	t0 := time.Unix(1_700_000_000, 0)
	a, b := PartitionKey{"t", 0}, PartitionKey{"t", 1}
	var got []Code
	script := []struct{ ca, ea, cb, eb int64 }{
		{0, 0, 0, 0},
		{5, 10, 0, 0},
		{10, 20, 0, 0}, // a: lag 0,5,10 -> window has a zero -> OK
		{15, 30, 0, 0}, // a: 5,10,15 -> WARN
		{15, 40, 0, 0}, // a: 10,15,25 committed 10,15,15 -> WARN
		{15, 50, 0, 0}, // a: committed 15,15,15 lag rising -> STALL
		{50, 50, 0, 0}, // a: lag 0 -> OK
	}
	for i, s := range script {
		now := t0.Add(time.Duration(i) * 10 * time.Second)
		tr.Begin()
		tr.Observe("g", a, Observation{now, s.ca, s.ea})
		tr.Observe("g", b, Observation{now, s.cb, s.eb})
		tr.End()
		got = append(got, tr.Evaluate("g", now, 1))
	}
	want := []Code{OK, OK, OK, WARN, WARN, STALL, OK}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("step %d: status %s, want %s (all: %v)", i, got[i], want[i], got)
		}
	}
	tr.Begin()
	tr.End()
	if len(tr.groups) != 0 {
		t.Fatal("group not forgotten after a round without it")
	}
}
