package sink

import (
	"context"
	"fmt"
	"time"

	"github.com/linkedin/goavro/v2"
	psink "github.com/sluicehq/sluice/pkg/sink"

	"github.com/sluicehq/sluice/services/s3-sink/internal/objkey"
	"github.com/sluicehq/sluice/services/s3-sink/internal/ocf"
	"github.com/sluicehq/sluice/services/s3-sink/internal/upload"
)

// key returns the object key of a file for path starting at offset. A
// topic whose name cannot be used, or whose fixed key parts leave no room
// for a path, parks (objkey.ErrKeyTooLong is never a property of a single
// record: a one-segment path is always shortened to fit).
func (w *worker) key(path string, offset int64) (string, error) {
	if w.keys == nil {
		tk, err := w.s.layout.Topic(w.topic)
		if err != nil {
			return "", parkNow(ReasonObjectKey, fmt.Errorf("object keys for topic %s: %w", w.topic, err))
		}
		w.keys = tk
	}
	key, err := w.keys.Key(path, w.partition, offset)
	if err != nil {
		return "", parkNow(ReasonObjectKey, fmt.Errorf("object key for topic %s path %.64q: %w", w.topic, path, err))
	}
	return key, nil
}

// write appends a validated record to the open file for its path,
// rotating first when the schema or the record-time window changed, and
// completes the file when it is full.
func (w *worker) write(ctx context.Context, m *psink.Record, path string, id int, ts time.Time, payload []byte) error {
	if sk := w.skips[path]; sk != nil {
		// This record is in an object a previous run completed.
		if sk.remaining--; sk.remaining == 0 {
			delete(w.skips, path)
			w.passAdopted(sk.start)
		}
		w.next = m.Offset + 1
		return nil
	}
	window := w.window(ts)
	of := w.files[path]
	if of != nil && (of.schemaID != id || (w.s.cfg.RotateInterval > 0 && window != of.window)) {
		if err := w.rotateAll(ctx); err != nil {
			return err
		}
		of = nil
	}
	if of == nil {
		var err error
		if of, err = w.open(ctx, m, path, id, window); of == nil || err != nil {
			return err // err == nil: adopted, the record is skipped
		}
	}
	if err := of.f.Append(ctx, payload); err != nil {
		delete(w.files, path)
		w.s.o.Metrics.openFiles.Dec()
		of.f.Abort(ctx)
		return s3Failure(err)
	}
	of.last = m.Offset
	w.next = m.Offset + 1
	if (w.s.cfg.FlushRecords > 0 && of.f.Records() >= w.s.cfg.FlushRecords) ||
		(w.s.cfg.FlushBytes > 0 && of.f.RawBytes() >= w.s.cfg.FlushBytes) {
		return w.rotateAll(ctx)
	}
	return nil
}

// open starts the file for path at record m, first making room under
// S3_SINK_MAX_OPEN_FILES. It returns nil (and no error) when an object a
// previous run completed at this key was adopted instead.
func (w *worker) open(ctx context.Context, m *psink.Record, path string, id int, window int64) (*openFile, error) {
	if len(w.files) >= w.s.cfg.MaxOpenFiles {
		if err := w.evict(ctx); err != nil {
			return nil, err
		}
	}
	var codec *goavro.Codec
	if id == tombstoneID {
		codec = w.s.tombstoneCodec
	} else {
		c, err := w.s.o.Codecs.ByID(ctx, id)
		if err != nil {
			return nil, psink.Transient(psink.ReasonRegistry, fmt.Errorf("codec for schema id %d: %w", id, err))
		}
		codec = c.Codec
	}
	key, err := w.key(path, m.Offset)
	if err != nil {
		return nil, err
	}
	if w.s.cfg.RotateMaxOpen > 0 {
		// Wall-clock rotation may cut a replayed file elsewhere than the
		// first run did: adopt an object already at this key instead of
		// writing a differently cut one over it.
		n, err := w.s.existingRecords(ctx, key)
		if err != nil {
			return nil, s3Failure(err)
		}
		if n > 0 {
			w.log.Info("adopting an object a previous run completed", "key", key, "records", n)
			w.s.o.Metrics.adopted.Inc()
			if n > 1 {
				w.skips[path] = &skip{start: m.Offset, remaining: n - 1}
			}
			w.next = m.Offset + 1
			return nil, nil
		}
	}
	up := upload.New(w.s.o.S3, w.s.o.Bucket, key, "avro/binary", int(w.s.cfg.PartSize), w.s.o.Metrics)
	if w.s.cfg.RotateMaxOpen > 0 && w.s.cfg.ConditionalWrites {
		up.IfNoneMatch()
	}
	f, err := ocf.Create(up, codec, w.s.cfg.Codec)
	if err != nil {
		up.Abort(ctx)
		return nil, err
	}
	if objkey.Shortened(key) {
		w.s.o.Metrics.shortenedKeys.WithLabelValues(w.label).Inc()
	}
	of := &openFile{f: f, schemaID: id, start: m.Offset, window: window, opened: w.s.o.Now()}
	w.files[path] = of
	w.s.o.Metrics.openFiles.Inc()
	return of, nil
}

// evict makes room for one more open file by completing the least
// recently written one (the file whose last record is oldest: paths still
// receiving records keep growing, a value seen once goes first). Which
// file goes is a function of the records since the partition last had no
// open file, so a replay from a commit evicts the same files.
//
// The commit may not pass an evicted file's start (held) until every file
// open alongside it has completed too: committing inside it would make a
// replay start a second object holding its later records. After
// S3_SINK_MAX_OPEN_FILES evictions without that happening, all files
// rotate together, so commits keep moving even when every record brings a
// new path.
func (w *worker) evict(ctx context.Context) error {
	if w.evicted >= w.s.cfg.MaxOpenFiles {
		w.s.o.Metrics.earlyRotations.WithLabelValues(w.label).Add(float64(len(w.files)))
		return w.rotateAll(ctx)
	}
	var lruPath string
	var lru *openFile
	for p, of := range w.files {
		if lru == nil || of.last < lru.last {
			lruPath, lru = p, of
		}
	}
	if err := w.closeFile(ctx, lruPath, lru); err != nil {
		return err
	}
	w.s.o.Metrics.earlyRotations.WithLabelValues(w.label).Inc()
	if len(w.files) > 0 || len(w.skips) > 0 {
		w.evicted++
		if w.held < 0 || lru.start < w.held {
			w.held = lru.start
		}
	}
	return nil
}

// passAdopted: the replay has passed the last record of an object a
// previous run completed (adopted at start). That run completed it with
// the files then open (rotateAll) or early (evict), and its commits never
// passed start while another file was open. The replay must not either:
// once the skip is gone, the object no longer bounds the watermark, so
// while any file or other adopted object is still open the commit is held
// at its start, as for an evicted file. Committing inside it made the
// next replay start a second object at its next record, holding its later
// records again (TestCrashWallClockFieldPartitioner, about one run in 8).
func (w *worker) passAdopted(start int64) {
	if len(w.files) == 0 && len(w.skips) == 0 {
		w.held, w.evicted = -1, 0 // nothing open: a boundary of every path
		return
	}
	if w.held < 0 || start < w.held {
		w.held = start
	}
}

// rotateAll completes every open file of the partition and reports the
// partition durable up to there (the runtime commits it; progress before
// a later failure in the same Write is kept). A
// rotation of one path's file always rotates all of them (as Kafka
// Connect's S3 sink does): the commit then lands on a boundary of every
// path, so a replay from it starts every path's next file at the same
// record as before and cuts it the same way. Rotating one path alone
// would let the committed offset fall inside another path's completed
// object, and the replay would start a second, overlapping object there.
func (w *worker) rotateAll(ctx context.Context) error {
	for path, of := range w.files {
		if err := w.closeFile(ctx, path, of); err != nil {
			return err
		}
	}
	w.report()
	return nil
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
	if len(w.files) == 0 && len(w.skips) == 0 {
		w.held, w.evicted = -1, 0 // nothing open: the next record starts afresh
	}
	if err := of.f.Close(ctx); err != nil {
		return s3Failure(fmt.Errorf("uploading %s: %w", of.f.Key(), err))
	}
	m := w.s.o.Metrics
	m.filesWritten.WithLabelValues(w.label).Inc()
	m.bytesWritten.WithLabelValues(w.label).Add(float64(of.f.Size()))
	w.log.Debug("object written", "key", of.f.Key(), "records", of.f.Records(), "bytes", of.f.Size())
	return nil
}

// rotateStale rotates all files when one has been open longer than
// ROTATE_MAX_OPEN by the wall clock.
func (w *worker) rotateStale(ctx context.Context) error {
	mo := w.s.cfg.RotateMaxOpen
	if mo <= 0 || len(w.files) == 0 {
		return nil
	}
	now := w.s.o.Now()
	for _, of := range w.files {
		if now.Sub(of.opened) >= mo {
			return w.rotateAll(ctx)
		}
	}
	return nil
}
