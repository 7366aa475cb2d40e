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

	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
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
	m       *Metrics
	log     *slog.Logger
	o       ConsumerOptions
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

// NewConsumer wires a consumer. prepare runs once per topic before its
// first document is indexed (index template installation); observe may be nil.
func NewConsumer(kc *skafka.Clients, b *document.Builder, pl *Pipeline, m *Metrics, log *slog.Logger, o ConsumerOptions, prepare func(ctx context.Context, topic string) error, observe Observer) *Consumer {
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
	return &Consumer{kc: kc, b: b, pl: pl, m: m, log: log, o: o, prepare: prepare, observe: observe, prepared: map[string]bool{}, observed: map[topicPartition]*atomic.Int64{}, schemas: map[string]int{}}
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
// set: kafka-go's group subscribes to a fixed topic list.
func (c *Consumer) Run(ctx context.Context) error {
	for {
		topics, err := c.waitTopics(ctx)
		if err != nil {
			return nil //nolint:nilerr // only ctx ends waitTopics
		}
		for _, t := range topics {
			if err := c.prepareTopic(ctx, t); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
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

func (c *Consumer) prepareTopic(ctx context.Context, t string) error {
	c.mu.Lock()
	done := c.prepared[t]
	c.mu.Unlock()
	if done || c.prepare == nil {
		return nil
	}
	b := newBackoff(500*time.Millisecond, 30*time.Second)
	for {
		err := c.prepare(ctx, t)
		if err == nil {
			break
		}
		c.log.Error("preparing index template", "topic", t, "err", err)
		if !sleepCtx(ctx, b.next()) {
			return ctx.Err()
		}
	}
	c.mu.Lock()
	c.prepared[t] = true
	c.mu.Unlock()
	return nil
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
		if !sleepCtx(ctx, wait) {
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
		if err := c.prepare(ctx, topic); err != nil && ctx.Err() == nil {
			c.log.Warn("refreshing index template after a schema change", "topic", topic, "schema_id", id, "err", err)
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
	ps := strconv.Itoa(pt.id)
	lagRecords := c.m.LagRecords.WithLabelValues(pt.topic, ps)
	lagSeconds := c.m.LagSeconds.WithLabelValues(pt.topic, ps)
	defer c.m.LagRecords.DeleteLabelValues(pt.topic, ps)
	defer c.m.LagSeconds.DeleteLabelValues(pt.topic, ps)
	for {
		if err := c.pl.WaitGate(ctx); err != nil {
			return
		}
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("fetching", "topic", pt.topic, "partition", pt.id, "err", err)
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		lag := m.HighWaterMark - m.Offset - 1
		lagRecords.Set(float64(lag))
		if lag > 0 {
			lagSeconds.Set(time.Since(m.Time).Seconds())
		} else {
			lagSeconds.Set(0)
		}
		size := int64(len(m.Value) + len(m.Key) + 512)
		if err := c.pl.Acquire(ctx, size); err != nil {
			return
		}
		seq := pt.add(m.Offset)
		if !c.process(ctx, &m, pt, seq, size, mark) {
			pt.drop(seq)
			c.pl.release(size)
			return
		}
	}
}

// process decodes and submits one record; it returns false when ctx ended.
func (c *Consumer) process(ctx context.Context, m *kafkago.Message, pt *partition, seq uint64, size int64, mark *atomic.Int64) bool {
	b := newBackoff(200*time.Millisecond, 30*time.Second)
	var d *document.Doc
	for {
		var err error
		d, err = c.b.Build(ctx, m)
		if err == nil {
			break
		}
		if document.IsPermanent(err) {
			c.log.Warn("record cannot be decoded, sending to DLQ", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
			c.m.Failed.WithLabelValues("", "decode").Inc()
			c.pl.DeadLetter(m, pt, seq, size, "decode", err.Error())
			return true
		}
		// Transient (schema registry unreachable): hold the partition.
		c.log.Warn("decoding record, will retry", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
		if !sleepCtx(ctx, b.next()) {
			return false
		}
	}
	if d == nil {
		c.pl.Skip(pt, seq, size)
		return true
	}
	c.schemaSeen(ctx, m.Topic, d.SchemaID)
	if c.observe != nil && d.Fields != nil && m.Offset > mark.Load() {
		c.observe(m.Topic, m.Time, d.Fields)
		mark.Store(m.Offset)
	}
	if err := c.pl.Submit(ctx, m, d, pt, seq, size); err != nil {
		return false
	}
	return true
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
		if pending == 0 || !sleepCtx(dctx, 20*time.Millisecond) {
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
