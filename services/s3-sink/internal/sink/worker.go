package sink

import (
	"context"
	"errors"
	"log/slog"
	"time"

	psink "github.com/sluicehq/sluice/pkg/sink"
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
}

// worker writes one partition's records into open files: the
// PartitionWriter of one runtime incarnation (it is built again, empty,
// after every replay, park or rebalance).
type worker struct {
	s         *Sink
	topic     string
	partition int
	acks      psink.Acks

	log   *slog.Logger
	label string               // the topic's metric label
	keys  *objkey.TopicKeys    // the topic's key builder, once resolved
	files map[string]*openFile // by path
	skips map[string]*skip     // by path, while replaying records an adopted object holds
	next  int64                // offset after the last record handled, -1 before the first
	// held is the start of the earliest file completed early (evicted)
	// since the partition last had no open file, -1 if none: the
	// watermark may not pass it until every file open then has been
	// completed too (see evict). evicted counts those early completions.
	held    int64
	evicted int
}

// skip counts the records of one path still to pass over because an
// adopted object (starting at start) already holds them.
type skip struct {
	start     int64
	remaining int64
}

// Write implements psink.PartitionWriter.
func (w *worker) Write(ctx context.Context, batch []psink.Record) error {
	for i := range batch {
		if err := w.handle(ctx, &batch[i]); err != nil {
			w.reportUnless(err)
			return err
		}
	}
	w.report()
	return nil
}

// Tick implements psink.PartitionWriter: wall-clock rotation.
func (w *worker) Tick(ctx context.Context) error {
	err := w.rotateStale(ctx)
	w.reportUnless(err)
	return err
}

// Flush implements psink.PartitionWriter: uploads every open file.
func (w *worker) Flush(ctx context.Context) error {
	for path, of := range w.files {
		if err := w.closeFile(ctx, path, of); err != nil {
			w.log.Error("uploading on shutdown", "err", err)
			return err
		}
	}
	w.report()
	return nil
}

// Close implements psink.PartitionWriter: open files are dropped.
func (w *worker) Close(ctx context.Context) error {
	w.dropAll(ctx, "partition closed")
	return nil
}

// reportUnless reports progress after success or a record the runtime dead-letters
// (Poison: everything before it was handled); after any other error the
// partition's state is not to be trusted (a file whose upload failed has
// left the open set) and nothing is reported: the runtime replays.
func (w *worker) reportUnless(err error) {
	var pe *psink.PoisonError
	if err == nil || errors.As(err, &pe) {
		w.report()
	}
}

// report tells the runtime how far the partition is durable.
func (w *worker) report() {
	if c := w.committable(); c >= 0 {
		w.acks.Durable(c)
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
