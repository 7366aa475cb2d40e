// Package srtest runs the registry in-process (real store on a Kafka such
// as kafkatest, real HTTP and gRPC listeners on 127.0.0.1) for this
// service's own tests and benchmarks. Other services use
// pkg/testkit/registrytest, which runs the real binary.
package srtest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/services/schema-registry/internal/api"
	"github.com/sluicehq/sluice/services/schema-registry/internal/compat"
	"github.com/sluicehq/sluice/services/schema-registry/internal/grpcapi"
	"github.com/sluicehq/sluice/services/schema-registry/internal/registry"
	"github.com/sluicehq/sluice/services/schema-registry/internal/store"
)

// Options tune an instance.
type Options struct {
	Topic       string
	Auth        *api.Auth
	MaxSchema   int
	MaxRequest  int64
	Timeout     time.Duration // write+apply bound; default 10s
	RepairAfter time.Duration
	Log         *slog.Logger
	// Limits are the schema limits; zero: registry.DefaultLimits.
	Limits avro.SchemaLimits
	// RequestTimeout bounds writing REST requests; zero: the API default.
	RequestTimeout time.Duration
	// Checker replaces compat.AvroChecker (tests that hold a check open).
	Checker compat.Checker
}

// Instance is one running registry replica.
type Instance struct {
	URL      string
	GRPCAddr string
	Store    *store.Store
	Registry *registry.Registry
	Metrics  *prometheus.Registry

	kc     *kafka.Clients
	opts   Options
	cancel context.CancelFunc
	wg     sync.WaitGroup
	srv    *http.Server
	gs     *grpc.Server
	once   sync.Once
}

// Start runs a replica and stops it at cleanup. It returns once the log
// has been replayed.
func Start(tb testing.TB, kcfg kafka.Config, opts Options) *Instance {
	tb.Helper()
	if opts.Topic == "" {
		opts.Topic = "_schemas"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	kc, err := kafka.New(kcfg)
	if err != nil {
		tb.Fatal(err)
	}
	in := &Instance{kc: kc, opts: opts, Metrics: prometheus.NewRegistry()}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	in.Store = store.New(kc, store.Options{Topic: opts.Topic, Timeout: opts.Timeout, RepairAfter: opts.RepairAfter}, opts.Log)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := in.Store.Init(ctx); err != nil {
		tb.Fatalf("store init: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	in.cancel = stop
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		if err := in.Store.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			opts.Log.Error("store stopped", "err", err)
		}
	}()
	var checker compat.Checker = compat.AvroChecker{}
	if opts.Checker != nil {
		checker = opts.Checker
	}
	in.Registry = registry.New(in.Store, checker, registry.Options{MaxSchemaBytes: opts.MaxSchema, Limits: opts.Limits, Metrics: in.Metrics}, opts.Log)
	rest := api.New(in.Registry, api.Options{Auth: opts.Auth, MaxRequestBytes: opts.MaxRequest, RequestTimeout: opts.RequestTimeout}, opts.Log, in.Metrics, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	in.URL = "http://" + ln.Addr().String()
	in.srv = &http.Server{Handler: rest, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = in.srv.Serve(ln) }()
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	in.GRPCAddr = gln.Addr().String()
	in.gs = grpcapi.NewGRPCServer(in.Registry, opts.Auth, in.Metrics)
	go func() { _ = in.gs.Serve(gln) }()
	tb.Cleanup(in.Stop)
	deadline := time.Now().Add(30 * time.Second)
	for in.Store.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			tb.Fatalf("replica not ready: %v", in.Store.Ready(ctx))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return in
}

// Stop shuts the replica down (idempotent).
func (in *Instance) Stop() {
	in.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = in.srv.Shutdown(ctx)
		in.gs.Stop()
		in.cancel()
		in.wg.Wait()
		in.kc.Close()
	})
}
