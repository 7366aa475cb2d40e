// Package sink is the runtime both Sluice sinks run on: it owns topic
// selection, the Kafka consumer group and its rebalances, per-partition
// contiguous-offset commits, dead letters, retries with backoff, parking a
// failing topic while the others flow, graceful drains and one set of
// metrics. A sink provides a Writer: the runtime hands it records in
// offset order and commits an offset only once the Writer has reported
// every record below it durable (or the runtime dead-lettered or skipped
// it on purpose).
//
// Invariants (see DESIGN.md, "Sink runtime"):
//   - the committed offset of a partition is never above a record that is
//     neither durable, acknowledged dead letter (acks=all) nor skipped;
//   - a partition is consumed by at most one runtime of a group per
//     generation; commits carry the generation, so a revoked partition's
//     late commit is rejected by the coordinator;
//   - a parked topic's partitions stop, drop what is not durable and start
//     again from their committed offset once the topic is released.
package sink
