package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/deadletter"
	"github.com/sluicehq/sluice/pkg/service"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func base() map[string]string {
	return map[string]string{"S3_BUCKET": "archive", "S3_SINK_TOPICS": "orders"}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(nil, lookup(base()))
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminAddr != ":9102" || c.Sink.Codec != "snappy" || c.Sink.Partitioner != "default" || c.Sink.PartSize != MinPartSize ||
		c.Lifecycle.Prefix != "topics" || c.Sink.Tombstones != "ignore" || !c.Sink.DLQ ||
		c.Sink.MaxKeyBytes != 1024 || c.Sink.MaxSegmentBytes != 255 || c.Sink.MaxOpenFiles != 16 || c.Sink.DLQMaxBytes != deadletter.DefaultMaxBytes ||
		c.Sink.RetryAttempts != 8 || c.Sink.TopicLabelLimit != 500 {
		t.Fatalf("defaults: %+v", c)
	}
}

// TestValidateNamesVariable: every bad value fails with a ConfigError
// naming the variable (exit code 2).
func TestValidateNamesVariable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, variable string
		env            map[string]string
	}{
		{"no bucket", "S3_BUCKET", map[string]string{"S3_BUCKET": ""}},
		{"no topics", "S3_SINK_TOPICS", map[string]string{"S3_SINK_TOPICS": ""}},
		{"both topic settings", "S3_SINK_TOPIC_REGEX", map[string]string{"S3_SINK_TOPIC_REGEX": ".*"}},
		{"bad regex", "S3_SINK_TOPIC_REGEX", map[string]string{"S3_SINK_TOPICS": "", "S3_SINK_TOPIC_REGEX": "("}},
		{"zstd", "S3_SINK_CODEC", map[string]string{"S3_SINK_CODEC": "zstandard"}},
		{"partitioner", "S3_SINK_PARTITIONER", map[string]string{"S3_SINK_PARTITIONER": "hash"}},
		{"field without name", "S3_SINK_PARTITION_FIELD", map[string]string{"S3_SINK_PARTITIONER": "field"}},
		{"timestamp field", "S3_SINK_TIMESTAMP_FIELD", map[string]string{"S3_SINK_TIMESTAMP_SOURCE": "field"}},
		{"zone", "S3_SINK_TIMEZONE", map[string]string{"S3_SINK_TIMEZONE": "Mars/Base"}},
		{"small part", "S3_SINK_PART_SIZE", map[string]string{"S3_SINK_PART_SIZE": "1024"}},
		{"tombstones", "S3_SINK_TOMBSTONES", map[string]string{"S3_SINK_TOMBSTONES": "keep"}},
		{"no rotation", "S3_SINK_FLUSH_RECORDS", map[string]string{"S3_SINK_FLUSH_RECORDS": "0", "S3_SINK_FLUSH_BYTES": "0"}},
		{"half keys", "S3_SECRET_ACCESS_KEY", map[string]string{"S3_ACCESS_KEY_ID": "AK"}},
		{"endpoint", "S3_ENDPOINT", map[string]string{"S3_ENDPOINT": "minio:9000"}},
		{"prefix slash", "S3_SINK_PREFIX", map[string]string{"S3_SINK_PREFIX": "a/"}},
		{"storage class", "S3_SINK_LIFECYCLE_STORAGE_CLASS", map[string]string{"S3_SINK_LIFECYCLE_STORAGE_CLASS": "TAPE"}},
		{"expire before transition", "S3_SINK_LIFECYCLE_EXPIRE_DAYS", map[string]string{"S3_SINK_LIFECYCLE_TRANSITION_DAYS": "30", "S3_SINK_LIFECYCLE_EXPIRE_DAYS": "10"}},
		{"replication half", "S3_SINK_REPLICATION_DEST_BUCKET_ARN", map[string]string{"S3_SINK_REPLICATION_ROLE_ARN": "arn:aws:iam::1:role/r"}},
		{"heartbeat", "S3_SINK_HEARTBEAT_INTERVAL", map[string]string{"S3_SINK_HEARTBEAT_INTERVAL": "1m"}},
		{"prefix characters", "S3_SINK_PREFIX", map[string]string{"S3_SINK_PREFIX": "a b/c"}},
		{"prefix dotdot", "S3_SINK_PREFIX", map[string]string{"S3_SINK_PREFIX": "a/../b"}},
		{"prefix too long", "S3_SINK_PREFIX", map[string]string{"S3_SINK_PREFIX": strings.Repeat("p", 200) + "/" + strings.Repeat("q", 100)}},
		{"key limit above S3", "S3_SINK_MAX_KEY_BYTES", map[string]string{"S3_SINK_MAX_KEY_BYTES": "2048"}},
		{"segment limit tiny", "S3_SINK_MAX_KEY_SEGMENT_BYTES", map[string]string{"S3_SINK_MAX_KEY_SEGMENT_BYTES": "10"}},
		{"path format colon", "S3_SINK_PATH_FORMAT", map[string]string{"S3_SINK_PARTITIONER": "time", "S3_SINK_PATH_FORMAT": "HH:mm"}},
		{"path format too long", "S3_SINK_PATH_FORMAT", map[string]string{"S3_SINK_PARTITIONER": "time", "S3_SINK_PATH_FORMAT": strings.Repeat("x", 250) + "YYYY"}},
		{"field name", "S3_SINK_PARTITION_FIELD", map[string]string{"S3_SINK_PARTITIONER": "field", "S3_SINK_PARTITION_FIELD": "a/b"}},
		{"open files", "S3_SINK_MAX_OPEN_FILES", map[string]string{"S3_SINK_MAX_OPEN_FILES": "0"}},
		{"dlq size", "S3_SINK_DLQ_MAX_BYTES", map[string]string{"S3_SINK_DLQ_MAX_BYTES": "100"}},
		{"retry attempts", "S3_SINK_RETRY_ATTEMPTS", map[string]string{"S3_SINK_RETRY_ATTEMPTS": "0"}},
		{"retry delay", "S3_SINK_RETRY_MAX_DELAY", map[string]string{"S3_SINK_RETRY_MAX_DELAY": "1ms"}},
		{"park retry", "S3_SINK_PARK_RETRY_MAX", map[string]string{"S3_SINK_PARK_RETRY_MIN": "1m", "S3_SINK_PARK_RETRY_MAX": "10s"}},
		{"label limit", "S3_SINK_TOPIC_LABEL_LIMIT", map[string]string{"S3_SINK_TOPIC_LABEL_LIMIT": "0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := base()
			for k, v := range c.env {
				env[k] = v
			}
			_, err := Load(nil, lookup(env))
			var ce *service.ConfigError
			if !errors.As(err, &ce) || ce.Var != c.variable {
				t.Fatalf("err = %v, want a ConfigError for %s", err, c.variable)
			}
			if service.ExitCode(err) != 2 {
				t.Fatalf("exit code %d", service.ExitCode(err))
			}
		})
	}
}
