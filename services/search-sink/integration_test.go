package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

func countRequests(s *estest.Server, method, path string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func TestIndexesEveryRecordOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	const n = 90 // minutes 0..89 after 23:00: two daily indices
	e.produce(t, 0, n)
	stop := startSink(t, e.args(t, "-search-sink-group-id", "g1"))
	eventually(t, 30*time.Second, "all documents", func() bool {
		return len(e.docs(dayIndex("orders", 0), dayIndex("orders", 1))) == n
	})
	if got := len(e.es.Docs(dayIndex("orders", 0))); got != 60 {
		t.Fatalf("%s has %d docs, want 60 (records 23:00-23:59)", dayIndex("orders", 0), got)
	}
	docs := e.docs(dayIndex("orders", 0), dayIndex("orders", 1))
	// ids are <topic>+<partition>+<offset>: every (partition, offset) once.
	perPartition := map[string]int{}
	for id, raw := range docs {
		parts := strings.Split(id, "+")
		if len(parts) != 3 || parts[0] != "orders" {
			t.Fatalf("doc id %q is not orders+<partition>+<offset>", id)
		}
		perPartition[parts[1]]++
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		meta, _ := d["_kafka"].(map[string]any)
		if meta == nil || fmt.Sprintf("orders+%v+%v", meta["partition"], meta["offset"]) != id {
			t.Fatalf("doc %s: _kafka = %v", id, d["_kafka"])
		}
		if d["amount"] != "12.34" || d["region"] != "eu" || d["latency_ms"] != 100.0 {
			t.Fatalf("doc %s: decoded fields wrong: %s", id, raw)
		}
		ts, _ := d["@timestamp"].(string)
		created, _ := d["created"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(created, "Z") {
			t.Fatalf("doc %s: @timestamp %q created %q are not ISO-8601 UTC", id, ts, created)
		}
	}
	if len(perPartition) != 3 {
		t.Fatalf("docs from partitions %v, want 3", perPartition)
	}
	eventually(t, 10*time.Second, "offsets committed to the end", func() bool { return sum(e.committed(t, "g1")) == n })
	items := 0
	for _, r := range e.es.Requests() {
		if r.Path == "/_bulk" {
			items += strings.Count(string(r.Body), `{"index":{"_id":"orders+`)
		}
	}
	if items != n {
		t.Fatalf("%d bulk items for %d records", items, n)
	}
	if err := stop(); err != nil {
		t.Fatalf("sink exited with %v", err)
	}
	// Template and policy: installed exactly once, also across a restart.
	if c := countRequests(e.es, http.MethodPut, "/_index_template/sluice-orders"); c != 1 {
		t.Fatalf("template PUT %d times, want 1", c)
	}
	stop2 := startSink(t, e.args(t, "-search-sink-group-id", "g1"))
	e.produce(t, n, 3)
	eventually(t, 30*time.Second, "documents after restart", func() bool {
		return len(e.docs(dayIndex("orders", 0), dayIndex("orders", 1))) == n+3
	})
	if err := stop2(); err != nil {
		t.Fatalf("second run exited with %v", err)
	}
	if c := countRequests(e.es, http.MethodPut, "/_index_template/sluice-orders"); c != 1 {
		t.Fatalf("template PUT %d times after restart, want 1", c)
	}
	if c := countRequests(e.es, http.MethodPut, "/_ilm/policy/sluice-search-sink"); c != 1 {
		t.Fatalf("ILM policy PUT %d times, want 1", c)
	}
	var tmpl map[string]any
	for _, r := range e.es.Requests() {
		if r.Method == http.MethodPut && r.Path == "/_index_template/sluice-orders" {
			_ = json.Unmarshal(r.Body, &tmpl)
		}
	}
	props := tmpl["template"].(map[string]any)["mappings"].(map[string]any)["properties"].(map[string]any)
	for field, typ := range map[string]string{"id": "long", "region": "keyword", "amount": "keyword", "latency_ms": "double", "created": "date", "@timestamp": "date"} {
		if got := props[field].(map[string]any)["type"]; got != typ {
			t.Errorf("mapping of %s = %v, want %s", field, got, typ)
		}
	}
	if pats := tmpl["index_patterns"].([]any); len(pats) != 1 || pats[0] != "orders-*" {
		t.Errorf("index_patterns = %v", pats)
	}
}

func TestItemFailuresDLQAndRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	rejected := map[string]int{}
	e.es.SetItemFailures(func(action, index, id string, doc json.RawMessage) *estest.Error {
		switch id {
		case "orders+0+3":
			return estest.MapperParsing("failed to parse field [region] of type [long]")
		case "orders+0+5":
			if rejected[id] < 2 { // called with the double's lock held: no race
				rejected[id]++
				return estest.Rejected()
			}
		}
		return nil
	})
	const n = 10
	e.produce(t, 0, n)
	admin := freeAddr(t)
	startSink(t, e.args(t, "-search-sink-group-id", "g2", "-search-sink-admin-addr", admin))
	eventually(t, 30*time.Second, "offsets committed", func() bool { return sum(e.committed(t, "g2")) == n })
	docs := e.docs(dayIndex("orders", 0))
	if len(docs) != n-1 {
		t.Fatalf("%d docs indexed, want %d (all but the mapping failure)", len(docs), n-1)
	}
	if _, ok := docs["orders+0+5"]; !ok {
		t.Fatal("the 429-rejected document was not retried into the index")
	}
	if rejected["orders+0+5"] != 2 {
		t.Fatalf("429 answered %d times", rejected["orders+0+5"])
	}
	// The 400 went to orders.dlq with ES's reason.
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: e.kc.Brokers(), Topic: "orders.dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx := kafkatest.Context(t, 20*time.Second)
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("reading DLQ: %v", err)
	}
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	if h["sluice-source-offset"] != "3" || h["sluice-source-topic"] != "orders" || h["sluice-source-partition"] != "0" || h["sluice-stage"] != "index" ||
		!strings.Contains(h["sluice-error"], "400 mapper_parsing_exception: failed to parse field [region]") {
		t.Fatalf("DLQ headers = %v", h)
	}
	if string(m.Value) != string(e.order(t, 3, "eu", 100)) || string(m.Key) != "k3" {
		t.Fatal("DLQ record does not carry the original key and value")
	}
	for name, want := range map[string]string{
		`sluice_sink_records_dead_lettered_total{sink="search",topic="orders"}`:                 "1",
		`sluice_searchsink_docs_failed_total{reason="mapper_parsing_exception",topic="orders"}`: "1",
		`sluice_searchsink_docs_failed_total{reason="rejected",topic="orders"}`:                 "2",
		`sluice_sink_records_written_total{sink="search",topic="orders"}`:                       "9",
		`sluice_searchsink_retries_total{kind="item"}`:                                          "2",
	} {
		if got := metric(t, admin, name); !strings.HasSuffix(got, " "+want) {
			t.Errorf("%s = %q, want %s", name, got, want)
		}
	}
}

func TestWholeRequestFailureHoldsOffsets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	const failures = 4
	e.es.FailNext("/_bulk", failures, estest.Error{Status: http.StatusServiceUnavailable, Type: "cluster_block_exception", Reason: "blocked by: [SERVICE_UNAVAILABLE/2/no master]"})
	e.produce(t, 0, 20)
	startSink(t, e.args(t, "-search-sink-group-id", "g3"))
	sawFailures := false
	eventually(t, 30*time.Second, "documents after 503s", func() bool {
		// Read the offsets before the call count: if anything was committed,
		// a successful bulk call (number failures+1) happened before.
		off := sum(e.committed(t, "g3"))
		calls := e.es.BulkCalls()
		if calls <= failures && off != 0 {
			t.Fatalf("offset %d committed while every bulk request had failed (%d calls)", off, calls)
		}
		if calls == failures {
			sawFailures = true
		}
		return len(e.docs(dayIndex("orders", 0))) == 20
	})
	if e.es.BulkCalls() <= failures {
		t.Fatalf("bulk calls = %d, want retries past the %d failures", e.es.BulkCalls(), failures)
	}
	_ = sawFailures
	eventually(t, 10*time.Second, "offsets committed", func() bool { return sum(e.committed(t, "g3")) == 20 })
}

func TestRefusesServerWithoutProductHeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1, estest.WithoutProductHeader())
	ctx := kafkatest.Context(t, 30*time.Second)
	err := run(ctx, e.args(t))
	if err == nil || !strings.Contains(err.Error(), "neither Elasticsearch 8 (no X-Elastic-Product: Elasticsearch header) nor OpenSearch 2") {
		t.Fatalf("run = %v, want a clear product error", err)
	}
	if len(e.es.Requests()) != 1 {
		t.Fatalf("sink sent %d requests to an unknown product, want only GET /", len(e.es.Requests()))
	}
}

func TestUndecodableRecordsGoToDLQ(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ctx := kafkatest.Context(t, 30*time.Second)
	good := e.order(t, 1, "eu", 1)
	if err := e.w.WriteMessages(ctx,
		kafkago.Message{Value: []byte(`{"not":"framed"}`), Time: day0},
		kafkago.Message{Value: append([]byte{0, 0, 0, 0x7f, 0x7f}, good[5:]...), Time: day0}, // unknown schema id
		kafkago.Message{Value: good, Time: day0},
	); err != nil {
		t.Fatal(err)
	}
	startSink(t, e.args(t, "-search-sink-group-id", "undecodable"))
	eventually(t, 30*time.Second, "offsets committed", func() bool { return sum(e.committed(t, "undecodable")) == 3 })
	if docs := e.es.Docs(dayIndex("orders", 0)); len(docs) != 1 || docs["orders+0+2"] == nil {
		t.Fatalf("docs = %v, want only orders+0+2", docs)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: e.kc.Brokers(), Topic: "orders.dlq", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	for _, want := range []string{"decoding confluent framing", "schema id 32639"} {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if h["sluice-stage"] != "decode" || !strings.Contains(h["sluice-error"], want) {
			t.Fatalf("DLQ headers %v, want stage decode and error containing %q", h, want)
		}
	}
}
