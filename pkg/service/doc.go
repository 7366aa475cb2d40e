// Package service is the process lifecycle every Sluice service shares:
// configuration from environment and flags, JSON logging, the admin HTTP
// server (/metrics, /healthz, /readyz) and ordered graceful shutdown.
package service
