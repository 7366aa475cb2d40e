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
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds the schema-registry binary (once per process) and returns
// its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			buildErr = fmt.Errorf("registrytest: cannot locate own source file")
			return
		}
		src := filepath.Join(filepath.Dir(file), "..", "..", "..", "services", "schema-registry")
		dir, err := os.MkdirTemp("", "sluice-registrytest-")
		if err != nil {
			buildErr = fmt.Errorf("registrytest: temp dir: %w", err)
			return
		}
		out := filepath.Join(dir, "schema-registry")
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("registrytest: go build in %s: %w\n%s", src, err, b)
			return
		}
		buildPath = out
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildPath
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
	tb       testing.TB
	brokers  []string
	opts     options
	httpPort int
	grpcPort int
	logPath  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logf *os.File
}

// Start builds (once) and starts a registry on 127.0.0.1 with free ports,
// waits until /readyz answers 200, and stops it at cleanup.
func Start(tb testing.TB, brokers []string, opts ...Option) *Registry {
	tb.Helper()
	o := options{topic: "_schemas", env: map[string]string{}, timeout: 60 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	bin := Binary(tb)
	r := &Registry{tb: tb, brokers: brokers, opts: o, logPath: filepath.Join(tb.TempDir(), "schema-registry.log")}
	tb.Cleanup(func() {
		r.stop(syscall.SIGTERM)
		if tb.Failed() {
			if b, err := os.ReadFile(r.logPath); err == nil {
				tb.Logf("schema-registry log (%s):\n%s", r.logPath, tail(b, 8000))
			}
		}
	})
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r.httpPort, r.grpcPort = freePort(tb), freePort(tb)
		if lastErr = r.launch(bin); lastErr == nil {
			return r
		}
		r.stop(syscall.SIGKILL)
	}
	b, _ := os.ReadFile(r.logPath)
	tb.Fatalf("registrytest: schema-registry did not become ready: %v\n%s", lastErr, tail(b, 8000))
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("registrytest: picking a port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (r *Registry) launch(bin string) error {
	f, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin)
	env := append(os.Environ(),
		"KAFKA_BROKERS="+strings.Join(r.brokers, ","),
		"KAFKA_CLIENT_ID=registrytest",
		"SCHEMA_REGISTRY_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(r.httpPort),
		"SCHEMA_REGISTRY_GRPC_ADDR=127.0.0.1:"+strconv.Itoa(r.grpcPort),
		"SCHEMA_REGISTRY_TOPIC="+r.opts.topic,
		"SHUTDOWN_TIMEOUT=10s",
		"LOG_LEVEL=info",
	)
	for k, v := range r.opts.env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done, r.logf = cmd, done, f
	r.mu.Unlock()
	return r.waitReady(done)
}

func (r *Registry) waitReady(done chan struct{}) error {
	deadline := time.Now().Add(r.opts.timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("process exited before it was ready")
		default:
		}
		resp, err := hc.Get(r.URL() + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("process exited before it was ready")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("no /readyz 200 within %s", r.opts.timeout)
}

func (r *Registry) stop(sig syscall.Signal) {
	r.mu.Lock()
	cmd, done, f := r.cmd, r.done, r.logf
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	f.Close()
}

// URL is the REST base URL.
func (r *Registry) URL() string { return "http://127.0.0.1:" + strconv.Itoa(r.httpPort) }

// GRPCAddr is the gRPC host:port.
func (r *Registry) GRPCAddr() string { return "127.0.0.1:" + strconv.Itoa(r.grpcPort) }

// Kill stops the process with SIGKILL, as a crash would.
func (r *Registry) Kill() { r.stop(syscall.SIGKILL) }

// Stop stops the process gracefully (SIGTERM) and waits for it.
func (r *Registry) Stop() { r.stop(syscall.SIGTERM) }

// Restart stops the process (if running) and starts it again on the same
// ports, waiting until it is ready: its state comes from the log alone.
func (r *Registry) Restart(tb testing.TB) {
	tb.Helper()
	r.stop(syscall.SIGTERM)
	if err := r.launch(Binary(tb)); err != nil {
		b, _ := os.ReadFile(r.logPath)
		tb.Fatalf("registrytest: restart: %v\n%s", err, tail(b, 8000))
	}
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
