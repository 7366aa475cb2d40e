// Package status rates consumer groups the way Burrow does: a sliding
// window of (committed offset, lag) observations per partition, judged by
// rules into OK, WARN, ERR, STOP or STALL, the group taking its worst
// partition's status.
package status

import "time"

// Code is a Burrow-style status, ordered by severity.
type Code int

// Status codes, least to most severe.
const (
	OK    Code = iota // keeping up, or not enough data yet
	WARN              // consuming, but lag never decreased across the window
	ERR               // committed offset moved backwards (rewind)
	STOP              // nobody commits any more while lag remains
	STALL             // members are present but the offset does not move while lag remains
)

// Codes lists every code in severity order.
var Codes = []Code{OK, WARN, ERR, STOP, STALL}

// String is the Burrow name of the code.
func (c Code) String() string {
	switch c {
	case OK:
		return "OK"
	case WARN:
		return "WARN"
	case ERR:
		return "ERR"
	case STOP:
		return "STOP"
	case STALL:
		return "STALL"
	}
	return "UNKNOWN"
}

// Observation is one collection's view of a partition for a group.
type Observation struct {
	Time      time.Time
	Committed int64 // the group's committed offset
	End       int64 // the partition's log end offset
}

// Lag is End - Committed, never negative.
func (o Observation) Lag() int64 {
	if l := o.End - o.Committed; l > 0 {
		return l
	}
	return 0
}

// Window is a partition's last observations, oldest first.
type Window struct {
	size       int
	obs        []Observation
	lastChange time.Time // first time the current committed offset was seen
}

// NewWindow returns a window of size observations (at least 2).
func NewWindow(size int) *Window {
	if size < 2 {
		size = 2
	}
	return &Window{size: size}
}

// Add appends an observation, dropping the oldest when full.
func (w *Window) Add(o Observation) {
	if n := len(w.obs); n == 0 || w.obs[n-1].Committed != o.Committed {
		w.lastChange = o.Time
	}
	if len(w.obs) == w.size {
		copy(w.obs, w.obs[1:])
		w.obs = w.obs[:len(w.obs)-1]
	}
	w.obs = append(w.obs, o)
}

// Evaluate judges the window at now. members is the group's member count:
// Burrow reads commit timestamps from __consumer_offsets, which an admin
// client cannot see, so a group with members is taken to be committing at
// every observation (an unmoving offset is then a STALL), and a group with
// none last committed when its offset last changed (a STOP once it has been
// quiet longer than it was observed moving).
//
// Rules, in order, once the window is full:
//  1. lag was zero at some observation: OK;
//  2. no members, lag remains, and now - last commit > last commit - first observation: STOP;
//  3. the committed offset went backwards: ERR;
//  4. the offset never moved and lag did not shrink: STALL (STOP without members);
//  5. lag grew or held at every step: WARN;
//  6. otherwise OK.
func (w *Window) Evaluate(now time.Time, members int) Code {
	n := len(w.obs)
	if n < w.size {
		return OK
	}
	for _, o := range w.obs {
		if o.Lag() == 0 {
			return OK
		}
	}
	first, last := w.obs[0], w.obs[n-1]
	if members == 0 {
		commit := w.lastChange
		if now.Sub(commit) > commit.Sub(first.Time) {
			return STOP
		}
	}
	for i := 1; i < n; i++ {
		if w.obs[i].Committed < w.obs[i-1].Committed {
			return ERR
		}
	}
	if first.Committed == last.Committed && last.Lag() >= first.Lag() {
		if members == 0 {
			return STOP
		}
		return STALL
	}
	for i := 1; i < n; i++ {
		if w.obs[i].Lag() < w.obs[i-1].Lag() {
			return OK
		}
	}
	return WARN
}

// PartitionKey names a group's partition.
type PartitionKey struct {
	Topic     string
	Partition int32
}

// Tracker keeps windows for every group and partition it is told about.
// It is not safe for concurrent use; the collector owns it.
type Tracker struct {
	size   int
	groups map[string]map[PartitionKey]*Window
	seen   map[string]bool
}

// NewTracker returns a tracker with windows of size observations.
func NewTracker(size int) *Tracker {
	return &Tracker{size: size, groups: map[string]map[PartitionKey]*Window{}}
}

// Begin starts a collection round; groups not observed before End are
// forgotten.
func (t *Tracker) Begin() { t.seen = map[string]bool{} }

// Observe records one partition observation for group.
func (t *Tracker) Observe(group string, k PartitionKey, o Observation) {
	if t.seen != nil {
		t.seen[group] = true
	}
	g := t.groups[group]
	if g == nil {
		g = map[PartitionKey]*Window{}
		t.groups[group] = g
	}
	w := g[k]
	if w == nil {
		w = NewWindow(t.size)
		g[k] = w
	}
	w.Add(o)
}

// Evaluate returns the group's status: its worst partition's.
func (t *Tracker) Evaluate(group string, now time.Time, members int) Code {
	worst := OK
	for _, w := range t.groups[group] {
		if c := w.Evaluate(now, members); c > worst {
			worst = c
		}
	}
	return worst
}

// End forgets groups not observed since Begin.
func (t *Tracker) End() {
	for g := range t.groups {
		if !t.seen[g] {
			delete(t.groups, g)
		}
	}
	t.seen = nil
}
