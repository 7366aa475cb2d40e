// Package acceptance holds the registry's end-to-end tests: a third-party
// client (franz-go's sr), several replicas on one log, restarts, logs
// written by Confluent, gRPC, and the benchmarks.
package acceptance
