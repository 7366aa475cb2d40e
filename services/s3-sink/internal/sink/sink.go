package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/pkg/registry"
	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/services/s3-sink/internal/config"
	"github.com/sluicehq/sluice/services/s3-sink/internal/objkey"
	"github.com/sluicehq/sluice/services/s3-sink/internal/ocf"
	"github.com/sluicehq/sluice/services/s3-sink/internal/partition"
	"github.com/sluicehq/sluice/services/s3-sink/internal/upload"
)

// Codecs resolves schema ids to compiled codecs (pkg/avro.Codecs).
type Codecs = psink.Codecs

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
type Producer = psink.Producer

// Admin is what the sink needs from Kafka besides consuming.
type Admin = psink.Admin

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

// Sink is the S3 Writer and the runtime running it. Create with New, then
// Run; Stop drains.
type Sink struct {
	o         Options
	cfg       config.Sink
	log       *slog.Logger
	rt        *psink.Runtime
	timeField []string
	layout    *objkey.Layout
	// fieldPath is the field partitioner's field, checked against each
	// schema (nil for other partitioners).
	fieldPath []string

	// needValue: the partitioner or rotation reads record fields, so
	// records are decoded; otherwise they are only validated.
	needValue      bool
	tombstoneCodec *goavro.Codec
	valMu          sync.RWMutex
	fieldChecks    map[int]error     // per schema id: are the partition and timestamp fields in it
	foreign        map[string]string // topic/schema id with a problem, not the topic's current schema: the dead-letter reason
}

// maxForeignSchemas bounds the cache of foreign schema ids.
const maxForeignSchemas = 1024

// StageDeadLetter is the sluice-stage of the S3 sink's dead letters.
const StageDeadLetter = "s3-sink"

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
		o: o, cfg: o.Config, log: o.Log,
		needValue:   o.Config.Partitioner == "field" || o.Config.TimestampSource == "field",
		fieldChecks: map[int]error{},
		foreign:     map[string]string{},
	}
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
	var re *regexp.Regexp
	if o.Config.TopicRegex != "" {
		if re, err = regexp.Compile(o.Config.TopicRegex); err != nil {
			return nil, fmt.Errorf("compiling topic regex: %w", err)
		}
	}
	if o.Config.TimestampSource == "field" {
		s.timeField = strings.Split(o.Config.TimestampField, ".")
	}
	var dlq Producer
	if o.Config.DLQ {
		dlq = o.DLQ
	}
	commit := o.Config.CommitInterval
	if mo := o.Config.RotateMaxOpen; mo > 0 && mo/4 < commit {
		commit = max(mo/4, 10*time.Millisecond)
	}
	s.rt, err = psink.New(psink.Options{
		Name:               "s3",
		GroupID:            o.Config.GroupID,
		Topics:             o.Config.Topics,
		TopicRegex:         re,
		TopicRefresh:       o.Config.TopicRefresh,
		Brokers:            o.Brokers,
		Dialer:             o.Dialer,
		Admin:              o.Admin,
		DLQ:                dlq,
		DLQMaxBytes:        o.Config.DLQMaxBytes,
		DeadLetterStage:    StageDeadLetter,
		SessionTimeout:     o.Config.SessionTimeout,
		RebalanceTimeout:   o.Config.RebalanceTimeout,
		Heartbeat:          o.Config.Heartbeat,
		CommitInterval:     commit,
		MaxBatch:           64,        // as the old worker's queue: each owned partition holds a batch and a fetch queue this long (100 partitions at 500: +50 MiB peak RSS)
		DrainTimeout:       time.Hour, // uploads on shutdown are bounded by the process's stop timeout
		FlushOnStop:        o.Config.FlushOnShutdown,
		Retry:              backoff.Policy{Base: 100 * time.Millisecond, Max: o.Config.RetryMaxDelay, Attempts: o.Config.RetryAttempts},
		Park:               backoff.Policy{Base: o.Config.ParkRetryMin, Max: o.Config.ParkRetryMax},
		Schemas:            o.Codecs,
		UnknownSchemaGrace: o.Config.UnknownSchemaGrace,
		SchemaProblem: func(ctx context.Context, topic string, id int, problem error) error {
			_, err := s.schemaProblem(ctx, topic, id, "schema: ", problem)
			return err
		},
		Writer:  s,
		Metrics: o.Metrics.Runtime,
		Log:     o.Log,
		Now:     o.Now,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Run consumes until ctx ends, Stop is called or a fatal error (a record the
// configuration says to fail on, or a bad record with the DLQ disabled).
func (s *Sink) Run(ctx context.Context) error { return s.rt.Run(ctx) }

// Stop asks Run to upload open files (with S3_SINK_FLUSH_ON_SHUTDOWN),
// commit and leave the group, and waits for it within ctx.
func (s *Sink) Stop(ctx context.Context) error { return s.rt.Stop(ctx) }

// Open implements psink.Writer: one partition's open files.
func (s *Sink) Open(_ context.Context, tp psink.TopicPartition, start int64, acks psink.Acks) (psink.PartitionWriter, error) {
	w := &worker{s: s, topic: tp.Topic, partition: tp.Partition, acks: acks,
		log:   s.log.With("topic", tp.Topic, "partition", tp.Partition),
		label: s.o.Metrics.TopicLabel(tp.Topic),
		files: map[string]*openFile{}, skips: map[string]*skip{}, held: -1, next: -1}
	if start >= 0 {
		w.next = start
	}
	return w, nil
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
