package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// exampleSchema is registered under orders-value so the printed command
// works on a fresh stack.
const exampleSchema = `{"type":"record","name":"Order","namespace":"com.example","fields":[` +
	`{"name":"id","type":"string"},{"name":"amount","type":"double"},` +
	`{"name":"currency","type":"string","default":"EUR"},` +
	`{"name":"created_at","type":{"type":"long","logicalType":"timestamp-millis"}}]}`

func registerExample(ctx context.Context, registryURL string) error {
	body, _ := json.Marshal(map[string]string{"schema": exampleSchema})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, registryURL+"/subjects/orders-value/versions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("registering orders-value: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("registering orders-value: %d %s", resp.StatusCode, b)
	}
	return nil
}

func printBanner(w io.Writer, b backends, dataDir string, took time.Duration) {
	fmt.Fprintf(w, `
Sluice dev stack is up (services ready %s after start)

  component         endpoint
  ingest-gateway    http://127.0.0.1:8080 (HTTP)   127.0.0.1:9090 (gRPC)
  schema-registry   http://127.0.0.1:8081 (REST)   127.0.0.1:9091 (gRPC)
  s3-sink           http://127.0.0.1:9102/metrics
  search-sink       http://127.0.0.1:9103/metrics
  kafka-exporter    http://127.0.0.1:9308/metrics
  kafka             %s
  s3                %s  bucket %s (access key %s)
  elasticsearch     %s

Send a record (schema orders-value is pre-registered):
  curl -s -XPOST http://127.0.0.1:8080/v1/topics/orders/records -H 'Content-Type: application/json' \
    -d '{"records":[{"key":"o-1","value":{"id":"o-1","amount":12.5,"currency":"EUR","created_at":"2026-01-01T10:00:00Z"}}]}'
See it in search:    curl -s '%s/orders*/_count'
See it in S3:        find %s/s3/%s -name '*.avro'   (within ~10s)
Ctrl-C stops everything.
`, took.Round(time.Millisecond), b.kafka, b.s3Endpoint, b.s3Bucket, b.s3Access, b.esURL, b.esURL, dataDir, b.s3Bucket)
}
