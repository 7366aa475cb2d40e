package sink

import "sync"

// partition tracks the records of one partition in fetch order and the
// contiguous prefix of them that is done (indexed or dead-lettered).
// Offsets may have gaps (compaction, transaction markers): the committed
// offset is the offset after the last done record of the prefix.
type partition struct {
	topic string
	id    int
	h     *TopicHandle // the topic's park state; nil when nothing parks

	lastIndex string // the fetcher's last admitted index (IndexBudget skipped while it repeats)

	mu      sync.Mutex
	base    uint64 // sequence number of pending[head]
	head    int
	offsets []int64
	done    []bool
	next    uint64 // sequence number of the next Add
	commit  int64  // offset to commit (next to read); -1 until something is done
	dirty   bool   // commit moved since last taken
}

func newPartition(topic string, id int) *partition {
	return &partition{topic: topic, id: id, commit: -1}
}

// add registers a fetched record and returns its sequence number.
func (p *partition) add(offset int64) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head > 1024 && p.head*2 > len(p.offsets) {
		n := copy(p.offsets, p.offsets[p.head:])
		copy(p.done, p.done[p.head:])
		p.offsets, p.done = p.offsets[:n], p.done[:n]
		p.head = 0
	}
	p.offsets = append(p.offsets, offset)
	p.done = append(p.done, false)
	s := p.next
	p.next++
	return s
}

// ack marks the record with sequence s done and advances the watermark.
func (p *partition) ack(s uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.head + int(s-p.base)
	if s < p.base || i >= len(p.done) {
		return // already acknowledged
	}
	p.done[i] = true
	for p.head < len(p.done) && p.done[p.head] {
		p.commit = p.offsets[p.head] + 1
		p.head++
		p.base++
		p.dirty = true
	}
}

// take returns the offset to commit if it moved since the last take.
func (p *partition) take() (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.dirty {
		return 0, false
	}
	p.dirty = false
	return p.commit, true
}

// untake marks the watermark dirty again after a failed commit.
func (p *partition) untake() {
	p.mu.Lock()
	p.dirty = true
	p.mu.Unlock()
}

// pending counts records fetched but not yet done.
func (p *partition) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.offsets) - p.head
}

// drop forgets the most recently added record, which was never handed on
// (the fetcher stopped): it is not pending, and the watermark stays below it
// so it is fetched again.
func (p *partition) drop(s uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s != p.next-1 || len(p.offsets) == p.head || p.done[len(p.done)-1] {
		return
	}
	p.offsets = p.offsets[:len(p.offsets)-1]
	p.done = p.done[:len(p.done)-1]
	p.next--
}

// rewind forgets every pending record (they are abandoned: the topic was
// parked) and returns the offset to fetch again from: the committed
// watermark, or start when nothing was acknowledged yet. Acknowledgements
// of the forgotten records arrive with sequence numbers below the new base
// and are ignored.
func (p *partition) rewind(start int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offsets, p.done = p.offsets[:0], p.done[:0]
	p.head = 0
	p.base = p.next
	if p.commit >= 0 {
		return p.commit
	}
	return start
}

// live reports whether record s is still tracked (not acknowledged and
// not forgotten by a rewind).
func (p *partition) live(s uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := p.head + int(s-p.base)
	return s >= p.base && i < len(p.done) && !p.done[i]
}
