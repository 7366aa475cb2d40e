// Package config holds the search-sink configuration, loaded from
// SEARCH_SINK_*, the shared ES_*, KAFKA_* and REGISTRY_* environment
// variables (or the matching flags).
package config

import (
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
	"github.com/sluicehq/sluice/services/search-sink/internal/mapping"
)

// ES is the shared ES_* configuration.
type ES struct {
	URLs               []string      `env:"ES_URL" default:"http://127.0.0.1:9200" help:"comma-separated Elasticsearch/OpenSearch base URLs"`
	Username           string        `env:"ES_USERNAME" help:"basic-auth user"`
	Password           string        `env:"ES_PASSWORD" secret:"true" help:"basic-auth password"`
	APIKey             string        `env:"ES_API_KEY" secret:"true" help:"Elasticsearch API key (base64 id:key), instead of basic auth"`
	Flavor             string        `env:"ES_FLAVOR" default:"elasticsearch" help:"elasticsearch (8.x, product check enforced) or opensearch (2.x)"`
	CAFile             string        `env:"ES_CA_FILE" help:"PEM CA bundle for https URLs"`
	InsecureSkipVerify bool          `env:"ES_TLS_INSECURE_SKIP_VERIFY" default:"false" help:"do not verify the cluster certificate (testing only)"`
	Timeout            time.Duration `env:"ES_TIMEOUT" default:"30s" help:"response header timeout per request"`
	AWSSigV4           bool          `env:"ES_AWS_SIGV4" default:"false" help:"sign requests with AWS SigV4 (Amazon OpenSearch Service); credentials from the default AWS chain"`
	AWSRegion          string        `env:"ES_AWS_REGION" help:"AWS region for SigV4 (default: AWS_REGION)"`
	AWSService         string        `env:"ES_AWS_SERVICE" default:"es" help:"SigV4 service: es (managed domains) or aoss (serverless)"`
}

// Validate checks the ES_* values.
func (e *ES) Validate() error {
	if len(e.URLs) == 0 {
		return service.Invalid("ES_URL", "at least one URL is required")
	}
	for _, s := range e.URLs {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return service.Invalid("ES_URL", "want http(s) URLs, got %q", s)
		}
	}
	switch e.Flavor {
	case "elasticsearch", "opensearch":
	default:
		return service.Invalid("ES_FLAVOR", "want elasticsearch or opensearch, got %q", e.Flavor)
	}
	if e.APIKey != "" && e.Username != "" {
		return service.Invalid("ES_API_KEY", "set either ES_API_KEY or ES_USERNAME, not both")
	}
	if e.Username != "" && e.Password == "" {
		return service.Invalid("ES_PASSWORD", "required with ES_USERNAME")
	}
	if e.CAFile != "" {
		if _, err := os.Stat(e.CAFile); err != nil {
			return service.Invalid("ES_CA_FILE", "cannot read %s: %v", e.CAFile, err)
		}
	}
	if e.Timeout <= 0 {
		return service.Invalid("ES_TIMEOUT", "must be positive")
	}
	if e.AWSSigV4 {
		if e.Flavor != "opensearch" {
			return service.Invalid("ES_AWS_SIGV4", "SigV4 signing is for Amazon OpenSearch Service: set ES_FLAVOR=opensearch")
		}
		if e.AWSRegion == "" {
			e.AWSRegion = os.Getenv("AWS_REGION")
		}
		if e.AWSRegion == "" {
			return service.Invalid("ES_AWS_REGION", "required with ES_AWS_SIGV4 (or set AWS_REGION)")
		}
		if e.AWSService != "es" && e.AWSService != "aoss" {
			return service.Invalid("ES_AWS_SERVICE", "want es or aoss, got %q", e.AWSService)
		}
		if e.Username != "" || e.APIKey != "" {
			return service.Invalid("ES_AWS_SIGV4", "cannot be combined with ES_USERNAME or ES_API_KEY")
		}
	}
	return nil
}

// Config is everything search-sink reads at start.
type Config struct {
	Service  service.Options
	Kafka    kafka.Config
	Registry registry.Config
	ES       ES
	Avro     avro.Limits
	Mapping  mapping.Limits

	AdminAddr     string        `env:"SEARCH_SINK_ADMIN_ADDR" default:":9103" help:"listen address for /metrics, /healthz and /readyz"`
	GroupID       string        `env:"SEARCH_SINK_GROUP_ID" default:"sluice-search-sink" help:"Kafka consumer group"`
	Topics        []string      `env:"SEARCH_SINK_TOPICS" help:"topics to index; empty: every topic except internal ones (leading _) and DLQs (.dlq), re-evaluated every SEARCH_SINK_TOPIC_REFRESH"`
	TopicRefresh  time.Duration `env:"SEARCH_SINK_TOPIC_REFRESH" default:"30s" help:"how often the topic list is re-evaluated when discovering"`
	StartOffset   string        `env:"SEARCH_SINK_START_OFFSET" default:"earliest" help:"where a new group starts: earliest or latest"`
	IndexMode     string        `env:"SEARCH_SINK_INDEX_MODE" default:"index" help:"index (date-pattern indices, op_type index) or datastream (op_type create)"`
	IndexPattern  string        `env:"SEARCH_SINK_INDEX_PATTERN" default:"<topic>-{yyyy.MM.dd}" help:"index name pattern; {..} is a date (yyyy yy MM dd HH) taken from the record timestamp"`
	DSType        string        `env:"SEARCH_SINK_DATA_STREAM_TYPE" default:"logs" help:"data stream type in <type>-<topic>-<namespace>"`
	DSNamespace   string        `env:"SEARCH_SINK_DATA_STREAM_NAMESPACE" default:"default" help:"data stream namespace"`
	IDMode        string        `env:"SEARCH_SINK_ID_MODE" default:"offset" help:"offset (_id=<topic>+<partition>+<offset>) or key (_id=record key, external version=offset)"`
	Decimals      string        `env:"SEARCH_SINK_DECIMALS" default:"string" help:"Avro decimals as string (exact) or number"`
	Strings       string        `env:"SEARCH_SINK_STRINGS" default:"keyword" help:"Avro strings mapped as keyword, text or text+keyword"`
	KafkaMeta     bool          `env:"SEARCH_SINK_KAFKA_METADATA" default:"true" help:"add topic, partition, offset and key under SEARCH_SINK_KAFKA_METADATA_FIELD"`
	KafkaMetaName string        `env:"SEARCH_SINK_KAFKA_METADATA_FIELD" default:"_kafka" help:"field name for Kafka metadata"`
	Policy        string        `env:"SEARCH_SINK_ILM_POLICY" default:"sluice-search-sink" help:"ILM (Elasticsearch) or ISM (OpenSearch) policy name"`
	Retention     int           `env:"SEARCH_SINK_RETENTION_DAYS" default:"30" help:"delete indices after N days (0: no policy)"`
	Shards        int           `env:"SEARCH_SINK_SHARDS" default:"1" help:"primary shards per index"`
	Replicas      int           `env:"SEARCH_SINK_REPLICAS" default:"-1" help:"replicas per index (-1: cluster default)"`
	Workers       int           `env:"SEARCH_SINK_WORKERS" default:"2" help:"bulk indexer workers (concurrent bulk requests)"`
	FlushActions  int           `env:"SEARCH_SINK_FLUSH_ACTIONS" default:"0" help:"documents added since the last flush that trigger a flush of every worker (0: only bytes and interval, the fastest)"`
	FlushBytes    int           `env:"SEARCH_SINK_FLUSH_BYTES" default:"5242880" help:"bulk request size that triggers a flush"`
	FlushInterval time.Duration `env:"SEARCH_SINK_FLUSH_INTERVAL" default:"1s" help:"longest a document waits before its bulk request is sent"`
	MaxDocs       int           `env:"SEARCH_SINK_MAX_BUFFERED_DOCS" default:"20000" help:"documents fetched but not yet acknowledged before consumption pauses"`
	MaxBytes      int           `env:"SEARCH_SINK_MAX_BUFFERED_BYTES" default:"67108864" help:"bytes fetched but not yet acknowledged before consumption pauses"`
	CommitEvery   time.Duration `env:"SEARCH_SINK_COMMIT_INTERVAL" default:"1s" help:"how often acknowledged offsets are committed"`
	RetryBase     time.Duration `env:"SEARCH_SINK_RETRY_BASE" default:"100ms" help:"first retry delay for 429/5xx items and failed bulk requests (doubles per attempt)"`
	RetryMax      time.Duration `env:"SEARCH_SINK_RETRY_MAX" default:"30s" help:"cap on retry delays"`
	DrainTimeout  time.Duration `env:"SEARCH_SINK_DRAIN_TIMEOUT" default:"10s" help:"bound on flushing in-flight documents at rebalance or shutdown"`
	RulesFile     string        `env:"SEARCH_SINK_RULES_FILE" help:"YAML anomaly rules; empty disables detection"`
	SlackURL      string        `env:"SEARCH_SINK_SLACK_WEBHOOK_URL" secret:"true" help:"Slack incoming webhook for alerts"`
	WebhookURL    string        `env:"SEARCH_SINK_ALERT_WEBHOOK_URL" secret:"true" help:"generic JSON webhook for alerts"`
	AlertsTopic   string        `env:"SEARCH_SINK_ALERTS_TOPIC" default:"_sluice-alerts" help:"Kafka topic for alerts (- disables); must start with _sluice- so that no producer can write to it through a topic pattern; never indexed as data"`
	AlertsIndex   string        `env:"SEARCH_SINK_ALERTS_INDEX" default:"sluice-alerts" help:"index for alerts (- disables)"`
	AlertRetries  int           `env:"SEARCH_SINK_ALERT_RETRIES" default:"5" help:"delivery attempts per alert and destination"`

	// Limits (README "Limits").
	MaxRecordAge      time.Duration `env:"SEARCH_SINK_MAX_RECORD_AGE" default:"0s" help:"records older than this (record time) go to the DLQ; 0: the retention window (SEARCH_SINK_RETENTION_DAYS), no bound when that is 0 too"`
	MaxFutureSkew     time.Duration `env:"SEARCH_SINK_MAX_FUTURE_SKEW" default:"1h" help:"records timestamped further than this ahead of the clock go to the DLQ (0: no bound)"`
	NewIndicesPerHour int           `env:"SEARCH_SINK_MAX_NEW_INDICES_PER_HOUR" default:"24" help:"new indices one topic may create per hour; a topic past it is parked until a slot frees (0: no bound; index mode only)"`
	MaxDocBytes       int           `env:"SEARCH_SINK_MAX_DOCUMENT_BYTES" default:"10485760" help:"largest document (JSON bytes) sent to the cluster; larger records go to the DLQ. Keep it below the cluster's http.max_content_length"`
	DLQMaxBytes       int           `env:"SEARCH_SINK_DLQ_MAX_BYTES" default:"1044480" help:"dead letters are cut to this size (key, value, producer headers) with sluice-original-size and sluice-truncated headers; at most the DLQ topics' max.message.bytes"`
	RetryAttempts     int           `env:"SEARCH_SINK_RETRY_ATTEMPTS" default:"10" help:"attempts per record for transient failures (bulk 429/5xx/connection, dead-letter writes, registry lookups) before its topic is parked"`
	ParkRetryBase     time.Duration `env:"SEARCH_SINK_PARK_RETRY_BASE" default:"30s" help:"first wait before a parked topic is retried (doubles, with jitter, per failed retry)"`
	ParkRetryMax      time.Duration `env:"SEARCH_SINK_PARK_RETRY_MAX" default:"10m" help:"cap on the wait between retries of a parked topic"`
	MaxTopicLabels    int           `env:"SEARCH_SINK_MAX_TOPIC_LABELS" default:"100" help:"distinct topics in metric labels; later topics are reported as _other"`
	RuleStateBytes    int           `env:"SEARCH_SINK_RULES_MAX_STATE_BYTES" default:"67108864" help:"bound on the memory of all rule state (series, terms, de-duplication); what does not fit is dropped and counted"`
	RuleTermBytes     int           `env:"SEARCH_SINK_RULES_MAX_TERM_BYTES" default:"256" help:"longer group-by values and terms are cut and end with a hash of the whole value"`
}

// Validate checks values that the field types alone cannot.
func (c *Config) Validate() error {
	if c.AdminAddr == "" {
		return service.Invalid("SEARCH_SINK_ADMIN_ADDR", "must not be empty")
	}
	if c.GroupID == "" {
		return service.Invalid("SEARCH_SINK_GROUP_ID", "must not be empty")
	}
	if c.TopicRefresh <= 0 {
		return service.Invalid("SEARCH_SINK_TOPIC_REFRESH", "must be positive")
	}
	if c.StartOffset != "earliest" && c.StartOffset != "latest" {
		return service.Invalid("SEARCH_SINK_START_OFFSET", "want earliest or latest, got %q", c.StartOffset)
	}
	if _, err := c.Namer(); err != nil {
		if c.IndexMode == string(document.ModeDataStream) {
			return service.Invalid("SEARCH_SINK_DATA_STREAM_NAMESPACE", "%v", err)
		}
		if c.IndexMode != string(document.ModeIndex) {
			return service.Invalid("SEARCH_SINK_INDEX_MODE", "%v", err)
		}
		return service.Invalid("SEARCH_SINK_INDEX_PATTERN", "%v", err)
	}
	switch c.IDMode {
	case "offset":
	case "key":
		if c.IndexMode == string(document.ModeDataStream) {
			return service.Invalid("SEARCH_SINK_ID_MODE", "key ids need overwrites, which data streams do not allow: use offset or SEARCH_SINK_INDEX_MODE=index")
		}
	default:
		return service.Invalid("SEARCH_SINK_ID_MODE", "want offset or key, got %q", c.IDMode)
	}
	if c.Decimals != "string" && c.Decimals != "number" {
		return service.Invalid("SEARCH_SINK_DECIMALS", "want string or number, got %q", c.Decimals)
	}
	switch c.Strings {
	case "keyword", "text", "text+keyword":
	default:
		return service.Invalid("SEARCH_SINK_STRINGS", "want keyword, text or text+keyword, got %q", c.Strings)
	}
	if c.KafkaMeta && c.KafkaMetaName == "" {
		return service.Invalid("SEARCH_SINK_KAFKA_METADATA_FIELD", "must not be empty when SEARCH_SINK_KAFKA_METADATA is true")
	}
	if c.Retention < 0 {
		return service.Invalid("SEARCH_SINK_RETENTION_DAYS", "must not be negative")
	}
	if c.Shards < 1 {
		return service.Invalid("SEARCH_SINK_SHARDS", "must be at least 1")
	}
	if c.Replicas < -1 {
		return service.Invalid("SEARCH_SINK_REPLICAS", "must be -1 or more")
	}
	for name, v := range map[string]int{"SEARCH_SINK_WORKERS": c.Workers, "SEARCH_SINK_FLUSH_BYTES": c.FlushBytes, "SEARCH_SINK_MAX_BUFFERED_DOCS": c.MaxDocs, "SEARCH_SINK_MAX_BUFFERED_BYTES": c.MaxBytes, "SEARCH_SINK_ALERT_RETRIES": c.AlertRetries} {
		if v <= 0 {
			return service.Invalid(name, "must be positive")
		}
	}
	if c.FlushActions < 0 {
		return service.Invalid("SEARCH_SINK_FLUSH_ACTIONS", "must not be negative")
	}
	if c.MaxBytes < c.FlushBytes {
		return service.Invalid("SEARCH_SINK_MAX_BUFFERED_BYTES", "must be at least SEARCH_SINK_FLUSH_BYTES (%d)", c.FlushBytes)
	}
	for name, v := range map[string]time.Duration{"SEARCH_SINK_FLUSH_INTERVAL": c.FlushInterval, "SEARCH_SINK_COMMIT_INTERVAL": c.CommitEvery, "SEARCH_SINK_RETRY_BASE": c.RetryBase, "SEARCH_SINK_RETRY_MAX": c.RetryMax, "SEARCH_SINK_DRAIN_TIMEOUT": c.DrainTimeout} {
		if v <= 0 {
			return service.Invalid(name, "must be positive")
		}
	}
	if c.RulesFile != "" {
		if _, err := os.Stat(c.RulesFile); err != nil {
			return service.Invalid("SEARCH_SINK_RULES_FILE", "cannot read %s: %v", c.RulesFile, err)
		}
	}
	for name, v := range map[string]string{"SEARCH_SINK_SLACK_WEBHOOK_URL": c.SlackURL, "SEARCH_SINK_ALERT_WEBHOOK_URL": c.WebhookURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return service.Invalid(name, "want an http(s) URL") // the URL is a secret: not echoed
		}
	}
	if c.AlertsTopic != "-" && !strings.HasPrefix(c.AlertsTopic, AlertsTopicPrefix) {
		return service.Invalid("SEARCH_SINK_ALERTS_TOPIC", "must start with %s (an internal topic no producer can write to through a topic pattern), or be - to disable; got %q", AlertsTopicPrefix, c.AlertsTopic)
	}
	for _, t := range c.Topics {
		if !kafka.IsDataTopic(t) {
			return service.Invalid("SEARCH_SINK_TOPICS", "%q is an internal or dead-letter topic, not data", t)
		}
	}
	return c.validateLimits()
}

// AlertsTopicPrefix starts every alerts topic name: internal topics are
// never matched by the gateway's topic patterns nor consumed as data.
const AlertsTopicPrefix = "_sluice-"

func (c *Config) validateLimits() error {
	if c.MaxRecordAge < 0 {
		return service.Invalid("SEARCH_SINK_MAX_RECORD_AGE", "must not be negative")
	}
	if c.Retention > 0 && c.MaxRecordAge > time.Duration(c.Retention)*24*time.Hour {
		return service.Invalid("SEARCH_SINK_MAX_RECORD_AGE", "%s is longer than the retention window of %d days (SEARCH_SINK_RETENTION_DAYS): older records would recreate deleted indices", c.MaxRecordAge, c.Retention)
	}
	if c.MaxFutureSkew < 0 {
		return service.Invalid("SEARCH_SINK_MAX_FUTURE_SKEW", "must not be negative")
	}
	if c.NewIndicesPerHour < 0 {
		return service.Invalid("SEARCH_SINK_MAX_NEW_INDICES_PER_HOUR", "must not be negative")
	}
	if c.MaxDocBytes <= 0 {
		return service.Invalid("SEARCH_SINK_MAX_DOCUMENT_BYTES", "must be positive")
	}
	if c.DLQMaxBytes < 4096 {
		return service.Invalid("SEARCH_SINK_DLQ_MAX_BYTES", "must be at least 4096 (room for the sluice-* headers)")
	}
	for name, v := range map[string]int{"SEARCH_SINK_RETRY_ATTEMPTS": c.RetryAttempts, "SEARCH_SINK_MAX_TOPIC_LABELS": c.MaxTopicLabels,
		"SEARCH_SINK_RULES_MAX_STATE_BYTES": c.RuleStateBytes} {
		if v <= 0 {
			return service.Invalid(name, "must be positive")
		}
	}
	if c.RuleTermBytes < 32 {
		return service.Invalid("SEARCH_SINK_RULES_MAX_TERM_BYTES", "must be at least 32 (room for the hash of a cut value)")
	}
	if c.ParkRetryBase <= 0 {
		return service.Invalid("SEARCH_SINK_PARK_RETRY_BASE", "must be positive")
	}
	if c.ParkRetryMax < c.ParkRetryBase {
		return service.Invalid("SEARCH_SINK_PARK_RETRY_MAX", "must be at least SEARCH_SINK_PARK_RETRY_BASE (%s)", c.ParkRetryBase)
	}
	return nil
}

// RecordAge returns the effective maximum record age and the setting it
// comes from (0: no bound).
func (c *Config) RecordAge() (time.Duration, string) {
	if c.MaxRecordAge > 0 {
		return c.MaxRecordAge, "SEARCH_SINK_MAX_RECORD_AGE"
	}
	if c.Retention > 0 {
		return time.Duration(c.Retention) * 24 * time.Hour, "SEARCH_SINK_RETENTION_DAYS"
	}
	return 0, ""
}

// Namer builds the index namer from the index settings.
func (c *Config) Namer() (*document.Namer, error) {
	return document.NewNamer(document.IndexMode(c.IndexMode), c.IndexPattern, c.DSType, c.DSNamespace)
}

// Load reads the configuration from the environment and args.
func Load(args []string, lookup func(string) (string, bool)) (*Config, error) {
	var c Config
	if err := service.LoadConfig(&c, args, lookup); err != nil {
		return nil, err
	}
	return &c, nil
}
