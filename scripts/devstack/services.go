package main

// svc is one service the stack runs: its binary name, the ports it binds,
// the port serving /readyz, and its environment for the dev stack.
type svc struct {
	name      string
	ports     []string
	adminPort string
	extra     map[string]string
}

// services in start order; the stack stops them in reverse.
var services = []svc{
	{name: "schema-registry", ports: []string{"127.0.0.1:8081", "127.0.0.1:9091"}, adminPort: "8081", extra: map[string]string{
		"SCHEMA_REGISTRY_HTTP_ADDR": "127.0.0.1:8081",
		"SCHEMA_REGISTRY_GRPC_ADDR": "127.0.0.1:9091",
	}},
	{name: "ingest-gateway", ports: []string{"127.0.0.1:8080", "127.0.0.1:9090"}, adminPort: "8080", extra: map[string]string{
		"GATEWAY_HTTP_ADDR":          "127.0.0.1:8080",
		"GATEWAY_GRPC_ADDR":          "127.0.0.1:9090",
		"GATEWAY_TOPICS":             "*",
		"GATEWAY_AUTO_CREATE_TOPICS": "true",
	}},
	{name: "s3-sink", ports: []string{"127.0.0.1:9102"}, adminPort: "9102", extra: map[string]string{
		"S3_SINK_ADMIN_ADDR":  "127.0.0.1:9102",
		"S3_SINK_TOPIC_REGEX": ".*", // internal (_*) and .dlq topics are always excluded
		// Files are written at least every 10s so a newcomer sees objects at
		// once; production keeps deterministic size-based rotation.
		"S3_SINK_ROTATE_MAX_OPEN": "10s",
		"S3_SINK_TOPIC_REFRESH":   "3s",
	}},
	{name: "search-sink", ports: []string{"127.0.0.1:9103"}, adminPort: "9103", extra: map[string]string{
		"SEARCH_SINK_ADMIN_ADDR": "127.0.0.1:9103",
		// SEARCH_SINK_TOPICS unset: every non-internal, non-DLQ topic.
		"SEARCH_SINK_TOPIC_REFRESH": "3s",
	}},
	{name: "kafka-exporter", ports: []string{"127.0.0.1:9308"}, adminPort: "9308", extra: map[string]string{
		"EXPORTER_ADMIN_ADDR": "127.0.0.1:9308",
	}},
}

// env is the child's environment: the parent's, the shared backend
// settings, then the service's own.
func (s svc) env(b backends) map[string]string {
	m := map[string]string{
		"LOG_LEVEL":            "info",
		"KAFKA_BROKERS":        b.kafka,
		"KAFKA_CLIENT_ID":      "sluice-dev-" + s.name,
		"KAFKA_METADATA_TTL":   "2s", // brand-new topics are seen at once
		"REGISTRY_URL":         "http://127.0.0.1:8081",
		"REGISTRY_GRPC_ADDR":   "127.0.0.1:9091", // gRPC first, REST the fallback
		"S3_ENDPOINT":          b.s3Endpoint,
		"S3_BUCKET":            b.s3Bucket,
		"S3_REGION":            b.reg,
		"S3_ACCESS_KEY_ID":     b.s3Access,
		"S3_SECRET_ACCESS_KEY": b.s3Secret,
		"S3_FORCE_PATH_STYLE":  "true",
		"ES_URL":               b.esURL,
		"SHUTDOWN_TIMEOUT":     "15s",
	}
	for k, v := range s.extra {
		m[k] = v
	}
	return m
}
