package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/backoff"
)

// partition consumes one assigned partition for one generation.
type partition struct {
	r     *Runtime
	g     *generation
	tp    TopicPartition
	start int64

	log   *slog.Logger
	label string
	in    prometheus.Counter // records_in_total{topic}: resolved once, counted per record
	t     *tracker
	ps    *partState
	// wait ends with the process, the generation or the group being left:
	// it bounds sleeps, never I/O.
	wait context.Context

	committed int64
	// Failure state: consecutive failed attempts (reset by progress past
	// failPoint, the highest offset fetched when the failure happened).
	attempts  int
	failPoint int64
	maxSeen   int64

	fails chan error // asynchronous failures (Acks.Fail)
	dlq   chan *dlqJob
}

// dlqJob is a record the writer asked to dead-letter.
type dlqJob struct {
	rec           Record
	stage, reason string
}

// What a consume round ended with.
type outcome int

const (
	outExit   outcome = iota // generation over, crash, stop or fatal: return
	outReplay                // a transient failure: reopen at the committed offset
)

func (p *partition) run(ctx, gctx context.Context) {
	r := p.r
	p.log = r.log.With("topic", p.tp.Topic, "partition", p.tp.Partition)
	p.label = r.o.Metrics.TopicLabel(p.tp.Topic)
	m := r.o.Metrics
	p.in = m.recordsIn.WithLabelValues(p.label)
	p.t = newTracker(p.start, m.written.WithLabelValues(p.label), m.deadLettered.WithLabelValues(p.label),
		m.skipped.WithLabelValues(p.label), m.freshness.WithLabelValues(p.label), r.o.Now)
	p.ps = m.track(p.tp, p.label, p.t)
	defer m.untrack(p.tp, p.ps)
	p.committed, p.failPoint, p.maxSeen = -1, -1, -1
	if p.start >= 0 {
		p.setCommitted(p.start)
	}
	p.fails = make(chan error, 1)
	p.dlq = make(chan *dlqJob, 1024) // pointers: 8 KiB per owned partition, not 200
	wait, cancel := context.WithCancel(gctx)
	defer cancel()
	go func() {
		select {
		case <-p.g.leaving.Done():
		case <-wait.Done():
		}
		cancel()
	}()
	p.wait = wait
	p.log.Info("partition assigned", "generation", p.g.gen.ID, "offset", p.start)
	for {
		if r.parker.isParked(p.tp.Topic) {
			if !r.parker.wait(p.wait, p.tp.Topic) {
				return
			}
		}
		if p.consume(ctx, gctx) == outExit {
			return
		}
	}
}

func (p *partition) setCommitted(off int64) {
	p.committed = off
	p.ps.mu.Lock()
	p.ps.committed = off
	p.ps.mu.Unlock()
}

// from is the offset to (re)start fetching at.
func (p *partition) from() int64 {
	if c := p.t.committable(); c >= 0 {
		return c
	}
	if p.start >= 0 {
		return p.start
	}
	return p.r.o.StartOffset
}

// consume runs one writer incarnation: open, fetch and write until the
// generation ends, the runtime stops, or a failure ends it.
func (p *partition) consume(ctx, gctx context.Context) outcome {
	r := p.r
	epoch := p.t.reset()
	for len(p.dlq) > 0 {
		<-p.dlq
	}
	select {
	case <-p.fails:
	default:
	}
	parkSig, _ := r.parker.watch(p.tp.Topic)
	// wctx is the writer's I/O context: it ends with the process, the
	// generation or a park of the topic, not with Stop (a drain lets
	// in-flight writes finish).
	wctx, cancelW := context.WithCancel(ctx)
	defer cancelW()
	go func() {
		select {
		case <-parkSig:
		case <-gctx.Done():
		case <-wctx.Done():
		}
		cancelW()
	}()
	from := p.from()
	acks := &acks{p: p, epoch: epoch}
	pw, err := r.o.Writer.Open(wctx, p.tp, from, acks)
	if err != nil {
		return p.failed(ctx, gctx, fmt.Errorf("opening the writer: %w", err))
	}
	closed := false
	closeW := func(why string) {
		if closed {
			return
		}
		closed = true
		acks.close()
		if err := pw.Close(context.WithoutCancel(ctx)); err != nil {
			p.log.Warn("closing the writer", "why", why, "err", err)
		}
	}
	defer closeW("exit")
	f := p.startFetcher(wctx, from)
	defer f.stop()

	ticker := time.NewTicker(r.o.CommitInterval)
	defer ticker.Stop()
	batch := make([]Record, 0, r.o.MaxBatch)
	msgs := f.msgs
	for {
		select {
		case <-ctx.Done():
			closeW("crash")
			return outExit
		case <-gctx.Done():
			if r.o.FlushOnRevoke {
				p.drain(ctx, pw)
			}
			p.commit()
			closeW("generation ended")
			return outExit
		case <-p.g.leaving.Done():
			if ctx.Err() != nil {
				closeW("crash")
				return outExit
			}
			f.stop()
			if r.o.FlushOnStop {
				p.drain(ctx, pw)
			}
			p.commit()
			closeW("stopping")
			return outExit
		case <-parkSig:
			closeW("topic parked")
			r.o.Metrics.replays.WithLabelValues(p.label).Inc()
			return outReplay
		case err := <-p.fails:
			closeW("failure")
			return p.failed(ctx, gctx, err)
		case j := <-p.dlq:
			if err := p.asyncDeadLetters(ctx, j); err != nil {
				closeW("dead letter failed")
				return p.failed(ctx, gctx, err)
			}
		case <-ticker.C:
			if err := pw.Tick(wctx); err != nil {
				closeW("tick failed")
				return p.failed(ctx, gctx, err)
			}
			p.commit()
		case msg, ok := <-msgs:
			if !ok && wctx.Err() != nil {
				msgs = nil // parked or ending: another case fires
				continue
			}
			if p.g.leaving.Err() != nil {
				// Stopping: select picks among ready cases at random, and a
				// busy partition must not keep taking records while its
				// drain waits; the leaving case runs next.
				msgs = nil
				continue
			}
			if !ok {
				closeW("fetcher stopped")
				return p.failed(ctx, gctx, Transient(ReasonKafka, errors.New("partition reader stopped")))
			}
			batch = append(batch[:0], p.record(msg))
		more:
			for len(batch) < r.o.MaxBatch {
				select {
				case msg, ok := <-msgs:
					if !ok {
						break more
					}
					batch = append(batch, p.record(msg))
				default:
					break more
				}
			}
			if err := p.handle(wctx, pw, batch); err != nil {
				closeW("write failed")
				return p.failed(ctx, gctx, err)
			}
		}
	}
}

// record registers a fetched message and converts it.
func (p *partition) record(msg kafkago.Message) Record {
	p.t.add(msg.Offset, msg.Time)
	p.maxSeen = max(p.maxSeen, msg.Offset)
	p.ps.mu.Lock()
	p.ps.highWater = msg.HighWaterMark
	p.ps.read = msg.Offset + 1
	p.ps.mu.Unlock()
	p.in.Inc()
	return Record{Topic: p.tp.Topic, Partition: p.tp.Partition, Offset: msg.Offset, Key: msg.Key, Value: msg.Value,
		Headers: msg.Headers, Time: msg.Time}
}

// handle resolves schemas, dead-letters what cannot be decoded and hands
// the rest to the writer in offset order.
func (p *partition) handle(ctx context.Context, pw PartitionWriter, batch []Record) error {
	out := batch[:0]
	for i := range batch {
		rec := batch[i]
		reason, err := p.resolve(ctx, &rec)
		if err != nil {
			return err
		}
		if reason != "" {
			// Hand the records before it first: the writer sees offsets in
			// order, and the dead letter waits for nothing.
			if err := p.write(ctx, pw, out); err != nil {
				return err
			}
			out = batch[:0]
			if err := p.deadLetter(ctx, &rec, p.r.o.DeadLetterStage, reason); err != nil {
				return err
			}
			continue
		}
		out = append(out, rec)
	}
	return p.write(ctx, pw, out)
}

// write hands records to the writer, dead-lettering the poison ones it
// names and handing the rest again.
func (p *partition) write(ctx context.Context, pw PartitionWriter, recs []Record) error {
	for len(recs) > 0 {
		err := pw.Write(ctx, recs)
		var pe *PoisonError
		if !errors.As(err, &pe) {
			if err == nil && p.failPoint >= 0 && recs[len(recs)-1].Offset >= p.failPoint {
				p.recovered()
			}
			return err
		}
		i := 0
		for i < len(recs) && recs[i].Offset != pe.Offset {
			i++
		}
		if i == len(recs) {
			return fmt.Errorf("writer refused offset %d, which is not in the batch: %w", pe.Offset, err)
		}
		if err := p.deadLetter(ctx, &recs[i], pe.Stage, pe.Reason); err != nil {
			return err
		}
		recs = recs[i+1:]
	}
	return nil
}

// commit commits the contiguous done prefix if it moved.
func (p *partition) commit() {
	c := p.t.committable()
	if c <= p.committed || c < 0 {
		return
	}
	t0 := time.Now()
	err := p.g.commit(p.tp, c)
	p.r.o.Metrics.commitSecs.Observe(time.Since(t0).Seconds())
	if err != nil {
		p.r.o.Metrics.commitErrors.Inc()
		p.log.Warn("committing offset", "offset", c, "err", err)
		return
	}
	p.r.o.Metrics.commits.Inc()
	p.setCommitted(c)
	if p.failPoint >= 0 && c > p.failPoint {
		p.recovered()
	}
}

// recovered resets the failure state after progress.
func (p *partition) recovered() {
	p.attempts, p.failPoint = 0, -1
}

// drain flushes the writer and waits (within DrainTimeout) until every
// record handed to it is done; the caller commits.
func (p *partition) drain(ctx context.Context, pw PartitionWriter) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.r.o.DrainTimeout)
	defer cancel()
	if err := pw.Flush(dctx); err != nil {
		p.log.Warn("flushing on drain", "err", err)
		return
	}
	for p.t.pending() > 0 {
		select {
		case j := <-p.dlq:
			if err := p.asyncDeadLetters(dctx, j); err != nil {
				p.log.Warn("dead letters on drain", "err", err)
				return
			}
		case <-p.fails:
			return
		case <-dctx.Done():
			p.log.Warn("drain timed out with records not durable; they are delivered again", "records", p.t.pending())
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// failed acts on a failure: Fatal stops the runtime, Park parks the topic,
// anything else is retried after a backoff (the caller replays from the
// committed offset) until Retry.Attempts failures in a row park the topic.
func (p *partition) failed(ctx, gctx context.Context, err error) outcome {
	r := p.r
	var fe *FatalError
	var pe *ParkError
	switch {
	case ctx.Err() != nil, gctx.Err() != nil, p.g.leaving.Err() != nil, errors.Is(err, errStopped):
		return outExit
	}
	// What became durable before the failure is committed now: a topic
	// that fails within every commit interval (parked again at once after
	// each release) would otherwise never commit its progress.
	p.commit()
	switch {
	case r.parker.isParked(p.tp.Topic):
		r.o.Metrics.replays.WithLabelValues(p.label).Inc()
		return outReplay // the write ended because the topic was parked
	case errors.As(err, &fe):
		p.log.Error("stopping the sink", "err", err)
		p.g.fatal(fmt.Errorf("topic %s partition %d: %w", p.tp.Topic, p.tp.Partition, err))
		return outExit
	case errors.As(err, &pe):
		r.parker.park(p.tp.Topic, p.committed, pe)
		r.o.Metrics.replays.WithLabelValues(p.label).Inc()
		return outReplay
	}
	reason := ReasonFailing
	var te *TransientError
	if errors.As(err, &te) {
		reason = te.Reason
	}
	p.attempts++
	p.failPoint = max(p.failPoint, p.maxSeen)
	r.o.Metrics.retries.WithLabelValues(p.label, string(reason)).Inc()
	if r.o.Retry.Attempts > 0 && p.attempts >= r.o.Retry.Attempts {
		r.parker.park(p.tp.Topic, p.committed, &ParkError{Reason: reason, Err: fmt.Errorf("%d attempts failed: %w", p.attempts, err)})
		r.o.Metrics.replays.WithLabelValues(p.label).Inc()
		return outReplay
	}
	d := r.o.Retry.Delay(p.attempts - 1)
	p.log.Warn("replaying the partition from the committed offset", "err", err, "offset", p.committed,
		"attempt", p.attempts, "of", r.o.Retry.Attempts, "after", d)
	if !backoff.Sleep(p.wait, d) {
		return outExit
	}
	r.o.Metrics.replays.WithLabelValues(p.label).Inc()
	return outReplay
}

// acks is one writer incarnation's Acks; after close it ignores calls.
type acks struct {
	p      *partition
	epoch  uint64
	closed atomic.Bool
}

func (a *acks) close() { a.closed.Store(true) }

// Durable implements Acks.
func (a *acks) Durable(offset int64) { a.p.t.durable(a.epoch, offset) }

// Ack implements Acks.
func (a *acks) Ack(offset int64) { a.p.t.mark(a.epoch, offset, stateDurable) }

// Skip implements Acks.
func (a *acks) Skip(offset int64) { a.p.t.mark(a.epoch, offset, stateSkipped) }

// DeadLetter implements Acks.
func (a *acks) DeadLetter(rec *Record, stage, reason string) {
	if a.closed.Load() {
		return
	}
	a.p.t.mark(a.epoch, rec.Offset, stateDeadLetterPending)
	select {
	case a.p.dlq <- &dlqJob{rec: *rec, stage: stage, reason: reason}:
	default:
		// The queue is full: end the incarnation; the records are fetched
		// again and the dead letter asked for again.
		a.Fail(Transient(ReasonDLQUnavailable, errors.New("dead-letter queue full")))
	}
}

// Fail implements Acks.
func (a *acks) Fail(err error) {
	if a.closed.Load() {
		return
	}
	select {
	case a.p.fails <- err:
	default: // one failure is enough to end the incarnation
	}
}
