package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/services/s3-sink/internal/config"
	"github.com/sluicehq/sluice/services/s3-sink/internal/objkey"
	"github.com/sluicehq/sluice/services/s3-sink/internal/ocf"
	"github.com/sluicehq/sluice/services/s3-sink/internal/partition"
	"github.com/sluicehq/sluice/services/s3-sink/internal/upload"
)

// Codecs resolves schema ids to compiled codecs (pkg/avro.Codecs).
type Codecs interface {
	ByID(ctx context.Context, id int) (*avro.Codec, error)
}

// S3API is what the sink calls on S3: uploads, plus HEAD and GET to adopt
// objects a previous run completed (wall-clock rotation only).
type S3API interface {
	upload.API
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Subjects tells which schema is a subject's latest (a registry client).
// With it, a schema problem parks a topic only when the schema is the
// topic's current one; without it such records are dead-lettered.
type Subjects interface {
	Latest(ctx context.Context, subject string) (*registry.Schema, error)
}

// Producer writes dead letters (a pkg/kafka writer: acks=all).
type Producer interface {
	WriteMessages(ctx context.Context, msgs ...kafkago.Message) error
}

// Admin is what the sink needs from Kafka besides consuming.
type Admin interface {
	// ListTopics returns every topic name in the cluster.
	ListTopics(ctx context.Context) ([]string, error)
	// EnsureTopic creates a dead-letter topic if missing.
	EnsureTopic(ctx context.Context, name string) error
}

// Options are the sink's dependencies.
type Options struct {
	Config      config.Sink
	Bucket      string
	S3          S3API
	Brokers     []string
	Dialer      *kafkago.Dialer
	Admin       Admin
	Codecs      Codecs
	Subjects    Subjects // optional
	DLQ         Producer
	Partitioner partition.Partitioner
	Metrics     *Metrics
	Log         *slog.Logger
	// Now is the wall clock, used only for ROTATE_MAX_OPEN and lag; tests
	// may replace it.
	Now func() time.Time
}

// Sink runs the consumer group. Create with New, then Run; Stop drains.
type Sink struct {
	o         Options
	cfg       config.Sink
	log       *slog.Logger
	re        *regexp.Regexp
	timeField []string
	layout    *objkey.Layout
	pol       policies
	parking   *Parking
	// fieldPath is the field partitioner's field, checked against each
	// schema (nil for other partitioners).
	fieldPath []string

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}

	dlqMu     sync.Mutex
	dlqTopics map[string]bool

	// needValue: the partitioner or rotation reads record fields, so
	// records are decoded; otherwise they are only validated.
	needValue      bool
	tombstoneCodec *goavro.Codec
	valMu          sync.RWMutex
	fieldChecks    map[int]error // per schema id: are the partition and timestamp fields in it
	unknownRun     time.Time     // start of the current run of 404s for schema ids
	unknownLast    time.Time     // the last 404 of that run
}

// existingRecords returns how many records the object at key holds, or 0
// when there is none.
func (s *Sink) existingRecords(ctx context.Context, key string) (int64, error) {
	_, err := s.o.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.o.Bucket, Key: &key})
	if err != nil {
		var nf *s3types.NotFound
		var nsk *s3types.NoSuchKey
		if errors.As(err, &nf) || errors.As(err, &nsk) {
			return 0, nil
		}
		return 0, fmt.Errorf("checking for %s: %w", key, err)
	}
	out, err := s.o.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.o.Bucket, Key: &key})
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", key, err)
	}
	defer out.Body.Close()
	n, err := ocf.CountRecords(out.Body)
	if err != nil {
		return 0, fmt.Errorf("counting records of %s: %w", key, err)
	}
	return n, nil
}

// unknownYoung reports whether a record whose schema id the registry
// answered 404 for should wait (be retried) rather than go to the DLQ: a
// registry replica may not have replayed a schema registered elsewhere
// yet. The wait is one window of S3_SINK_UNKNOWN_SCHEMA_GRACE from the
// first 404 of a run of them, for every id alike; past it unknown ids are
// dead-lettered at once until no 404 has been seen for twice the grace
// (the run is over). A lagging replica catches up for all ids at once, so
// one window is enough for it, and a producer framing records with ever
// new unknown ids delays the sink by one window per run, not one per id.
func (s *Sink) unknownYoung(id int, err error) bool {
	if !registry.IsNotFound(err) || s.cfg.UnknownSchemaGrace <= 0 {
		return false
	}
	now := s.o.Now()
	s.valMu.Lock()
	defer s.valMu.Unlock()
	if s.unknownRun.IsZero() || now.Sub(s.unknownLast) > 2*s.cfg.UnknownSchemaGrace {
		s.unknownRun = now
	}
	s.unknownLast = now
	return now.Sub(s.unknownRun) < s.cfg.UnknownSchemaGrace
}

// fieldsUsable reports (partition.ErrNotInSchema) whether the codec's
// schema lacks the field partitioner's field or the timestamp field, so
// that no record of it can be partitioned; cached per schema id.
func (s *Sink) fieldsUsable(c *avro.Codec) error {
	if s.fieldPath == nil && s.timeField == nil {
		return nil
	}
	s.valMu.RLock()
	err, ok := s.fieldChecks[c.ID]
	s.valMu.RUnlock()
	if ok {
		return err
	}
	if s.fieldPath != nil {
		err = partition.CheckSchema(c.Schema.Schema, s.fieldPath, partition.ScalarKinds)
	}
	if err == nil && s.timeField != nil {
		err = partition.CheckSchema(c.Schema.Schema, s.timeField, partition.TimeKinds)
	}
	s.valMu.Lock()
	s.fieldChecks[c.ID] = err
	s.valMu.Unlock()
	return err
}

// New validates the options and builds a Sink.
func New(o Options) (*Sink, error) {
	if o.S3 == nil || o.Codecs == nil || o.Partitioner == nil || o.Metrics == nil || o.Admin == nil {
		return nil, errors.New("sink: S3, Codecs, Partitioner, Metrics and Admin are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Sink{
		o: o, cfg: o.Config, log: o.Log, stopCh: make(chan struct{}), done: make(chan struct{}), dlqTopics: map[string]bool{},
		needValue:   o.Config.Partitioner == "field" || o.Config.TimestampSource == "field",
		fieldChecks: map[int]error{},
		pol:         newPolicies(o.Config.RetryAttempts, o.Config.RetryMaxDelay, o.Config.ParkRetryMin, o.Config.ParkRetryMax),
	}
	s.parking = NewParking(o.Log, o.Metrics.topicsParked, o.Metrics.topicParks, o.Metrics.TopicLabel)
	layout, err := objkey.NewLayout(o.Config.Prefix, o.Config.KeyLimits())
	if err != nil {
		return nil, fmt.Errorf("object key layout: %w", err)
	}
	s.layout = layout
	if fp, ok := o.Partitioner.(interface{ FieldPath() []string }); ok && o.Config.Partitioner == "field" {
		s.fieldPath = fp.FieldPath()
	}
	tc, err := goavro.NewCodec(TombstoneSchema)
	if err != nil {
		return nil, fmt.Errorf("compiling the tombstone schema: %w", err)
	}
	s.tombstoneCodec = tc
	if o.Config.TopicRegex != "" {
		re, err := regexp.Compile(o.Config.TopicRegex)
		if err != nil {
			return nil, fmt.Errorf("compiling topic regex: %w", err)
		}
		s.re = re
	}
	if o.Config.TimestampSource == "field" {
		s.timeField = strings.Split(o.Config.TimestampField, ".")
	}
	return s, nil
}

// Selected reports whether a regex-selected sink takes topic: internal
// topics (leading '_') and dead-letter topics (".dlq" suffix) never are.
func Selected(re *regexp.Regexp, topic string) bool {
	return skafka.IsDataTopic(topic) && re.MatchString(topic)
}

func (s *Sink) topics(ctx context.Context) ([]string, error) {
	if s.re == nil {
		out := slices.Clone(s.cfg.Topics)
		sort.Strings(out)
		return out, nil
	}
	all, err := s.o.Admin.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing topics: %w", err)
	}
	var out []string
	for _, t := range all {
		if Selected(s.re, t) {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out, nil
}

var (
	errStopped       = errors.New("sink stopping")
	errTopicsChanged = errors.New("selected topics changed")
)

// Run consumes until ctx ends, Stop is called or a fatal error (a record the
// configuration says to fail on, or a bad record with the DLQ disabled).
func (s *Sink) Run(ctx context.Context) error {
	defer close(s.done)
	for {
		select {
		case <-s.stopCh:
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		topics, err := s.topics(ctx)
		if err != nil {
			s.log.Warn("resolving topics", "err", err)
		}
		if len(topics) == 0 {
			if err == nil {
				s.log.Info("no topics selected yet", "regex", s.cfg.TopicRegex)
			}
			select {
			case <-s.stopCh:
				return nil
			case <-ctx.Done():
				return nil
			case <-time.After(s.cfg.TopicRefresh):
			}
			continue
		}
		err = s.runGroup(ctx, topics)
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

// Stop asks Run to upload open files (with S3_SINK_FLUSH_ON_SHUTDOWN),
// commit and leave the group, and waits for it within ctx.
func (s *Sink) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stopCh) })
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the sink to drain: %w", ctx.Err())
	}
}

func (s *Sink) runGroup(ctx context.Context, topics []string) error {
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                     s.cfg.GroupID,
		Brokers:                s.o.Brokers,
		Dialer:                 s.o.Dialer,
		Topics:                 topics,
		HeartbeatInterval:      s.cfg.Heartbeat,
		SessionTimeout:         s.cfg.SessionTimeout,
		RebalanceTimeout:       s.cfg.RebalanceTimeout,
		JoinGroupBackoff:       time.Second,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: s.cfg.TopicRefresh,
		StartOffset:            kafkago.FirstOffset,
		ErrorLogger:            kafkago.LoggerFunc(func(f string, a ...any) { s.log.Warn("kafka consumer group", "detail", fmt.Sprintf(f, a...)) }),
	})
	if err != nil {
		return fmt.Errorf("joining consumer group %s: %w", s.cfg.GroupID, err)
	}
	s.log.Info("consuming", "group", s.cfg.GroupID, "topics", topics)

	loopCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-s.stopCh:
			cancel(errStopped)
		case <-loopCtx.Done():
		}
	}()
	if s.re != nil {
		go s.watchTopics(loopCtx, cancel, topics)
	}

	var current *generation
	for {
		gen, err := cg.Next(loopCtx)
		if err != nil && loopCtx.Err() == nil && !errors.Is(err, kafkago.ErrGroupClosed) {
			// Join/sync errors (unknown member, rebalance in progress,
			// coordinator moves) are reported here and retried by kafka-go.
			s.log.Warn("consumer group", "group", s.cfg.GroupID, "err", err)
			continue
		}
		if err != nil {
			cause := context.Cause(loopCtx)
			if errors.Is(cause, errStopped) && current != nil {
				// Let every worker of the live generation upload (or drop)
				// its files and commit before the group is left.
				current.wg.Wait()
			}
			if cerr := cg.Close(); cerr != nil {
				s.log.Debug("closing consumer group", "err", cerr)
			}
			if cause != nil {
				return cause
			}
			return fmt.Errorf("consumer group %s: %w", s.cfg.GroupID, err)
		}
		s.o.Metrics.generations.Inc()
		current = &generation{gen: gen, fatal: cancel}
		n := 0
		for topic, parts := range gen.Assignments {
			for _, pa := range parts {
				n++
				current.wg.Add(1)
				w := &worker{s: s, g: current, topic: topic, partition: pa.ID, start: pa.Offset}
				gen.Start(func(gctx context.Context) { w.run(ctx, gctx) })
			}
		}
		s.log.Info("generation started", "generation", gen.ID, "member", gen.MemberID, "partitions", n)
	}
}

// watchTopics cancels the group when the regex selects a different set.
func (s *Sink) watchTopics(ctx context.Context, cancel context.CancelCauseFunc, current []string) {
	t := time.NewTicker(s.cfg.TopicRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		topics, err := s.topics(ctx)
		if err != nil {
			s.log.Warn("re-evaluating topics", "err", err)
			continue
		}
		if !slices.Equal(topics, current) {
			s.log.Info("selected topics changed; rejoining", "before", current, "after", topics)
			cancel(errTopicsChanged)
			return
		}
	}
}

// generation is one consumer-group generation's shared state.
type generation struct {
	gen      *kafkago.Generation
	commitMu sync.Mutex
	wg       sync.WaitGroup // one per worker, done once it has drained or exited
	fatal    context.CancelCauseFunc
}

func (g *generation) commit(topic string, partition int, offset int64) error {
	g.commitMu.Lock()
	defer g.commitMu.Unlock()
	return g.gen.CommitOffsets(map[string]map[int]int64{topic: {partition: offset}})
}
