// Package boot builds what every service's run starts with, so that a
// run.go holds only its own service's wiring: the JSON logger, the
// service.App, the Kafka clients and the registry client with their
// readiness checks and close hooks, and the admin listener.
//
// A service's run:
//
//	b, err := boot.Start(ctx, boot.Spec{Name: "s3-sink", Service: cfg.Service,
//		Kafka: &cfg.Kafka, Registry: &cfg.Registry, AdminAddr: cfg.AdminAddr})
//	if err != nil {
//		return err
//	}
//	... the service's own parts, from b.Kafka, b.Registry, b.App.Metrics(),
//	    each added with b.App.Add(name, component) (service.Component) or
//	    b.App.Go / OnStop / OnClose ...
//	return b.App.Run(ctx)
//
// The sinks adopt it the same way: their Kafka and registry clients,
// "kafka" and "schema-registry" readiness checks and close hooks come from
// Start; the sink runtime is added as one service.Component whose Stop
// stops fetching and commits what is durable.
//
// It lives apart from pkg/service because pkg/kafka and pkg/registry use
// pkg/service's configuration errors.
package boot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/service"
)

// Spec says which common parts a service uses.
type Spec struct {
	Name    string          // the service name, in every log line
	Service service.Options // LOG_LEVEL, SHUTDOWN_*
	// Kafka, when set, builds the Kafka clients: closed after every
	// component returned, and pinged by /readyz ("kafka").
	Kafka *kafka.Config
	// AdaptKafka, when set, replaces the clients before anything uses
	// them (the gateway's own metadata TTL).
	AdaptKafka func(*kafka.Clients) *kafka.Clients
	// Registry, when set, builds the schema-registry client: closed after
	// every component returned, and pinged by /readyz ("schema-registry").
	Registry *registry.Config
	// AdminAddr, when set, serves /metrics, /healthz and /readyz on a
	// listener of their own; otherwise Base.Admin is the handler for the
	// service's own router.
	AdminAddr string
	// Log is where the JSON log goes (os.Stderr when nil).
	Log io.Writer
}

// Base is what Start built.
type Base struct {
	App      *service.App
	Log      *slog.Logger
	Kafka    *kafka.Clients   // nil without Spec.Kafka
	Registry *registry.Client // nil without Spec.Registry
	// Admin serves /metrics, /healthz and /readyz for the service to mount
	// on its own router; nil when they are served on Spec.AdminAddr.
	Admin http.Handler
}

// Start builds the logger, the App and the clients the spec asks for,
// registering their readiness checks and close hooks, and opens the admin
// listener. Nothing runs until the caller's App.Run.
func Start(ctx context.Context, s Spec) (*Base, error) {
	w := s.Log
	if w == nil {
		w = os.Stderr
	}
	log := service.NewLogger(w, s.Name, s.Service.LogLevel)
	app := service.New(s.Name, s.Service, log)
	b := &Base{App: app, Log: log, Admin: app.AdminRoutes()}
	if s.Kafka != nil {
		kc, err := kafka.New(*s.Kafka)
		if err != nil {
			return nil, fmt.Errorf("building kafka clients: %w", err)
		}
		if s.AdaptKafka != nil {
			kc = s.AdaptKafka(kc)
		}
		app.OnClose("kafka", func(context.Context) error { kc.Close(); return nil })
		app.ReadyCheck("kafka", func(ctx context.Context) error { return kc.Ping(ctx, 2*time.Second) })
		b.Kafka = kc
	}
	if s.Registry != nil {
		reg := registry.New(*s.Registry)
		app.OnClose("registry", func(context.Context) error { return reg.Close() })
		app.ReadyCheck("schema-registry", reg.Ping)
		b.Registry = reg
	}
	if s.AdminAddr != "" {
		ln, err := service.Listen(ctx, s.AdminAddr)
		if err != nil {
			return nil, err
		}
		app.ServeHTTP("admin", service.AdminServer(app), ln)
		b.Admin = nil
	}
	return b, nil
}
