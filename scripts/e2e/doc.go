// Package e2e proves the whole pipeline on real processes: the five service
// binaries run against the dev-stack backends (kfake, versitygw, the ES 8
// double) while records flow and services are killed, and the invariants in
// verify.go are checked on what Kafka, S3 and the search index hold.
package e2e
