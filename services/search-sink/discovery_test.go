package main

import (
	"context"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/wire"
)

// TestDiscoversNewTopicsSkipsInternalAndDLQ: topics created while running
// are picked up (with their template); internal and .dlq topics are not.
func TestDiscoversNewTopicsSkipsInternalAndDLQ(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	e.produce(t, 0, 5)
	admin := freeAddr(t)
	startSink(t, e.args(t, "-search-sink-group-id", "disc", "-search-sink-admin-addr", admin))
	eventually(t, 30*time.Second, "orders indexed", func() bool { return len(e.es.Docs(dayIndex("orders", 0))) == 5 })
	res, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, check := range []string{"kafka", "registry", "search"} {
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), check) {
			t.Fatalf("/readyz = %d %s, want 200 with the %s check", res.StatusCode, body, check)
		}
	}

	for _, topic := range []string{"payments", "_internal", "payments.dlq"} {
		e.kc.CreateTopic(topic, 1, nil)
	}
	id := e.reg.Register(t, "payments-value", ordersSchema)
	ctx := kafkatest.Context(t, 30*time.Second)
	w := e.kc.Clients().NewWriter(kafka.WriterOptions{})
	defer w.Close()
	var msgs []kafkago.Message
	for _, topic := range []string{"payments", "_internal", "payments.dlq"} {
		for i := 0; i < 3; i++ {
			v := e.order(t, i, "eu", 1)
			_, payload, _ := wire.Decode(v)
			msgs = append(msgs, kafkago.Message{Topic: topic, Value: wire.Encode(uint32(id), payload), Time: day0})
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "new topic indexed", func() bool { return len(e.es.Docs(dayIndex("payments", 0))) == 3 })
	if countRequests(e.es, http.MethodPut, "/_index_template/sluice-payments") != 1 {
		t.Fatal("no template installed for the new topic")
	}
	for _, name := range []string{dayIndex("internal", 0), dayIndex("payments.dlq", 0)} {
		if e.es.Docs(name) != nil {
			t.Fatalf("%s was indexed", name)
		}
	}
	// Metrics name the topic, and lag is back to zero.
	eventually(t, 10*time.Second, "metrics", func() bool {
		return strings.HasSuffix(metric(t, admin, `sluice_sink_records_written_total{sink="search",topic="payments"}`), " 3") &&
			strings.HasSuffix(metric(t, admin, `sluice_sink_lag_records{partition="0",sink="search",topic="payments"}`), " 0")
	})
}

// TestShutdownFlushesAndCommits stops the sink while documents are in
// flight: after run returns, each partition's committed offset equals the
// number of its documents in the index (everything fetched was flushed and
// committed, nothing committed that is not indexed).
func TestShutdownFlushesAndCommits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	double := estest.New()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_bulk") {
			time.Sleep(5 * time.Millisecond) // keeps documents in flight
		}
		double.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	e.es = double
	const n = 3000
	e.produce(t, 0, n)
	args := e.args(t, "-search-sink-group-id", "stop", "-es-url", slow.URL, "-search-sink-flush-bytes", "8192",
		"-search-sink-max-buffered-bytes", "65536", "-search-sink-workers", "1", "-search-sink-commit-interval", "1h")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, args) }()
	names := []string{dayIndex("orders", 0), dayIndex("orders", 1), dayIndex("orders", 2)}
	eventually(t, 30*time.Second, "some documents", func() bool { return len(e.docs(names...)) >= 200 })
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sink did not stop")
	}
	docs := e.docs(names...)
	if len(docs) >= n {
		t.Fatal("everything was indexed before the stop: nothing was in flight")
	}
	perPartition := map[int]int64{}
	for id := range docs {
		p, _ := strconv.Atoi(strings.Split(id, "+")[1])
		perPartition[p]++
	}
	committed := e.committed(t, "stop")
	for p := 0; p < 2; p++ {
		if committed[p] != perPartition[p] {
			t.Fatalf("partition %d: committed %d, indexed %d (commit interval is 1h: only the shutdown commit counts)", p, committed[p], perPartition[p])
		}
	}
}

// TestTemplateFollowsSchemaEvolution: records with a new schema version
// regenerate the topic's template with the new field.
func TestTemplateFollowsSchemaEvolution(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	e.produce(t, 0, 2)
	startSink(t, e.args(t, "-search-sink-group-id", "evo"))
	eventually(t, 30*time.Second, "first documents", func() bool { return len(e.es.Docs(dayIndex("orders", 0))) == 2 })
	v2 := strings.Replace(ordersSchema, `{"name":"id","type":"long"},`, `{"name":"id","type":"long"},{"name":"channel","type":"string","default":"web"},`, 1)
	id2 := e.reg.Register(t, "orders-value", v2)
	codec2, err := goavro.NewCodec(v2)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := codec2.BinaryFromNative(nil, map[string]any{"id": int64(9), "channel": "app", "region": "eu", "amount": big.NewRat(1, 1),
		"latency_ms": nil, "created": day0})
	if err != nil {
		t.Fatal(err)
	}
	ctx := kafkatest.Context(t, 30*time.Second)
	if err := e.w.WriteMessages(ctx, kafkago.Message{Value: wire.Encode(uint32(id2), bin), Time: day0}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "template with the new field", func() bool {
		puts := 0
		var last map[string]any
		for _, r := range e.es.Requests() {
			if r.Method == http.MethodPut && r.Path == "/_index_template/sluice-orders" {
				puts++
				_ = json.Unmarshal(r.Body, &last)
			}
		}
		if puts < 2 {
			return false
		}
		props := last["template"].(map[string]any)["mappings"].(map[string]any)["properties"].(map[string]any)
		ch, _ := props["channel"].(map[string]any)
		return ch["type"] == "keyword"
	})
	eventually(t, 30*time.Second, "the v2 document", func() bool {
		return strings.Contains(string(e.es.Docs(dayIndex("orders", 0))["orders+0+2"]), `"channel":"app"`)
	})
}
