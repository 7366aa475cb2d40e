// Package load drives an ingest-gateway with generated records over HTTP
// (native JSON API) or gRPC (IngestService.Produce) at a chosen rate, batch
// size, record size and concurrency, and summarises throughput, latency and
// errors. The loadgen command, the e2e test and make bench all use it.
package load
