// Package sink is search-sink's Writer for the shared sink runtime
// (pkg/sink): it turns records into documents, indexes them with one
// esutil.BulkIndexer shared by every partition and reports each record
// durable once Elasticsearch acknowledged it item by item (or asks the
// runtime to dead-letter it), so the runtime commits a partition's offset
// only up to the first record not yet acknowledged.
package sink
