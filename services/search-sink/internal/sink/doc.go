// Package sink consumes Kafka topics with a consumer group, turns records
// into documents, indexes them with esutil.BulkIndexer and commits each
// partition's offset only up to the first record not yet acknowledged by
// Elasticsearch (or written to the DLQ).
package sink
