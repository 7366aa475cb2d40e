// Package prom renders a collector snapshot in the Prometheus text format,
// one collect_*.go file per metric family group, and serves it together
// with the process's own registry. Rendering happens once per collection;
// a scrape copies bytes.
package prom
