package prom

import "github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"

// collectLagSeconds writes the interpolated time lag per partition and its
// maximum per group and topic.
func collectLagSeconds(w *writer, s *collector.Snapshot) {
	w.family("kafka_consumergroup_lag_seconds", "Approximate age in seconds of the oldest record the ConsumerGroup has not committed at Topic/Partition, interpolated from observed log end offsets", "gauge")
	for _, g := range s.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				if p.LagSecOK {
					w.sample("kafka_consumergroup_lag_seconds", p.LagSeconds, "consumergroup", g.ID, "topic", t.Name, "partition", itoa(p.ID))
				}
			}
		}
	}
	w.family("kafka_consumergroup_lag_seconds_max", "Largest kafka_consumergroup_lag_seconds of a ConsumerGroup at Topic", "gauge")
	for _, g := range s.Groups {
		for _, t := range g.Topics {
			best, ok := 0.0, false
			for _, p := range t.Partitions {
				if p.LagSecOK && (!ok || p.LagSeconds > best) {
					best, ok = p.LagSeconds, true
				}
			}
			if ok {
				w.sample("kafka_consumergroup_lag_seconds_max", best, "consumergroup", g.ID, "topic", t.Name)
			}
		}
	}
}
