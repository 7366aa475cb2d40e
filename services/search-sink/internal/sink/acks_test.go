package sink

import (
	"sync"

	psink "github.com/sluicehq/sluice/pkg/sink"
)

// recAcks is a pkg/sink Acks that records what a partition writer reported.
type recAcks struct {
	mu    sync.Mutex
	acked map[int64]bool
	dead  map[int64]string
	fails []error
}

func newRecAcks() *recAcks { return &recAcks{acked: map[int64]bool{}, dead: map[int64]string{}} }

func (a *recAcks) Durable(offset int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for o := int64(0); o < offset; o++ {
		a.acked[o] = true
	}
}

func (a *recAcks) Ack(offset int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acked[offset] = true
}

func (a *recAcks) Skip(offset int64) { a.Ack(offset) }

func (a *recAcks) DeadLetter(rec *psink.Record, _, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dead[rec.Offset] = reason
}

func (a *recAcks) Fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fails = append(a.fails, err)
}

// done counts offsets acknowledged or dead-lettered.
func (a *recAcks) done() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked) + len(a.dead)
}

// committable is the offset after the contiguous prefix from 0 that is done.
func (a *recAcks) committable() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := int64(0)
	for a.acked[o] || a.dead[o] != "" {
		o++
	}
	return o
}
