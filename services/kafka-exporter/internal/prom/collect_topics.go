package prom

import "github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"

// collectTopics writes partition counts and log start/end offsets.
func collectTopics(w *writer, s *collector.Snapshot) {
	w.family("kafka_topic_partitions", "Number of partitions for this Topic", "gauge")
	for _, t := range s.Topics {
		w.sample("kafka_topic_partitions", float64(len(t.Partitions)), "topic", t.Name)
	}
	w.family("kafka_topic_partition_current_offset", "Current Offset of a Broker at Topic/Partition", "gauge")
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			if p.NewestOK {
				w.sample("kafka_topic_partition_current_offset", float64(p.Newest), "topic", t.Name, "partition", itoa(p.ID))
			}
		}
	}
	w.family("kafka_topic_partition_oldest_offset", "Oldest Offset of a Broker at Topic/Partition", "gauge")
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			if p.OldestOK {
				w.sample("kafka_topic_partition_oldest_offset", float64(p.Oldest), "topic", t.Name, "partition", itoa(p.ID))
			}
		}
	}
}
