package prom

import "github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"

// collectBrokers writes kafka_brokers, kafka_broker_info and
// kafka_cluster_info.
func collectBrokers(w *writer, s *collector.Snapshot) {
	w.family("kafka_brokers", "Number of Brokers in the Kafka Cluster.", "gauge")
	w.sample("kafka_brokers", float64(len(s.Brokers)))
	w.family("kafka_broker_info", "Information about the Kafka Broker.", "gauge")
	for _, b := range s.Brokers {
		w.sample("kafka_broker_info", 1, "id", itoa(b.ID), "address", b.Addr)
	}
	w.family("kafka_cluster_info", "Cluster id and current controller broker id.", "gauge")
	w.sample("kafka_cluster_info", 1, "cluster_id", s.ClusterID, "controller_id", itoa(s.ControllerID))
}
