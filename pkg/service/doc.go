// Package service is the process lifecycle every Sluice service shares:
// configuration from environment and flags, JSON logging, the admin HTTP
// server (/metrics, /healthz, /readyz) and ordered graceful shutdown.
//
// An App runs components (App.Add with a Component, or App.Go and
// App.OnStop): one that returns stops all; on SIGTERM /readyz turns 503,
// SHUTDOWN_DELAY passes, the Stop hooks drain in the order added, the
// components' contexts are cancelled, and the OnClose hooks close clients.
// Package boot (pkg/service/boot) builds the parts every run.go shares on
// top of it: the logger, the App, the Kafka and registry clients with
// their readiness checks and close hooks, and the admin listener. The
// gateway, the registry and the exporter start with boot.Start; a sink
// adopts it by passing its KAFKA_*/REGISTRY_* configuration and admin
// address in a boot.Spec and adding its runtime as one Component (see
// boot's package documentation).
package service
