package sink

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestTracker(start int64) *tracker {
	c := func() prometheus.Counter { return prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}) }
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h"})
	return newTracker(start, c(), c(), c(), h, time.Now)
}

func TestTracker(t *testing.T) {
	t.Parallel()
	ts := time.Now()
	type step struct {
		do   func(tr *tracker, epoch uint64)
		want int64
	}
	cases := []struct {
		name  string
		start int64
		adds  []int64
		steps []step
	}{
		{"acks out of order wait for the gap", 10, []int64{10, 11, 12}, []step{
			{func(tr *tracker, e uint64) { tr.mark(e, 11, stateDurable) }, 10},
			{func(tr *tracker, e uint64) { tr.mark(e, 10, stateDurable) }, 12},
			{func(tr *tracker, e uint64) { tr.mark(e, 12, stateSkipped) }, 13},
		}},
		{"offsets with gaps", 0, []int64{3, 7, 20}, []step{
			{func(tr *tracker, e uint64) { tr.durable(e, 8) }, 8},
			{func(tr *tracker, e uint64) { tr.durable(e, 21) }, 21},
		}},
		{"a watermark does not cover a pending dead letter", 0, []int64{0, 1, 2}, []step{
			{func(tr *tracker, e uint64) { tr.mark(e, 1, stateDeadLetterPending) }, 0},
			{func(tr *tracker, e uint64) { tr.durable(e, 3) }, 1},
			{func(tr *tracker, e uint64) { tr.mark(e, 1, stateDeadLettered) }, 3},
		}},
		{"acks of an older epoch are ignored", 5, []int64{5, 6}, []step{
			{func(tr *tracker, e uint64) { tr.durable(e-1, 7) }, 5},
			{func(tr *tracker, e uint64) { tr.mark(e-1, 5, stateDurable) }, 5},
			{func(tr *tracker, e uint64) { tr.mark(e, 5, stateDurable) }, 6},
		}},
		{"unknown start begins at the first record", -1, []int64{42}, []step{
			{func(*tracker, uint64) {}, 42},
			{func(tr *tracker, e uint64) { tr.durable(e, 43) }, 43},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tr := newTestTracker(c.start)
			tr.reset()
			epoch := tr.reset()
			for _, o := range c.adds {
				tr.add(o, ts)
			}
			for i, s := range c.steps {
				s.do(tr, epoch)
				if got := tr.committable(); got != s.want {
					t.Fatalf("step %d: committable %d, want %d", i, got, s.want)
				}
			}
		})
	}
}
