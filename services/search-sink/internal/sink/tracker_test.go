package sink

import (
	"math/rand"
	"testing"
)

func TestPartitionWatermark(t *testing.T) {
	t.Parallel()
	p := newPartition("t", 0)
	if _, ok := p.take(); ok {
		t.Fatal("nothing done yet, but a commit is offered")
	}
	// Offsets with gaps (compaction, transaction markers).
	offsets := []int64{5, 6, 9, 10, 11, 20}
	seqs := make([]uint64, len(offsets))
	for i, o := range offsets {
		seqs[i] = p.add(o)
	}
	p.ack(seqs[1])
	if _, ok := p.take(); ok {
		t.Fatal("commit offered while offset 5 is unacknowledged")
	}
	p.ack(seqs[0])
	if c, ok := p.take(); !ok || c != 7 {
		t.Fatalf("commit = %d %v, want 7", c, ok)
	}
	p.ack(seqs[3])
	p.ack(seqs[5])
	p.ack(seqs[5]) // duplicate acks are harmless
	if _, ok := p.take(); ok {
		t.Fatal("commit moved past unacknowledged offset 9")
	}
	p.ack(seqs[2])
	if c, _ := p.take(); c != 11 {
		t.Fatalf("commit = %d, want 11", c)
	}
	p.ack(seqs[4])
	if c, _ := p.take(); c != 21 {
		t.Fatalf("commit = %d, want 21", c)
	}
	if p.pending() != 0 {
		t.Fatalf("pending = %d", p.pending())
	}
	p.untake()
	if c, ok := p.take(); !ok || c != 21 {
		t.Fatal("untake did not re-offer the commit")
	}
}

func TestPartitionWatermarkRandomOrder(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(1))
	p := newPartition("t", 0)
	const n = 5000
	seqs := make([]uint64, n)
	for i := range seqs {
		seqs[i] = p.add(int64(i * 2))
	}
	rng.Shuffle(n, func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
	acked := make([]bool, n)
	for _, s := range seqs {
		p.ack(s)
		acked[s] = true
		want := int64(-1)
		for i := 0; i < n && acked[i]; i++ {
			want = int64(i*2) + 1
		}
		c, ok := p.take()
		if want >= 0 && ok && c != want {
			t.Fatalf("commit %d, want %d", c, want)
		}
		if ok && c > want {
			t.Fatalf("commit %d beyond the contiguous prefix %d", c, want)
		}
		// Compaction of the queue must keep working while adding.
		if s%997 == 0 {
			_ = p.pending()
		}
	}
	if p.pending() != 0 {
		t.Fatalf("pending = %d", p.pending())
	}
}

func TestPartitionDropUnsubmitted(t *testing.T) {
	t.Parallel()
	p := newPartition("t", 0)
	a := p.add(1)
	b := p.add(2)
	p.drop(a) // not the last: ignored
	p.drop(b)
	if p.pending() != 1 {
		t.Fatalf("pending = %d, want 1", p.pending())
	}
	p.ack(a)
	if c, ok := p.take(); !ok || c != 2 {
		t.Fatalf("commit = %d, want 2 (offset 2 was dropped, so it is read again)", c)
	}
	c := p.add(2) // fetched again after a restart of the fetcher
	p.ack(c)
	if off, _ := p.take(); off != 3 {
		t.Fatalf("commit = %d, want 3", off)
	}
}
