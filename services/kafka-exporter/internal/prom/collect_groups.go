package prom

import "github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"

// collectGroups writes kafka_exporter's consumer group families with its
// semantics: -1 offset and lag for partitions without a commit in a topic
// the group consumes; sums per topic where current_offset_sum adds the
// reported offsets (-1 included) and lag_sum only real lags.
func collectGroups(w *writer, s *collector.Snapshot) {
	w.family("kafka_consumergroup_current_offset", "Current Offset of a ConsumerGroup at Topic/Partition", "gauge")
	for _, g := range s.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				w.sample("kafka_consumergroup_current_offset", float64(p.Committed), "consumergroup", g.ID, "topic", t.Name, "partition", itoa(p.ID))
			}
		}
	}
	w.family("kafka_consumergroup_current_offset_sum", "Current Offset of a ConsumerGroup at Topic for all partitions", "gauge")
	for _, g := range s.Groups {
		for _, t := range g.Topics {
			var sum int64
			for _, p := range t.Partitions {
				sum += p.Committed
			}
			w.sample("kafka_consumergroup_current_offset_sum", float64(sum), "consumergroup", g.ID, "topic", t.Name)
		}
	}
	w.family("kafka_consumergroup_lag", "Current Approximate Lag of a ConsumerGroup at Topic/Partition", "gauge")
	for _, g := range s.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				if p.LagOK {
					w.sample("kafka_consumergroup_lag", float64(p.Lag), "consumergroup", g.ID, "topic", t.Name, "partition", itoa(p.ID))
				}
			}
		}
	}
	w.family("kafka_consumergroup_lag_sum", "Current Approximate Lag of a ConsumerGroup at Topic for all partitions", "gauge")
	for _, g := range s.Groups {
		for _, t := range g.Topics {
			var sum int64
			for _, p := range t.Partitions {
				if p.LagOK && p.Committed >= 0 {
					sum += p.Lag
				}
			}
			w.sample("kafka_consumergroup_lag_sum", float64(sum), "consumergroup", g.ID, "topic", t.Name)
		}
	}
	w.family("kafka_consumergroup_members", "Amount of members in a consumer group", "gauge")
	for _, g := range s.Groups {
		w.sample("kafka_consumergroup_members", float64(g.Members), "consumergroup", g.ID)
	}
}
