// Package gen holds protobuf and gRPC code generated from proto/ by
// `make proto`; never edit it by hand (`make proto-check` fails on drift).
package gen
