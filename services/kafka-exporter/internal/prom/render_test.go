package prom

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"
)

func snapshotWith(topic, group string) *collector.Snapshot {
	return &collector.Snapshot{
		Brokers: []collector.Broker{{ID: 1, Addr: "b:9092"}},
		Topics: []collector.Topic{{Name: topic, Partitions: []collector.Partition{
			{ID: 0, Leader: 1, Replicas: 3, ISR: 2, Newest: 10, NewestOK: true, Oldest: 2, OldestOK: true},
		}, Config: map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "-1"}}},
		Groups: []collector.Group{{ID: group, State: "Stable", Members: 2, Topics: []collector.GroupTopic{{
			Name: topic, Partitions: []collector.GroupPartition{{ID: 0, Committed: 4, Lag: 6, LagOK: true, LagSeconds: 1.5, LagSecOK: true}},
		}}}},
	}
}

// TestRenderParses checks the exposition parses and the gzip member holds
// the same bytes.
func TestRenderParses(t *testing.T) {
	t.Parallel()
	plain, gz := Render(snapshotWith("orders", "g"))
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(plain))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, plain)
	}
	if v := mfs["kafka_topic_partition_under_replicated_partition"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Fatalf("under replicated = %v, want 1 (ISR 2 < 3 replicas)", v)
	}
	if v := mfs["kafka_topic_partition_leader_is_preferred"].GetMetric()[0].GetGauge().GetValue(); v != 0 {
		t.Fatalf("leader_is_preferred = %v, want 0", v)
	}
	if v := mfs["kafka_topic_config_retention_ms"].GetMetric()[0].GetGauge().GetValue(); v != -1 {
		t.Fatalf("retention = %v, want -1", v)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	un, _ := io.ReadAll(zr)
	if !bytes.Equal(un, plain) {
		t.Fatal("gzipped rendering differs from plain")
	}
}

// FuzzLabelValues renders arbitrary topic and group names and checks
// they come back unchanged through the Prometheus parser.
func FuzzLabelValues(f *testing.F) {
	f.Add("orders", "g1")
	f.Add(`we"ird\topic`, "line\nbreak")
	f.Add("ünïcode", `\\"`)
	f.Fuzz(func(t *testing.T, topic, group string) {
		if !utf8.ValidString(topic) || !utf8.ValidString(group) {
			t.Skip()
		}
		plain, _ := Render(snapshotWith(topic, group))
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(plain))
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		m := mfs["kafka_consumergroup_lag"].GetMetric()[0]
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if got["topic"] != topic || got["consumergroup"] != group {
			t.Fatalf("labels %v, want topic %q group %q", got, topic, group)
		}
	})
}
