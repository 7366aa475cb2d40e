// Package gateway is the ingest-gateway's engine, shared by the HTTP and
// gRPC APIs: it checks topics against the configured policy, resolves
// schemas through the registry, validates and encodes records
// (Confluent-framed Avro), parks invalid ones in dead-letter topics when
// configured, produces with acks=all and reports one result per record,
// while bounding the bytes held in flight.
//
// Files by job: engine.go (the Engine, its configuration and shutdown),
// produce.go (a batch from plan to Kafka's answers), encode.go (record
// validation and encoding), schemas.go (schema resolution and ownership),
// hold.go (the in-flight byte budget), tally.go (per-batch metrics),
// deadletter.go, topics.go (topic policy and lookup), producer.go (the
// Kafka writer), stream.go and timestamps.go.
package gateway
