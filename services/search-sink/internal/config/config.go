// Package config holds the search-sink configuration, loaded from
// SEARCH_SINK_*, the shared ES_*, KAFKA_* and REGISTRY_* environment
// variables (or the matching flags).
package config

import (
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
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
	AlertsTopic   string        `env:"SEARCH_SINK_ALERTS_TOPIC" default:"alerts" help:"Kafka topic for alerts (- disables); never indexed as data"`
	AlertsIndex   string        `env:"SEARCH_SINK_ALERTS_INDEX" default:"sluice-alerts" help:"index for alerts (- disables)"`
	AlertRetries  int           `env:"SEARCH_SINK_ALERT_RETRIES" default:"5" help:"delivery attempts per alert and destination"`
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
	if strings.HasPrefix(c.AlertsTopic, "_") {
		return service.Invalid("SEARCH_SINK_ALERTS_TOPIC", "must not start with _")
	}
	return nil
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
