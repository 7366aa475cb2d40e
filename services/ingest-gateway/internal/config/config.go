// Package config holds the ingest-gateway configuration, loaded from GATEWAY_*
// and shared KAFKA_* / REGISTRY_* environment variables (or the matching flags).
package config

import (
	"os"
	"path"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/service"
)

// Config is everything ingest-gateway reads at start.
type Config struct {
	Service  service.Options
	Kafka    kafka.Config
	Registry registry.Config
	Avro     avro.Limits

	HTTPAddr  string `env:"GATEWAY_HTTP_ADDR" default:":8080" help:"listen address of the HTTP API (also /metrics, /healthz and /readyz unless GATEWAY_ADMIN_ADDR is set)"`
	AdminAddr string `env:"GATEWAY_ADMIN_ADDR" help:"listen address (plain HTTP) for /metrics, /healthz and /readyz on a port of their own; the API port then serves none of them (the Helm chart sets it); empty serves them on the API port"`
	GRPCAddr  string `env:"GATEWAY_GRPC_ADDR" default:":9090" help:"listen address of the gRPC IngestService (empty disables gRPC)"`

	Topics           []string `env:"GATEWAY_TOPICS" help:"comma-separated topics or glob patterns producers may write to; '*' allows every topic except internal ones (leading '_' or '__')"`
	DeadLetterTopics []string `env:"GATEWAY_DEAD_LETTER_TOPICS" help:"topics or glob patterns whose invalid records go to <topic>.dlq instead of being rejected"`
	AnySchemaTopics  []string `env:"GATEWAY_ANY_SCHEMA_TOPICS" help:"topics or glob patterns whose records may use any registered schema id; other topics take only schemas registered under <topic>-value / <topic>-key (422 42206 per record otherwise)"`
	AutoCreateTopics bool     `env:"GATEWAY_AUTO_CREATE_TOPICS" default:"false" help:"create an allowed topic that does not exist yet (otherwise 404 40401)"`
	TopicPartitions  int      `env:"GATEWAY_TOPIC_PARTITIONS" default:"3" help:"partitions of auto-created topics and dead-letter topics"`

	MaxRequestBytes int64         `env:"GATEWAY_MAX_REQUEST_BYTES" default:"16777216" help:"largest request body accepted (413 beyond); NDJSON streams are bounded per line instead"`
	MaxRecordBytes  int           `env:"GATEWAY_MAX_RECORD_BYTES" default:"1000000" help:"largest encoded record (key + value + headers)"`
	MaxRecords      int           `env:"GATEWAY_MAX_RECORDS" default:"10000" help:"most records in one request or gRPC batch"`
	InflightBytes   int64         `env:"GATEWAY_INFLIGHT_BYTES" default:"268435456" help:"budget of request bytes held by all in-flight requests together; 429 with Retry-After when exhausted"`
	ProduceTimeout  time.Duration `env:"GATEWAY_PRODUCE_TIMEOUT" default:"10s" help:"how long a request waits for Kafka acks before answering 503 with Retry-After"`
	BodyTimeout     time.Duration `env:"GATEWAY_BODY_TIMEOUT" default:"60s" help:"deadline for receiving a non-streamed request body (slow clients must not hold the in-flight budget)"`
	RetryAfter      time.Duration `env:"GATEWAY_RETRY_AFTER" default:"1s" help:"Retry-After sent with 429 and 503"`
	StreamChunk     int           `env:"GATEWAY_STREAM_CHUNK" default:"500" help:"records per produce call when streaming NDJSON or v3 records"`

	MaxTimestampSkew time.Duration `env:"GATEWAY_MAX_TIMESTAMP_SKEW" default:"1h" help:"how far in the future a producer-given record timestamp may be (Kafka 4's message.timestamp.after.max.ms default); 0 disables; past it the record fails with 422 42207 or is dead-lettered"`
	MaxTimestampAge  time.Duration `env:"GATEWAY_MAX_TIMESTAMP_AGE" default:"168h" help:"how old a producer-given record timestamp may be (Kafka's default retention); 0 disables; past it the record fails with 422 42207 or is dead-lettered"`

	MetricTopics   int `env:"GATEWAY_METRIC_TOPICS" default:"1000" help:"distinct topic label values on the gateway's metrics; later topics are reported as _other (sluice_gateway_metric_label_overflow_total)"`
	TopicCacheSize int `env:"GATEWAY_TOPIC_CACHE_SIZE" default:"10000" help:"topics (and key subjects) whose metadata or absence the gateway remembers; the oldest are forgotten beyond"`

	APIKeysReload time.Duration `env:"GATEWAY_API_KEYS_RELOAD" default:"10s" help:"how often the API keys file is re-read; a revoked key's open streams stop being accepted within one interval"`

	IdleTimeout       time.Duration `env:"GATEWAY_IDLE_TIMEOUT" default:"2m" help:"idle keep-alive connections are closed after this (HTTP IdleTimeout, gRPC MaxConnectionIdle)"`
	ReadHeaderTimeout time.Duration `env:"GATEWAY_READ_HEADER_TIMEOUT" default:"10s" help:"deadline for a request's headers (HTTP) or a connection's handshake (gRPC ConnectionTimeout)"`
	MaxHeaderBytes    int           `env:"GATEWAY_MAX_HEADER_BYTES" default:"1048576" help:"largest request header block (HTTP MaxHeaderBytes, gRPC MaxHeaderListSize)"`

	GRPCMaxConcurrentStreams int           `env:"GATEWAY_GRPC_MAX_CONCURRENT_STREAMS" default:"100" help:"concurrent gRPC calls per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)"`
	GRPCMaxSendBytes         int           `env:"GATEWAY_GRPC_MAX_SEND_BYTES" default:"16777216" help:"largest gRPC response message (the receive limit is GATEWAY_MAX_REQUEST_BYTES)"`
	GRPCKeepaliveMinTime     time.Duration `env:"GATEWAY_GRPC_KEEPALIVE_MIN_TIME" default:"10s" help:"clients pinging more often than this are disconnected (GOAWAY ENHANCE_YOUR_CALM); pings at this pace are allowed on idle connections too (GATEWAY_IDLE_TIMEOUT closes those)"`

	MetadataTTL time.Duration `env:"GATEWAY_METADATA_TTL" default:"3s" help:"how often the gateway refreshes Kafka metadata, i.e. how soon a topic created elsewhere becomes usable"`

	BatchTimeout time.Duration `env:"GATEWAY_BATCH_TIMEOUT" default:"0s" help:"how long a partition's batch waits for more records when no request to that partition is in flight (records arriving while one is always batch up)"`
	BatchSize    int           `env:"GATEWAY_BATCH_SIZE" default:"2000" help:"most records in one Kafka produce batch per partition"`
	BatchBytes   int64         `env:"GATEWAY_BATCH_BYTES" default:"1048576" help:"largest Kafka produce batch per partition (keep at or below the brokers' max.message.bytes)"`
	SplitBudget  int           `env:"GATEWAY_BATCH_SPLIT_BUDGET" default:"32" help:"extra produce requests spent cutting one request's records apart after Kafka refused their batch for a record-level reason (INVALID_TIMESTAMP, MESSAGE_TOO_LARGE, ...); cuts between requests are always made"`

	APIKeysFile string `env:"GATEWAY_API_KEYS_FILE" help:"JSON file of API keys (hashed secrets and topic patterns), e.g. a mounted Kubernetes secret; empty disables authentication"`

	TLSCertFile string `env:"GATEWAY_TLS_CERT_FILE" help:"PEM certificate for TLS on the HTTP and gRPC listeners"`
	TLSKeyFile  string `env:"GATEWAY_TLS_KEY_FILE" help:"PEM key for GATEWAY_TLS_CERT_FILE"`

	ClusterID string `env:"GATEWAY_CLUSTER_ID" default:"sluice" help:"cluster id accepted and reported by the Confluent v3 API"`
}

// Validate checks values that the field types alone cannot.
func (c *Config) Validate() error {
	if c.HTTPAddr == "" {
		return service.Invalid("GATEWAY_HTTP_ADDR", "must not be empty")
	}
	if c.AdminAddr != "" && (c.AdminAddr == c.HTTPAddr || c.AdminAddr == c.GRPCAddr) {
		return service.Invalid("GATEWAY_ADMIN_ADDR", "must differ from GATEWAY_HTTP_ADDR and GATEWAY_GRPC_ADDR, got %q", c.AdminAddr)
	}
	if len(c.Topics) == 0 {
		return service.Invalid("GATEWAY_TOPICS", "list at least one topic or pattern ('*' in development)")
	}
	for name, ps := range map[string][]string{"GATEWAY_TOPICS": c.Topics, "GATEWAY_DEAD_LETTER_TOPICS": c.DeadLetterTopics, "GATEWAY_ANY_SCHEMA_TOPICS": c.AnySchemaTopics} {
		for _, p := range ps {
			if _, err := path.Match(p, "x"); err != nil {
				return service.Invalid(name, "bad pattern %q: %v", p, err)
			}
		}
	}
	if c.MaxTimestampSkew < 0 {
		return service.Invalid("GATEWAY_MAX_TIMESTAMP_SKEW", "must not be negative (0 disables)")
	}
	if c.MaxTimestampAge < 0 {
		return service.Invalid("GATEWAY_MAX_TIMESTAMP_AGE", "must not be negative (0 disables)")
	}
	if c.MetricTopics <= 0 {
		return service.Invalid("GATEWAY_METRIC_TOPICS", "must be positive")
	}
	if c.TopicCacheSize <= 0 {
		return service.Invalid("GATEWAY_TOPIC_CACHE_SIZE", "must be positive")
	}
	if c.APIKeysReload <= 0 {
		return service.Invalid("GATEWAY_API_KEYS_RELOAD", "must be positive")
	}
	if c.IdleTimeout <= 0 {
		return service.Invalid("GATEWAY_IDLE_TIMEOUT", "must be positive")
	}
	if c.ReadHeaderTimeout <= 0 {
		return service.Invalid("GATEWAY_READ_HEADER_TIMEOUT", "must be positive")
	}
	if c.MaxHeaderBytes < 4096 {
		return service.Invalid("GATEWAY_MAX_HEADER_BYTES", "must be at least 4096")
	}
	if c.GRPCMaxConcurrentStreams <= 0 {
		return service.Invalid("GATEWAY_GRPC_MAX_CONCURRENT_STREAMS", "must be positive")
	}
	if c.GRPCMaxSendBytes < 1<<16 {
		return service.Invalid("GATEWAY_GRPC_MAX_SEND_BYTES", "must be at least 65536")
	}
	if c.GRPCKeepaliveMinTime <= 0 {
		return service.Invalid("GATEWAY_GRPC_KEEPALIVE_MIN_TIME", "must be positive")
	}
	if c.TopicPartitions <= 0 {
		return service.Invalid("GATEWAY_TOPIC_PARTITIONS", "must be positive")
	}
	if c.MaxRecordBytes <= 0 || int64(c.MaxRecordBytes) >= c.BatchBytes {
		return service.Invalid("GATEWAY_MAX_RECORD_BYTES", "must be positive and below GATEWAY_BATCH_BYTES (%d)", c.BatchBytes)
	}
	if c.MaxRequestBytes <= 0 {
		return service.Invalid("GATEWAY_MAX_REQUEST_BYTES", "must be positive")
	}
	if c.InflightBytes < c.MaxRequestBytes {
		return service.Invalid("GATEWAY_INFLIGHT_BYTES", "must be at least GATEWAY_MAX_REQUEST_BYTES (%d)", c.MaxRequestBytes)
	}
	if c.MaxRecords <= 0 {
		return service.Invalid("GATEWAY_MAX_RECORDS", "must be positive")
	}
	if c.StreamChunk <= 0 {
		return service.Invalid("GATEWAY_STREAM_CHUNK", "must be positive")
	}
	if c.StreamChunk > c.MaxRecords {
		c.StreamChunk = c.MaxRecords
	}
	if c.ProduceTimeout <= 0 {
		return service.Invalid("GATEWAY_PRODUCE_TIMEOUT", "must be positive")
	}
	if c.BodyTimeout <= 0 {
		return service.Invalid("GATEWAY_BODY_TIMEOUT", "must be positive")
	}
	if c.RetryAfter < time.Second {
		return service.Invalid("GATEWAY_RETRY_AFTER", "must be at least 1s (Retry-After has whole seconds)")
	}
	if c.MetadataTTL <= 0 {
		return service.Invalid("GATEWAY_METADATA_TTL", "must be positive")
	}
	if c.BatchTimeout < 0 {
		return service.Invalid("GATEWAY_BATCH_TIMEOUT", "must not be negative")
	}
	if c.SplitBudget < 0 {
		return service.Invalid("GATEWAY_BATCH_SPLIT_BUDGET", "must not be negative")
	}
	if c.BatchSize <= 0 {
		return service.Invalid("GATEWAY_BATCH_SIZE", "must be positive")
	}
	if c.APIKeysFile != "" {
		if _, err := os.Stat(c.APIKeysFile); err != nil {
			return service.Invalid("GATEWAY_API_KEYS_FILE", "cannot read: %v", err)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		if c.TLSCertFile == "" {
			return service.Invalid("GATEWAY_TLS_CERT_FILE", "required when GATEWAY_TLS_KEY_FILE is set")
		}
		return service.Invalid("GATEWAY_TLS_KEY_FILE", "required when GATEWAY_TLS_CERT_FILE is set")
	}
	if c.ClusterID == "" {
		return service.Invalid("GATEWAY_CLUSTER_ID", "must not be empty")
	}
	return nil
}

// Load reads the configuration from the environment and args.
func Load(args []string, lookup func(string) (string, bool)) (*Config, error) {
	var c Config
	if err := service.LoadConfig(&c, args, lookup); err != nil {
		return nil, err
	}
	return &c, nil
}
