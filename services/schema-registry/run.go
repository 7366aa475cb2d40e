package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/services/schema-registry/internal/config"
)

// run wires the service explicitly and blocks until shutdown.
func run(ctx context.Context, args []string) error {
	cfg, err := config.Load(args, os.LookupEnv)
	if err != nil {
		return err
	}
	log := service.NewLogger(os.Stderr, "schema-registry", cfg.Service.LogLevel)
	app := service.New("schema-registry", cfg.Service, log)
	kc, err := kafka.New(cfg.Kafka)
	if err != nil {
		return fmt.Errorf("building kafka clients: %w", err)
	}
	app.OnClose("kafka", func(context.Context) error { kc.Close(); return nil })
	app.ReadyCheck("kafka", func(ctx context.Context) error { return kc.Ping(ctx, 2*time.Second) })

	ln, err := service.Listen(ctx, cfg.AdminAddr)
	if err != nil {
		return err
	}
	app.ServeHTTP("admin", service.AdminServer(app), ln)
	return app.Run(ctx)
}
