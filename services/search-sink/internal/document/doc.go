// Package document turns Confluent-framed Avro records into Elasticsearch
// JSON documents: schema-guided normalisation of goavro's native values
// (unions unwrapped, timestamps as ISO-8601, decimals as strings or numbers),
// @timestamp and _kafka metadata, index names and document ids.
package document
