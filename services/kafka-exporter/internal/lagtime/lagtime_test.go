package lagtime

import (
	"math"
	"testing"
	"time"
)

func TestLagInterpolation(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tbl := NewTable(4)
	tbl.Add(0, at(0))
	if _, ok := tbl.Lag(0, at(1)); ok {
		t.Fatal("one point must not give an estimate")
	}
	tbl.Add(100, at(10))
	tbl.Add(200, at(20))
	cases := []struct {
		name      string
		committed int64
		now       float64
		want      float64
		ok        bool
	}{
		{"caught up", 200, 30, 0, true},
		{"ahead of table", 250, 30, 0, true},
		{"middle of segment", 150, 30, 15, true},
		{"on a point", 100, 30, 20, true},
		{"first segment", 50, 20, 15, true},
		{"no commit", -1, 30, 0, false},
	}
	for _, tc := range cases {
		got, ok := tbl.Lag(tc.committed, at(tc.now))
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("%s: Lag(%d) = %v,%v want %v,%v", tc.name, tc.committed, got, ok, tc.want, tc.ok)
		}
	}

	// Capacity 4: adding two more points evicts (0,0) and (100,10); offset
	// 50 is then extrapolated along the table rate (10 offsets/s).
	tbl.Add(300, at(30))
	tbl.Add(400, at(40))
	if tbl.Len() != 4 {
		t.Fatalf("len = %d, want 4", tbl.Len())
	}
	got, ok := tbl.Lag(50, at(40))
	if !ok || math.Abs(got-35) > 1e-6 {
		t.Fatalf("extrapolated lag = %v,%v want 35", got, ok)
	}
	tbl.Add(500, at(50))
	got, ok = tbl.Lag(50, at(50))
	if !ok || math.Abs(got-45) > 1e-6 {
		t.Fatalf("extrapolated lag after eviction = %v,%v want 45", got, ok)
	}
}

func TestFlatRunKeepsFirstTime(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	tbl := NewTable(10)
	tbl.Add(0, t0)
	tbl.Add(100, t0.Add(10*time.Second))
	for i := 2; i < 20; i++ { // quiet topic for three minutes
		tbl.Add(100, t0.Add(time.Duration(i)*10*time.Second))
	}
	if tbl.Len() != 3 {
		t.Fatalf("flat run stored %d points, want 3", tbl.Len())
	}
	// Offset 50 was written at ~5s whatever the quiet time since.
	got, ok := tbl.Lag(50, t0.Add(200*time.Second))
	if !ok || math.Abs(got-195) > 1e-6 {
		t.Fatalf("lag = %v,%v want 195", got, ok)
	}
}

func TestTruncationRestarts(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	tbl := NewTable(10)
	tbl.Add(500, t0)
	tbl.Add(600, t0.Add(time.Second))
	tbl.Add(10, t0.Add(2*time.Second)) // topic recreated
	if tbl.Len() != 1 {
		t.Fatalf("len after restart = %d, want 1", tbl.Len())
	}
	if _, ok := tbl.Lag(5, t0.Add(3*time.Second)); ok {
		t.Fatal("restarted table with one point gave an estimate")
	}
}
