package sink

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// entry states.
const (
	statePending uint8 = iota
	stateDurable
	stateDeadLettered
	stateSkipped
	stateDeadLetterPending // being dead-lettered: a watermark does not cover it
)

// tracker follows one partition's records in fetch order and the
// contiguous prefix of them that is done (durable, dead-lettered or
// skipped). Offsets may have gaps (compaction, transaction markers): the
// committable offset is the offset after the last record of the prefix.
// A writer's watermark (Durable) marks every record below it durable.
type tracker struct {
	written   prometheus.Counter
	dead      prometheus.Counter
	skipped   prometheus.Counter
	freshness prometheus.Observer
	now       func() time.Time

	mu      sync.Mutex
	epoch   uint64 // bumped by reset: acks of an older epoch are ignored
	entries []entry
	head    int
	wm      int64 // writer watermark: records below are durable
	commit  int64 // offset after the done prefix; -1 until known
	lastTS  time.Time
}

type entry struct {
	offset int64
	ts     int64 // record timestamp in Unix milliseconds, Kafka's unit (a time.Time is 24 bytes; there is one entry per record in flight)
	state  uint8
}

// unixMillis and fromMillis map the zero time to 0 and back.
func unixMillis(ts time.Time) int64 {
	if ts.IsZero() {
		return 0
	}
	return ts.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func newTracker(start int64, written, dead, skipped prometheus.Counter, freshness prometheus.Observer, now func() time.Time) *tracker {
	t := &tracker{written: written, dead: dead, skipped: skipped, freshness: freshness, now: now, wm: -1, commit: -1}
	if start >= 0 {
		t.commit = start
	}
	return t
}

// add registers a fetched record; it returns the current epoch.
func (t *tracker) add(offset int64, ts time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.head > 1024 && t.head*2 > len(t.entries) {
		n := copy(t.entries, t.entries[t.head:])
		t.entries = t.entries[:n]
		t.head = 0
	}
	t.entries = append(t.entries, entry{offset: offset, ts: unixMillis(ts)})
	if t.commit < 0 && t.head == len(t.entries)-1 {
		t.commit = offset // nothing before it is ours: a restart from here is right
	}
	t.advanceLocked()
}

// durable applies a writer watermark of epoch.
func (t *tracker) durable(epoch uint64, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if epoch != t.epoch || offset <= t.wm {
		return
	}
	t.wm = offset
	t.advanceLocked()
}

// mark sets the state of the record at offset (of epoch).
func (t *tracker) mark(epoch uint64, offset int64, state uint8) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if epoch != t.epoch {
		return
	}
	live := t.entries[t.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].offset >= offset })
	if i == len(live) || live[i].offset != offset {
		return
	}
	if cur := live[i].state; cur != statePending && (cur != stateDeadLetterPending || state != stateDeadLettered) {
		return
	}
	live[i].state = state
	if state == stateDurable && t.freshness != nil {
		t.freshness.Observe(t.now().Sub(fromMillis(live[i].ts)).Seconds())
		t.written.Inc()
	}
	t.advanceLocked()
}

func (t *tracker) advanceLocked() {
	// A watermark makes many records durable at once (a completed file):
	// one clock read and one counter update for all of them.
	var now time.Time
	written := 0
	defer func() {
		if written > 0 {
			t.written.Add(float64(written))
		}
	}()
	for t.head < len(t.entries) {
		e := &t.entries[t.head]
		switch {
		case e.state == statePending && e.offset < t.wm:
			e.state = stateDurable
			if t.freshness != nil {
				if now.IsZero() {
					now = t.now()
				}
				t.freshness.Observe(now.Sub(fromMillis(e.ts)).Seconds())
				written++
			}
		case e.state == statePending, e.state == stateDeadLetterPending:
			return
		}
		switch e.state {
		case stateDeadLettered:
			t.dead.Inc()
		case stateSkipped:
			t.skipped.Inc()
		}
		t.commit = e.offset + 1
		t.lastTS = fromMillis(e.ts)
		t.head++
	}
}

// committable returns the offset every record below which is done (-1
// when nothing is known yet).
func (t *tracker) committable() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.commit
}

// pending counts records fetched and not done.
func (t *tracker) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries) - t.head
}

// oldestPending returns the timestamp of the first record not done, or
// of the last done one when nothing is pending.
func (t *tracker) oldestPending() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.head < len(t.entries) {
		return fromMillis(t.entries[t.head].ts), true
	}
	return t.lastTS, false
}

// reset forgets every pending record (the writer was closed: they are
// fetched again from the committable offset) and starts a new epoch.
func (t *tracker) reset() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries, t.head = t.entries[:0], 0
	t.wm = -1
	t.epoch++
	return t.epoch
}

// currentEpoch returns the epoch acks are accepted for.
func (t *tracker) currentEpoch() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.epoch
}
