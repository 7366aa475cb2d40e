package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/deadletter"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/services/s3-sink/internal/ocf"
	"github.com/sluicehq/sluice/services/s3-sink/internal/partition"
	"github.com/sluicehq/sluice/services/s3-sink/internal/upload"
)

// OffsetWidth is how many digits the start offset in an object key has.
const OffsetWidth = 20

// Key builds an object key: <prefix>/<topic>/<path>/<topic>+<partition>+<offset>.avro.
func Key(prefix, topic, path string, partition int, offset int64) string {
	name := fmt.Sprintf("%s+%d+%0*d.avro", topic, partition, OffsetWidth, offset)
	k := topic + "/" + path + "/" + name
	if prefix != "" {
		k = prefix + "/" + k
	}
	return k
}

// openFile is one object being written for a (path, schema id).
type openFile struct {
	f        *ocf.File
	schemaID int
	start    int64     // first offset
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

	log       *slog.Logger
	files     map[string]*openFile // by path
	skips     map[string]*skip     // by path, while replaying records an adopted object holds
	next      int64                // offset after the last record handled
	committed int64
	ps        *partState
	drained   bool
}

// run is the worker's life: ctx is the process context (for I/O), gctx ends
// when the generation does (the partition may have been revoked).
func (w *worker) run(ctx, gctx context.Context) {
	w.log = w.s.log.With("topic", w.topic, "partition", w.partition)
	w.files = map[string]*openFile{}
	w.skips = map[string]*skip{}
	w.committed = -1
	w.ps = w.s.o.Metrics.track(w.topic, w.partition)
	defer w.s.o.Metrics.untrack(w.topic, w.partition, w.ps)
	defer func() {
		if !w.drained {
			w.g.wg.Done()
		}
	}()

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
	// else (S3 or Kafka trouble) drops the open files and replays the
	// partition from the committed offset after a backoff. It reports
	// whether the worker must return.
	failed := func(err error) bool {
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
		case errors.Is(err, errStopped):
			w.dropAll(ctx, "shutdown during a retry")
			return true
		}
		w.dropAll(ctx, "error")
		w.s.o.Metrics.replays.Inc()
		delay := w.s.failureBackoff()
		w.log.Warn("replaying the partition from the committed offset", "err", err, "offset", w.committed, "after", delay)
		select {
		case <-gctx.Done():
			return true
		case <-ctx.Done():
			return true
		case <-w.s.stopCh:
			return true // shutting down: nothing left to retry for
		case <-time.After(delay):
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
			if err := w.rotateStale(ctx, gctx); err != nil && failed(err) {
				return
			}
			if err := w.maybeCommit(gctx); err != nil && failed(err) {
				return
			}
		case m, ok := <-msgs:
			if !ok {
				// The fetcher stopped: the generation ended (handled by
				// failed) or the reader gave up; replay from the commit.
				if failed(errors.New("partition reader stopped")) {
					return
				}
				continue
			}
			if err := w.handle(ctx, gctx, m); err != nil && failed(err) {
				return
			}
		}
	}
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
}

func (w *worker) setCommitted(off int64) {
	w.ps.mu.Lock()
	w.ps.committed = off
	w.ps.mu.Unlock()
}

// committable is the offset every record before which is in a completed
// object, the DLQ, or was skipped on purpose.
func (w *worker) committable() int64 {
	c := w.next
	for _, of := range w.files {
		c = min(c, of.start)
	}
	for _, sk := range w.skips {
		c = min(c, sk.start) // the adopted object's end is not known yet
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
	return nil
}

// handle processes one record.
func (w *worker) handle(ctx, gctx context.Context, m kafkago.Message) error {
	w.ps.mu.Lock()
	w.ps.highWater = m.HighWaterMark
	w.ps.read = m.Offset + 1
	w.ps.mu.Unlock()
	if m.Value == nil {
		if w.s.cfg.Tombstones == "write" {
			return w.writeTombstone(ctx, gctx, m)
		}
		if err := w.tombstone(ctx, gctx, m); err != nil {
			return err
		}
		w.next = m.Offset + 1
		return nil
	}
	native, id, payload, reason, err := w.decode(ctx, gctx, m)
	if err != nil {
		return err
	}
	if reason != "" {
		if err := w.deadLetter(ctx, gctx, m, reason); err != nil {
			return err
		}
		w.next = m.Offset + 1
		return nil
	}
	rec := partition.Record{Partition: m.Partition, Timestamp: m.Time, Value: native}
	path, err := w.s.o.Partitioner.Path(rec)
	if err != nil {
		if err := w.deadLetter(ctx, gctx, m, "partitioning: "+err.Error()); err != nil {
			return err
		}
		w.next = m.Offset + 1
		return nil
	}
	ts := m.Time
	if w.s.timeField != nil {
		if ts, err = partition.FieldTime(native, w.s.timeField); err != nil {
			if err := w.deadLetter(ctx, gctx, m, "timestamp field: "+err.Error()); err != nil {
				return err
			}
			w.next = m.Offset + 1
			return nil
		}
	}
	return w.write(ctx, gctx, m, path, id, ts, payload)
}

// tombstoneID is the pseudo schema id of tombstone files (S3_SINK_TOMBSTONES=write).
const tombstoneID = -1

// TombstoneSchema is the schema of tombstone files: which key was deleted
// where and when.
const TombstoneSchema = `{"type":"record","name":"Tombstone","namespace":"sluice.s3sink","fields":[` +
	`{"name":"key","type":["null","bytes"]},{"name":"partition","type":"int"},{"name":"offset","type":"long"},` +
	`{"name":"timestamp","type":{"type":"long","logicalType":"timestamp-millis"}}]}`

// write appends a validated record to the open file for its path,
// rotating first when the schema or the record-time window changed, and
// completes the file when it is full.
func (w *worker) write(ctx, gctx context.Context, m kafkago.Message, path string, id int, ts time.Time, payload []byte) error {
	if sk := w.skips[path]; sk != nil {
		// This record is in an object a previous run completed.
		if sk.remaining--; sk.remaining == 0 {
			delete(w.skips, path)
		}
		w.next = m.Offset + 1
		return nil
	}
	window := w.window(ts)
	of := w.files[path]
	if of != nil && (of.schemaID != id || (w.s.cfg.RotateInterval > 0 && window != of.window)) {
		if err := w.rotateAll(ctx, gctx); err != nil {
			return err
		}
		of = nil
	}
	if of == nil {
		var codec *goavro.Codec
		if id == tombstoneID {
			codec = w.s.tombstoneCodec
		} else {
			c, err := w.s.o.Codecs.ByID(ctx, id)
			if err != nil {
				return fmt.Errorf("codec for schema id %d: %w", id, err)
			}
			codec = c.Codec
		}
		key := Key(w.s.cfg.Prefix, w.topic, path, w.partition, m.Offset)
		if w.s.cfg.RotateMaxOpen > 0 {
			// Wall-clock rotation may cut a replayed file elsewhere than
			// the first run did: adopt an object already at this key
			// instead of writing a differently cut one over it.
			n, err := w.s.existingRecords(ctx, key)
			if err != nil {
				return err
			}
			if n > 0 {
				w.log.Info("adopting an object a previous run completed", "key", key, "records", n)
				w.s.o.Metrics.adopted.Inc()
				if n > 1 {
					w.skips[path] = &skip{start: m.Offset, remaining: n - 1}
				}
				w.next = m.Offset + 1
				return nil
			}
		}
		up := upload.New(w.s.o.S3, w.s.o.Bucket, key, "avro/binary", int(w.s.cfg.PartSize), w.s.o.Metrics)
		if w.s.cfg.RotateMaxOpen > 0 && w.s.cfg.ConditionalWrites {
			up.IfNoneMatch()
		}
		f, err := ocf.Create(up, codec, w.s.cfg.Codec)
		if err != nil {
			up.Abort(ctx)
			return err
		}
		of = &openFile{f: f, schemaID: id, start: m.Offset, window: window, opened: w.s.o.Now()}
		w.files[path] = of
		w.s.o.Metrics.openFiles.Inc()
	}
	if err := of.f.Append(ctx, payload); err != nil {
		delete(w.files, path)
		w.s.o.Metrics.openFiles.Dec()
		of.f.Abort(ctx)
		return err
	}
	of.lastTS = m.Time
	w.next = m.Offset + 1
	if (w.s.cfg.FlushRecords > 0 && of.f.Records() >= w.s.cfg.FlushRecords) ||
		(w.s.cfg.FlushBytes > 0 && of.f.RawBytes() >= w.s.cfg.FlushBytes) {
		return w.rotateAll(ctx, gctx)
	}
	return nil
}

// rotateAll completes every open file of the partition and commits. A
// rotation of one path's file always rotates all of them (as Kafka
// Connect's S3 sink does): the commit then lands on a boundary of every
// path, so a replay from it starts every path's next file at the same
// record as before and cuts it the same way. Rotating one path alone
// would let the committed offset fall inside another path's completed
// object, and the replay would start a second, overlapping object there.
func (w *worker) rotateAll(ctx, gctx context.Context) error {
	for path, of := range w.files {
		if err := w.closeFile(ctx, path, of); err != nil {
			return err
		}
	}
	return w.maybeCommit(gctx)
}

func (w *worker) window(ts time.Time) int64 {
	iv := w.s.cfg.RotateInterval.Milliseconds()
	if iv <= 0 {
		return 0
	}
	ms := ts.UnixMilli()
	q := ms / iv
	if ms < 0 && ms%iv != 0 {
		q--
	}
	return q
}

// closeFile uploads a file and forgets it. The caller commits.
func (w *worker) closeFile(ctx context.Context, path string, of *openFile) error {
	delete(w.files, path)
	w.s.o.Metrics.openFiles.Dec()
	if err := of.f.Close(ctx); err != nil {
		return fmt.Errorf("uploading %s: %w", of.f.Key(), err)
	}
	w.s.failures.Store(0)
	m := w.s.o.Metrics
	m.filesWritten.WithLabelValues(w.topic).Inc()
	m.recordsWritten.WithLabelValues(w.topic).Add(float64(of.f.Records()))
	m.bytesWritten.WithLabelValues(w.topic).Add(float64(of.f.Size()))
	w.ps.mu.Lock()
	if of.lastTS.After(w.ps.lastWrittenTS) {
		w.ps.lastWrittenTS = of.lastTS
	}
	w.ps.mu.Unlock()
	w.log.Debug("object written", "key", of.f.Key(), "records", of.f.Records(), "bytes", of.f.Size())
	return nil
}

// rotateStale rotates all files when one has been open longer than
// ROTATE_MAX_OPEN by the wall clock.
func (w *worker) rotateStale(ctx, gctx context.Context) error {
	mo := w.s.cfg.RotateMaxOpen
	if mo <= 0 || len(w.files) == 0 {
		return nil
	}
	now := w.s.o.Now()
	for _, of := range w.files {
		if now.Sub(of.opened) >= mo {
			return w.rotateAll(ctx, gctx)
		}
	}
	return nil
}

// decode returns the record's native value, schema id and payload size, or
// a reason it belongs in the DLQ. A registry outage is retried, not dead
// lettered: the record is fine, the lookup is not.
func (w *worker) decode(ctx, gctx context.Context, m kafkago.Message) (native any, id int, payload []byte, reason string, err error) {
	sid, body, ferr := wire.Decode(m.Value)
	if ferr != nil {
		return nil, 0, nil, "framing: " + ferr.Error(), nil
	}
	id = int(sid)
	backoff := 100 * time.Millisecond
	for {
		codec, err := w.s.o.Codecs.ByID(ctx, id)
		if err == nil && !w.s.needValue {
			// Nothing looks inside the record: validate without decoding.
			val, err := w.s.validator(codec)
			if err != nil {
				return nil, id, nil, fmt.Sprintf("schema: schema id %d: %v", id, err), nil
			}
			if err := val.Validate(body); err != nil {
				return nil, id, nil, fmt.Sprintf("avro: schema id %d: %v", id, err), nil
			}
			return nil, id, body, "", nil
		}
		if err == nil {
			v, rest, err := codec.NativeFromBinary(body)
			if err != nil {
				return nil, id, nil, fmt.Sprintf("avro: schema id %d: %v", id, err), nil
			}
			if len(rest) != 0 {
				return nil, id, nil, fmt.Sprintf("avro: schema id %d: %d trailing bytes after the record", id, len(rest)), nil
			}
			return v, id, body, "", nil
		}
		if Permanent(err) && !w.s.unknownYoung(id, err) {
			return nil, id, nil, "schema: " + err.Error(), nil
		}
		w.log.Warn("schema lookup failed; retrying", "schema_id", id, "offset", m.Offset, "err", err)
		select {
		case <-gctx.Done():
			return nil, id, nil, "", gctx.Err()
		case <-ctx.Done():
			return nil, id, nil, "", ctx.Err()
		case <-w.s.stopCh:
			return nil, id, nil, "", errStopped
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// Permanent reports whether a schema lookup error will not go away by
// retrying: the registry answered 4xx (unknown id), or the schema is not
// usable Avro. Network errors and 5xx are transient.
func Permanent(err error) bool {
	var re *registry.Error
	if errors.As(err, &re) {
		return re.Status >= 400 && re.Status < 500 && re.Status != 408 && re.Status != 429
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	return true
}

// writeTombstone records a null-valued record in the partition's tombstone
// file, under <prefix>/<topic>/_tombstones/partition=<n>/.
func (w *worker) writeTombstone(ctx, gctx context.Context, m kafkago.Message) error {
	var key any
	if m.Key != nil {
		key = goavro.Union("bytes", m.Key)
	}
	bin, err := w.s.tombstoneCodec.BinaryFromNative(nil, map[string]any{
		"key": key, "partition": int32(m.Partition), "offset": m.Offset, "timestamp": m.Time,
	})
	if err != nil {
		return fmt.Errorf("encoding tombstone at offset %d: %w", m.Offset, err)
	}
	w.s.o.Metrics.tombstones.WithLabelValues(w.topic, "written").Inc()
	return w.write(ctx, gctx, m, "_tombstones/partition="+strconv.Itoa(m.Partition), tombstoneID, m.Time, bin)
}

func (w *worker) tombstone(ctx, gctx context.Context, m kafkago.Message) error {
	switch w.s.cfg.Tombstones {
	case "ignore":
		w.s.o.Metrics.tombstones.WithLabelValues(w.topic, "ignored").Inc()
		return nil
	case "dlq":
		w.s.o.Metrics.tombstones.WithLabelValues(w.topic, "dlq").Inc()
		return w.deadLetter(ctx, gctx, m, "tombstone: record value is null")
	default:
		w.s.o.Metrics.tombstones.WithLabelValues(w.topic, "failed").Inc()
		return &fatalError{fmt.Errorf("tombstone at offset %d and S3_SINK_TOMBSTONES=fail", m.Offset)}
	}
}

// deadLetter writes m to <topic>.dlq with the reason and waits for the ack,
// retrying until it succeeds or the generation ends: a record is never
// skipped silently.
func (w *worker) deadLetter(ctx, gctx context.Context, m kafkago.Message, reason string) error {
	if !w.s.cfg.DLQ || w.s.o.DLQ == nil {
		return &fatalError{fmt.Errorf("record at offset %d is bad (%s) and the DLQ is disabled", m.Offset, reason)}
	}
	m.Topic, m.Partition = w.topic, w.partition
	msg := deadletter.Message(&m, "s3-sink", reason)
	dlq := msg.Topic
	backoff := 100 * time.Millisecond
	for {
		err := w.s.ensureDLQ(ctx, dlq)
		if err == nil {
			err = w.s.o.DLQ.WriteMessages(ctx, msg)
		}
		if err == nil {
			w.s.o.Metrics.dlqRecords.WithLabelValues(w.topic).Inc()
			w.log.Warn("record sent to the DLQ", "offset", m.Offset, "dlq", dlq, "reason", reason)
			return nil
		}
		w.log.Error("writing to the DLQ; retrying", "offset", m.Offset, "dlq", dlq, "err", err)
		select {
		case <-gctx.Done():
			return gctx.Err()
		case <-ctx.Done():
			return ctx.Err()
		case <-w.s.stopCh:
			return errStopped
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Sink) ensureDLQ(ctx context.Context, topic string) error {
	s.dlqMu.Lock()
	ok := s.dlqTopics[topic]
	s.dlqMu.Unlock()
	if ok {
		return nil
	}
	if err := s.o.Admin.EnsureTopic(ctx, topic); err != nil {
		return err
	}
	s.dlqMu.Lock()
	s.dlqTopics[topic] = true
	s.dlqMu.Unlock()
	return nil
}
