// Package store keeps the registry's state in Kafka's _schemas topic in
// Confluent's record format: it replays the log at start, tails it, and
// writes records with acks=all, waiting until the local replica has
// applied them (read-your-writes).
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/kafka"
)

// ErrTimeout is returned when the local replica did not catch up in time.
var ErrTimeout = errors.New("timed out waiting for the _schemas log")

// Options configure a Store.
type Options struct {
	Topic             string
	ReplicationFactor int           // -1: broker default
	Timeout           time.Duration // bound on a write plus its apply
	// RepairAfter is how long a lost race may stay the last record of its
	// key before any replica re-writes the winner; default 5s.
	RepairAfter time.Duration
}

// Store is the Kafka-backed registry log.
type Store struct {
	kc    *kafka.Clients
	opts  Options
	log   *slog.Logger
	state *State

	repairEvery time.Duration
	repairAfter time.Duration

	ready   atomic.Bool
	initEnd atomic.Int64
	lastEnd atomic.Int64
	reader  *kafkago.Reader
}

// New builds a store; Start must run before use.
func New(kc *kafka.Clients, opts Options, log *slog.Logger) *Store {
	if opts.Topic == "" {
		opts.Topic = "_schemas"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.ReplicationFactor == 0 {
		opts.ReplicationFactor = -1
	}
	if opts.RepairAfter <= 0 {
		opts.RepairAfter = 5 * time.Second
	}
	return &Store{kc: kc, opts: opts, log: log, state: NewState(log), repairEvery: opts.RepairAfter / 2, repairAfter: opts.RepairAfter}
}

// State is the applied view of the log.
func (s *Store) State() *State { return s.state }

// Topic is the log topic name.
func (s *Store) Topic() string { return s.opts.Topic }

// Init ensures the topic exists with one partition and remembers where
// the log ends, so Ready knows when the replay is done.
func (s *Store) Init(ctx context.Context) error {
	info, err := s.kc.EnsureTopic(ctx, kafka.TopicSpec{
		Name:              s.opts.Topic,
		Partitions:        1,
		ReplicationFactor: s.opts.ReplicationFactor,
		Configs:           map[string]string{"cleanup.policy": "compact"},
	})
	if err != nil {
		return fmt.Errorf("ensuring topic %s: %w", s.opts.Topic, err)
	}
	if info.Partitions != 1 {
		return fmt.Errorf("topic %s has %d partitions; the schema registry needs exactly 1 (a total order of writes): recreate it or point SCHEMA_REGISTRY_TOPIC at another topic", s.opts.Topic, info.Partitions)
	}
	if info.Created {
		s.log.Info("created schemas topic", "topic", s.opts.Topic)
	}
	end, err := s.EndOffset(ctx)
	if err != nil {
		return err
	}
	s.initEnd.Store(end)
	s.reader = kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:         s.kc.Brokers(),
		Topic:           s.opts.Topic,
		Partition:       0,
		Dialer:          s.kc.Dialer,
		MinBytes:        1,
		MaxBytes:        16 << 20,
		MaxWait:         250 * time.Millisecond,
		ReadBackoffMin:  5 * time.Millisecond,
		ReadBackoffMax:  250 * time.Millisecond,
		ReadLagInterval: -1,
		StartOffset:     kafkago.FirstOffset,
	})
	return nil
}

// Run applies the log until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	defer s.reader.Close()
	if s.initEnd.Load() == 0 {
		s.markReady()
	}
	go s.probeEnd(ctx)
	go s.repairLost(ctx)
	for {
		m, err := s.reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading %s: %w", s.opts.Topic, err)
		}
		s.state.Apply(m.Offset, m.Key, m.Value)
		if !s.ready.Load() && m.Offset+1 >= s.initEnd.Load() {
			s.markReady()
		}
	}
}

func (s *Store) markReady() {
	s.ready.Store(true)
	s.log.Info("schemas log replayed", "topic", s.opts.Topic, "next_offset", s.state.Next())
}

// Ready returns nil once the log present at start has been applied.
func (s *Store) Ready(context.Context) error {
	if s.ready.Load() {
		return nil
	}
	return fmt.Errorf("replaying %s: applied up to offset %d of %d", s.opts.Topic, s.state.Next(), s.initEnd.Load())
}

// EndOffset asks the broker for the offset the next record will get.
func (s *Store) EndOffset(ctx context.Context) (int64, error) {
	res, err := s.kc.Admin.ListOffsets(ctx, &kafkago.ListOffsetsRequest{
		Topics: map[string][]kafkago.OffsetRequest{s.opts.Topic: {kafkago.LastOffsetOf(0)}},
	})
	if err != nil {
		return 0, fmt.Errorf("listing offsets of %s: %w", s.opts.Topic, err)
	}
	for _, p := range res.Topics[s.opts.Topic] {
		if p.Partition != 0 {
			continue
		}
		if p.Error != nil {
			return 0, fmt.Errorf("listing offsets of %s: %w", s.opts.Topic, p.Error)
		}
		if p.LastOffset > s.lastEnd.Load() {
			s.lastEnd.Store(p.LastOffset)
		}
		return p.LastOffset, nil
	}
	return 0, fmt.Errorf("listing offsets of %s: partition 0 missing from the answer", s.opts.Topic)
}

// WaitApplied blocks until the record at offset (and everything before
// it) is applied locally.
func (s *Store) WaitApplied(ctx context.Context, offset int64) error {
	for {
		ch := s.state.Notify()
		if s.state.Next() > offset {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for offset %d (applied up to %d): %w", ErrTimeout, offset, s.state.Next(), ctx.Err())
		}
	}
}

// Sync waits until the local replica has applied everything written to
// the log before the call.
func (s *Store) Sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	end, err := s.EndOffset(ctx)
	if err != nil {
		return err
	}
	if end == 0 {
		return nil
	}
	return s.WaitApplied(ctx, end-1)
}

// Write produces one record (value nil: a tombstone) with acks=all and
// waits until it is applied locally; it returns the record's offset.
func (s *Store) Write(ctx context.Context, key, value []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	rec := kafkago.Record{Key: kafkago.NewBytes(key)}
	if value != nil {
		rec.Value = kafkago.NewBytes(value)
	}
	// Client.Produce rather than a kafka.Writer: the registry needs the
	// record's offset to wait for it, which a Writer does not report.
	// RequireAll keeps Sluice's acks=all promise.
	res, err := s.kc.Admin.Produce(ctx, &kafkago.ProduceRequest{
		Topic:        s.opts.Topic,
		Partition:    0,
		RequiredAcks: kafkago.RequireAll,
		Records:      kafkago.NewRecordReader(rec),
	})
	if err != nil {
		return 0, fmt.Errorf("writing to %s: %w", s.opts.Topic, err)
	}
	if res.Error != nil {
		return 0, fmt.Errorf("writing to %s: %w", s.opts.Topic, res.Error)
	}
	if err := s.WaitApplied(ctx, res.BaseOffset); err != nil {
		return res.BaseOffset, err
	}
	return res.BaseOffset, nil
}

// Lag is how many records the log held beyond the applied position at the
// last end-offset probe (Sync or the background probe).
func (s *Store) Lag() int64 {
	l := s.lastEnd.Load() - s.state.Next()
	if l < 0 {
		return 0
	}
	return l
}

// probeEnd refreshes the log's end offset every few seconds so the apply
// lag metric reflects writes by other replicas too.
func (s *Store) probeEnd(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if _, err := s.EndOffset(pctx); err != nil && ctx.Err() == nil {
				s.log.Warn("probing the schemas log end", "err", err)
			}
			cancel()
		}
	}
}

// repairLost re-writes the winner of a subject version whose last record
// lost a race, when the losing writer did not do it itself (it crashed):
// otherwise compaction would keep the loser. Every replica may do this;
// the records are identical, so duplicates are harmless.
func (s *Store) repairLost(ctx context.Context) {
	t := time.NewTicker(s.repairEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, v := range s.state.LostKeys(s.repairAfter) {
			val := SchemaValue{Subject: v.Subject, Version: v.Version, ID: v.ID, SchemaType: v.Schema.Type, References: v.Schema.References, Schema: v.Schema.Schema, Deleted: v.Deleted}
			if _, err := s.Write(ctx, SchemaKey(v.Subject, v.Version), val.Encode()); err != nil {
				if ctx.Err() == nil {
					s.log.Warn("re-writing the winner of a lost race", "subject", v.Subject, "version", v.Version, "err", err)
				}
				continue
			}
			s.log.Info("re-wrote the winner of a lost race", "subject", v.Subject, "version", v.Version, "id", v.ID)
		}
	}
}
