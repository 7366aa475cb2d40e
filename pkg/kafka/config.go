package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/sluicehq/sluice/pkg/service"
)

// Config is the shared KAFKA_* configuration.
type Config struct {
	Brokers               []string      `env:"KAFKA_BROKERS" default:"127.0.0.1:9092" help:"comma-separated bootstrap brokers host:port"`
	ClientID              string        `env:"KAFKA_CLIENT_ID" default:"sluice" help:"client.id sent to the brokers"`
	DialTimeout           time.Duration `env:"KAFKA_DIAL_TIMEOUT" default:"10s" help:"TCP+TLS+SASL connect timeout"`
	MetadataTTL           time.Duration `env:"KAFKA_METADATA_TTL" default:"10s" help:"how long cluster metadata is cached; bounds how late a new topic or moved leader is seen"`
	TLSEnabled            bool          `env:"KAFKA_TLS_ENABLED" default:"false" help:"connect with TLS (MSK: true)"`
	TLSCAFile             string        `env:"KAFKA_TLS_CA_FILE" help:"PEM CA bundle; empty uses the system roots"`
	TLSCertFile           string        `env:"KAFKA_TLS_CERT_FILE" help:"PEM client certificate for mutual TLS"`
	TLSKeyFile            string        `env:"KAFKA_TLS_KEY_FILE" help:"PEM client key for mutual TLS"`
	TLSServerName         string        `env:"KAFKA_TLS_SERVER_NAME" help:"override the name checked in the broker certificate"`
	TLSInsecureSkipVerify bool          `env:"KAFKA_TLS_INSECURE_SKIP_VERIFY" default:"false" help:"do not verify broker certificates (testing only)"`
	SASLMechanism         string        `env:"KAFKA_SASL_MECHANISM" help:"empty, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"`
	SASLUsername          string        `env:"KAFKA_SASL_USERNAME" help:"SASL user"`
	SASLPassword          string        `env:"KAFKA_SASL_PASSWORD" secret:"true" help:"SASL password (never logged)"`
}

// Validate checks that brokers, TLS files and SASL settings are coherent.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return service.Invalid("KAFKA_BROKERS", "at least one broker is required")
	}
	for _, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return service.Invalid("KAFKA_BROKERS", "broker %q is not host:port", b)
		}
	}
	if c.DialTimeout <= 0 {
		return service.Invalid("KAFKA_DIAL_TIMEOUT", "must be positive")
	}
	if c.MetadataTTL < 0 {
		return service.Invalid("KAFKA_METADATA_TTL", "must not be negative")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		if c.TLSCertFile == "" {
			return service.Invalid("KAFKA_TLS_CERT_FILE", "required when KAFKA_TLS_KEY_FILE is set")
		}
		return service.Invalid("KAFKA_TLS_KEY_FILE", "required when KAFKA_TLS_CERT_FILE is set")
	}
	for name, f := range map[string]string{"KAFKA_TLS_CA_FILE": c.TLSCAFile, "KAFKA_TLS_CERT_FILE": c.TLSCertFile, "KAFKA_TLS_KEY_FILE": c.TLSKeyFile} {
		if f == "" {
			continue
		}
		if !c.TLSEnabled {
			return service.Invalid(name, "set but KAFKA_TLS_ENABLED is false")
		}
		if _, err := os.Stat(f); err != nil {
			return service.Invalid(name, "cannot read %s: %v", f, err)
		}
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
		return nil
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASLUsername == "" {
			return service.Invalid("KAFKA_SASL_USERNAME", "required with KAFKA_SASL_MECHANISM=%s", c.SASLMechanism)
		}
		if c.SASLPassword == "" {
			return service.Invalid("KAFKA_SASL_PASSWORD", "required with KAFKA_SASL_MECHANISM=%s", c.SASLMechanism)
		}
		return nil
	default:
		return service.Invalid("KAFKA_SASL_MECHANISM", "unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", c.SASLMechanism)
	}
}

// TLSConfig builds the client TLS config, or nil when TLS is off.
func (c *Config) TLSConfig() (*tls.Config, error) {
	if !c.TLSEnabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName, InsecureSkipVerify: c.TLSInsecureSkipVerify} //nolint:gosec // opt-in for testing
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading KAFKA_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE %s holds no PEM certificates", c.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading KAFKA_TLS_CERT_FILE/KAFKA_TLS_KEY_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Mechanism builds the SASL mechanism, or nil when SASL is off.
func (c *Config) Mechanism() (sasl.Mechanism, error) {
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
		return nil, nil
	case "PLAIN":
		return plain.Mechanism{Username: c.SASLUsername, Password: c.SASLPassword}, nil
	case "SCRAM-SHA-256":
		m, err := scram.Mechanism(scram.SHA256, c.SASLUsername, c.SASLPassword)
		if err != nil {
			return nil, fmt.Errorf("building SCRAM-SHA-256: %w", err)
		}
		return m, nil
	case "SCRAM-SHA-512":
		m, err := scram.Mechanism(scram.SHA512, c.SASLUsername, c.SASLPassword)
		if err != nil {
			return nil, fmt.Errorf("building SCRAM-SHA-512: %w", err)
		}
		return m, nil
	default:
		return nil, fmt.Errorf("unknown SASL mechanism %q", c.SASLMechanism)
	}
}

// Clients holds the transport and dialer built once from Config and shared
// by every writer, reader and admin call of a process.
type Clients struct {
	cfg       Config
	Transport *kafkago.Transport
	Dialer    *kafkago.Dialer
	Admin     *kafkago.Client
}

// New builds the shared transport, dialer and admin client.
func New(cfg Config) (*Clients, error) {
	tc, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	mech, err := cfg.Mechanism()
	if err != nil {
		return nil, err
	}
	tr := &kafkago.Transport{
		ClientID:    cfg.ClientID,
		DialTimeout: cfg.DialTimeout,
		TLS:         tc,
		SASL:        mech,
		MetadataTTL: metadataTTL(cfg.MetadataTTL),
		IdleTimeout: 5 * time.Minute,
	}
	d := &kafkago.Dialer{
		ClientID:      cfg.ClientID,
		Timeout:       cfg.DialTimeout,
		DualStack:     true,
		TLS:           tc,
		SASLMechanism: mech,
	}
	return &Clients{
		cfg:       cfg,
		Transport: tr,
		Dialer:    d,
		Admin:     &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...), Transport: tr, Timeout: 30 * time.Second},
	}, nil
}

// Brokers returns the bootstrap list.
func (c *Clients) Brokers() []string { return c.cfg.Brokers }

// Close releases idle connections.
func (c *Clients) Close() { c.Transport.CloseIdleConnections() }

// metadataTTL defaults an unset TTL (a Config built in code) to 10s.
func metadataTTL(d time.Duration) time.Duration {
	if d <= 0 {
		return 10 * time.Second
	}
	return d
}
