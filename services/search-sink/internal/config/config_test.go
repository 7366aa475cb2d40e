package config

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/deadletter"
	"github.com/sluicehq/sluice/pkg/service"
)

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(nil, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminAddr != ":9103" || c.ES.URLs[0] != "http://127.0.0.1:9200" || c.IndexPattern != "<topic>-{yyyy.MM.dd}" || c.ES.Flavor != "elasticsearch" {
		t.Fatalf("defaults = %+v", c)
	}
	// Alerts go to an internal topic that no topic pattern matches.
	if c.AlertsTopic != "_sluice-alerts" {
		t.Fatalf("alerts topic default = %q", c.AlertsTopic)
	}
	if c.DLQMaxBytes != deadletter.DefaultMaxBytes {
		t.Fatalf("SEARCH_SINK_DLQ_MAX_BYTES default %d, want deadletter.DefaultMaxBytes %d", c.DLQMaxBytes, deadletter.DefaultMaxBytes)
	}
	if age, from := c.RecordAge(); age != 30*24*time.Hour || from != "SEARCH_SINK_RETENTION_DAYS" {
		t.Fatalf("record age = %s from %s, want the 30-day retention", age, from)
	}
}

func TestValidationNamesTheVariable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"ES_URL": "localhost:9200"}, "ES_URL"},
		{map[string]string{"ES_FLAVOR": "solr"}, "ES_FLAVOR"},
		{map[string]string{"ES_USERNAME": "u"}, "ES_PASSWORD"},
		{map[string]string{"ES_USERNAME": "u", "ES_PASSWORD": "p", "ES_API_KEY": "k"}, "ES_API_KEY"},
		{map[string]string{"ES_AWS_SIGV4": "true"}, "ES_AWS_SIGV4"},
		{map[string]string{"ES_AWS_SIGV4": "true", "ES_FLAVOR": "opensearch", "ES_AWS_REGION": "eu-west-1", "ES_AWS_SERVICE": "s3"}, "ES_AWS_SERVICE"},
		{map[string]string{"SEARCH_SINK_INDEX_MODE": "alias"}, "SEARCH_SINK_INDEX_MODE"},
		{map[string]string{"SEARCH_SINK_INDEX_PATTERN": "{yyyy}-<topic>"}, "SEARCH_SINK_INDEX_PATTERN"},
		{map[string]string{"SEARCH_SINK_INDEX_PATTERN": "<topic>-{ww}"}, "SEARCH_SINK_INDEX_PATTERN"},
		{map[string]string{"SEARCH_SINK_INDEX_MODE": "datastream", "SEARCH_SINK_DATA_STREAM_NAMESPACE": "a-b"}, "SEARCH_SINK_DATA_STREAM_NAMESPACE"},
		{map[string]string{"SEARCH_SINK_INDEX_MODE": "datastream", "SEARCH_SINK_ID_MODE": "key"}, "SEARCH_SINK_ID_MODE"},
		{map[string]string{"SEARCH_SINK_ID_MODE": "uuid"}, "SEARCH_SINK_ID_MODE"},
		{map[string]string{"SEARCH_SINK_DECIMALS": "float"}, "SEARCH_SINK_DECIMALS"},
		{map[string]string{"SEARCH_SINK_STRINGS": "wildcard"}, "SEARCH_SINK_STRINGS"},
		{map[string]string{"SEARCH_SINK_START_OFFSET": "middle"}, "SEARCH_SINK_START_OFFSET"},
		{map[string]string{"SEARCH_SINK_WORKERS": "0"}, "SEARCH_SINK_WORKERS"},
		{map[string]string{"SEARCH_SINK_MAX_BUFFERED_BYTES": "1000"}, "SEARCH_SINK_MAX_BUFFERED_BYTES"},
		{map[string]string{"SEARCH_SINK_FLUSH_INTERVAL": "0s"}, "SEARCH_SINK_FLUSH_INTERVAL"},
		{map[string]string{"SEARCH_SINK_RULES_FILE": "/nonexistent/rules.yaml"}, "SEARCH_SINK_RULES_FILE"},
		{map[string]string{"SEARCH_SINK_SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, "SEARCH_SINK_SLACK_WEBHOOK_URL"},
		{map[string]string{"SEARCH_SINK_ALERTS_TOPIC": "_alerts"}, "SEARCH_SINK_ALERTS_TOPIC"},
		{map[string]string{"SEARCH_SINK_ALERTS_TOPIC": "alerts"}, "SEARCH_SINK_ALERTS_TOPIC"},
		{map[string]string{"SEARCH_SINK_ALERTS_TOPIC": "sluice-alerts"}, "SEARCH_SINK_ALERTS_TOPIC"},
		{map[string]string{"SEARCH_SINK_TOPICS": "orders,_sluice-alerts"}, "SEARCH_SINK_TOPICS"},
		{map[string]string{"SEARCH_SINK_TOPICS": "orders.dlq"}, "SEARCH_SINK_TOPICS"},
		{map[string]string{"SEARCH_SINK_MAX_RECORD_AGE": "-1h"}, "SEARCH_SINK_MAX_RECORD_AGE"},
		{map[string]string{"SEARCH_SINK_MAX_RECORD_AGE": "800h"}, "SEARCH_SINK_MAX_RECORD_AGE"},
		{map[string]string{"SEARCH_SINK_MAX_FUTURE_SKEW": "-1s"}, "SEARCH_SINK_MAX_FUTURE_SKEW"},
		{map[string]string{"SEARCH_SINK_MAX_NEW_INDICES_PER_HOUR": "-1"}, "SEARCH_SINK_MAX_NEW_INDICES_PER_HOUR"},
		{map[string]string{"SEARCH_SINK_MAX_DOCUMENT_BYTES": "0"}, "SEARCH_SINK_MAX_DOCUMENT_BYTES"},
		{map[string]string{"SEARCH_SINK_DLQ_MAX_BYTES": "100"}, "SEARCH_SINK_DLQ_MAX_BYTES"},
		{map[string]string{"SEARCH_SINK_RETRY_ATTEMPTS": "0"}, "SEARCH_SINK_RETRY_ATTEMPTS"},
		{map[string]string{"SEARCH_SINK_PARK_RETRY_BASE": "1m", "SEARCH_SINK_PARK_RETRY_MAX": "30s"}, "SEARCH_SINK_PARK_RETRY_MAX"},
		{map[string]string{"SEARCH_SINK_MAX_TOPIC_LABELS": "0"}, "SEARCH_SINK_MAX_TOPIC_LABELS"},
		{map[string]string{"SEARCH_SINK_RULES_MAX_STATE_BYTES": "0"}, "SEARCH_SINK_RULES_MAX_STATE_BYTES"},
		{map[string]string{"SEARCH_SINK_RULES_MAX_TERM_BYTES": "8"}, "SEARCH_SINK_RULES_MAX_TERM_BYTES"},
		{map[string]string{"SEARCH_SINK_REPLICAS": "-2"}, "SEARCH_SINK_REPLICAS"},
		{map[string]string{"KAFKA_BROKERS": "nohostport"}, "KAFKA_BROKERS"},
		{map[string]string{"REGISTRY_URL": "ftp://x"}, "REGISTRY_URL"},
	}
	for _, tc := range cases {
		_, err := Load(nil, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		var ce *service.ConfigError
		if !errors.As(err, &ce) || ce.Var != tc.wantVar {
			t.Errorf("env %v: err = %v, want a config error naming %s", tc.env, err, tc.wantVar)
		}
		if service.ExitCode(err) != 2 {
			t.Errorf("env %v: exit code %d, want 2", tc.env, service.ExitCode(err))
		}
	}
}

func TestSecretURLNotEchoed(t *testing.T) {
	t.Parallel()
	secret := "hooks.slack.com/services/T000/B000/XXXXSECRET"
	_, err := Load(nil, func(k string) (string, bool) {
		if k == "SEARCH_SINK_SLACK_WEBHOOK_URL" {
			return secret, true
		}
		return "", false
	})
	if err == nil || containsStr(err.Error(), "XXXXSECRET") {
		t.Fatalf("err = %v", err)
	}
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
