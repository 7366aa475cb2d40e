package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
	"github.com/sluicehq/sluice/services/search-sink/internal/limits"
	"github.com/sluicehq/sluice/services/search-sink/internal/target"
)

// Why search-sink parks a topic (the reason label of
// sluice_sink_topic_parks_total{sink="search"}); the runtime adds its own
// (dlq_unavailable, dlq_refused, kafka_unavailable...).
const (
	// ReasonTemplate: the topic's index template cannot be installed.
	ReasonTemplate psink.Reason = "template"
	// ReasonRetries: a transient failure (bulk 429/5xx, registry, index
	// checks) outlasted SEARCH_SINK_RETRY_ATTEMPTS.
	ReasonRetries psink.Reason = "retries_exhausted"
	// ReasonIndexBudget: the topic wants more new indices than its hourly budget.
	ReasonIndexBudget psink.Reason = "index_budget"
	// ReasonCollision: the topic's index names would be another topic's.
	ReasonCollision psink.Reason = "name_collision"
)

// StageLimits is the sluice-stage of records refused by a limit.
const StageLimits = "limits"

// RefusedTooLarge is the reason label of documents over MaxDocBytes.
const RefusedTooLarge = "document_too_large"

// Observer sees every decoded record (the anomaly rules). It must not
// block and must not keep fields after returning.
type Observer func(topic string, t time.Time, fields map[string]any)

// Options configure a Writer.
type Options struct {
	Builder  *document.Builder
	Pipeline *Pipeline
	Metrics  *Metrics
	Log      *slog.Logger
	// Namer names each record's index (replacing the builder's: see
	// package target); KeyIDs replaces the builder's key ids and versions.
	Namer  *target.Namer
	KeyIDs bool
	// Budget bounds new indices per topic and hour; nil: unbounded.
	Budget *limits.IndexBudget
	// Prepare installs a topic's index template; it runs before the
	// topic's first record and again when a new schema id shows up.
	Prepare func(ctx context.Context, topic string) error
	// Observe sees every decoded record (nil: no rules).
	Observe Observer
	// Window bounds record times; records outside are dead-lettered.
	Window limits.TimeWindow
	// MaxDocBytes bounds a document's JSON; larger ones are dead-lettered (0: no bound).
	MaxDocBytes int
}

// Writer is search-sink's pkg/sink Writer: one partition writer per
// assigned partition, all feeding one bulk indexer (Pipeline).
type Writer struct {
	o Options

	mu         sync.Mutex
	prepared   map[string]bool
	installing map[string]*sync.Mutex
	observed   map[psink.TopicPartition]*atomic.Int64 // highest offset shown to the rules
	schemas    map[string]int                         // topic -> highest value schema id seen
}

// NewWriter returns a Writer.
func NewWriter(o Options) *Writer {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Writer{o: o, prepared: map[string]bool{}, installing: map[string]*sync.Mutex{},
		observed: map[psink.TopicPartition]*atomic.Int64{}, schemas: map[string]int{}}
}

// Open implements pkg/sink.Writer: the topic's index template is installed
// first (once per process); when that fails the topic is parked and the
// installation retried as the park's probe.
func (w *Writer) Open(ctx context.Context, tp psink.TopicPartition, _ int64, acks psink.Acks) (psink.PartitionWriter, error) {
	if err := w.prepareTopic(ctx, tp.Topic); err != nil {
		return nil, err
	}
	return &partWriter{w: w, tp: tp, acks: acks, mark: w.observedMark(tp)}, nil
}

// Forget releases what the writer keeps of a topic that is gone (its
// index names, its template state).
func (w *Writer) Forget(topic string) {
	if w.o.Namer != nil {
		w.o.Namer.Forget(topic)
	}
	w.mu.Lock()
	delete(w.prepared, topic)
	delete(w.schemas, topic)
	w.mu.Unlock()
}

// prepareTopic installs topic's template once, one installation per topic
// at a time (its partitions open together).
func (w *Writer) prepareTopic(ctx context.Context, topic string) error {
	if w.o.Prepare == nil {
		return nil
	}
	w.mu.Lock()
	done := w.prepared[topic]
	lock := w.installing[topic]
	if lock == nil {
		lock = &sync.Mutex{}
		w.installing[topic] = lock
	}
	w.mu.Unlock()
	if done {
		return nil
	}
	lock.Lock()
	defer lock.Unlock()
	install := func(ctx context.Context) error {
		w.mu.Lock()
		done := w.prepared[topic]
		w.mu.Unlock()
		if done {
			return nil
		}
		if err := w.o.Prepare(ctx, topic); err != nil {
			if ctx.Err() == nil {
				w.o.Metrics.TemplateErrors.WithLabelValues(w.o.Metrics.topicLabel(topic)).Inc()
			}
			return fmt.Errorf("installing the index template: %w", err)
		}
		w.mu.Lock()
		w.prepared[topic] = true
		w.mu.Unlock()
		return nil
	}
	err := install(ctx)
	if err == nil || ctx.Err() != nil {
		return err
	}
	reason := ReasonTemplate
	if target.IsCollision(err) {
		reason = ReasonCollision
	}
	return psink.Park(reason, err, install)
}

// observedMark returns the highest offset of a partition already shown to
// the rules in this process, so records fetched again after a rebalance or
// a replay are not counted twice in rule windows.
func (w *Writer) observedMark(tp psink.TopicPartition) *atomic.Int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.observed[tp]
	if m == nil {
		m = &atomic.Int64{}
		m.Store(-1)
		w.observed[tp] = m
	}
	return m
}

// schemaSeen regenerates a topic's template (in the background; the
// installer writes it only if it changed) when records arrive with a schema
// id the topic has not had in this process, so indices created from then
// on (tomorrow's, the next backing index) map the new fields.
func (w *Writer) schemaSeen(ctx context.Context, topic string, id int) {
	if id == 0 || w.o.Prepare == nil {
		return
	}
	w.mu.Lock()
	prev, known := w.schemas[topic]
	if known && id <= prev {
		w.mu.Unlock()
		return
	}
	w.schemas[topic] = id
	w.mu.Unlock()
	if !known {
		return // the first id of a topic: Open already used the latest schema
	}
	ctx = context.WithoutCancel(ctx)
	go func() {
		// The topic keeps flowing on failure: its installed template stays,
		// and new fields are mapped dynamically until this succeeds.
		if err := w.o.Prepare(ctx, topic); err != nil {
			w.o.Metrics.TemplateErrors.WithLabelValues(w.o.Metrics.topicLabel(topic)).Inc()
			w.o.Log.Error("refreshing index template after a schema change; keeping the installed one", "topic", topic, "schema_id", id, "err", err)
		}
	}()
}

// partWriter writes one partition's records to the bulk indexer.
type partWriter struct {
	w         *Writer
	tp        psink.TopicPartition
	acks      psink.Acks
	mark      *atomic.Int64
	lastIndex string
	closed    atomic.Bool
}

// Write implements pkg/sink.PartitionWriter: each record is admitted
// (time window, index name and budget), decoded and submitted; a record
// refused for good is returned as Poison (dead-lettered by the runtime).
func (pw *partWriter) Write(ctx context.Context, batch []psink.Record) error {
	pl := pw.w.o.Pipeline
	for i := range batch {
		if err := pl.WaitGate(ctx); err != nil {
			return err
		}
		if err := pw.write(ctx, &batch[i]); err != nil {
			return err
		}
	}
	return nil
}

func (pw *partWriter) write(ctx context.Context, rec *psink.Record) error {
	o := &pw.w.o
	m := o.Metrics
	// Limits first: a record outside them costs no decoding, creates no
	// index and never reaches the rules (a record from 2099 would move
	// every rule's watermark past all windows).
	if kind, reason := o.Window.Check(rec.Time); kind != "" {
		m.Refused.WithLabelValues(m.topicLabel(rec.Topic), kind).Inc()
		return psink.Poison(rec.Offset, StageLimits, reason)
	}
	index, err := o.Namer.Index(rec.Topic, rec.Time)
	if err != nil {
		topic := rec.Topic
		return psink.Park(ReasonCollision, err, func(context.Context) error {
			_, err := o.Namer.Segment(topic)
			return err
		})
	}
	if err := pw.admitIndex(ctx, rec, index); err != nil {
		return err
	}
	msg := rec.Message()
	d, err := o.Builder.Build(ctx, &msg)
	switch {
	case err == nil:
	case document.IsPermanent(err):
		m.failed(rec.Topic, "decode")
		return psink.Poison(rec.Offset, "decode", err.Error())
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		// The registry is unreachable: the runtime replays with backoff
		// and parks the topic after SEARCH_SINK_RETRY_ATTEMPTS.
		return psink.Transient(ReasonRetries, fmt.Errorf("decoding partition %d offset %d: %w", rec.Partition, rec.Offset, err))
	}
	if d == nil {
		pw.acks.Skip(rec.Offset) // a tombstone without a key: nothing to index
		return nil
	}
	d.Index = index
	if o.KeyIDs && len(rec.Key) > 0 {
		d.ID = target.KeyID(rec.Key)
		d.Version = target.Version(rec.Time, rec.Offset)
	}
	if o.MaxDocBytes > 0 && len(d.Body) > o.MaxDocBytes {
		m.Refused.WithLabelValues(m.topicLabel(rec.Topic), RefusedTooLarge).Inc()
		return psink.Poison(rec.Offset, StageLimits, fmt.Sprintf("document of %d bytes exceeds SEARCH_SINK_MAX_DOCUMENT_BYTES (%d)", len(d.Body), o.MaxDocBytes))
	}
	pw.w.schemaSeen(ctx, rec.Topic, d.SchemaID)
	if o.Observe != nil && d.Fields != nil && rec.Offset > pw.mark.Load() {
		o.Observe(rec.Topic, rec.Time, d.Fields)
		pw.mark.Store(rec.Offset)
	}
	size := int64(len(d.Body) + len(rec.Key) + 512)
	if err := o.Pipeline.Acquire(ctx, size); err != nil {
		return err
	}
	if err := o.Pipeline.Submit(ctx, pw, rec, d, size); err != nil {
		o.Pipeline.release(size)
		return err
	}
	return nil
}

// admitIndex applies the new-index budget: a record bound for an index
// its topic may not create yet parks the topic until a creation slot frees.
func (pw *partWriter) admitIndex(ctx context.Context, rec *psink.Record, index string) error {
	o := &pw.w.o
	if o.Budget == nil || index == pw.lastIndex {
		return nil
	}
	adm, err := o.Budget.Admit(ctx, rec.Topic, index)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return psink.Transient(ReasonRetries, fmt.Errorf("checking index %s: %w", index, err))
	}
	if !adm.OK {
		return psink.ParkUntil(ReasonIndexBudget, fmt.Errorf("topic %s already created %d new indices within the last hour (SEARCH_SINK_MAX_NEW_INDICES_PER_HOUR); index %s for partition %d offset %d waits until %s",
			rec.Topic, o.Budget.PerHour, index, rec.Partition, rec.Offset, adm.RetryAt.UTC().Format(time.RFC3339)), adm.RetryAt)
	}
	if adm.New {
		o.Metrics.NewIndices.WithLabelValues(o.Metrics.topicLabel(rec.Topic)).Inc()
		o.Log.Info("new index admitted", "topic", rec.Topic, "index", index)
	}
	pw.lastIndex = index
	return nil
}

// Tick implements pkg/sink.PartitionWriter; the bulk indexer flushes by
// itself (bytes, interval, actions).
func (pw *partWriter) Tick(context.Context) error { return nil }

// Flush implements pkg/sink.PartitionWriter: it flushes the shared bulk
// indexer and returns once its requests are answered (records waiting for
// a retry are acknowledged later; the runtime waits for them).
func (pw *partWriter) Flush(ctx context.Context) error {
	if err := pw.w.o.Pipeline.Flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("flushing the bulk indexer: %w", err)
	}
	return nil
}

// Close implements pkg/sink.PartitionWriter: records in flight are
// abandoned (their answers are ignored; they are fetched again from the
// committed offset) and their retries dropped.
func (pw *partWriter) Close(context.Context) error {
	pw.closed.Store(true)
	pw.w.o.Pipeline.purge(pw)
	return nil
}
