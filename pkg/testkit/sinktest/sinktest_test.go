package sinktest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sink"
)

// memory is a destination in memory. With watermark, a partition writer
// lands records in batches of 7, on Flush and on a Tick with no Write
// since the last one, and reports watermarks (as the S3 writer does); otherwise it lands each record asynchronously and
// acknowledges it (as a bulk indexer does). broken acknowledges records
// when they are written, before they land (the bug the suite exists for):
// they land only on Flush.
type memory struct {
	watermark bool
	broken    bool
	mu        sync.Mutex
	held      []Landed
}

func (m *memory) Writer(testing.TB) sink.Writer { return m }

func (m *memory) Landed(context.Context, testing.TB) []Landed {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Landed(nil), m.held...)
}

func (m *memory) land(ls ...Landed) {
	m.mu.Lock()
	m.held = append(m.held, ls...)
	m.mu.Unlock()
}

func (m *memory) Open(_ context.Context, tp sink.TopicPartition, _ int64, acks sink.Acks) (sink.PartitionWriter, error) {
	return &memPW{m: m, tp: tp, acks: acks}, nil
}

type memPW struct {
	m       *memory
	tp      sink.TopicPartition
	acks    sink.Acks
	pending []Landed
	next    int64
	wrote   bool // since the last Tick
	wg      sync.WaitGroup
}

func (p *memPW) Write(_ context.Context, batch []sink.Record) error {
	for _, r := range batch {
		if string(r.Payload) != "" && len(r.Payload) > 2 && string(r.Payload[len(r.Payload)-6:]) == "poison" {
			return sink.Poison(r.Offset, "memory", "poison body")
		}
		l := Landed{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
		switch {
		case p.m.broken:
			p.pending = append(p.pending, l)
			p.acks.Ack(r.Offset) // the bug: acknowledged before it is durable
		case p.m.watermark:
			p.pending = append(p.pending, l)
			p.next = r.Offset + 1
			p.wrote = true
			if len(p.pending) == 7 {
				_ = p.Flush(context.Background())
			}
		default:
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.m.land(l)
				p.acks.Ack(l.Offset)
			}()
		}
	}
	return nil
}

func (p *memPW) Tick(ctx context.Context) error {
	wrote := p.wrote
	p.wrote = false
	if p.m.watermark && !wrote {
		return p.Flush(ctx)
	}
	return nil
}

func (p *memPW) Flush(context.Context) error {
	p.wg.Wait()
	p.m.land(p.pending...)
	p.pending = nil
	if p.m.watermark && p.next > 0 {
		p.acks.Durable(p.next)
	}
	return nil
}

func (p *memPW) Close(context.Context) error {
	p.wg.Wait()
	p.pending = nil // dropped: not durable
	return nil
}

func poisonSuite(s Suite, tb testing.TB) Suite {
	s.Poison = Value(tb, 7, "poison")
	s.PoisonStage = "memory"
	return s
}

func TestSuiteAsyncAcks(t *testing.T) {
	t.Parallel()
	Run(t, poisonSuite(Suite{
		New:       func(testing.TB, Env) Destination { return &memory{} },
		Semantics: sink.AtLeastOnce,
	}, t))
}

func TestSuiteWatermark(t *testing.T) {
	t.Parallel()
	Run(t, poisonSuite(Suite{
		New: func(testing.TB, Env) Destination { return &memory{watermark: true} },
		// Its idle flushes cut batches by timing, so a replay may cut them
		// elsewhere and land a record twice (S3 cuts deterministically).
		Semantics: sink.AtLeastOnce,
	}, t))
}

// fakeTB records failures instead of failing the real test; FailNow ends
// the case's goroutine.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	failed bool
	msgs   []string
}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	f.failed = true
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeTB) Error(args ...any) { f.Errorf("%s", fmt.Sprint(args...)) }
func (f *fakeTB) Fail()             { f.Errorf("failed") }
func (f *fakeTB) FailNow()          { f.Fail(); runtime.Goexit() }

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// runFake runs one case against a fake TB and reports its failures.
func runFake(t *testing.T, c Case, s Suite) (bool, []string) {
	t.Helper()
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(f, s)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("case %s did not end", c.Name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed, f.msgs
}

// TestSuiteFailsBrokenWriter: a writer that acknowledges records before
// they are durable must fail the commit and crash checks.
func TestSuiteFailsBrokenWriter(t *testing.T) {
	t.Parallel()
	s := Suite{New: func(testing.TB, Env) Destination { return &memory{broken: true} }, Semantics: sink.AtLeastOnce}
	for _, c := range Cases() {
		if c.Name != "CommitOnlyAfterDurable" && c.Name != "CrashWithoutLoss" {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			failed, msgs := runFake(t, c, s)
			if !failed {
				t.Fatalf("the suite passed a writer that acknowledges records before they are durable")
			}
			t.Logf("the suite failed the broken writer as it must: %v", msgs[:min(len(msgs), 2)])
		})
	}
}
