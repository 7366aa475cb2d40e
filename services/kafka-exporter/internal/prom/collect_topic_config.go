package prom

import (
	"strconv"

	"github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"
)

// collectTopicConfig writes the described topic configuration: an info
// series with the cleanup policy and numeric series for retention and
// min.insync.replicas (-1 retention means unlimited, as in Kafka).
func collectTopicConfig(w *writer, s *collector.Snapshot) {
	w.family("kafka_topic_config_info", "Topic configuration as labels (cleanup policy)", "gauge")
	for _, t := range s.Topics {
		if t.Config != nil {
			w.sample("kafka_topic_config_info", 1, "topic", t.Name, "cleanup_policy", t.Config["cleanup.policy"])
		}
	}
	numeric := []struct{ key, name, help string }{
		{"retention.ms", "kafka_topic_config_retention_ms", "Topic retention.ms (-1: unlimited)"},
		{"retention.bytes", "kafka_topic_config_retention_bytes", "Topic retention.bytes (-1: unlimited)"},
		{"min.insync.replicas", "kafka_topic_config_min_insync_replicas", "Topic min.insync.replicas"},
	}
	for _, n := range numeric {
		w.family(n.name, n.help, "gauge")
		for _, t := range s.Topics {
			v, err := strconv.ParseFloat(t.Config[n.key], 64)
			if t.Config != nil && err == nil {
				w.sample(n.name, v, "topic", t.Name)
			}
		}
	}
}
