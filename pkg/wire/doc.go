// Package wire encodes and decodes the Confluent wire format: a zero magic
// byte, a 4-byte big-endian schema id, then the serialized payload.
package wire
