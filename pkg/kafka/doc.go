// Package kafka builds kafka-go clients from Sluice's shared KAFKA_*
// configuration: transport and dialer (TLS, SASL PLAIN/SCRAM), a writer that
// always waits for all in-sync replicas, consumer-group readers with explicit
// commits, idempotent topic creation and a health probe.
package kafka
