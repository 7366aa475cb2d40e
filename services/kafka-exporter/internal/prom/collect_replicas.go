package prom

import "github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"

// collectReplicas writes leadership and replication state per partition.
func collectReplicas(w *writer, s *collector.Snapshot) {
	each := func(name, help string, value func(p collector.Partition) (float64, bool)) {
		w.family(name, help, "gauge")
		for _, t := range s.Topics {
			for _, p := range t.Partitions {
				if v, ok := value(p); ok {
					w.sample(name, v, "topic", t.Name, "partition", itoa(p.ID))
				}
			}
		}
	}
	each("kafka_topic_partition_leader", "Leader Broker ID of this Topic/Partition", func(p collector.Partition) (float64, bool) {
		return float64(p.Leader), p.Leader >= 0
	})
	each("kafka_topic_partition_replicas", "Number of Replicas for this Topic/Partition", func(p collector.Partition) (float64, bool) {
		return float64(p.Replicas), true
	})
	each("kafka_topic_partition_in_sync_replica", "Number of In-Sync Replicas for this Topic/Partition", func(p collector.Partition) (float64, bool) {
		return float64(p.ISR), true
	})
	each("kafka_topic_partition_leader_is_preferred", "1 if Topic/Partition is using the Preferred Broker", func(p collector.Partition) (float64, bool) {
		return b2f(p.PreferredLeader), true
	})
	each("kafka_topic_partition_under_replicated_partition", "1 if Topic/Partition is under Replicated", func(p collector.Partition) (float64, bool) {
		return b2f(p.ISR < p.Replicas), true
	})
	each("kafka_topic_partition_offline", "1 if Topic/Partition has no leader", func(p collector.Partition) (float64, bool) {
		return b2f(p.Leader < 0), true
	})
}
