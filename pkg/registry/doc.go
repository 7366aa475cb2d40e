// Package registry is the client every Sluice service uses to reach the
// schema registry: Confluent REST paths (so it also works against a
// Confluent registry), an id->schema cache kept forever (ids are immutable)
// with singleflight, and a briefly cached "latest" refreshed in the
// background. With REGISTRY_GRPC_ADDR (or WithGRPC) lookups and
// registration go to Sluice's registry over gRPC (sluice.registry.v1)
// first, falling back to REST when gRPC is unavailable; errors keep their
// Confluent codes either way.
package registry
