// Package sink is the S3 sink's Writer on the shared sink runtime
// (pkg/sink): it writes Confluent-framed Avro records to S3 as Avro object
// container files, keyed by topic, partition and start offset, and reports
// a partition durable only up to the first record of a file that is still
// open. The runtime owns the consumer group, commits, dead letters,
// retries and parking.
package sink
