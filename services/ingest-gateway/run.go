package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/pkg/service/boot"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/auth"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/config"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/grpcapi"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/httpapi"
)

// run wires the service explicitly and blocks until shutdown.
func run(ctx context.Context, args []string) error {
	cfg, err := config.Load(args, os.LookupEnv)
	if err != nil {
		return err
	}
	// Files are read before anything is built: a bad one fails fast.
	var keys *auth.Keys
	if cfg.APIKeysFile != "" {
		if keys, err = auth.Load(cfg.APIKeysFile); err != nil {
			return service.Invalid("GATEWAY_API_KEYS_FILE", "%v", err)
		}
	}
	var tlsCfg *tls.Config
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return service.Invalid("GATEWAY_TLS_CERT_FILE", "loading certificate and key: %v", err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	// With an admin address the API port serves no /metrics or health
	// routes, so whoever may reach the API (an Ingress, producers) never
	// reaches them, and whoever may scrape never reaches the API.
	b, err := boot.Start(ctx, boot.Spec{
		Name: "ingest-gateway", Service: cfg.Service, Kafka: &cfg.Kafka, Registry: &cfg.Registry, AdminAddr: cfg.AdminAddr,
		// The gateway's own transport refreshes metadata every
		// GATEWAY_METADATA_TTL (pkg/kafka's shared one caches for 30s), so
		// a topic created elsewhere is usable within seconds.
		AdaptKafka: func(shared *kafka.Clients) *kafka.Clients { return withMetadataTTL(shared, cfg.MetadataTTL) },
	})
	if err != nil {
		return err
	}
	app, log, kc, reg := b.App, b.Log, b.Kafka, b.Registry

	if keys != nil {
		app.Go("api-keys", func(ctx context.Context) error { return keys.Watch(ctx, cfg.APIKeysReload, log) })
	} else {
		log.Warn("GATEWAY_API_KEYS_FILE is empty: API key authentication is off")
	}

	eng := gateway.New(gateway.Config{
		Topics:           gateway.TopicPolicy{Allow: cfg.Topics, DeadLetter: cfg.DeadLetterTopics, AnySchema: cfg.AnySchemaTopics},
		MaxTimestampSkew: cfg.MaxTimestampSkew,
		MaxTimestampAge:  cfg.MaxTimestampAge,
		MetricTopics:     cfg.MetricTopics,
		TopicCacheSize:   cfg.TopicCacheSize,
		SplitBudget:      cfg.SplitBudget,
		AutoCreate:       cfg.AutoCreateTopics,
		Partitions:       cfg.TopicPartitions,
		MaxRecordBytes:   cfg.MaxRecordBytes,
		MaxRecords:       cfg.MaxRecords,
		InflightBytes:    cfg.InflightBytes,
		ProduceTimeout:   cfg.ProduceTimeout,
		BatchTimeout:     cfg.BatchTimeout,
		BatchSize:        cfg.BatchSize,
		BatchBytes:       cfg.BatchBytes,
		Avro:             cfg.Avro,
	}, log, kc, reg, app.Metrics())

	api := httpapi.New(eng, keys, httpapi.Options{
		MaxRequestBytes: cfg.MaxRequestBytes,
		MaxRecordBytes:  cfg.MaxRecordBytes,
		MaxRecords:      cfg.MaxRecords,
		StreamChunk:     cfg.StreamChunk,
		RetryAfter:      cfg.RetryAfter,
		ClusterID:       cfg.ClusterID,
		BodyTimeout:     cfg.BodyTimeout,
	}, log, app.Metrics())
	httpLn, err := service.Listen(ctx, cfg.HTTPAddr)
	if err != nil {
		return err
	}
	if tlsCfg != nil {
		httpLn = tls.NewListener(httpLn, tlsCfg)
	}
	mountAdmin := func(m interface{ Handle(string, http.Handler) }) { app.MountAdmin(m) }
	if b.Admin == nil { // served on GATEWAY_ADMIN_ADDR
		mountAdmin = nil
	}
	srv := &http.Server{
		Handler:           api.Handler(mountAdmin),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
	}

	// Shutdown order (pkg/service runs OnStop hooks in order after /readyz
	// turns 503): refuse new produce calls and end streams at their next
	// chunk, drain HTTP and gRPC, then wait for every Kafka ack and close
	// the writer.
	app.OnStop("refuse-new", func(context.Context) error { eng.Stopping(); return nil })
	app.ServeHTTP("http", srv, httpLn)

	if cfg.GRPCAddr != "" {
		gs, hs := newGRPCServer(eng, keys, cfg, tlsCfg, app.Metrics(), log)
		app.OnStop("grpc-health", func(context.Context) error { hs.Shutdown(); return nil })
		grpcLn, err := service.Listen(ctx, cfg.GRPCAddr)
		if err != nil {
			return err
		}
		app.ServeGRPC("grpc", gs, grpcLn)
	}
	app.OnStop("kafka-writer", eng.Close)
	return app.Run(ctx)
}

func newGRPCServer(eng *gateway.Engine, keys *auth.Keys, cfg *config.Config, tlsCfg *tls.Config, reg prometheus.Registerer, log *slog.Logger) (*grpc.Server, *health.Server) {
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_gateway_grpc_requests_total",
		Help: "gRPC calls by method and status code.",
	}, []string{"method", "code"})
	reg.MustRegister(calls)
	opts := []grpc.ServerOption{
		// The same limits as HTTP: GATEWAY_MAX_REQUEST_BYTES per message,
		// GATEWAY_MAX_HEADER_BYTES of metadata, GATEWAY_READ_HEADER_TIMEOUT
		// to finish the handshake, GATEWAY_IDLE_TIMEOUT for idle
		// connections; plus a bound on concurrent calls per connection and
		// keepalive enforcement (a client pinging more often than
		// GATEWAY_GRPC_KEEPALIVE_MIN_TIME is disconnected with GOAWAY
		// ENHANCE_YOUR_CALM; at that pace idle connections may ping, as
		// clients behind NATs do, and GATEWAY_IDLE_TIMEOUT closes them).
		grpc.MaxRecvMsgSize(int(cfg.MaxRequestBytes)),
		grpc.MaxSendMsgSize(cfg.GRPCMaxSendBytes),
		grpc.MaxHeaderListSize(uint32(cfg.MaxHeaderBytes)),
		grpc.MaxConcurrentStreams(uint32(cfg.GRPCMaxConcurrentStreams)),
		grpc.ConnectionTimeout(cfg.ReadHeaderTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.GRPCKeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: cfg.IdleTimeout}),
		grpc.ForceServerCodecV2(grpcapi.Codec()),
		// Producers upload large batches: with gRPC's default 64 KiB flow
		// control windows (grown by BDP estimation, which on fast links
		// stays small) several concurrent 1000-record requests on one
		// connection stall on WINDOW_UPDATEs instead of the CPU.
		grpc.InitialWindowSize(1 << 20),
		grpc.InitialConnWindowSize(8 << 20),
		grpc.ChainUnaryInterceptor(
			func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				resp, err := h(ctx, req)
				calls.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
				return resp, err
			},
			grpcapi.Timeout(cfg.ProduceTimeout+5*time.Second),
		),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			err := h(srv, ss)
			calls.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
			return err
		}),
	}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	gs := grpc.NewServer(opts...)
	grpcapi.New(eng, keys, cfg.StreamChunk, log).Register(gs)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("sluice.ingest.v1.IngestService", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	return gs, hs
}

// withMetadataTTL copies clients onto a transport with another metadata TTL.
func withMetadataTTL(c *kafka.Clients, ttl time.Duration) *kafka.Clients {
	src := c.Transport
	tr := &kafkago.Transport{
		Dial:        src.Dial,
		DialTimeout: src.DialTimeout,
		IdleTimeout: src.IdleTimeout,
		MetadataTTL: ttl,
		ClientID:    src.ClientID,
		TLS:         src.TLS,
		SASL:        src.SASL,
		Resolver:    src.Resolver,
		Context:     src.Context,
	}
	out := *c
	out.Transport = tr
	out.Admin = &kafkago.Client{Addr: kafkago.TCP(c.Brokers()...), Transport: tr, Timeout: 30 * time.Second}
	return &out
}
