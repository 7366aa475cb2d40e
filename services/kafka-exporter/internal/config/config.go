// Package config holds the kafka-exporter configuration, loaded from EXPORTER_*
// and shared KAFKA_* environment variables (or the matching flags), and
// translates danielqsj/kafka_exporter's flags to them.
package config

import (
	"regexp"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/service"
)

// Config is everything kafka-exporter reads at start.
type Config struct {
	Service       service.Options
	Kafka         kafka.Config
	AdminAddr     string        `env:"EXPORTER_ADMIN_ADDR" default:":9308" help:"listen address for metrics, /healthz and /readyz (kafka_exporter: --web.listen-address)"`
	TelemetryPath string        `env:"EXPORTER_TELEMETRY_PATH" default:"/metrics" help:"path serving the metrics (kafka_exporter: --web.telemetry-path)"`
	Interval      time.Duration `env:"EXPORTER_INTERVAL" default:"15s" help:"time between background collections"`
	Timeout       time.Duration `env:"EXPORTER_COLLECT_TIMEOUT" default:"0s" help:"bound on one collection; 0 means EXPORTER_INTERVAL"`
	MaxStaleness  time.Duration `env:"EXPORTER_MAX_STALENESS" default:"5m" help:"stop serving Kafka metrics from a snapshot older than this (0: never)"`
	TopicFilter   string        `env:"EXPORTER_TOPIC_FILTER" default:".*" help:"regex of topics to collect (kafka_exporter: --topic.filter)"`
	TopicExclude  string        `env:"EXPORTER_TOPIC_EXCLUDE" default:"^$" help:"regex of topics to skip (kafka_exporter: --topic.exclude)"`
	GroupFilter   string        `env:"EXPORTER_GROUP_FILTER" default:".*" help:"regex of consumer groups to collect (kafka_exporter: --group.filter)"`
	GroupExclude  string        `env:"EXPORTER_GROUP_EXCLUDE" default:"^$" help:"regex of consumer groups to skip (kafka_exporter: --group.exclude)"`
	Concurrency   int           `env:"EXPORTER_CONCURRENCY" default:"8" help:"requests in flight per broker and group queries in parallel (kafka_exporter: --topic.workers)"`
	LagPoints     int           `env:"EXPORTER_LAG_TABLE_POINTS" default:"60" help:"(offset, time) points kept per partition for kafka_consumergroup_lag_seconds"`
	StatusWindow  int           `env:"EXPORTER_STATUS_WINDOW" default:"10" help:"collections per partition window for the Burrow-style group status"`
	TopicConfigs  bool          `env:"EXPORTER_TOPIC_CONFIGS" default:"true" help:"describe topic configuration (cleanup.policy, retention) each collection"`

	ProbeEnabled     bool          `env:"EXPORTER_PROBE_ENABLED" default:"true" help:"run the end-to-end produce/consume probe"`
	ProbeTopic       string        `env:"EXPORTER_PROBE_TOPIC" default:"_sluice_probe" help:"probe topic, created with one partition per broker"`
	ProbeInterval    time.Duration `env:"EXPORTER_PROBE_INTERVAL" default:"5s" help:"time between probe rounds (one record per partition)"`
	ProbeTimeout     time.Duration `env:"EXPORTER_PROBE_TIMEOUT" default:"10s" help:"a probe record not consumed back within this is counted lost"`
	ProbeReplication int           `env:"EXPORTER_PROBE_REPLICATION_FACTOR" default:"-1" help:"replication factor of the probe topic when created (-1: broker default)"`
}

// Validate checks values that the field types alone cannot.
func (c *Config) Validate() error {
	if c.AdminAddr == "" {
		return service.Invalid("EXPORTER_ADMIN_ADDR", "must not be empty")
	}
	if !strings.HasPrefix(c.TelemetryPath, "/") || c.TelemetryPath == "/healthz" || c.TelemetryPath == "/readyz" {
		return service.Invalid("EXPORTER_TELEMETRY_PATH", "must start with / and not be /healthz or /readyz, got %q", c.TelemetryPath)
	}
	if c.Interval < 100*time.Millisecond {
		return service.Invalid("EXPORTER_INTERVAL", "must be at least 100ms, got %s", c.Interval)
	}
	if c.Timeout < 0 {
		return service.Invalid("EXPORTER_COLLECT_TIMEOUT", "must not be negative")
	}
	if c.MaxStaleness < 0 {
		return service.Invalid("EXPORTER_MAX_STALENESS", "must not be negative")
	}
	for _, r := range []struct{ name, val string }{
		{"EXPORTER_TOPIC_FILTER", c.TopicFilter}, {"EXPORTER_TOPIC_EXCLUDE", c.TopicExclude},
		{"EXPORTER_GROUP_FILTER", c.GroupFilter}, {"EXPORTER_GROUP_EXCLUDE", c.GroupExclude},
	} {
		if _, err := regexp.Compile(r.val); err != nil {
			return service.Invalid(r.name, "bad regular expression %q: %v", r.val, err)
		}
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		return service.Invalid("EXPORTER_CONCURRENCY", "must be between 1 and 256, got %d", c.Concurrency)
	}
	if c.LagPoints < 2 {
		return service.Invalid("EXPORTER_LAG_TABLE_POINTS", "must be at least 2, got %d", c.LagPoints)
	}
	if c.StatusWindow < 2 {
		return service.Invalid("EXPORTER_STATUS_WINDOW", "must be at least 2, got %d", c.StatusWindow)
	}
	if c.ProbeEnabled {
		if c.ProbeTopic == "" {
			return service.Invalid("EXPORTER_PROBE_TOPIC", "must not be empty when the probe is enabled")
		}
		if c.ProbeInterval < 10*time.Millisecond {
			return service.Invalid("EXPORTER_PROBE_INTERVAL", "must be at least 10ms, got %s", c.ProbeInterval)
		}
		if c.ProbeTimeout <= 0 {
			return service.Invalid("EXPORTER_PROBE_TIMEOUT", "must be positive, got %s", c.ProbeTimeout)
		}
	}
	return nil
}

// Regexps compiles the four filters (Validate has checked them).
func (c *Config) Regexps() (topicFilter, topicExclude, groupFilter, groupExclude *regexp.Regexp) {
	return regexp.MustCompile(c.TopicFilter), regexp.MustCompile(c.TopicExclude),
		regexp.MustCompile(c.GroupFilter), regexp.MustCompile(c.GroupExclude)
}

// Load translates kafka_exporter-style flags, then reads the environment
// and flags. ignored lists the kafka_exporter flags accepted without
// effect, for the caller to log.
func Load(args []string, lookup func(string) (string, bool)) (cfg *Config, ignored []string, err error) {
	args, ignored, err = TranslateFlags(args)
	if err != nil {
		return nil, nil, err
	}
	var c Config
	if err := service.LoadConfig(&c, args, lookup); err != nil {
		return nil, nil, err
	}
	return &c, ignored, nil
}
