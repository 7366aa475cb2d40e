package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/testkit/s3test"
)

// Backend addresses used when the environment does not point elsewhere.
const (
	defaultKafkaAddr = "127.0.0.1:19092"
	defaultS3Addr    = "127.0.0.1:7070"
	defaultESAddr    = "127.0.0.1:9200"
	devBucket        = "sluice"
	devAccessKey     = "sluice"
	devSecretKey     = "sluice-dev-secret"
	devRegion        = "us-east-1"
)

type options struct {
	binDir, dataDir string
	readyTimeout    time.Duration
	stopTimeout     time.Duration
	noTTY           bool
}

func run(ctx context.Context, args []string) error {
	var o options
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.StringVar(&o.binDir, "bin", "bin", "directory holding the service binaries (make build)")
	fs.StringVar(&o.dataDir, "data", ".devstack", "where Kafka and S3 keep their data between runs")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 60*time.Second, "how long every service has to report /readyz 200")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 20*time.Second, "how long each service has to exit after SIGTERM before SIGKILL")
	fs.BoolVar(&o.noTTY, "no-tty", false, "do not take the terminal's foreground process group")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("proc", "devstack")
	if !o.noTTY {
		restore := takeForeground()
		defer restore()
	}
	var err error
	if o.dataDir, err = filepath.Abs(o.dataDir); err != nil {
		return err
	}
	if o.binDir, err = filepath.Abs(o.binDir); err != nil {
		return err
	}
	for _, s := range services {
		if _, err := os.Stat(filepath.Join(o.binDir, s.name)); err != nil {
			return fmt.Errorf("service binary %s missing in %s (run make build): %w", s.name, o.binDir, err)
		}
	}

	be := backendsFromEnv()
	if err := checkPorts(be); err != nil {
		return err
	}
	stack := &stack{log: log, opts: o, be: be}
	defer stack.stopBackends()
	if err := stack.startBackends(ctx); err != nil {
		return err
	}
	started := time.Now()
	if err := stack.startServices(ctx); err != nil {
		stack.stopServices()
		return err
	}
	if err := stack.waitReady(ctx, started); err != nil {
		stack.stopServices()
		return err
	}
	if err := registerExample(ctx, "http://127.0.0.1:8081"); err != nil {
		log.Warn("registering the example schema failed", "err", err)
	}
	printBanner(os.Stdout, be, o.dataDir, time.Since(started))

	select {
	case <-ctx.Done():
		log.Info("stopping: services in reverse order, then backends")
	case name := <-stack.exited:
		log.Error("a service exited on its own; stopping the stack", "service", name)
		stack.stopServices()
		return fmt.Errorf("service %s exited unexpectedly (see its log lines above)", name)
	}
	stack.stopServices()
	return nil
}

// backends says where Kafka, S3 and Elasticsearch are; external ones come
// from the same environment variables the services read.
type backends struct {
	kafka, s3Endpoint, esURL          string
	embedKafka, embedS3, embedES      bool
	s3Bucket, s3Access, s3Secret, reg string
}

func backendsFromEnv() backends {
	b := backends{kafka: defaultKafkaAddr, s3Endpoint: "http://" + defaultS3Addr, esURL: "http://" + defaultESAddr,
		embedKafka: true, embedS3: true, embedES: true, s3Bucket: devBucket, s3Access: devAccessKey, s3Secret: devSecretKey, reg: devRegion}
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		b.kafka, b.embedKafka = v, false
	}
	if v := os.Getenv("S3_ENDPOINT"); v != "" {
		b.s3Endpoint, b.embedS3 = v, false
		b.s3Access, b.s3Secret = os.Getenv("S3_ACCESS_KEY_ID"), os.Getenv("S3_SECRET_ACCESS_KEY")
	}
	if v := os.Getenv("S3_BUCKET"); v != "" {
		b.s3Bucket = v
	}
	if v := os.Getenv("S3_REGION"); v != "" {
		b.reg = v
	}
	if v := os.Getenv("ES_URL"); v != "" {
		b.esURL, b.embedES = v, false
	}
	return b
}

// checkPorts fails fast, naming the port, when anything the stack needs is taken.
func checkPorts(b backends) error {
	var addrs []string
	if b.embedKafka {
		addrs = append(addrs, defaultKafkaAddr)
	}
	if b.embedS3 {
		addrs = append(addrs, defaultS3Addr)
	}
	if b.embedES {
		addrs = append(addrs, defaultESAddr)
	}
	for _, s := range services {
		addrs = append(addrs, s.ports...)
	}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("port %s is taken (another devstack or service running?): %w", a, err)
		}
		_ = ln.Close()
	}
	return nil
}

type stack struct {
	log    *slog.Logger
	opts   options
	be     backends
	kafka  *kfake.Cluster
	s3     *s3test.Server
	es     *http.Server
	procs  []*child
	exited chan string
}

func (s *stack) startBackends(ctx context.Context) error {
	if s.be.embedKafka {
		dir := filepath.Join(s.opts.dataDir, "kafka")
		c, err := kfake.NewCluster(
			kfake.NumBrokers(1),
			kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, defaultKafkaAddr) }),
			kfake.DataDir(dir),
			kfake.AllowAutoTopicCreation(),
			kfake.DefaultNumPartitions(3),
		)
		if err != nil {
			return fmt.Errorf("starting embedded Kafka on %s with data in %s: %w", defaultKafkaAddr, dir, err)
		}
		s.kafka = c
		s.log.Info("kafka (kfake) up", "addr", defaultKafkaAddr, "data", dir)
	}
	if s.be.embedS3 {
		dir := filepath.Join(s.opts.dataDir, "s3")
		srv, err := s3test.Run(ctx, defaultS3Addr, dir, devAccessKey, devSecretKey, devRegion)
		if err != nil {
			return fmt.Errorf("starting embedded S3 on %s: %w", defaultS3Addr, err)
		}
		s.s3 = srv
		if err := srv.MakeBucket(ctx, devBucket); err != nil && !strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") && !strings.Contains(err.Error(), "BucketAlreadyExists") {
			return fmt.Errorf("creating bucket %s: %w", devBucket, err)
		}
		s.log.Info("s3 (versitygw) up", "endpoint", srv.Endpoint(), "bucket", devBucket, "data", dir)
	}
	if s.be.embedES {
		ln, err := net.Listen("tcp", defaultESAddr)
		if err != nil {
			return fmt.Errorf("port %s for the Elasticsearch dev double: %w", defaultESAddr, err)
		}
		s.es = &http.Server{Handler: estest.New().Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = s.es.Serve(ln) }()
		s.log.Info("elasticsearch dev double up", "url", "http://"+defaultESAddr)
	}
	return nil
}

func (s *stack) stopBackends() {
	if s.es != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.es.Shutdown(ctx)
		cancel()
	}
	if s.s3 != nil {
		if err := s.s3.Close(); err != nil {
			s.log.Warn("closing S3", "err", err)
		}
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
	s.log.Info("backends stopped")
}

func (s *stack) startServices(ctx context.Context) error {
	s.exited = make(chan string, len(services))
	for _, svc := range services {
		c, err := startChild(ctx, filepath.Join(s.opts.binDir, svc.name), svc.name, svc.env(s.be), s.exited)
		if err != nil {
			return err
		}
		s.procs = append(s.procs, c)
	}
	return nil
}

// stopServices sends SIGTERM to each service in reverse start order and
// waits for it (SIGKILL after the stop timeout), so producers stop before
// the registry they depend on.
func (s *stack) stopServices() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].stop(s.opts.stopTimeout, s.log)
	}
	s.procs = nil
}

func (s *stack) waitReady(ctx context.Context, since time.Time) error {
	deadline := time.Now().Add(s.opts.readyTimeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for _, svc := range services {
		url := "http://127.0.0.1:" + svc.adminPort + "/readyz"
		for {
			resp, err := client.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					s.log.Info("ready", "service", svc.name, "after", time.Since(since).Round(time.Millisecond))
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready within %s (%s)", svc.name, s.opts.readyTimeout, url)
			}
			select {
			case <-ctx.Done():
				return errors.New("interrupted while waiting for services")
			case name := <-s.exited:
				return fmt.Errorf("service %s exited during start-up (see its log lines above)", name)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}
