// Package avro caches goavro codecs by schema id and converts between JSON
// and Avro for the gateway and the sinks.
package avro
