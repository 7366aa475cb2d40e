package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/pkg/service/boot"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/config"
	ikafka "github.com/sluicehq/sluice/services/kafka-exporter/internal/kafka"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/probe"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/prom"
)

// run wires the service explicitly and blocks until shutdown.
func run(ctx context.Context, args []string) error {
	cfg, ignored, err := config.Load(args, os.LookupEnv)
	if err != nil {
		return err
	}
	// The admin address is the exporter's own listener (the telemetry
	// path is served there too), so boot opens none.
	b, err := boot.Start(ctx, boot.Spec{Name: "kafka-exporter", Service: cfg.Service, Kafka: &cfg.Kafka})
	if err != nil {
		return err
	}
	app, log, kc := b.App, b.Log, b.Kafka
	if len(ignored) > 0 {
		log.Info("kafka_exporter flags accepted without effect", "flags", ignored)
	}
	admin, err := ikafka.New(cfg.Kafka, ikafka.Options{ConnsPerBroker: cfg.Concurrency})
	if err != nil {
		return fmt.Errorf("building kafka admin client: %w", err)
	}
	app.OnClose("kafka-admin", func(context.Context) error { admin.Close(); return nil })

	tf, te, gf, ge := cfg.Regexps()
	opts := collector.Options{
		Interval: cfg.Interval, Timeout: cfg.Timeout,
		TopicFilter: tf, TopicExclude: te, GroupFilter: gf, GroupExclude: ge,
		Concurrency: cfg.Concurrency, LagPoints: cfg.LagPoints, StatusWindow: cfg.StatusWindow,
		Render: new(prom.Renderer).Render, Logger: log, Registry: app.Metrics(),
	}
	if !cfg.TopicConfigs {
		opts.TopicConfigs = []string{}
	}
	col := collector.New(admin, opts)
	app.Go("collector", col.Run)

	app.ReadyCheck("snapshot", func(context.Context) error {
		if col.Current() == nil {
			return errors.New("no collection has completed yet")
		}
		return nil
	})
	if cfg.ProbeEnabled {
		pr := probe.New(kc, admin, probe.Options{
			Topic: cfg.ProbeTopic, Interval: cfg.ProbeInterval, Timeout: cfg.ProbeTimeout,
			ReplicationFactor: cfg.ProbeReplication, Registry: app.Metrics(), Logger: log,
		})
		app.Go("probe", pr.Run)
	}

	ln, err := service.Listen(ctx, cfg.AdminAddr)
	if err != nil {
		return err
	}
	app.ServeHTTP("admin", &http.Server{Handler: routes(app, col, cfg, time.Now), ReadHeaderTimeout: 10 * time.Second}, ln)
	return app.Run(ctx)
}

// routes serves the snapshot at the telemetry path and the health routes;
// now is the clock snapshot ages are measured with (the collector's).
func routes(app *service.App, col *collector.Collector, cfg *config.Config, now func() time.Time) http.Handler {
	mux := http.NewServeMux()
	admin := app.AdminRoutes()
	mux.Handle("/healthz", admin)
	mux.Handle("/readyz", admin)
	mux.Handle(cfg.TelemetryPath, &prom.Handler{
		Snapshot: col.Current, Gatherer: app.Metrics(), MaxAge: cfg.MaxStaleness, Now: now, Log: app.Logger(),
	})
	if cfg.TelemetryPath != "/" {
		mux.Handle("/{$}", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<html><head><title>Kafka Exporter</title></head><body><h1>Kafka Exporter</h1><p><a href=%q>Metrics</a></p></body></html>\n", cfg.TelemetryPath)
		}))
	}
	return mux
}
