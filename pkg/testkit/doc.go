// Package testkit holds test-only backends in their own module so services
// never link them: kafkatest (kfake), s3test (versitygw) and estest (an
// Elasticsearch 8 wire double).
package testkit
