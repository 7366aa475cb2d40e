package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/pkg/service/boot"
	"github.com/sluicehq/sluice/services/schema-registry/internal/api"
	"github.com/sluicehq/sluice/services/schema-registry/internal/compat"
	"github.com/sluicehq/sluice/services/schema-registry/internal/config"
	"github.com/sluicehq/sluice/services/schema-registry/internal/grpcapi"
	"github.com/sluicehq/sluice/services/schema-registry/internal/registry"
	"github.com/sluicehq/sluice/services/schema-registry/internal/store"
)

// run wires the service explicitly and blocks until shutdown.
func run(ctx context.Context, args []string) error {
	cfg, err := config.Load(args, os.LookupEnv)
	if err != nil {
		return err
	}
	auth, err := api.ParseAuth(cfg.AuthUsers, cfg.AuthTokens)
	if err != nil {
		return service.Invalid("SCHEMA_REGISTRY_AUTH_USERS", "%v", err)
	}
	// With an admin address the REST port serves no /metrics or health
	// routes (and the admin port no API).
	b, err := boot.Start(ctx, boot.Spec{Name: "schema-registry", Service: cfg.Service, Kafka: &cfg.Kafka, AdminAddr: cfg.AdminAddr})
	if err != nil {
		return err
	}
	app, log, kc := b.App, b.Log, b.Kafka

	st := store.New(kc, store.Options{Topic: cfg.Topic, ReplicationFactor: cfg.ReplicationFactor, Timeout: cfg.WriteTimeout}, log)
	initCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = st.Init(initCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("opening the schemas log: %w", err)
	}
	app.ReadyCheck("schemas-log", st.Ready)
	app.Go("schemas-log", st.Run)
	registerStateMetrics(app.Metrics(), st)

	reg := registry.New(st, compat.AvroChecker{}, registry.Options{
		MaxSchemaBytes: cfg.MaxSchemaBytes,
		Limits: avro.SchemaLimits{
			MaxExpandedTypes: cfg.MaxSchemaTypes, MaxDepth: cfg.MaxSchemaDepth,
			ExpandedTypesSetting: registry.SettingMaxSchemaTypes, DepthSetting: registry.SettingMaxSchemaDepth,
		},
		Metrics: app.Metrics(),
	}, log)
	rest := api.New(reg, api.Options{MaxRequestBytes: cfg.MaxRequestBytes, Auth: auth, RequestTimeout: cfg.RequestTimeout}, log, app.Metrics(), b.Admin)

	ln, err := service.Listen(ctx, cfg.HTTPAddr)
	if err != nil {
		return err
	}
	app.ServeHTTP("http", &http.Server{Handler: rest, ReadHeaderTimeout: 10 * time.Second}, ln)
	if cfg.GRPCAddr != "" {
		gln, err := service.Listen(ctx, cfg.GRPCAddr)
		if err != nil {
			return err
		}
		app.ServeGRPC("grpc", grpcapi.NewGRPCServer(reg, auth, app.Metrics()), gln)
	}
	return app.Run(ctx)
}

// registerStateMetrics exposes the size of the state and how far the
// local replica is behind the log.
func registerStateMetrics(reg prometheus.Registerer, st *store.Store) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_schema_registry_subjects",
		Help: "Subjects with at least one live version.",
	}, func() float64 { n, _ := st.State().Counts(); return float64(n) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_schema_registry_schemas",
		Help: "Distinct schema ids held.",
	}, func() float64 { _, n := st.State().Counts(); return float64(n) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_schema_registry_applied_offset",
		Help: "Next _schemas offset the local replica will apply.",
	}, func() float64 { return float64(st.State().Next()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_schema_registry_apply_lag_records",
		Help: "Records in _schemas not yet applied locally (as of the last end-offset probe).",
	}, func() float64 { return float64(st.Lag()) }))
}
