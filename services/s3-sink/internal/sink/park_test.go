package sink

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/pkg/service"
)

func gaugeValue(t *testing.T, g *prometheus.GaugeVec, label string) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.WithLabelValues(label).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestParking: the gauge says whether a topic has a parked partition (for
// the overflow label: how many such topics), transitions are counted once
// per reason, and a released partition (revoked) clears without claiming
// recovery.
func TestParking(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry(), 2)
	p := NewParking(slog.New(slog.DiscardHandler), m.topicsParked, m.topicParks, m.TopicLabel)
	boom := errors.New("boom")
	m.TopicLabel("a")
	m.TopicLabel("b") // the label limit is now full: c and d are _other
	p.Park("a", 0, 5, ReasonS3Refused, boom, time.Second)
	p.Park("a", 1, 7, ReasonS3Refused, boom, time.Second)
	p.Park("a", 1, 7, ReasonS3Refused, boom, time.Second) // a failed retry
	p.Park("c", 0, 1, ReasonSchema, boom, time.Second)
	p.Park("d", 0, 1, ReasonSchema, boom, time.Second)
	if v := gaugeValue(t, m.topicsParked, "a"); v != 1 {
		t.Fatalf("a parked = %v, want 1 (one topic, two partitions)", v)
	}
	if v := gaugeValue(t, m.topicsParked, service.OtherLabel); v != 2 {
		t.Fatalf("_other parked = %v, want 2 topics", v)
	}
	var c dto.Metric
	if err := m.topicParks.WithLabelValues("a", string(ReasonS3Refused)).Write(&c); err != nil || c.GetCounter().GetValue() != 2 {
		t.Fatalf("parks of a = %v, want 2 (one per partition, not per retry)", c.GetCounter().GetValue())
	}
	if p.Parked("a", 1) != ReasonS3Refused || p.Parked("b", 0) != "" {
		t.Fatal("Parked")
	}
	if !p.Unpark("a", 0) || gaugeValue(t, m.topicsParked, "a") != 1 {
		t.Fatal("a still has a parked partition")
	}
	p.Release("a", 1)
	if gaugeValue(t, m.topicsParked, "a") != 0 || p.Unpark("a", 1) {
		t.Fatal("released partition still parked")
	}
	p.Unpark("c", 0)
	if v := gaugeValue(t, m.topicsParked, service.OtherLabel); v != 1 {
		t.Fatalf("_other parked = %v, want 1", v)
	}
}
