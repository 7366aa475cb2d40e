// Package registrytest runs Sluice's schema-registry as a real subprocess
// for tests, against a Kafka such as kafkatest.
//
// API:
//
//	kc := kafkatest.Start(t)
//	reg := registrytest.Start(t, kc.Brokers())          // ready (/readyz 200) when it returns
//	reg.URL()                                          // REST base, "http://127.0.0.1:<port>"
//	reg.GRPCAddr()                                     // "127.0.0.1:<port>" for sluice.registry.v1
//	id := reg.Register(t, "orders-value", `{"type":"record",...}`)
//	reg.Restart(t)                                      // SIGTERM, start again on the same ports, wait ready
//	reg.Kill()                                          // SIGKILL (crash test); Start again with Restart
//
// Options: WithBasicAuth (credentials the Register helper sends), WithTopic (another _schemas topic, e.g. to run several
// independent registries on one Kafka), WithEnv (any SCHEMA_REGISTRY_* or
// KAFKA_* variable, e.g. auth users), WithStartTimeout.
//
// The binary is built once per test process (go build of
// services/schema-registry, located from this file's path) into a
// temporary directory; the process is stopped in t.Cleanup and its log is
// printed when the test failed.
package registrytest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/testkit/proctest"
)

// Binary builds the schema-registry binary (once per process) and returns
// its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	return proctest.Build(tb, "services/schema-registry")
}

type options struct {
	user    string
	pass    string
	topic   string
	env     map[string]string
	timeout time.Duration
}

// Option customises Start.
type Option func(*options)

// WithTopic uses another schemas topic than _schemas.
func WithTopic(topic string) Option { return func(o *options) { o.topic = topic } }

// WithEnv sets an environment variable of the registry process.
func WithEnv(name, value string) Option { return func(o *options) { o.env[name] = value } }

// WithBasicAuth makes the Register helper send these credentials (the
// registry's own users are configured with WithEnv
// "SCHEMA_REGISTRY_AUTH_USERS").
func WithBasicAuth(user, pass string) Option {
	return func(o *options) { o.user, o.pass = user, pass }
}

// WithStartTimeout bounds how long Start waits for /readyz (default 60s,
// which includes building the binary on a busy machine).
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// Registry is a running schema-registry process.
type Registry struct {
	opts     options
	httpPort int
	grpcPort int
	proc     *proctest.Proc
}

// Start builds (once) and starts a registry on 127.0.0.1 with free ports,
// waits until /readyz answers 200, and stops it at cleanup (its log is
// printed when the test failed).
func Start(tb testing.TB, brokers []string, opts ...Option) *Registry {
	tb.Helper()
	o := options{topic: "_schemas", env: map[string]string{}, timeout: 60 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	r := &Registry{opts: o, httpPort: proctest.FreePort(tb), grpcPort: proctest.FreePort(tb)}
	env := map[string]string{
		"KAFKA_BROKERS":             strings.Join(brokers, ","),
		"KAFKA_CLIENT_ID":           "registrytest",
		"SCHEMA_REGISTRY_HTTP_ADDR": "127.0.0.1:" + strconv.Itoa(r.httpPort),
		"SCHEMA_REGISTRY_GRPC_ADDR": r.GRPCAddr(),
		"SCHEMA_REGISTRY_TOPIC":     o.topic,
		"SHUTDOWN_TIMEOUT":          "10s",
		"LOG_LEVEL":                 "info",
	}
	for k, v := range o.env {
		env[k] = v
	}
	r.proc = proctest.Start(tb, proctest.Spec{
		Name: "schema-registry", Bin: Binary(tb), Env: env,
		ReadyURL: r.URL() + "/readyz", StartTimeout: o.timeout,
	})
	return r
}

// URL is the REST base URL.
func (r *Registry) URL() string { return "http://127.0.0.1:" + strconv.Itoa(r.httpPort) }

// GRPCAddr is the gRPC host:port.
func (r *Registry) GRPCAddr() string { return "127.0.0.1:" + strconv.Itoa(r.grpcPort) }

// PeakRSSMiB is the registry process's peak resident memory (VmHWM).
func (r *Registry) PeakRSSMiB() float64 { return r.proc.PeakRSSMiB() }

// Running reports whether the registry process is still running.
func (r *Registry) Running() bool { return r.proc.Running() }

// Kill stops the process with SIGKILL, as a crash would.
func (r *Registry) Kill() { r.proc.Kill() }

// Stop stops the process gracefully (SIGTERM) and waits for it.
func (r *Registry) Stop() { r.proc.Stop() }

// Restart stops the process (if running) and starts it again on the same
// ports, waiting until it is ready: its state comes from the log alone.
func (r *Registry) Restart(tb testing.TB) {
	tb.Helper()
	r.proc.Restart(tb)
}

// Register registers an Avro schema under subject over REST and returns
// its id, failing the test on any error.
func (r *Registry) Register(tb testing.TB, subject, schema string) int {
	tb.Helper()
	body, _ := json.Marshal(map[string]string{"schema": schema})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.URL()+"/subjects/"+url.PathEscape(subject)+"/versions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	if r.opts.user != "" {
		req.SetBasicAuth(r.opts.user, r.opts.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("registrytest: registering %s: %v", subject, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("registrytest: registering %s: %d %s", subject, resp.StatusCode, b)
	}
	var out struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatalf("registrytest: registering %s: decoding %q: %v", subject, b, err)
	}
	return out.ID
}
