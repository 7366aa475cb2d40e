// Package sink consumes Confluent-framed Avro records from Kafka and writes
// them to S3 as Avro object container files, committing each partition's
// offset only after the objects covering it are complete.
//
// Partitions are consumed through kafka-go's ConsumerGroup API: every
// generation lists its assignments with the committed offsets, each
// assigned partition gets its own worker, and commits carry the
// generation id, so a worker whose partition was revoked cannot commit
// (the coordinator rejects the stale generation) and drops its open files.
package sink
