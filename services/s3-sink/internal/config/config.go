// Package config holds the s3-sink configuration, loaded from S3_SINK_*,
// the shared S3_*, KAFKA_* and REGISTRY_* environment variables (or the
// matching flags).
package config

import (
	"regexp"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/services/s3-sink/internal/objkey"
	"github.com/sluicehq/sluice/services/s3-sink/internal/partition"
)

// MinPartSize is S3's smallest allowed multipart part (except the last).
const MinPartSize = 5 << 20

// S3 is the shared S3_* configuration.
type S3 struct {
	Endpoint        string `env:"S3_ENDPOINT" help:"S3 endpoint URL; empty uses AWS's regional endpoint"`
	Region          string `env:"S3_REGION" default:"us-east-1" help:"region requests are signed for"`
	Bucket          string `env:"S3_BUCKET" help:"bucket objects are written to (required)"`
	AccessKeyID     string `env:"S3_ACCESS_KEY_ID" help:"static access key; empty uses the AWS default credential chain (IRSA, instance role, env)"`
	SecretAccessKey string `env:"S3_SECRET_ACCESS_KEY" secret:"true" help:"static secret key (never logged)"`
	ForcePathStyle  bool   `env:"S3_FORCE_PATH_STYLE" default:"false" help:"path-style addressing (MinIO, versitygw)"`
}

// Validate checks the S3 settings.
func (s *S3) Validate() error {
	if s.Bucket == "" {
		return service.Invalid("S3_BUCKET", "required")
	}
	if (s.AccessKeyID == "") != (s.SecretAccessKey == "") {
		if s.AccessKeyID == "" {
			return service.Invalid("S3_ACCESS_KEY_ID", "required when S3_SECRET_ACCESS_KEY is set")
		}
		return service.Invalid("S3_SECRET_ACCESS_KEY", "required when S3_ACCESS_KEY_ID is set")
	}
	if s.Endpoint != "" && !strings.HasPrefix(s.Endpoint, "http://") && !strings.HasPrefix(s.Endpoint, "https://") {
		return service.Invalid("S3_ENDPOINT", "want an http(s) URL, got %q", s.Endpoint)
	}
	if s.Region == "" {
		return service.Invalid("S3_REGION", "required")
	}
	return nil
}

// Lifecycle is the bucket's backup policy: tiering, expiry and replication.
type Lifecycle struct {
	Prefix              string `env:"S3_SINK_LIFECYCLE_PREFIX" help:"key prefix the lifecycle rule applies to; empty uses S3_SINK_PREFIX"`
	TransitionDays      int    `env:"S3_SINK_LIFECYCLE_TRANSITION_DAYS" default:"0" help:"move objects to S3_SINK_LIFECYCLE_STORAGE_CLASS after N days (0: never)"`
	StorageClass        string `env:"S3_SINK_LIFECYCLE_STORAGE_CLASS" default:"GLACIER" help:"GLACIER, GLACIER_IR or DEEP_ARCHIVE"`
	ExpireDays          int    `env:"S3_SINK_LIFECYCLE_EXPIRE_DAYS" default:"0" help:"delete objects after M days (0: never)"`
	AbortMultipartDays  int    `env:"S3_SINK_LIFECYCLE_ABORT_MULTIPART_DAYS" default:"7" help:"abort incomplete multipart uploads after N days (0: never)"`
	NoncurrentExpireDay int    `env:"S3_SINK_LIFECYCLE_NONCURRENT_EXPIRE_DAYS" default:"0" help:"delete noncurrent object versions after N days (0: never)"`
	ReplicationRoleARN  string `env:"S3_SINK_REPLICATION_ROLE_ARN" help:"IAM role S3 assumes to replicate; set with S3_SINK_REPLICATION_DEST_BUCKET_ARN to enable cross-region replication"`
	ReplicationDestARN  string `env:"S3_SINK_REPLICATION_DEST_BUCKET_ARN" help:"destination bucket ARN (arn:aws:s3:::name)"`
	ReplicationClass    string `env:"S3_SINK_REPLICATION_STORAGE_CLASS" default:"STANDARD" help:"storage class of the replicas"`
	ApplyAtStart        bool   `env:"S3_SINK_BUCKET_APPLY_AT_START" default:"false" help:"apply lifecycle and replication when the sink starts"`
}

// Validate checks the policy settings.
func (l *Lifecycle) Validate() error {
	switch l.StorageClass {
	case "GLACIER", "GLACIER_IR", "DEEP_ARCHIVE", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING":
	default:
		return service.Invalid("S3_SINK_LIFECYCLE_STORAGE_CLASS", "want GLACIER, GLACIER_IR, DEEP_ARCHIVE, STANDARD_IA, ONEZONE_IA or INTELLIGENT_TIERING, got %q", l.StorageClass)
	}
	for name, v := range map[string]int{
		"S3_SINK_LIFECYCLE_TRANSITION_DAYS": l.TransitionDays, "S3_SINK_LIFECYCLE_EXPIRE_DAYS": l.ExpireDays,
		"S3_SINK_LIFECYCLE_ABORT_MULTIPART_DAYS": l.AbortMultipartDays, "S3_SINK_LIFECYCLE_NONCURRENT_EXPIRE_DAYS": l.NoncurrentExpireDay,
	} {
		if v < 0 {
			return service.Invalid(name, "must not be negative, got %d", v)
		}
	}
	if l.ExpireDays > 0 && l.TransitionDays > 0 && l.ExpireDays <= l.TransitionDays {
		return service.Invalid("S3_SINK_LIFECYCLE_EXPIRE_DAYS", "must be greater than S3_SINK_LIFECYCLE_TRANSITION_DAYS (%d), got %d", l.TransitionDays, l.ExpireDays)
	}
	if (l.ReplicationRoleARN == "") != (l.ReplicationDestARN == "") {
		if l.ReplicationRoleARN == "" {
			return service.Invalid("S3_SINK_REPLICATION_ROLE_ARN", "required when S3_SINK_REPLICATION_DEST_BUCKET_ARN is set")
		}
		return service.Invalid("S3_SINK_REPLICATION_DEST_BUCKET_ARN", "required when S3_SINK_REPLICATION_ROLE_ARN is set")
	}
	if l.ReplicationDestARN != "" && !strings.HasPrefix(l.ReplicationDestARN, "arn:") {
		return service.Invalid("S3_SINK_REPLICATION_DEST_BUCKET_ARN", "want an ARN like arn:aws:s3:::bucket, got %q", l.ReplicationDestARN)
	}
	return nil
}

// Sink is the S3_SINK_* behaviour.
type Sink struct {
	GroupID            string        `env:"S3_SINK_GROUP_ID" default:"sluice-s3-sink" help:"Kafka consumer group"`
	Topics             []string      `env:"S3_SINK_TOPICS" help:"comma-separated topics to sink (or use S3_SINK_TOPIC_REGEX)"`
	TopicRegex         string        `env:"S3_SINK_TOPIC_REGEX" help:"sink every topic matching this regex, except internal (_*) and dead-letter (*.dlq) topics"`
	TopicRefresh       time.Duration `env:"S3_SINK_TOPIC_REFRESH" default:"30s" help:"how often S3_SINK_TOPIC_REGEX is re-evaluated to pick up new topics"`
	Prefix             string        `env:"S3_SINK_PREFIX" default:"topics" help:"key prefix of every object"`
	Codec              string        `env:"S3_SINK_CODEC" default:"snappy" help:"OCF block compression: null, deflate or snappy"`
	Partitioner        string        `env:"S3_SINK_PARTITIONER" default:"default" help:"default (partition=<n>), field (<field>=<value>) or time"`
	PartitionField     string        `env:"S3_SINK_PARTITION_FIELD" help:"record field for the field partitioner (dots for nested fields)"`
	PathFormat         string        `env:"S3_SINK_PATH_FORMAT" default:"hourly" help:"time partitioner path: hourly, daily or a format with YYYY MM dd HH mm, e.g. year=YYYY/month=MM/day=dd/hour=HH"`
	TimestampSource    string        `env:"S3_SINK_TIMESTAMP_SOURCE" default:"record" help:"time partitioner clock: record (Kafka timestamp) or field"`
	TimestampField     string        `env:"S3_SINK_TIMESTAMP_FIELD" help:"record field holding the time (long millis, timestamp-millis/micros or RFC 3339 string)"`
	TimeZone           string        `env:"S3_SINK_TIMEZONE" default:"UTC" help:"IANA time zone for time-based paths"`
	FlushRecords       int           `env:"S3_SINK_FLUSH_RECORDS" default:"10000" help:"rotate a file after this many records (0: no limit)"`
	FlushBytes         int64         `env:"S3_SINK_FLUSH_BYTES" default:"67108864" help:"rotate a file once it holds this many bytes (0: no limit)"`
	RotateInterval     time.Duration `env:"S3_SINK_ROTATE_INTERVAL" default:"0s" help:"rotate when a record's timestamp leaves the interval-aligned window of the file's first record (deterministic; 0: off)"`
	RotateMaxOpen      time.Duration `env:"S3_SINK_ROTATE_MAX_OPEN" default:"0s" help:"rotate a file open longer than this by the wall clock (not deterministic, see README; 0: off)"`
	ConditionalWrites  bool          `env:"S3_SINK_CONDITIONAL_WRITES" default:"true" help:"with S3_SINK_ROTATE_MAX_OPEN: write objects with If-None-Match so a replay never replaces an object another writer completed (needs store support)"`
	PartSize           int64         `env:"S3_SINK_PART_SIZE" default:"5242880" help:"multipart part size and per-file upload buffer (>= 5 MiB)"`
	Tombstones         string        `env:"S3_SINK_TOMBSTONES" default:"ignore" help:"records with a null value: ignore (skip), fail (stop the sink), dlq (dead-letter) or write (into _tombstones/ OCF files)"`
	UnknownSchemaGrace time.Duration `env:"S3_SINK_UNKNOWN_SCHEMA_GRACE" default:"10s" help:"how long records with a schema id the registry does not know wait (a replica may lag) before going to the DLQ"`
	DLQ                bool          `env:"S3_SINK_DLQ" default:"true" help:"send undecodable records to <topic>.dlq; false stops the sink on them"`
	FlushOnShutdown    bool          `env:"S3_SINK_FLUSH_ON_SHUTDOWN" default:"true" help:"on SIGTERM upload open files and commit before exiting"`
	SessionTimeout     time.Duration `env:"S3_SINK_SESSION_TIMEOUT" default:"30s" help:"consumer group session timeout"`
	RebalanceTimeout   time.Duration `env:"S3_SINK_REBALANCE_TIMEOUT" default:"30s" help:"consumer group rebalance timeout"`
	Heartbeat          time.Duration `env:"S3_SINK_HEARTBEAT_INTERVAL" default:"3s" help:"consumer group heartbeat interval"`
	CommitInterval     time.Duration `env:"S3_SINK_COMMIT_INTERVAL" default:"1s" help:"how often offsets of skipped or dead-lettered records are committed when no file completes"`

	// Limits (README, "Limits").
	MaxKeyBytes     int           `env:"S3_SINK_MAX_KEY_BYTES" default:"1024" help:"longest object key in bytes (S3 allows 1024); a longer field-partitioner path is shortened (cut + hash)"`
	MaxSegmentBytes int           `env:"S3_SINK_MAX_KEY_SEGMENT_BYTES" default:"255" help:"longest '/'-separated key segment in bytes (255: stores that keep objects as files); longer ones are shortened (cut + hash)"`
	MaxOpenFiles    int           `env:"S3_SINK_MAX_OPEN_FILES" default:"16" help:"open files per partition; a record needing another one first completes the least recently written file"`
	DLQMaxBytes     int           `env:"S3_SINK_DLQ_MAX_BYTES" default:"1044480" help:"largest dead letter in bytes (key + value + headers); larger ones are cut to fit, with sluice-original-size and sluice-truncated headers"`
	RetryAttempts   int           `env:"S3_SINK_RETRY_ATTEMPTS" default:"8" help:"consecutive failed attempts (S3 5xx/throttling, network, registry or DLQ outage) at one partition before its topic is parked"`
	RetryMaxDelay   time.Duration `env:"S3_SINK_RETRY_MAX_DELAY" default:"30s" help:"longest wait between those attempts (exponential from 100ms, with jitter)"`
	ParkRetryMin    time.Duration `env:"S3_SINK_PARK_RETRY_MIN" default:"30s" help:"first wait before a parked topic is retried"`
	ParkRetryMax    time.Duration `env:"S3_SINK_PARK_RETRY_MAX" default:"10m" help:"longest wait between retries of a parked topic (exponential from S3_SINK_PARK_RETRY_MIN, with jitter)"`
	TopicLabelLimit int           `env:"S3_SINK_TOPIC_LABEL_LIMIT" default:"500" help:"distinct topic label values in metrics; later topics are reported as _other"`
}

// KeyLimits are the object key limits.
func (s *Sink) KeyLimits() objkey.Limits {
	return objkey.Limits{MaxKey: s.MaxKeyBytes, MaxSegment: s.MaxSegmentBytes}
}

// validateLimits checks the limit settings and what depends on them.
func (s *Sink) validateLimits() error {
	if s.MaxKeyBytes < 256 || s.MaxKeyBytes > objkey.S3MaxKeyBytes {
		return service.Invalid("S3_SINK_MAX_KEY_BYTES", "want 256 to %d, got %d", objkey.S3MaxKeyBytes, s.MaxKeyBytes)
	}
	if s.MaxSegmentBytes < objkey.MinSegmentBytes || s.MaxSegmentBytes > s.MaxKeyBytes {
		return service.Invalid("S3_SINK_MAX_KEY_SEGMENT_BYTES", "want %d to S3_SINK_MAX_KEY_BYTES (%d), got %d", objkey.MinSegmentBytes, s.MaxKeyBytes, s.MaxSegmentBytes)
	}
	if _, err := objkey.NewLayout(s.Prefix, s.KeyLimits()); err != nil {
		return service.Invalid("S3_SINK_PREFIX", "%v", err)
	}
	switch s.Partitioner {
	case "field":
		if _, err := partition.NewField(s.PartitionField, s.MaxSegmentBytes); err != nil {
			return service.Invalid("S3_SINK_PARTITION_FIELD", "%v", err)
		}
	case "time":
		tp, err := partition.NewTime(s.PathFormat, s.TimeZone, "")
		if err != nil {
			return service.Invalid("S3_SINK_PATH_FORMAT", "%v", err)
		}
		if err := tp.CheckLimits(s.MaxSegmentBytes, s.MaxKeyBytes/4); err != nil {
			return service.Invalid("S3_SINK_PATH_FORMAT", "%v (limits: S3_SINK_MAX_KEY_SEGMENT_BYTES per segment, a quarter of S3_SINK_MAX_KEY_BYTES in all)", err)
		}
	}
	if s.MaxOpenFiles < 1 {
		return service.Invalid("S3_SINK_MAX_OPEN_FILES", "must be at least 1, got %d", s.MaxOpenFiles)
	}
	if s.DLQMaxBytes < 4096 {
		return service.Invalid("S3_SINK_DLQ_MAX_BYTES", "must be at least 4096 (room for the sluice-* headers), got %d", s.DLQMaxBytes)
	}
	if s.RetryAttempts < 1 {
		return service.Invalid("S3_SINK_RETRY_ATTEMPTS", "must be at least 1, got %d", s.RetryAttempts)
	}
	if s.RetryMaxDelay < 100*time.Millisecond {
		return service.Invalid("S3_SINK_RETRY_MAX_DELAY", "must be at least 100ms, got %s", s.RetryMaxDelay)
	}
	if s.ParkRetryMin <= 0 || s.ParkRetryMax < s.ParkRetryMin {
		return service.Invalid("S3_SINK_PARK_RETRY_MAX", "S3_SINK_PARK_RETRY_MIN must be positive and S3_SINK_PARK_RETRY_MAX at least as long, got %s and %s", s.ParkRetryMin, s.ParkRetryMax)
	}
	if s.TopicLabelLimit < 1 {
		return service.Invalid("S3_SINK_TOPIC_LABEL_LIMIT", "must be at least 1, got %d", s.TopicLabelLimit)
	}
	return nil
}

// Validate checks values that the field types alone cannot.
func (s *Sink) Validate() error {
	if s.GroupID == "" {
		return service.Invalid("S3_SINK_GROUP_ID", "must not be empty")
	}
	if len(s.Topics) == 0 && s.TopicRegex == "" {
		return service.Invalid("S3_SINK_TOPICS", "set S3_SINK_TOPICS or S3_SINK_TOPIC_REGEX")
	}
	if len(s.Topics) > 0 && s.TopicRegex != "" {
		return service.Invalid("S3_SINK_TOPIC_REGEX", "set either S3_SINK_TOPICS or S3_SINK_TOPIC_REGEX, not both")
	}
	if s.TopicRegex != "" {
		if _, err := regexp.Compile(s.TopicRegex); err != nil {
			return service.Invalid("S3_SINK_TOPIC_REGEX", "%v", err)
		}
	}
	if s.TopicRefresh <= 0 {
		return service.Invalid("S3_SINK_TOPIC_REFRESH", "must be positive")
	}
	if strings.HasPrefix(s.Prefix, "/") || strings.HasSuffix(s.Prefix, "/") {
		return service.Invalid("S3_SINK_PREFIX", "must not start or end with '/', got %q", s.Prefix)
	}
	switch s.Codec {
	case "null", "deflate", "snappy":
	default:
		return service.Invalid("S3_SINK_CODEC", "want null, deflate or snappy (goavro has no zstandard), got %q", s.Codec)
	}
	switch s.Partitioner {
	case "default":
	case "field":
		if s.PartitionField == "" {
			return service.Invalid("S3_SINK_PARTITION_FIELD", "required with S3_SINK_PARTITIONER=field")
		}
	case "time":
		if s.PathFormat == "" {
			return service.Invalid("S3_SINK_PATH_FORMAT", "required with S3_SINK_PARTITIONER=time")
		}
	default:
		return service.Invalid("S3_SINK_PARTITIONER", "want default, field or time, got %q", s.Partitioner)
	}
	switch s.TimestampSource {
	case "record":
	case "field":
		if s.TimestampField == "" {
			return service.Invalid("S3_SINK_TIMESTAMP_FIELD", "required with S3_SINK_TIMESTAMP_SOURCE=field")
		}
	default:
		return service.Invalid("S3_SINK_TIMESTAMP_SOURCE", "want record or field, got %q", s.TimestampSource)
	}
	if _, err := time.LoadLocation(s.TimeZone); err != nil {
		return service.Invalid("S3_SINK_TIMEZONE", "%v", err)
	}
	if s.FlushRecords < 0 {
		return service.Invalid("S3_SINK_FLUSH_RECORDS", "must not be negative")
	}
	if s.FlushBytes < 0 {
		return service.Invalid("S3_SINK_FLUSH_BYTES", "must not be negative")
	}
	if s.FlushRecords == 0 && s.FlushBytes == 0 && s.RotateInterval == 0 && s.RotateMaxOpen == 0 {
		return service.Invalid("S3_SINK_FLUSH_RECORDS", "at least one of S3_SINK_FLUSH_RECORDS, S3_SINK_FLUSH_BYTES, S3_SINK_ROTATE_INTERVAL, S3_SINK_ROTATE_MAX_OPEN must be set")
	}
	if s.RotateInterval < 0 {
		return service.Invalid("S3_SINK_ROTATE_INTERVAL", "must not be negative")
	}
	if s.RotateMaxOpen < 0 {
		return service.Invalid("S3_SINK_ROTATE_MAX_OPEN", "must not be negative")
	}
	if s.PartSize < MinPartSize {
		return service.Invalid("S3_SINK_PART_SIZE", "must be at least %d (S3's minimum part size), got %d", MinPartSize, s.PartSize)
	}
	switch s.Tombstones {
	case "ignore", "fail", "dlq", "write":
	default:
		return service.Invalid("S3_SINK_TOMBSTONES", "want ignore, fail, dlq or write, got %q", s.Tombstones)
	}
	if s.SessionTimeout <= 0 || s.RebalanceTimeout <= 0 || s.Heartbeat <= 0 || s.Heartbeat >= s.SessionTimeout {
		return service.Invalid("S3_SINK_HEARTBEAT_INTERVAL", "session, rebalance and heartbeat must be positive and heartbeat below the session timeout")
	}
	if s.UnknownSchemaGrace < 0 {
		return service.Invalid("S3_SINK_UNKNOWN_SCHEMA_GRACE", "must not be negative")
	}
	if s.CommitInterval <= 0 {
		return service.Invalid("S3_SINK_COMMIT_INTERVAL", "must be positive")
	}
	return s.validateLimits()
}

// Config is everything s3-sink reads at start.
type Config struct {
	Service   service.Options
	Kafka     kafka.Config
	Registry  registry.Config
	S3        S3
	Sink      Sink
	Lifecycle Lifecycle
	Avro      avro.Limits
	AdminAddr string `env:"S3_SINK_ADMIN_ADDR" default:":9102" help:"listen address for /metrics, /healthz and /readyz"`
}

// Validate checks values that the field types alone cannot.
func (c *Config) Validate() error {
	if c.AdminAddr == "" {
		return service.Invalid("S3_SINK_ADMIN_ADDR", "must not be empty")
	}
	return nil
}

// Load reads the configuration from the environment and args.
func Load(args []string, lookup func(string) (string, bool)) (*Config, error) {
	var c Config
	if err := service.LoadConfig(&c, args, lookup); err != nil {
		return nil, err
	}
	if c.Lifecycle.Prefix == "" {
		c.Lifecycle.Prefix = c.Sink.Prefix
	}
	return &c, nil
}
