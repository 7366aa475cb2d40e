package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/probe"
)

// TestProbeAndFaults runs the probe against kfake: round trips are
// observed; an injected produce fault raises the failure counter, a fetch
// fault the lost counter; a ListOffsets fault fails collections while the
// exporter keeps serving and reports it.
func TestProbeAndFaults(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.NumBrokers(2))
	c.CreateTopic("data", 2, nil)
	f := newFixture(t, c)
	const topic = "_sluice_probe"
	pr := probe.New(f.kc, f.admin, probe.Options{
		Topic: topic, Interval: 50 * time.Millisecond, Timeout: 500 * time.Millisecond, Registry: f.app.Metrics(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("probe returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("probe did not stop")
		}
	})
	url := f.srv.URL + "/metrics"
	metric := func(name string) float64 { return series(scrape(t, url, false), name)[""] }
	atLeast := func(name string, min float64) func() error {
		return func() error {
			if v := metric(name); v < min {
				return fmt.Errorf("%s = %v, want >= %v", name, v, min)
			}
			return nil
		}
	}

	eventually(t, 30*time.Second, atLeast("sluice_exporter_probe_records_received_total", 6))
	eventually(t, 5*time.Second, atLeast("sluice_exporter_probe_roundtrip_duration_seconds", 6))
	if got := metric("sluice_exporter_probe_partitions"); got != 2 {
		t.Fatalf("probe partitions = %v, want one per broker (2)", got)
	}
	if got := metric("sluice_exporter_probe_brokers_covered"); got != 2 {
		t.Fatalf("brokers covered = %v, want 2", got)
	}
	if got := metric("sluice_exporter_probe_records_lost_total"); got != 0 {
		t.Fatalf("lost = %v before any fault", got)
	}

	// Produce fault: records are refused, failures rise.
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.NotEnoughReplicas, Count: -1})
	eventually(t, 20*time.Second, atLeast("sluice_exporter_probe_produce_failures_total", 2))
	h.Remove()

	// Fetch fault: records are acknowledged but never come back in time.
	h = c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Topic: topic, Err: kerr.UnknownServerError, Count: -1})
	eventually(t, 20*time.Second, atLeast("sluice_exporter_probe_records_lost_total", 2))
	h.Remove()
	before := metric("sluice_exporter_probe_records_received_total")
	eventually(t, 20*time.Second, atLeast("sluice_exporter_probe_records_received_total", before+2))

	// ListOffsets fault: the collection fails, the exporter keeps serving.
	if err := f.refresh(t); err != nil {
		t.Fatalf("healthy collection: %v", err)
	}
	h = c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.ListOffsets}, Topic: "data", Err: kerr.NotLeaderForPartition, Count: -1})
	if err := f.refresh(t); err == nil {
		t.Fatal("collection with failing ListOffsets reported success")
	}
	h.Remove()
	res, err := http.Get(f.srv.URL + "/healthz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("healthz after failed collection: %v %v", res, err)
	}
	_ = res.Body.Close()
	mfs := scrape(t, url, false)
	if got := series(mfs, "sluice_exporter_up")[""]; got != 0 {
		t.Fatalf("sluice_exporter_up = %v after failed collection, want 0", got)
	}
	if got := series(mfs, "sluice_exporter_collection_errors_total")["stage=offsets"]; got < 1 {
		t.Fatalf("offsets stage errors = %v, want >= 1", got)
	}
	// The failed partitions are left out, the healthy topic still reported.
	if got := series(mfs, "kafka_topic_partition_current_offset"); len(got) == 0 {
		t.Fatal("no offsets served after a partial failure")
	}
	if got := series(mfs, "kafka_topic_partitions")["topic=data"]; got != 2 {
		t.Fatalf("data partitions = %v, want 2", got)
	}
	if err := f.refresh(t); err != nil {
		t.Fatalf("collection after the fault was removed: %v", err)
	}
	if got := series(scrape(t, url, false), "sluice_exporter_up")[""]; got != 1 {
		t.Fatalf("sluice_exporter_up = %v after recovery, want 1", got)
	}
}
