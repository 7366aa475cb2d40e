package sink

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/pkg/service"
)

// TestParkerMetrics: the gauge says how many topics are parked per label
// (for the overflow label: how many such topics), a park is counted once
// per transition (not per partition or failed retry), and a release or a
// forgotten topic clears it (moved from s3-sink's TestParking).
func TestParkerMetrics(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry(), "test", 2)
	p := newParker(backoff.Policy{Base: time.Minute, Max: time.Hour}, m, slog.New(slog.DiscardHandler), nil, time.Now)
	gauge := func(label string) float64 {
		var d dto.Metric
		if err := m.parked.WithLabelValues(label).Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetGauge().GetValue()
	}
	parks := func(label string, reason Reason) float64 {
		var d dto.Metric
		if err := m.parks.WithLabelValues(label, string(reason)).Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue()
	}
	boom := errors.New("boom")
	m.TopicLabel("a")
	m.TopicLabel("b") // the label limit is now full: c and d are _other
	p.park("a", 5, &ParkError{Reason: "s3_refused", Err: boom})
	p.park("a", 7, &ParkError{Reason: "s3_refused", Err: boom}) // another partition, or a failed retry
	p.park("c", 1, &ParkError{Reason: ReasonSchema, Err: boom})
	p.park("d", 1, &ParkError{Reason: ReasonSchema, Err: boom})
	if v := gauge("a"); v != 1 {
		t.Fatalf("a parked = %v, want 1", v)
	}
	if v := gauge(service.OtherLabel); v != 2 {
		t.Fatalf("_other parked = %v, want 2 topics", v)
	}
	if v := parks("a", "s3_refused"); v != 1 {
		t.Fatalf("parks of a = %v, want 1 (one per transition)", v)
	}
	if !p.isParked("a") || p.isParked("b") {
		t.Fatal("isParked")
	}
	p.release("a", "test")
	if gauge("a") != 0 || p.isParked("a") {
		t.Fatal("released topic still parked")
	}
	p.park("a", 5, &ParkError{Reason: "s3_refused", Err: boom})
	if v := parks("a", "s3_refused"); v != 2 || gauge("a") != 1 {
		t.Fatalf("parks of a after a release and a new park = %v, gauge %v", v, gauge("a"))
	}
	p.forget("c")
	if v := gauge(service.OtherLabel); v != 1 {
		t.Fatalf("_other parked = %v after forgetting c, want 1", v)
	}
}
