// Package collector queries the cluster in the background, on an interval,
// and publishes each result as an immutable Snapshot that scrapes read
// without touching Kafka. Concurrent refreshes share one collection
// (singleflight); per-broker and per-group requests run with bounded
// concurrency.
package collector
