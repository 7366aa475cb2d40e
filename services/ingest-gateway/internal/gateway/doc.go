// Package gateway is the ingest-gateway's engine, shared by the HTTP and
// gRPC APIs: it checks topics against the configured policy, resolves
// schemas through the registry, validates and encodes records
// (Confluent-framed Avro), parks invalid ones in dead-letter topics when
// configured, produces with acks=all and reports one result per record,
// while bounding the bytes held in flight.
package gateway
