// Package config holds the search-sink configuration, loaded from SEARCH_SINK_*
// and shared KAFKA_* environment variables (or the matching flags).
package config

import (
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/service"
)

// Config is everything search-sink reads at start.
type Config struct {
	Service   service.Options
	Kafka     kafka.Config
	AdminAddr string `env:"SEARCH_SINK_ADMIN_ADDR" default:":9103" help:"listen address for /metrics, /healthz and /readyz"`
}

// Validate checks values that the field types alone cannot.
func (c *Config) Validate() error {
	if c.AdminAddr == "" {
		return service.Invalid("SEARCH_SINK_ADMIN_ADDR", "must not be empty")
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
