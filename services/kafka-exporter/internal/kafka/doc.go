// Package kafka speaks the Kafka admin protocol for the exporter: one pooled,
// authenticated connection set per broker, and the queries a collection needs
// (metadata, ListOffsets batched per leader, ListGroups and DescribeGroups
// per coordinator, OffsetFetch per group, DescribeConfigs), built on
// kafka-go's protocol package so every request goes exactly where we send it.
package kafka
