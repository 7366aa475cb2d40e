// Package config holds the schema-registry configuration, loaded from SCHEMA_REGISTRY_*
// and shared KAFKA_* environment variables (or the matching flags).
package config

import (
	"strings"
	"time"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/service"
)

// Config is everything schema-registry reads at start.
type Config struct {
	Service           service.Options
	Kafka             kafka.Config
	HTTPAddr          string        `env:"SCHEMA_REGISTRY_HTTP_ADDR" default:":8081" help:"listen address of the REST API (also /metrics, /healthz and /readyz unless SCHEMA_REGISTRY_ADMIN_ADDR is set)"`
	AdminAddr         string        `env:"SCHEMA_REGISTRY_ADMIN_ADDR" help:"listen address for /metrics, /healthz and /readyz on a port of their own; the REST port then serves none of them (the Helm chart sets it); empty serves them on the REST port"`
	GRPCAddr          string        `env:"SCHEMA_REGISTRY_GRPC_ADDR" default:":9091" help:"listen address of the gRPC API (sluice.registry.v1); empty disables it"`
	Topic             string        `env:"SCHEMA_REGISTRY_TOPIC" default:"_schemas" help:"the schemas log topic (1 partition, compacted; created if missing)"`
	ReplicationFactor int           `env:"SCHEMA_REGISTRY_TOPIC_REPLICATION_FACTOR" default:"-1" help:"replication factor when creating the topic; -1 is the broker default"`
	WriteTimeout      time.Duration `env:"SCHEMA_REGISTRY_WRITE_TIMEOUT" default:"10s" help:"bound on writing a record and applying it locally (50002 after it)"`
	RequestTimeout    time.Duration `env:"SCHEMA_REGISTRY_REQUEST_TIMEOUT" default:"30s" help:"bound on one REST request"`
	MaxSchemaBytes    int           `env:"SCHEMA_REGISTRY_MAX_SCHEMA_BYTES" default:"1048576" help:"largest schema accepted (42209 above)"`
	MaxRequestBytes   int64         `env:"SCHEMA_REGISTRY_MAX_REQUEST_BYTES" default:"2097152" help:"largest REST request body (413 above)"`
	MaxSchemaTypes    int64         `env:"SCHEMA_REGISTRY_MAX_SCHEMA_TYPES" default:"100000" help:"largest expanded size of a schema (every use of a named type counted with its full expansion), with its references; 42201 above"`
	MaxSchemaDepth    int           `env:"SCHEMA_REGISTRY_MAX_SCHEMA_DEPTH" default:"64" help:"deepest nesting of records, arrays, maps and unions in a schema (following named types); 42201 above"`
	AuthUsers         []string      `env:"SCHEMA_REGISTRY_AUTH_USERS" secret:"true" help:"basic-auth users, comma-separated user:password:role (role ro or rw); empty with no tokens disables auth"`
	AuthTokens        []string      `env:"SCHEMA_REGISTRY_AUTH_TOKENS" secret:"true" help:"bearer tokens, comma-separated token:role (role ro or rw)"`
}

// Validate checks values that the field types alone cannot.
func (c *Config) Validate() error {
	if c.HTTPAddr == "" {
		return service.Invalid("SCHEMA_REGISTRY_HTTP_ADDR", "must not be empty")
	}
	if c.AdminAddr != "" && (c.AdminAddr == c.HTTPAddr || c.AdminAddr == c.GRPCAddr) {
		return service.Invalid("SCHEMA_REGISTRY_ADMIN_ADDR", "must differ from SCHEMA_REGISTRY_HTTP_ADDR and SCHEMA_REGISTRY_GRPC_ADDR, got %q", c.AdminAddr)
	}
	if strings.TrimSpace(c.Topic) == "" {
		return service.Invalid("SCHEMA_REGISTRY_TOPIC", "must not be empty")
	}
	if c.ReplicationFactor == 0 || c.ReplicationFactor < -1 {
		return service.Invalid("SCHEMA_REGISTRY_TOPIC_REPLICATION_FACTOR", "must be -1 or positive, got %d", c.ReplicationFactor)
	}
	if c.WriteTimeout <= 0 {
		return service.Invalid("SCHEMA_REGISTRY_WRITE_TIMEOUT", "must be positive")
	}
	if c.RequestTimeout <= 0 {
		return service.Invalid("SCHEMA_REGISTRY_REQUEST_TIMEOUT", "must be positive")
	}
	if c.MaxSchemaBytes <= 0 {
		return service.Invalid("SCHEMA_REGISTRY_MAX_SCHEMA_BYTES", "must be positive")
	}
	if c.MaxRequestBytes < int64(c.MaxSchemaBytes) {
		return service.Invalid("SCHEMA_REGISTRY_MAX_REQUEST_BYTES", "must be at least SCHEMA_REGISTRY_MAX_SCHEMA_BYTES (%d)", c.MaxSchemaBytes)
	}
	if c.MaxSchemaTypes <= 0 {
		return service.Invalid("SCHEMA_REGISTRY_MAX_SCHEMA_TYPES", "must be positive, got %d", c.MaxSchemaTypes)
	}
	if c.MaxSchemaDepth <= 0 {
		return service.Invalid("SCHEMA_REGISTRY_MAX_SCHEMA_DEPTH", "must be positive, got %d", c.MaxSchemaDepth)
	}
	for _, u := range c.AuthUsers {
		parts := strings.Split(u, ":")
		if len(parts) < 3 || parts[0] == "" {
			return service.Invalid("SCHEMA_REGISTRY_AUTH_USERS", "each entry must be user:password:role")
		}
		if r := parts[len(parts)-1]; r != "ro" && r != "rw" {
			return service.Invalid("SCHEMA_REGISTRY_AUTH_USERS", "user %s: role must be ro or rw", parts[0])
		}
	}
	for i, t := range c.AuthTokens {
		j := strings.LastIndexByte(t, ':')
		if j <= 0 || (t[j+1:] != "ro" && t[j+1:] != "rw") {
			return service.Invalid("SCHEMA_REGISTRY_AUTH_TOKENS", "entry %d must be token:role with role ro or rw", i+1)
		}
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
