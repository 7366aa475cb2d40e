package main

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

// TestKafkaExporterCompatibleMetrics sets up topics, data and groups at
// known offsets and checks every compatible family's exact values over
// real HTTP, parsed with the Prometheus text parser.
func TestKafkaExporterCompatibleMetrics(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t)
	c.CreateTopic("orders", 3, nil)
	c.CreateTopic("payments", 1, map[string]string{"cleanup.policy": "compact", "retention.ms": "3600000"})
	c.CreateTopic("skip-me", 1, nil)
	f := newFixture(t, c,
		"--kafka.server", c.Brokers()[0],
		"--topic.exclude=^(skip-|__)",
		"--group.exclude", "^ignored-",
		"--kafka.version=3.6.0",
	)
	produce(t, f.kc, "orders", 0, 5)
	produce(t, f.kc, "orders", 1, 3)
	produce(t, f.kc, "payments", 0, 10)
	produce(t, f.kc, "skip-me", 0, 2)

	// g-active commits two of three partitions (no members).
	commit(t, f.kc, "g-active", "orders", map[int]int64{0: 2, 1: 3})
	// g-empty is caught up on one partition only.
	commit(t, f.kc, "g-empty", "orders", map[int]int64{0: 5})
	commit(t, f.kc, "ignored-group", "orders", map[int]int64{0: 1})
	// g-live has a member consuming payments; it commits after 4 records.
	r, err := f.kc.NewReader(skafka.ReaderOptions{GroupID: "g-live", Topics: []string{"payments"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	ctx := kafkatest.Context(t, 30*time.Second)
	for i := 0; i < 4; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if i == 3 {
			if err := r.CommitMessages(ctx, m); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
	}

	url := f.srv.URL + "/metrics"
	// Wait until the live group shows as Stable with its member (the join
	// completes in the background).
	eventually(t, 20*time.Second, func() error {
		if err := f.refresh(t); err != nil {
			return err
		}
		got := series(scrape(t, url, false), "kafka_consumergroup_members")["consumergroup=g-live"]
		if got != 1 {
			return fmt.Errorf("g-live members = %v", got)
		}
		return nil
	})

	for _, gz := range []bool{false, true} {
		mfs := scrape(t, url, gz)
		check := func(name string, want map[string]float64) {
			t.Helper()
			got := series(mfs, name)
			if len(got) != len(want) {
				t.Errorf("%s (gzip=%v): got %d series %v, want %d %v", name, gz, len(got), got, len(want), want)
				return
			}
			for k, v := range want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%s{%s} (gzip=%v) = %v (present %v), want %v", name, k, gz, g, ok, v)
				}
			}
		}
		broker := c.Brokers()[0]
		check("kafka_brokers", map[string]float64{"": 1})
		check("kafka_broker_info", map[string]float64{"address=" + broker + ",id=0": 1})
		check("kafka_topic_partitions", map[string]float64{"topic=orders": 3, "topic=payments": 1})
		check("kafka_topic_partition_current_offset", map[string]float64{
			"partition=0,topic=orders": 5, "partition=1,topic=orders": 3, "partition=2,topic=orders": 0, "partition=0,topic=payments": 10,
		})
		check("kafka_topic_partition_oldest_offset", map[string]float64{
			"partition=0,topic=orders": 0, "partition=1,topic=orders": 0, "partition=2,topic=orders": 0, "partition=0,topic=payments": 0,
		})
		perPartition := func(v float64) map[string]float64 {
			return map[string]float64{"partition=0,topic=orders": v, "partition=1,topic=orders": v, "partition=2,topic=orders": v, "partition=0,topic=payments": v}
		}
		check("kafka_topic_partition_leader", perPartition(0))
		check("kafka_topic_partition_replicas", perPartition(1))
		check("kafka_topic_partition_in_sync_replica", perPartition(1))
		check("kafka_topic_partition_leader_is_preferred", perPartition(1))
		check("kafka_topic_partition_under_replicated_partition", perPartition(0))
		check("kafka_topic_partition_offline", perPartition(0))

		// kafka_exporter semantics: every partition of a consumed topic,
		// -1 offset and lag where nothing was committed.
		check("kafka_consumergroup_current_offset", map[string]float64{
			"consumergroup=g-active,partition=0,topic=orders": 2,
			"consumergroup=g-active,partition=1,topic=orders": 3,
			"consumergroup=g-active,partition=2,topic=orders": -1,
			"consumergroup=g-empty,partition=0,topic=orders":  5,
			"consumergroup=g-empty,partition=1,topic=orders":  -1,
			"consumergroup=g-empty,partition=2,topic=orders":  -1,
			"consumergroup=g-live,partition=0,topic=payments": 4,
		})
		check("kafka_consumergroup_lag", map[string]float64{
			"consumergroup=g-active,partition=0,topic=orders": 3,
			"consumergroup=g-active,partition=1,topic=orders": 0,
			"consumergroup=g-active,partition=2,topic=orders": -1,
			"consumergroup=g-empty,partition=0,topic=orders":  0,
			"consumergroup=g-empty,partition=1,topic=orders":  -1,
			"consumergroup=g-empty,partition=2,topic=orders":  -1,
			"consumergroup=g-live,partition=0,topic=payments": 6,
		})
		// current_offset_sum adds the -1s, lag_sum leaves them out.
		check("kafka_consumergroup_current_offset_sum", map[string]float64{
			"consumergroup=g-active,topic=orders": 4, "consumergroup=g-empty,topic=orders": 3, "consumergroup=g-live,topic=payments": 4,
		})
		check("kafka_consumergroup_lag_sum", map[string]float64{
			"consumergroup=g-active,topic=orders": 3, "consumergroup=g-empty,topic=orders": 0, "consumergroup=g-live,topic=payments": 6,
		})
		check("kafka_consumergroup_members", map[string]float64{
			"consumergroup=g-active": 0, "consumergroup=g-empty": 0, "consumergroup=g-live": 1,
		})
		// Extensions.
		check("kafka_topic_config_info", map[string]float64{
			"cleanup_policy=delete,topic=orders": 1, "cleanup_policy=compact,topic=payments": 1,
		})
		if got := series(mfs, "kafka_topic_config_retention_ms")["topic=payments"]; got != 3600000 {
			t.Errorf("payments retention.ms = %v, want 3600000", got)
		}
		if got := series(mfs, "kafka_consumergroup_state"); got["consumergroup=g-live,state=Stable"] != 1 || got["consumergroup=g-empty,state=Empty"] != 1 || got["consumergroup=g-empty,state=Stable"] != 0 {
			t.Errorf("group states = %v", got)
		}
		if got := series(mfs, "kafka_consumergroup_status"); got["consumergroup=g-live,status=OK"] != 1 || len(got) != 15 {
			t.Errorf("group status = %v", got)
		}
		check("sluice_exporter_up", map[string]float64{"": 1})
	}
}

// TestScrapeNeverQueriesKafka proves a scrape is served from the snapshot:
// with the cluster gone, scrapes still answer at once with the last data,
// and the next collection failure turns sluice_exporter_up to 0.
func TestScrapeNeverQueriesKafka(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t)
	c.CreateTopic("t", 2, nil)
	f := newFixture(t, c)
	produce(t, f.kc, "t", 1, 7)
	if err := f.refresh(t); err != nil {
		t.Fatalf("first collection: %v", err)
	}
	c.Close()
	start := time.Now()
	mfs := scrape(t, f.srv.URL+"/metrics", false)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("scrape took %s with the cluster down", d)
	}
	if got := series(mfs, "kafka_topic_partition_current_offset")["partition=1,topic=t"]; got != 7 {
		t.Fatalf("served offset = %v, want 7 from the snapshot", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := f.col.Refresh(ctx); err == nil {
		t.Fatal("collection against a closed cluster succeeded")
	}
	mfs = scrape(t, f.srv.URL+"/metrics", false)
	if got := series(mfs, "sluice_exporter_up")[""]; got != 0 {
		t.Fatalf("sluice_exporter_up = %v after a failed collection, want 0", got)
	}
	if got := series(mfs, "sluice_exporter_collections_total")["result=error"]; got != 1 {
		t.Fatalf("error collections = %v, want 1", got)
	}
}

// TestLagSecondsAndStatus drives collections with a controlled clock: the
// time lag is interpolated from the observed log end offsets, and a group
// whose offset never moves while its topic grows turns to STOP.
func TestLagSecondsAndStatus(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t)
	c.CreateTopic("events", 1, nil)
	f := newFixture(t, c, "-exporter-status-window=3")
	url := f.srv.URL + "/metrics"
	t0 := f.now.Now()

	produce(t, f.kc, "events", 0, 100)
	commit(t, f.kc, "g-stuck", "events", map[int]int64{0: 50})
	if err := f.refresh(t); err != nil { // end 100 at t0
		t.Fatal(err)
	}
	mfs := scrape(t, url, false)
	if got := series(mfs, "kafka_consumergroup_lag_seconds"); len(got) != 0 {
		t.Fatalf("lag seconds from a single point: %v", got)
	}
	if got := series(mfs, "kafka_consumergroup_status")["consumergroup=g-stuck,status=OK"]; got != 1 {
		t.Fatalf("status before the window fills = %v, want OK", series(mfs, "kafka_consumergroup_status"))
	}

	f.now.Set(t0.Add(10 * time.Second))
	produce(t, f.kc, "events", 0, 100)
	if err := f.refresh(t); err != nil { // end 200 at t0+10s
		t.Fatal(err)
	}
	commit(t, f.kc, "g-mid", "events", map[int]int64{0: 150})
	f.now.Set(t0.Add(20 * time.Second))
	produce(t, f.kc, "events", 0, 50)
	if err := f.refresh(t); err != nil { // end 250 at t0+20s
		t.Fatal(err)
	}
	mfs = scrape(t, url, false)
	lagSec := series(mfs, "kafka_consumergroup_lag_seconds")
	// g-mid at 150: written halfway between end 100 (t0) and end 200
	// (t0+10s), so 5s after t0; seen at t0+20s: 15s behind.
	if got := lagSec["consumergroup=g-mid,partition=0,topic=events"]; got != 15 {
		t.Errorf("g-mid lag seconds = %v, want 15 (all: %v)", got, lagSec)
	}
	// g-stuck at 50 is older than the table: extrapolated back from
	// (100, t0) at the table's rate (150 offsets in 20s): written at
	// t0-6.67s, 26.67s behind.
	if got := lagSec["consumergroup=g-stuck,partition=0,topic=events"]; math.Abs(got-80.0/3) > 1e-6 {
		t.Errorf("g-stuck lag seconds = %v, want 26.67", got)
	}
	if got := series(mfs, "kafka_consumergroup_lag_seconds_max")["consumergroup=g-stuck,topic=events"]; math.Abs(got-80.0/3) > 1e-6 {
		t.Errorf("g-stuck max lag seconds = %v, want 26.67", got)
	}
	st := series(mfs, "kafka_consumergroup_status")
	if st["consumergroup=g-stuck,status=STOP"] != 1 || st["consumergroup=g-stuck,status=OK"] != 0 {
		t.Errorf("g-stuck status = %v, want STOP", st)
	}
	if got := series(mfs, "kafka_consumergroup_status_code")["consumergroup=g-stuck"]; got != 3 {
		t.Errorf("g-stuck status code = %v, want 3", got)
	}
	// g-mid has two observations in a window of three: still OK.
	if st["consumergroup=g-mid,status=OK"] != 1 {
		t.Errorf("g-mid status = %v, want OK", st)
	}
}
