package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

func TestDataStreamModeIsIdempotentOnReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	const n = 12
	e.produce(t, 0, n)
	admin := freeAddr(t)
	stop := startSink(t, e.args(t, "-search-sink-index-mode", "datastream", "-search-sink-group-id", "ds1", "-search-sink-admin-addr", admin))
	eventually(t, 30*time.Second, "documents in the data stream", func() bool { return len(e.es.Docs("logs-orders-default")) == n })
	eventually(t, 10*time.Second, "offsets", func() bool { return sum(e.committed(t, "ds1")) == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var tmpl map[string]any
	for _, r := range e.es.Requests() {
		if r.Path == "/_index_template/sluice-orders" && r.Method == "PUT" {
			_ = json.Unmarshal(r.Body, &tmpl)
		}
		if r.Path == "/_bulk" && strings.Contains(string(r.Body), `{"index":`) {
			t.Fatalf("data stream written with op_type index: %s", r.Body)
		}
	}
	if _, ok := tmpl["data_stream"]; !ok || fmt.Sprint(tmpl["index_patterns"]) != "[logs-orders-*]" {
		t.Fatalf("template = %v", tmpl)
	}
	// A new group replays everything: create answers 409 for every id,
	// which counts as done, and nothing is duplicated.
	admin2 := freeAddr(t)
	startSink(t, e.args(t, "-search-sink-index-mode", "datastream", "-search-sink-group-id", "ds2", "-search-sink-admin-addr", admin2))
	eventually(t, 30*time.Second, "replay committed", func() bool { return sum(e.committed(t, "ds2")) == n })
	if got := metric(t, admin2, "sluice_searchsink_docs_duplicate_total"); got != fmt.Sprintf("sluice_searchsink_docs_duplicate_total %d", n) {
		t.Fatalf("duplicates metric = %q, want %d", got, n)
	}
	if len(e.es.Docs("logs-orders-default")) != n {
		t.Fatal("replay changed the number of documents")
	}
}

func TestKeyIDModeWithExternalVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ctx := kafkatest.Context(t, 60*time.Second)
	var msgs []kafkago.Message
	for round, region := range []string{"eu", "us"} {
		for k := 0; k < 4; k++ {
			msgs = append(msgs, kafkago.Message{Key: []byte(fmt.Sprintf("user-%d", k)), Value: e.order(t, round*10+k, region, 1), Time: day0})
		}
	}
	msgs = append(msgs, kafkago.Message{Key: []byte("user-0"), Value: nil, Time: day0}) // tombstone
	if err := e.w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	index := dayIndex("orders", 0)
	for _, group := range []string{"k1", "k2"} { // k2 replays everything: older versions must not win
		stop := startSink(t, e.args(t, "-search-sink-id-mode", "key", "-search-sink-group-id", group))
		eventually(t, 30*time.Second, "offsets committed", func() bool { return sum(e.committed(t, group)) == int64(len(msgs)) })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		docs := e.es.Docs(index)
		if len(docs) != 3 {
			t.Fatalf("%s: %d docs, want 3 (user-0 deleted by its tombstone)", group, len(docs))
		}
		for id, raw := range docs {
			var d map[string]any
			_ = json.Unmarshal(raw, &d)
			if !strings.HasPrefix(id, "user-") || d["region"] != "us" {
				t.Fatalf("%s: doc %s = %s, want the newest version (region us)", group, id, raw)
			}
		}
	}
}
