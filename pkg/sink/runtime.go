package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/backoff"
	skafka "github.com/sluicehq/sluice/pkg/kafka"
)

// Admin is what the runtime needs from Kafka besides consuming.
type Admin interface {
	// ListTopics returns every topic name in the cluster.
	ListTopics(ctx context.Context) ([]string, error)
	// EnsureTopic creates a dead-letter topic if it is missing.
	EnsureTopic(ctx context.Context, name string) error
}

// Producer writes dead letters (a pkg/kafka writer: acks=all).
type Producer interface {
	WriteMessages(ctx context.Context, msgs ...kafkago.Message) error
}

// Codecs resolves schema ids (pkg/avro.Codecs).
type Codecs interface {
	ByID(ctx context.Context, id int) (*avro.Codec, error)
}

// Options configure a Runtime. Zero durations take the defaults noted.
type Options struct {
	// Name is the sink's name: the metric label sink="<name>" and the
	// default dead-letter stage "<name>-sink".
	Name string
	// GroupID is the consumer group.
	GroupID string
	// Topics selects topics explicitly; else TopicRegex selects data
	// topics matching it; with neither, every data topic is consumed.
	// Internal topics and dead-letter topics are never discovered, nor
	// topics in Exclude.
	Topics       []string
	TopicRegex   *regexp.Regexp
	Exclude      []string
	TopicRefresh time.Duration // default 30s

	Brokers []string
	Dialer  *kafkago.Dialer
	Admin   Admin
	// DLQ writes dead letters; nil makes every dead letter fatal.
	DLQ         Producer
	DLQMaxBytes int // dead letters are cut to fit (deadletter.Fit); default deadletter.DefaultMaxBytes
	// DeadLetterStage is the sluice-stage of dead letters the runtime
	// itself decides (framing, unknown schema); default "<Name>-sink".
	DeadLetterStage string

	StartOffset      int64 // kafka-go FirstOffset (default) or LastOffset for a new group
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	Heartbeat        time.Duration
	FetchMaxBytes    int           // default 4 MiB
	FetchMaxWait     time.Duration // default 250ms
	MaxBatch         int           // records per Write; default 500

	CommitInterval time.Duration // also the Tick cadence; default 1s
	// DrainTimeout bounds Flush plus waiting for acks on Stop (and on
	// revocation with FlushOnRevoke); default 10s.
	DrainTimeout  time.Duration
	FlushOnStop   bool // Stop flushes the writers (else it commits what is durable and drops the rest)
	FlushOnRevoke bool // a revoked partition is flushed and committed before it is given up

	// Retry paces transient failures (replays from the committed offset);
	// after Retry.Attempts failures in a row the topic is parked.
	Retry backoff.Policy
	// Park paces retries of parked topics.
	Park backoff.Policy

	// Schemas, when set, makes the runtime resolve each framed value's
	// schema (Record.SchemaID, Schema, Payload): bad framing and ids the
	// registry does not know (past UnknownSchemaGrace) are dead-lettered,
	// registry outages are retried and then park the topic.
	Schemas            Codecs
	UnknownSchemaGrace time.Duration
	// SchemaProblem, if set, decides what an unusable schema means for a
	// topic: nil dead-letters the record, an error (e.g. Park when it is
	// the topic's current schema) is acted on. Unset: dead-lettered.
	SchemaProblem func(ctx context.Context, topic string, id int, problem error) error

	Writer  Writer
	Metrics *Metrics
	Log     *slog.Logger
	// OnPark is told of every park (an operator alert).
	OnPark func(ParkNotice)
	// Now is the wall clock; tests may replace it.
	Now func() time.Time
}

// Runtime runs the consumer group for one Writer. Create with New, then
// Run; Stop drains.
type Runtime struct {
	o      Options
	log    *slog.Logger
	parker *parker
	schema *schemaResolver

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}

	dlqMu     sync.Mutex
	dlqTopics map[string]bool
}

// New validates the options and builds a Runtime.
func New(o Options) (*Runtime, error) {
	if o.Writer == nil || o.Metrics == nil || o.Admin == nil || len(o.Brokers) == 0 || o.GroupID == "" {
		return nil, errors.New("sink runtime: Writer, Metrics, Admin, Brokers and GroupID are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
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
	if o.FetchMaxBytes <= 0 {
		o.FetchMaxBytes = 4 << 20
	}
	if o.FetchMaxWait <= 0 {
		o.FetchMaxWait = 250 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 500
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	if o.Retry.Base <= 0 {
		o.Retry.Base = 100 * time.Millisecond
	}
	if o.Retry.Max <= 0 {
		o.Retry.Max = 10 * time.Second
	}
	if o.Park.Base <= 0 {
		o.Park.Base = 5 * time.Second
	}
	if o.Park.Max <= 0 {
		o.Park.Max = 5 * time.Minute
	}
	if o.DeadLetterStage == "" {
		o.DeadLetterStage = o.Name + "-sink"
	}
	r := &Runtime{o: o, log: o.Log, stopCh: make(chan struct{}), done: make(chan struct{}), dlqTopics: map[string]bool{}}
	r.parker = newParker(o.Park, o.Metrics, o.Log, o.OnPark, o.Now)
	if o.Schemas != nil {
		r.schema = &schemaResolver{codecs: o.Schemas, grace: o.UnknownSchemaGrace, now: o.Now}
	}
	return r, nil
}

// Selected reports whether the runtime would consume a discovered topic.
func (r *Runtime) Selected(topic string) bool {
	if !skafka.IsDataTopic(topic) || slices.Contains(r.o.Exclude, topic) {
		return false
	}
	return r.o.TopicRegex == nil || r.o.TopicRegex.MatchString(topic)
}

// Topics returns the topics to consume now, sorted.
func (r *Runtime) Topics(ctx context.Context) ([]string, error) {
	if len(r.o.Topics) > 0 {
		out := slices.Clone(r.o.Topics)
		slices.Sort(out)
		return out, nil
	}
	all, err := r.o.Admin.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing topics: %w", err)
	}
	var out []string
	for _, t := range all {
		if r.Selected(t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Parked reports whether topic is parked now.
func (r *Runtime) Parked(topic string) bool { return r.parker.isParked(topic) }

var errTopicsChanged = errors.New("selected topics changed")

// Run consumes until ctx ends (a crash: nothing is flushed or committed),
// Stop is called (a drain) or a Fatal error stops it (returned).
func (r *Runtime) Run(ctx context.Context) error {
	defer close(r.done)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.parker.run(pctx)
	var prev []string
	for {
		if r.stopping() || ctx.Err() != nil {
			return nil
		}
		topics, err := r.Topics(ctx)
		if err != nil {
			r.log.Warn("resolving topics", "err", err)
		}
		if len(topics) == 0 {
			select {
			case <-r.stopCh:
				return nil
			case <-ctx.Done():
				return nil
			case <-time.After(min(r.o.TopicRefresh, 5*time.Second)):
			}
			continue
		}
		for _, t := range prev {
			if !slices.Contains(topics, t) {
				r.parker.forget(t)
			}
		}
		prev = topics
		err = r.runGroup(ctx, topics)
		switch {
		case errors.Is(err, errTopicsChanged):
			continue
		case errors.Is(err, errStopped), ctx.Err() != nil:
			return nil
		case err != nil:
			return err
		}
	}
}

// Stop asks Run to drain (flush with FlushOnStop, commit what is durable)
// and leave the group, and waits for it within ctx.
func (r *Runtime) Stop(ctx context.Context) error {
	r.stopOnce.Do(func() { close(r.stopCh) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the sink to drain: %w", ctx.Err())
	}
}

func (r *Runtime) stopping() bool {
	select {
	case <-r.stopCh:
		return true
	default:
		return false
	}
}

func (r *Runtime) runGroup(ctx context.Context, topics []string) error {
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                     r.o.GroupID,
		Brokers:                r.o.Brokers,
		Dialer:                 r.o.Dialer,
		Topics:                 topics,
		HeartbeatInterval:      r.o.Heartbeat,
		SessionTimeout:         r.o.SessionTimeout,
		RebalanceTimeout:       r.o.RebalanceTimeout,
		JoinGroupBackoff:       time.Second,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: min(r.o.TopicRefresh, 5*time.Second),
		StartOffset:            r.o.StartOffset,
		Timeout:                10 * time.Second,
		ErrorLogger: kafkago.LoggerFunc(func(f string, a ...any) {
			r.log.Warn("kafka consumer group", "detail", fmt.Sprintf(f, a...))
		}),
	})
	if err != nil {
		return fmt.Errorf("joining consumer group %s: %w", r.o.GroupID, err)
	}
	r.log.Info("consuming", "group", r.o.GroupID, "topics", topics)

	loopCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-r.stopCh:
			cancel(errStopped)
		case <-loopCtx.Done():
		}
	}()
	if len(r.o.Topics) == 0 {
		go r.watchTopics(loopCtx, cancel, topics)
	}
	var current *generation
	for {
		gen, err := cg.Next(loopCtx)
		if err != nil && loopCtx.Err() == nil && !errors.Is(err, kafkago.ErrGroupClosed) {
			r.log.Warn("consumer group", "group", r.o.GroupID, "err", err)
			continue
		}
		if err != nil {
			cause := context.Cause(loopCtx)
			if current != nil && ctx.Err() == nil {
				// Stop or a topic change: let every partition of the live
				// generation drain and commit before the group is left.
				current.wg.Wait()
			}
			if cerr := cg.Close(); cerr != nil {
				r.log.Debug("closing consumer group", "err", cerr)
			}
			if current != nil {
				// A crash: partitions drop their writers without draining;
				// none outlives Run.
				current.wg.Wait()
			}
			if cause != nil {
				return cause
			}
			return fmt.Errorf("consumer group %s: %w", r.o.GroupID, err)
		}
		r.o.Metrics.generations.Inc()
		current = &generation{gen: gen, fatal: cancel, leaving: loopCtx}
		n := 0
		for topic, parts := range gen.Assignments {
			for _, pa := range parts {
				n++
				current.wg.Add(1)
				p := &partition{r: r, g: current, tp: TopicPartition{topic, pa.ID}, start: pa.Offset}
				g := current
				gen.Start(func(gctx context.Context) {
					p.run(ctx, gctx)
					g.wg.Done()
					if g.leaving.Err() != nil && ctx.Err() == nil {
						// kafka-go ends a generation as soon as one of its
						// functions returns: on a drain (Stop, topic change)
						// the first partition done must not cut the others'
						// drains and final commits short.
						g.wg.Wait()
					}
				})
			}
		}
		r.log.Info("generation started", "generation", gen.ID, "member", gen.MemberID, "partitions", n)
	}
}

// watchTopics cancels the group when the selection changes.
func (r *Runtime) watchTopics(ctx context.Context, cancel context.CancelCauseFunc, current []string) {
	t := time.NewTicker(r.o.TopicRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		topics, err := r.Topics(ctx)
		if err != nil || len(topics) == 0 {
			continue
		}
		if !slices.Equal(topics, current) {
			r.log.Info("selected topics changed; rejoining", "before", current, "after", topics)
			cancel(errTopicsChanged)
			return
		}
	}
}

// generation is one consumer-group generation's shared state.
type generation struct {
	gen      *kafkago.Generation
	commitMu sync.Mutex
	wg       sync.WaitGroup
	fatal    context.CancelCauseFunc
	leaving  context.Context // ends when the group is being left (stop, topic change, fatal)
}

func (g *generation) commit(tp TopicPartition, offset int64) error {
	g.commitMu.Lock()
	defer g.commitMu.Unlock()
	return g.gen.CommitOffsets(map[string]map[int]int64{tp.Topic: {tp.Partition: offset}})
}
