package config

import (
	"errors"
	"testing"

	"github.com/sluicehq/sluice/pkg/service"
)

func TestValidateNamesTheVariable(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"GATEWAY_TOPICS":            {},
		"GATEWAY_MAX_RECORD_BYTES":  {"GATEWAY_TOPICS": "*", "GATEWAY_MAX_RECORD_BYTES": "2000000"},
		"GATEWAY_INFLIGHT_BYTES":    {"GATEWAY_TOPICS": "*", "GATEWAY_INFLIGHT_BYTES": "10"},
		"GATEWAY_RETRY_AFTER":       {"GATEWAY_TOPICS": "*", "GATEWAY_RETRY_AFTER": "10ms"},
		"GATEWAY_TLS_KEY_FILE":      {"GATEWAY_TOPICS": "*", "GATEWAY_TLS_CERT_FILE": "/x"},
		"GATEWAY_API_KEYS_FILE":     {"GATEWAY_TOPICS": "*", "GATEWAY_API_KEYS_FILE": "/does/not/exist"},
		"GATEWAY_PRODUCE_TIMEOUT":   {"GATEWAY_TOPICS": "*", "GATEWAY_PRODUCE_TIMEOUT": "0s"},
		"GATEWAY_TOPIC_PARTITIONS":  {"GATEWAY_TOPICS": "*", "GATEWAY_TOPIC_PARTITIONS": "0"},
		"GATEWAY_MAX_REQUEST_BYTES": {"GATEWAY_TOPICS": "*", "GATEWAY_MAX_REQUEST_BYTES": "-1"},
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
	if err != nil || len(c.Topics) != 2 || c.HTTPAddr != ":8080" || c.GRPCAddr != ":9090" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
}
