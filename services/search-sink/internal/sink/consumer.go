package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/backoff"
	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
	"github.com/sluicehq/sluice/services/search-sink/internal/limits"
	"github.com/sluicehq/sluice/services/search-sink/internal/target"
)

// ConsumerOptions configure the consumer group.
type ConsumerOptions struct {
	GroupID          string
	Topics           []string // explicit topics; empty discovers every data topic
	ExcludeTopics    []string // never consumed (e.g. the alerts topic)
	TopicRefresh     time.Duration
	CommitInterval   time.Duration
	DrainTimeout     time.Duration // bound on flushing a generation's records before leaving it
	StartOffset      int64         // kafka.FirstOffset or kafka.LastOffset for a new group
	MaxWait          time.Duration
	MaxBytes         int
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// Window bounds record times; records outside go to the DLQ.
	Window limits.TimeWindow
	// MaxDocBytes bounds a document's JSON; larger ones go to the DLQ (0: no bound).
	MaxDocBytes int
	// Retry paces transient per-record failures (schema registry, index
	// existence checks); after Retry.Attempts the topic is parked.
	Retry backoff.Policy
}

// ConsumerDeps are the parts a Consumer works with.
type ConsumerDeps struct {
	Kafka    *skafka.Clients
	Builder  *document.Builder
	Pipeline *Pipeline
	Parker   *Parker
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
}

// Observer sees every decoded record (the anomaly rules). It must not
// block and must not keep fields after returning.
type Observer func(topic string, t time.Time, fields map[string]any)

// Consumer runs the consumer group: one fetcher per assigned partition and
// one committer per generation.
type Consumer struct {
	kc      *skafka.Clients
	b       *document.Builder
	pl      *Pipeline
	parker  *Parker
	m       *Metrics
	log     *slog.Logger
	o       ConsumerOptions
	namer   *target.Namer
	keyIDs  bool
	budget  *limits.IndexBudget
	observe Observer
	prepare func(ctx context.Context, topic string) error

	mu       sync.Mutex
	prepared map[string]bool
	observed map[topicPartition]*atomic.Int64 // highest offset shown to the rules
	schemas  map[string]int                   // topic -> highest value schema id seen
}

type topicPartition struct {
	topic     string
	partition int
}

// NewConsumer wires a consumer.
func NewConsumer(d ConsumerDeps, o ConsumerOptions) *Consumer {
	if o.TopicRefresh <= 0 {
		o.TopicRefresh = 30 * time.Second
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.StartOffset == 0 {
		o.StartOffset = kafkago.FirstOffset
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 500 * time.Millisecond
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 10 << 20
	}
	return &Consumer{kc: d.Kafka, b: d.Builder, pl: d.Pipeline, parker: d.Parker, m: d.Metrics, log: d.Log, o: o,
		namer: d.Namer, keyIDs: d.KeyIDs, budget: d.Budget, prepare: d.Prepare, observe: d.Observe,
		prepared: map[string]bool{}, observed: map[topicPartition]*atomic.Int64{}, schemas: map[string]int{}}
}

// Eligible reports whether a discovered topic is a data topic: internal
// topics (leading "_"), dead-letter topics (".dlq") and excluded ones are not.
func (c *Consumer) Eligible(t string) bool {
	return skafka.IsDataTopic(t) && !slices.Contains(c.o.ExcludeTopics, t)
}

// Topics returns the topics to consume now, sorted.
func (c *Consumer) Topics(ctx context.Context) ([]string, error) {
	if len(c.o.Topics) > 0 {
		return c.o.Topics, nil
	}
	md, err := c.kc.Admin.Metadata(ctx, &kafkago.MetadataRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing topics: %w", err)
	}
	var out []string
	for _, t := range md.Topics {
		if t.Internal || t.Error != nil || !c.Eligible(t.Name) {
			continue
		}
		out = append(out, t.Name)
	}
	slices.Sort(out)
	return out, nil
}

// Run consumes until ctx ends. When the set of topics changes, the group
// is left (after a final flush and commit) and joined again with the new
// set: kafka-go's group subscribes to a fixed topic list. A topic whose
// template cannot be installed is parked; the others are consumed.
func (c *Consumer) Run(ctx context.Context) error {
	var prev []string
	for {
		topics, err := c.waitTopics(ctx)
		if err != nil {
			return nil //nolint:nilerr // only ctx ends waitTopics
		}
		c.forgetGone(prev, topics)
		prev = topics
		for _, t := range topics {
			c.prepareTopic(ctx, t)
			if ctx.Err() != nil {
				return nil
			}
		}
		gctx, cancel := context.WithCancel(ctx)
		changed := make(chan struct{})
		go func() {
			defer close(changed)
			c.watchTopics(gctx, topics, cancel)
		}()
		c.log.Info("joining consumer group", "group", c.o.GroupID, "topics", topics)
		err = c.runGroup(gctx, topics)
		cancel()
		<-changed
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// forgetGone releases the names and park state of topics that are gone.
func (c *Consumer) forgetGone(prev, cur []string) {
	for _, t := range prev {
		if slices.Contains(cur, t) {
			continue
		}
		c.parker.Forget(t)
		c.namer.Forget(t)
		c.mu.Lock()
		delete(c.prepared, t)
		c.mu.Unlock()
	}
}

// prepareTopic installs t's template once. On failure the topic is parked
// and the installation retried with backoff by the parker; it never holds
// up the other topics.
func (c *Consumer) prepareTopic(ctx context.Context, t string) {
	c.mu.Lock()
	done := c.prepared[t]
	c.mu.Unlock()
	if done || c.prepare == nil || c.parker.Parked(t) {
		return
	}
	install := func(ctx context.Context) error {
		if err := c.prepare(ctx, t); err != nil {
			if ctx.Err() == nil {
				c.m.TemplateErrors.WithLabelValues(c.m.topicLabel(t)).Inc()
			}
			return fmt.Errorf("installing the index template: %w", err)
		}
		c.mu.Lock()
		c.prepared[t] = true
		c.mu.Unlock()
		return nil
	}
	err := install(ctx)
	if err == nil || ctx.Err() != nil {
		return
	}
	kind := ParkTemplate
	if target.IsCollision(err) {
		kind = ParkCollision
	}
	c.pl.ParkTopic(t, kind, err.Error(), install)
}

func (c *Consumer) waitTopics(ctx context.Context) ([]string, error) {
	for {
		topics, err := c.Topics(ctx)
		if err == nil && len(topics) > 0 {
			return topics, nil
		}
		if err != nil {
			c.log.Warn("listing topics", "err", err)
		}
		wait := c.o.TopicRefresh
		if wait > 5*time.Second {
			wait = 5 * time.Second
		}
		if !backoff.Sleep(ctx, wait) {
			return nil, ctx.Err()
		}
	}
}

func (c *Consumer) watchTopics(ctx context.Context, cur []string, changed func()) {
	if len(c.o.Topics) > 0 {
		return
	}
	t := time.NewTicker(c.o.TopicRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		topics, err := c.Topics(ctx)
		if err != nil || len(topics) == 0 {
			continue
		}
		if !slices.Equal(topics, cur) {
			c.log.Info("topic set changed, rejoining", "old", cur, "new", topics)
			changed()
			return
		}
	}
}

func (c *Consumer) runGroup(ctx context.Context, topics []string) error {
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                     c.o.GroupID,
		Brokers:                c.kc.Brokers(),
		Dialer:                 c.kc.Dialer,
		Topics:                 topics,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		SessionTimeout:         c.o.SessionTimeout,
		RebalanceTimeout:       c.o.RebalanceTimeout,
		HeartbeatInterval:      time.Second,
		JoinGroupBackoff:       time.Second,
		StartOffset:            c.o.StartOffset,
		Timeout:                10 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("creating consumer group %s: %w", c.o.GroupID, err)
	}
	defer func() {
		// Closing ends the current generation: its committer flushes and
		// commits before the group is left.
		if err := cg.Close(); err != nil {
			c.log.Warn("closing consumer group", "err", err)
		}
	}()
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				return nil
			}
			c.log.Warn("consumer group generation failed", "err", err)
			continue
		}
		c.startGeneration(gen)
	}
}

func (c *Consumer) startGeneration(gen *kafkago.Generation) {
	var parts []*partition
	for topic, as := range gen.Assignments {
		for _, a := range as {
			pt := newPartition(topic, a.ID)
			pt.h = c.parker.Handle(topic)
			parts = append(parts, pt)
			offset := a.Offset
			gen.Start(func(ctx context.Context) { c.fetch(ctx, pt, offset) })
		}
	}
	c.log.Info("generation started", "generation", gen.ID, "partitions", len(parts))
	gen.Start(func(ctx context.Context) { c.commitLoop(ctx, gen, parts) })
}

// schemaSeen regenerates a topic's template (in the background; the
// installer writes it only if it changed) when records arrive with a schema
// id the topic has not had in this process, so indices created from then
// on (tomorrow's, the next backing index) map the new fields.
func (c *Consumer) schemaSeen(ctx context.Context, topic string, id int) {
	if id == 0 || c.prepare == nil {
		return
	}
	c.mu.Lock()
	prev, known := c.schemas[topic]
	if known && id <= prev {
		c.mu.Unlock()
		return
	}
	c.schemas[topic] = id
	c.mu.Unlock()
	if !known {
		return // the first id of a topic: prepareTopic already used the latest schema
	}
	go func() {
		// The topic keeps flowing on failure: its installed template stays,
		// and new fields are mapped dynamically until this succeeds.
		if err := c.prepare(ctx, topic); err != nil && ctx.Err() == nil {
			c.m.TemplateErrors.WithLabelValues(c.m.topicLabel(topic)).Inc()
			c.log.Error("refreshing index template after a schema change; keeping the installed one", "topic", topic, "schema_id", id, "err", err)
		}
	}()
}

// observedMark returns the highest offset of a partition already shown to
// the rules in this process, so records fetched again after a rebalance or
// a retry are not counted twice in rule windows.
func (c *Consumer) observedMark(topic string, partition int) *atomic.Int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := topicPartition{topic, partition}
	m := c.observed[k]
	if m == nil {
		m = &atomic.Int64{}
		m.Store(-1)
		c.observed[k] = m
	}
	return m
}

func (c *Consumer) fetch(ctx context.Context, pt *partition, offset int64) {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:        c.kc.Brokers(),
		Topic:          pt.topic,
		Partition:      pt.id,
		Dialer:         c.kc.Dialer,
		MinBytes:       1,
		MaxBytes:       c.o.MaxBytes,
		MaxWait:        c.o.MaxWait,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		IsolationLevel: kafkago.ReadUncommitted,
	})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		c.log.Error("setting offset", "topic", pt.topic, "partition", pt.id, "offset", offset, "err", err)
		return
	}
	mark := c.observedMark(pt.topic, pt.id)
	h := pt.h
	if h == nil {
		h = c.parker.Handle(pt.topic)
		pt.h = h
	}
	seen := h.Epoch()
	label := c.m.topicLabel(pt.topic)
	lagged := label != service.OtherLabel // no lag series for topics past the label bound
	ps := strconv.Itoa(pt.id)
	if lagged {
		defer c.m.LagRecords.DeleteLabelValues(label, ps)
		defer c.m.LagSeconds.DeleteLabelValues(label, ps)
	}
	// pctx ends when the topic is parked, so a fetcher blocked waiting for
	// records or buffer space notices at once.
	pctx, cancel := c.parker.ParkContext(ctx, h)
	defer func() { cancel() }()
	for {
		// Parked since we last looked: abandon the records in flight (so a
		// rebalance or shutdown does not wait for them), wait for the
		// release, then start again from the last acknowledged offset.
		if e := h.Epoch(); e != seen || h.Parked() {
			cancel()
			from := pt.rewind(offset)
			if err := c.parker.Wait(ctx, h); err != nil {
				return
			}
			seen = e
			if err := r.SetOffset(from); err != nil {
				c.log.Error("setting offset after the topic's release", "topic", pt.topic, "partition", pt.id, "offset", from, "err", err)
				return
			}
			pctx, cancel = c.parker.ParkContext(ctx, h)
			continue
		}
		if err := c.pl.WaitGate(pctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		m, err := r.FetchMessage(pctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if pctx.Err() != nil {
				continue // parked
			}
			c.log.Warn("fetching", "topic", pt.topic, "partition", pt.id, "err", err)
			if !backoff.Sleep(ctx, time.Second) {
				return
			}
			continue
		}
		if offset < 0 {
			offset = m.Offset // a rewind before any commit restarts here, not at "latest"
		}
		if lagged {
			lag := m.HighWaterMark - m.Offset - 1
			c.m.LagRecords.WithLabelValues(label, ps).Set(float64(lag))
			if lag > 0 {
				c.m.LagSeconds.WithLabelValues(label, ps).Set(time.Since(m.Time).Seconds())
			} else {
				c.m.LagSeconds.WithLabelValues(label, ps).Set(0)
			}
		}
		size := int64(len(m.Value) + len(m.Key) + 512)
		if err := c.pl.Acquire(pctx, size); err != nil {
			if ctx.Err() != nil {
				return
			}
			continue // parked: the record is fetched again after the release
		}
		seq := pt.add(m.Offset)
		res := c.process(pctx, &m, pt, seq, size, mark)
		if res == stopped && ctx.Err() == nil {
			res = parked // only the park context ended
		}
		switch res {
		case handedOn:
		case parked:
			pt.drop(seq)
			c.pl.release(size)
		case stopped:
			pt.drop(seq)
			c.pl.release(size)
			return
		}
	}
}

// What process did with a record.
const (
	handedOn = iota // indexed, skipped or dead-lettered: the pipeline has it
	parked          // the topic was parked; the record is fetched again on release
	stopped         // ctx ended
)

// process admits, decodes and submits one record.
func (c *Consumer) process(ctx context.Context, m *kafkago.Message, pt *partition, seq uint64, size int64, mark *atomic.Int64) int {
	if pt.h.Parked() {
		return parked
	}
	// Limits first: a record outside them costs no decoding, creates no
	// index and never reaches the rules (a record from 2099 would move
	// every rule's watermark past all windows).
	if kind, reason := c.o.Window.Check(m.Time); kind != "" {
		c.m.Refused.WithLabelValues(c.m.topicLabel(m.Topic), kind).Inc()
		c.log.Warn("record outside the accepted time window, sending to DLQ", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "reason", reason)
		c.pl.DeadLetter(m, pt, seq, size, StageLimits, reason)
		return handedOn
	}
	index, err := c.namer.Index(m.Topic, m.Time)
	if err != nil {
		c.pl.ParkTopic(m.Topic, ParkCollision, err.Error(), func(context.Context) error {
			_, err := c.namer.Segment(m.Topic)
			return err
		})
		return parked
	}
	if r := c.admitIndex(ctx, m, pt, index); r != handedOn {
		return r
	}
	var d *document.Doc
	err = c.o.Retry.Retry(ctx, func(ctx context.Context) error {
		var err error
		d, err = c.b.Build(ctx, m)
		if document.IsPermanent(err) {
			return backoff.Permanent(err)
		}
		return err
	}, func(err error, wait time.Duration) {
		// Transient (schema registry unreachable): hold the partition.
		c.log.Warn("decoding record, will retry", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err, "retry_in", wait.Round(time.Millisecond))
	})
	switch {
	case err == nil:
	case document.IsPermanent(err):
		c.log.Warn("record cannot be decoded, sending to DLQ", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
		c.m.failed(m.Topic, "decode")
		c.pl.DeadLetter(m, pt, seq, size, "decode", err.Error())
		return handedOn
	case ctx.Err() != nil:
		return stopped
	default:
		c.pl.ParkTopic(m.Topic, ParkRetries, fmt.Sprintf("decoding partition %d offset %d failed %d times (SEARCH_SINK_RETRY_ATTEMPTS): %v", m.Partition, m.Offset, c.o.Retry.Attempts, err), nil)
		return parked
	}
	if d == nil {
		c.pl.Skip(pt, seq, size)
		return handedOn
	}
	d.Index = index
	if c.keyIDs && len(m.Key) > 0 {
		d.ID = target.KeyID(m.Key)
		d.Version = target.Version(m.Time, m.Offset)
	}
	if c.o.MaxDocBytes > 0 && len(d.Body) > c.o.MaxDocBytes {
		reason := fmt.Sprintf("document of %d bytes exceeds SEARCH_SINK_MAX_DOCUMENT_BYTES (%d)", len(d.Body), c.o.MaxDocBytes)
		c.m.Refused.WithLabelValues(c.m.topicLabel(m.Topic), RefusedTooLarge).Inc()
		c.log.Warn("document too large, sending to DLQ", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "reason", reason)
		c.pl.DeadLetter(m, pt, seq, size, StageLimits, reason)
		return handedOn
	}
	c.schemaSeen(ctx, m.Topic, d.SchemaID)
	if c.observe != nil && d.Fields != nil && m.Offset > mark.Load() {
		c.observe(m.Topic, m.Time, d.Fields)
		mark.Store(m.Offset)
	}
	if err := c.pl.Submit(ctx, m, d, pt, seq, size); err != nil {
		return stopped
	}
	return handedOn
}

// StageLimits is the sluice-stage of records refused by a limit.
const StageLimits = "limits"

// RefusedTooLarge is the reason label of documents over MaxDocBytes.
const RefusedTooLarge = "document_too_large"

// admitIndex applies the new-index budget: a record bound for an index
// its topic may not create yet parks the topic until a creation slot frees.
func (c *Consumer) admitIndex(ctx context.Context, m *kafkago.Message, pt *partition, index string) int {
	if c.budget == nil || index == pt.lastIndex {
		return handedOn
	}
	var adm limits.Admission
	err := c.o.Retry.Retry(ctx, func(ctx context.Context) error {
		var err error
		adm, err = c.budget.Admit(ctx, m.Topic, index)
		return err
	}, func(err error, wait time.Duration) {
		c.log.Warn("checking index, will retry", "topic", m.Topic, "index", index, "err", err, "retry_in", wait.Round(time.Millisecond))
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return stopped
	default:
		c.pl.ParkTopic(m.Topic, ParkRetries, fmt.Sprintf("checking index %s failed %d times (SEARCH_SINK_RETRY_ATTEMPTS): %v", index, c.o.Retry.Attempts, err), nil)
		return parked
	}
	if !adm.OK {
		reason := fmt.Sprintf("topic %s already created %d new indices within the last hour (SEARCH_SINK_MAX_NEW_INDICES_PER_HOUR); index %s for partition %d offset %d waits until %s",
			m.Topic, c.budget.PerHour, index, m.Partition, m.Offset, adm.RetryAt.UTC().Format(time.RFC3339))
		c.pl.ParkTopicUntil(m.Topic, ParkIndexBudget, reason, adm.RetryAt)
		return parked
	}
	if adm.New {
		c.m.NewIndices.WithLabelValues(c.m.topicLabel(m.Topic)).Inc()
		c.log.Info("new index admitted", "topic", m.Topic, "index", index)
	}
	pt.lastIndex = index
	return handedOn
}

// commitLoop commits each partition's contiguous watermark every
// CommitInterval and, when the generation ends (rebalance, topic change,
// shutdown), flushes the indexer, waits up to DrainTimeout for the
// generation's records to be acknowledged and commits a last time.
func (c *Consumer) commitLoop(ctx context.Context, gen *kafkago.Generation, parts []*partition) {
	t := time.NewTicker(c.o.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.commit(gen, parts)
			continue
		case <-ctx.Done():
		}
		break
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.DrainTimeout)
	defer cancel()
	if err := c.pl.Flush(dctx); err != nil {
		c.log.Warn("flushing at end of generation", "err", err)
	}
	for {
		pending := 0
		for _, p := range parts {
			pending += p.pending()
		}
		if pending == 0 || !backoff.Sleep(dctx, 20*time.Millisecond) {
			if pending > 0 {
				c.log.Warn("generation ended with unacknowledged records; they will be delivered again", "records", pending)
			}
			break
		}
	}
	c.commit(gen, parts)
}

func (c *Consumer) commit(gen *kafkago.Generation, parts []*partition) {
	offsets := map[string]map[int]int64{}
	var taken []*partition
	for _, p := range parts {
		off, ok := p.take()
		if !ok {
			continue
		}
		if offsets[p.topic] == nil {
			offsets[p.topic] = map[int]int64{}
		}
		offsets[p.topic][p.id] = off
		taken = append(taken, p)
	}
	if len(taken) == 0 {
		return
	}
	if err := gen.CommitOffsets(offsets); err != nil {
		c.log.Warn("committing offsets", "err", err, "generation", gen.ID)
		for _, p := range taken {
			p.untake()
		}
		return
	}
	c.m.Commits.Inc()
	c.log.Debug("committed offsets", "offsets", offsets)
}
