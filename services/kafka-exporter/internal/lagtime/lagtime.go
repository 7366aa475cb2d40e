// Package lagtime estimates consumer lag in seconds from a per-partition
// table of observed (log end offset, time) points, interpolating the time
// at which the consumer's committed offset was produced (the method
// kafka-lag-exporter uses).
package lagtime

import "time"

// Table is one partition's observed (offset, time) points, oldest first.
// The zero value is ready to use with the default capacity.
type Table struct {
	offs []int64
	ts   []int64 // unix nanoseconds
	cap  int
}

// DefaultPoints is the table capacity when none is given.
const DefaultPoints = 60

// NewTable returns a table holding at most points points.
func NewTable(points int) *Table {
	if points < 2 {
		points = DefaultPoints
	}
	return &Table{cap: points}
}

// Len is the number of points held.
func (t *Table) Len() int { return len(t.offs) }

// Add records that the log end offset was offset at time at. A run of
// equal offsets keeps only its first and last point, so a quiet topic
// neither fills the table nor loses the time its last record was written.
// An offset below the last one (topic recreated or truncated) restarts the
// table.
func (t *Table) Add(offset int64, at time.Time) {
	if t.cap < 2 {
		t.cap = DefaultPoints
	}
	ns := at.UnixNano()
	n := len(t.offs)
	if n > 0 && offset < t.offs[n-1] {
		t.offs, t.ts = t.offs[:0], t.ts[:0]
		n = 0
	}
	if n >= 2 && t.offs[n-1] == offset && t.offs[n-2] == offset {
		t.ts[n-1] = ns
		return
	}
	if n == t.cap {
		copy(t.offs, t.offs[1:])
		copy(t.ts, t.ts[1:])
		t.offs, t.ts = t.offs[:n-1], t.ts[:n-1]
	}
	t.offs = append(t.offs, offset)
	t.ts = append(t.ts, ns)
}

// Lag returns how long ago the record at committed (the next offset the
// group will read) was written, as seen from now. ok is false while the
// table has fewer than two points or committed is negative (no commit).
// A consumer at or past the newest offset has zero lag. Offsets older than
// the table are extrapolated along the table's overall rate.
func (t *Table) Lag(committed int64, now time.Time) (seconds float64, ok bool) {
	n := len(t.offs)
	if n < 2 || committed < 0 {
		return 0, false
	}
	if committed >= t.offs[n-1] {
		return 0, true
	}
	var produced float64 // unix ns
	i := 0
	for i < n && t.offs[i] <= committed {
		i++
	}
	switch {
	case i == 0:
		// Older than every point: extrapolate along the whole table.
		first, last := t.offs[0], t.offs[n-1]
		produced = float64(t.ts[0])
		if last > first {
			rate := float64(t.ts[n-1]-t.ts[0]) / float64(last-first)
			produced -= float64(first-committed) * rate
		}
	default:
		o1, o2 := t.offs[i-1], t.offs[i]
		t1, t2 := float64(t.ts[i-1]), float64(t.ts[i])
		produced = t1 + float64(committed-o1)/float64(o2-o1)*(t2-t1)
	}
	lag := (float64(now.UnixNano()) - produced) / 1e9
	if lag < 0 {
		lag = 0
	}
	return lag, true
}
