// Package registry is the client every Sluice service uses to reach the
// schema registry: Confluent REST paths (so it also works against a
// Confluent registry), an id->schema cache kept forever (ids are immutable)
// with singleflight, and a briefly cached "latest" refreshed in the
// background.
package registry
