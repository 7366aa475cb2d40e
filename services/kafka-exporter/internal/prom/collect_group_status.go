package prom

import (
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/status"
)

// groupStates are the classic group states DescribeGroups reports.
var groupStates = []string{"Stable", "Empty", "PreparingRebalance", "CompletingRebalance", "Dead"}

// collectGroupStatus writes the group state and Burrow-style status, each
// as a one-hot enumeration (1 for the current value, 0 for the others).
func collectGroupStatus(w *writer, s *collector.Snapshot) {
	w.family("kafka_consumergroup_state", "1 for the ConsumerGroup's current state as DescribeGroups reports it", "gauge")
	for _, g := range s.Groups {
		known := false
		for _, st := range groupStates {
			known = known || st == g.State
			w.sample("kafka_consumergroup_state", b2f(st == g.State), "consumergroup", g.ID, "state", st)
		}
		if !known && g.State != "" {
			w.sample("kafka_consumergroup_state", 1, "consumergroup", g.ID, "state", g.State)
		}
	}
	w.family("kafka_consumergroup_status", "1 for the ConsumerGroup's Burrow-style status (OK, WARN, ERR, STOP, STALL)", "gauge")
	for _, g := range s.Groups {
		for _, c := range status.Codes {
			w.sample("kafka_consumergroup_status", b2f(c == g.Status), "consumergroup", g.ID, "status", c.String())
		}
	}
	w.family("kafka_consumergroup_status_code", "ConsumerGroup Burrow-style status as a number: 0 OK, 1 WARN, 2 ERR, 3 STOP, 4 STALL", "gauge")
	for _, g := range s.Groups {
		w.sample("kafka_consumergroup_status_code", float64(g.Status), "consumergroup", g.ID)
	}
}
