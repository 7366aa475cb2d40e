package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/services/s3-sink/internal/objkey"
	"github.com/sluicehq/sluice/services/s3-sink/internal/ocf"
)

// openFile is one object being written for a (path, schema id).
type openFile struct {
	f        *ocf.File
	schemaID int
	start    int64     // first offset
	last     int64     // offset of the last record, for least-recently-written eviction
	window   int64     // record-time window of the first record (ROTATE_INTERVAL)
	opened   time.Time // wall clock, for ROTATE_MAX_OPEN
	lastTS   time.Time // timestamp of the last record
}

// worker consumes one partition for one generation.
type worker struct {
	s         *Sink
	g         *generation
	topic     string
	partition int
	start     int64

	log   *slog.Logger
	label string               // the topic's metric label
	keys  *objkey.TopicKeys    // the topic's key builder, once resolved
	wait  context.Context      // ends with the process, the generation or Stop: bounds sleeps
	files map[string]*openFile // by path
	skips map[string]*skip     // by path, while replaying records an adopted object holds
	next  int64                // offset after the last record handled
	// held is the start of the earliest file completed early (evicted)
	// since the partition last had no open file, -1 if none: the commit
	// may not pass it until every file open then has been completed too
	// (see evict). evicted counts those early completions.
	held      int64
	evicted   int
	committed int64
	ps        *partState
	drained   bool

	// Failure state: consecutive failed attempts (reset by progress), the
	// park reason and failed retries while parked, and the offset whose
	// handling failed (passing it again is progress).
	attempts  int
	parked    Reason
	parkTries int
	failPoint int64
	// foreign caches, for schema ids with a problem that are not the
	// topic's current schema, the dead-letter reason (bounded).
	foreign map[int]string
}

// maxForeignSchemas bounds the per-partition cache of foreign schema ids.
const maxForeignSchemas = 1024

// run is the worker's life: ctx is the process context (for I/O), gctx ends
// when the generation does (the partition may have been revoked).
func (w *worker) run(ctx, gctx context.Context) {
	w.log = w.s.log.With("topic", w.topic, "partition", w.partition)
	w.files = map[string]*openFile{}
	w.skips = map[string]*skip{}
	w.foreign = map[int]string{}
	w.committed, w.held, w.failPoint = -1, -1, -1
	w.label = w.s.o.Metrics.TopicLabel(w.topic)
	w.ps = w.s.o.Metrics.track(w.topic, w.label, w.partition)
	defer w.s.o.Metrics.untrack(w.topic, w.partition, w.ps)
	defer w.s.parking.Release(w.topic, w.partition)
	defer func() {
		if !w.drained {
			w.g.wg.Done()
		}
	}()
	wait, cancelWait := context.WithCancel(gctx)
	defer cancelWait()
	go func() {
		select {
		case <-w.s.stopCh:
		case <-ctx.Done():
		case <-wait.Done():
		}
		cancelWait()
	}()
	w.wait = wait

	w.next = -1 // unknown until the first record when starting from FirstOffset
	if w.start >= 0 {
		w.next = w.start
		w.committed = w.start
		w.setCommitted(w.start)
	}
	w.log.Info("partition assigned", "generation", w.g.gen.ID, "offset", w.start)
	f := w.startFetcher(gctx, w.start)
	defer func() { f.stop() }()

	tick := w.s.cfg.CommitInterval
	if mo := w.s.cfg.RotateMaxOpen; mo > 0 && mo/4 < tick {
		tick = max(mo/4, 10*time.Millisecond)
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()

	stopCh := w.s.stopCh
	msgs := f.msgs
	// failed handles an error from handling records or rotating: fatal
	// ones stop the sink, a rejected commit ends this generation, anything
	// else drops the open files and, after a backoff (see onFailure),
	// replays the partition from the committed offset. It reports whether
	// the worker must return.
	failed := func(err error, at int64) bool {
		var fe *fatalError
		var ce *commitError
		switch {
		case gctx.Err() != nil:
			w.dropAll(ctx, "generation ended")
			return true
		case errors.As(err, &fe):
			w.fail(ctx, err)
			return true
		case errors.As(err, &ce):
			w.log.Info("commit rejected; partition probably revoked", "err", err)
			w.dropAll(ctx, "commit rejected")
			return true
		case errors.Is(err, errStopped), stopping(w.s.stopCh):
			w.dropAll(ctx, "shutdown during a retry")
			return true
		}
		w.dropAll(ctx, "error")
		w.s.o.Metrics.replays.Inc()
		w.failPoint = at
		if !backoff.Sleep(w.wait, w.onFailure(err)) {
			return true // generation over or shutting down: nothing left to retry for
		}
		f.stop()
		resume := w.committed
		if resume < 0 {
			resume = w.start
		}
		w.next = resume
		if resume < 0 {
			w.next = -1
		}
		f = w.startFetcher(gctx, resume)
		if stopCh != nil {
			msgs = f.msgs
		}
		return false
	}
	for {
		select {
		case <-gctx.Done():
			w.dropAll(ctx, "generation ended")
			return
		case <-stopCh:
			w.drain(ctx, gctx)
			stopCh = nil // keep waiting for the generation to end
			f.stop()
			msgs = nil
		case <-ticker.C:
			if err := w.rotateStale(ctx, gctx); err != nil && failed(err, w.next) {
				return
			}
			if err := w.maybeCommit(gctx); err != nil && failed(err, w.next) {
				return
			}
		case m, ok := <-msgs:
			if !ok {
				// The fetcher stopped: the generation ended (handled by
				// failed) or the reader gave up; replay from the commit.
				if failed(&transientError{ReasonKafka, errors.New("partition reader stopped")}, w.next) {
					return
				}
				continue
			}
			if err := w.handle(ctx, gctx, m); err != nil {
				if failed(err, m.Offset+1) {
					return
				}
				continue
			}
			if w.failPoint >= 0 && w.next >= w.failPoint {
				w.recovered()
			}
		}
	}
}

func stopping(stopCh <-chan struct{}) bool {
	select {
	case <-stopCh:
		return true
	default:
		return false
	}
}

// onFailure counts a failure and returns how long to wait before the
// replay. A transient failure (S3 5xx or throttling, network, Kafka) is
// retried quickly with jittered exponential backoff; once
// S3_SINK_RETRY_ATTEMPTS attempts in a row failed, or at once for a
// failure retrying soon cannot fix (S3 4xx such as AccessDenied, the
// topic's current schema unusable or lacking the partition field, keys
// that cannot fit), the topic is parked: logged, counted, and retried at
// the slow park cadence until an attempt gets past the failure.
func (w *worker) onFailure(err error) time.Duration {
	pol := w.s.pol
	var pe *parkError
	reason := ReasonFailing
	if errors.As(err, &pe) {
		reason = pe.reason
	} else {
		var te *transientError
		if errors.As(err, &te) {
			reason = te.reason
		}
		w.attempts++
		w.s.o.Metrics.retries.WithLabelValues(w.label).Inc()
		if w.parked == "" && w.attempts < pol.retry.Attempts {
			d := pol.retry.Delay(w.attempts - 1)
			w.log.Warn("replaying the partition from the committed offset", "err", err, "offset", w.committed,
				"attempt", w.attempts, "of", pol.retry.Attempts, "after", d)
			return d
		}
	}
	d := pol.park.Delay(w.parkTries)
	w.parkTries++
	w.parked = reason
	w.s.parking.Park(w.topic, w.partition, w.committed, reason, err, d)
	return d
}

// recovered resets the failure state after progress: a commit moved
// forward, or the record (or rotation) that failed went through.
func (w *worker) recovered() {
	w.attempts, w.parkTries, w.failPoint = 0, 0, -1
	if w.parked != "" {
		w.parked = ""
		w.s.parking.Unpark(w.topic, w.partition)
	}
}

// inPlaceAttempts is how many tries a lookup or write gets before the
// topic is parked: one while it is parked already (the park cadence is
// the retry), S3_SINK_RETRY_ATTEMPTS otherwise.
func (w *worker) inPlaceAttempts() int {
	if w.parked != "" {
		return 1
	}
	return w.s.pol.retry.Attempts
}

// retryInPlace runs fn with bounded jittered retries; exhausting them
// parks the topic with reason. fn uses the process context for its I/O
// (a shutdown lets it finish); only the waits end early.
func (w *worker) retryInPlace(reason Reason, what string, fn func() error) error {
	p := w.s.pol
	p.retry.Attempts = w.inPlaceAttempts()
	err := p.retryLoop(w.wait, reason, what, func(context.Context) error { return fn() }, func(err error, d time.Duration) {
		w.s.o.Metrics.retries.WithLabelValues(w.label).Inc()
		w.log.Warn(what+" failed; retrying", "err", err, "after", d)
	})
	if err != nil && w.wait.Err() != nil {
		return errStopped
	}
	return err
}

// fetcher is one partition reader feeding a channel, so the worker can
// select on records, ticks and shutdown together.
type fetcher struct {
	r      *kafkago.Reader
	msgs   chan kafkago.Message
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *worker) startFetcher(gctx context.Context, offset int64) *fetcher {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:        w.s.o.Brokers,
		Topic:          w.topic,
		Partition:      w.partition,
		Dialer:         w.s.o.Dialer,
		MinBytes:       1,
		MaxBytes:       4 << 20,
		MaxWait:        250 * time.Millisecond,
		QueueCapacity:  256,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
	})
	ctx, cancel := context.WithCancel(gctx)
	f := &fetcher{r: r, msgs: make(chan kafkago.Message, 64), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		defer close(f.msgs)
		if err := r.SetOffset(offset); err != nil {
			w.log.Error("setting the start offset", "offset", offset, "err", err)
			return
		}
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				if ctx.Err() == nil {
					w.log.Warn("fetching", "err", err)
				}
				return
			}
			select {
			case f.msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return f
}

// stop ends the fetch loop and closes the reader; safe to call twice.
func (f *fetcher) stop() {
	f.cancel()
	<-f.done
	_ = f.r.Close()
}

// skip counts the records of one path still to pass over because an
// adopted object (starting at start) already holds them.
type skip struct {
	start     int64
	remaining int64
}

// fatalError stops the sink: configuration says a record must not pass.
type fatalError struct{ error }

func (e *fatalError) Unwrap() error { return e.error }

// commitError is a commit the coordinator rejected.
type commitError struct{ error }

func (e *commitError) Unwrap() error { return e.error }

// fail stops the whole sink: the record cannot be handled as configured.
func (w *worker) fail(ctx context.Context, err error) {
	w.log.Error("stopping the sink", "err", err)
	w.dropAll(ctx, "fatal error")
	w.g.fatal(fmt.Errorf("topic %s partition %d: %w", w.topic, w.partition, err))
}

// drain uploads (or drops) every open file and commits, for shutdown.
func (w *worker) drain(ctx, gctx context.Context) {
	defer func() {
		w.drained = true
		w.g.wg.Done()
	}()
	if !w.s.cfg.FlushOnShutdown {
		w.dropAll(ctx, "shutdown without flush")
		return
	}
	for path, of := range w.files {
		if err := w.closeFile(ctx, path, of); err != nil {
			w.log.Error("uploading on shutdown", "err", err)
			w.dropAll(ctx, "upload failed on shutdown")
			return
		}
	}
	if err := w.maybeCommit(gctx); err != nil {
		w.log.Warn("final commit", "err", err)
	}
}

func (w *worker) dropAll(ctx context.Context, why string) {
	clear(w.skips)
	for path, of := range w.files {
		w.log.Info("dropping open file", "key", of.f.Key(), "why", why)
		of.f.Abort(ctx)
		delete(w.files, path)
		w.s.o.Metrics.openFiles.Dec()
		w.s.o.Metrics.droppedFiles.Inc()
	}
	w.held, w.evicted = -1, 0
}

func (w *worker) setCommitted(off int64) {
	w.ps.mu.Lock()
	w.ps.committed = off
	w.ps.mu.Unlock()
}

// committable is the offset every record before which is in a completed
// object, the DLQ, or was skipped on purpose, and at which no file was
// open: the minimum over the open files' starts and the start of any file
// completed early since the partition last had none open (held), so a
// replay from it starts with no file open, as the first run did there,
// and cuts every file the same way.
func (w *worker) committable() int64 {
	c := w.next
	for _, of := range w.files {
		c = min(c, of.start)
	}
	for _, sk := range w.skips {
		c = min(c, sk.start) // the adopted object's end is not known yet
	}
	if w.held >= 0 {
		c = min(c, w.held)
	}
	return c
}

func (w *worker) maybeCommit(gctx context.Context) error {
	c := w.committable()
	if c <= w.committed || gctx.Err() != nil {
		return nil
	}
	if err := w.g.commit(w.topic, w.partition, c); err != nil {
		return &commitError{fmt.Errorf("committing offset %d: %w", c, err)}
	}
	w.s.o.Metrics.commits.Inc()
	w.committed = c
	w.setCommitted(c)
	if w.failPoint < 0 || c >= w.failPoint {
		w.recovered()
	}
	return nil
}
