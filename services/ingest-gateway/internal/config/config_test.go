package config

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/service"
)

func TestValidateNamesTheVariable(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"GATEWAY_TOPICS":                      {},
		"GATEWAY_MAX_RECORD_BYTES":            {"GATEWAY_TOPICS": "*", "GATEWAY_MAX_RECORD_BYTES": "2000000"},
		"GATEWAY_INFLIGHT_BYTES":              {"GATEWAY_TOPICS": "*", "GATEWAY_INFLIGHT_BYTES": "10"},
		"GATEWAY_RETRY_AFTER":                 {"GATEWAY_TOPICS": "*", "GATEWAY_RETRY_AFTER": "10ms"},
		"GATEWAY_TLS_KEY_FILE":                {"GATEWAY_TOPICS": "*", "GATEWAY_TLS_CERT_FILE": "/x"},
		"GATEWAY_API_KEYS_FILE":               {"GATEWAY_TOPICS": "*", "GATEWAY_API_KEYS_FILE": "/does/not/exist"},
		"GATEWAY_PRODUCE_TIMEOUT":             {"GATEWAY_TOPICS": "*", "GATEWAY_PRODUCE_TIMEOUT": "0s"},
		"GATEWAY_TOPIC_PARTITIONS":            {"GATEWAY_TOPICS": "*", "GATEWAY_TOPIC_PARTITIONS": "0"},
		"GATEWAY_MAX_REQUEST_BYTES":           {"GATEWAY_TOPICS": "*", "GATEWAY_MAX_REQUEST_BYTES": "-1"},
		"GATEWAY_ANY_SCHEMA_TOPICS":           {"GATEWAY_TOPICS": "*", "GATEWAY_ANY_SCHEMA_TOPICS": "a["},
		"GATEWAY_DEAD_LETTER_TOPICS":          {"GATEWAY_TOPICS": "*", "GATEWAY_DEAD_LETTER_TOPICS": "a["},
		"GATEWAY_MAX_TIMESTAMP_SKEW":          {"GATEWAY_TOPICS": "*", "GATEWAY_MAX_TIMESTAMP_SKEW": "-1s"},
		"GATEWAY_MAX_TIMESTAMP_AGE":           {"GATEWAY_TOPICS": "*", "GATEWAY_MAX_TIMESTAMP_AGE": "-1s"},
		"GATEWAY_METRIC_TOPICS":               {"GATEWAY_TOPICS": "*", "GATEWAY_METRIC_TOPICS": "0"},
		"GATEWAY_TOPIC_CACHE_SIZE":            {"GATEWAY_TOPICS": "*", "GATEWAY_TOPIC_CACHE_SIZE": "0"},
		"GATEWAY_API_KEYS_RELOAD":             {"GATEWAY_TOPICS": "*", "GATEWAY_API_KEYS_RELOAD": "0s"},
		"GATEWAY_IDLE_TIMEOUT":                {"GATEWAY_TOPICS": "*", "GATEWAY_IDLE_TIMEOUT": "0s"},
		"GATEWAY_READ_HEADER_TIMEOUT":         {"GATEWAY_TOPICS": "*", "GATEWAY_READ_HEADER_TIMEOUT": "0s"},
		"GATEWAY_MAX_HEADER_BYTES":            {"GATEWAY_TOPICS": "*", "GATEWAY_MAX_HEADER_BYTES": "100"},
		"GATEWAY_GRPC_MAX_CONCURRENT_STREAMS": {"GATEWAY_TOPICS": "*", "GATEWAY_GRPC_MAX_CONCURRENT_STREAMS": "0"},
		"GATEWAY_GRPC_MAX_SEND_BYTES":         {"GATEWAY_TOPICS": "*", "GATEWAY_GRPC_MAX_SEND_BYTES": "10"},
		"GATEWAY_GRPC_KEEPALIVE_MIN_TIME":     {"GATEWAY_TOPICS": "*", "GATEWAY_GRPC_KEEPALIVE_MIN_TIME": "0s"},
	}
	for variable, env := range cases {
		_, err := Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		var ce *service.ConfigError
		if !errors.As(err, &ce) || ce.Var != variable || service.ExitCode(err) != 2 {
			t.Errorf("%s: err = %v", variable, err)
		}
	}
	c, err := Load(nil, func(k string) (string, bool) {
		if k == "GATEWAY_TOPICS" {
			return "orders,logs.*", true
		}
		return "", false
	})
	if err != nil || len(c.Topics) != 2 || c.HTTPAddr != ":8080" || c.GRPCAddr != ":9090" ||
		c.MaxTimestampSkew != time.Hour || c.MaxTimestampAge != 168*time.Hour || c.GRPCMaxConcurrentStreams != 100 || c.MetricTopics != 1000 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
}
