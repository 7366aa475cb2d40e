package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/services/search-sink/internal/target"
)

// committedTopic returns the group's committed offsets of topic.
func (e *env) committedTopic(t testing.TB, group, topic string) map[int]int64 {
	t.Helper()
	ctx := kafkatest.Context(t, 10*time.Second)
	offs, err := e.kc.Clients().Admin.ConsumerOffsets(ctx, kafkago.TopicAndGroup{Topic: topic, GroupId: group})
	if err != nil {
		return nil
	}
	return offs
}

// encodeFor frames record i of the orders schema with schema id id.
func (e *env) encodeFor(t testing.TB, id, i int, region string) []byte {
	t.Helper()
	_, payload, err := wire.Decode(e.order(t, i, region, 1))
	if err != nil {
		t.Fatal(err)
	}
	return wire.Encode(uint32(id), payload)
}

// write produces msgs (each naming its topic and, with partitioned, its
// partition).
func (e *env) write(t testing.TB, msgs ...kafkago.Message) {
	t.Helper()
	w := e.kc.Clients().NewWriter(kafka.WriterOptions{Balancer: kafkago.BalancerFunc(func(m kafkago.Message, parts ...int) int { return m.Partition })})
	defer w.Close()
	if err := w.WriteMessages(kafkatest.Context(t, 30*time.Second), msgs...); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

// deadLetters reads n dead letters of topic and returns their headers.
func (e *env) deadLetters(t testing.TB, topic string, n int) ([]map[string]string, []kafkago.Message) {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: e.kc.Brokers(), Topic: topic + ".dlq", MaxWait: 100 * time.Millisecond, MaxBytes: 10 << 20})
	defer r.Close()
	ctx := kafkatest.Context(t, 20*time.Second)
	var hs []map[string]string
	var ms []kafkago.Message
	for len(hs) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s.dlq after %d of %d: %v", topic, len(hs), n, err)
		}
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		hs = append(hs, h)
		ms = append(ms, m)
	}
	return hs, ms
}

func metricIs(t testing.TB, admin, series, want string) bool {
	return strings.HasSuffix(metric(t, admin, series), " "+want)
}

// webhookSink collects posted alerts.
type webhookSink struct {
	mu     sync.Mutex
	alerts []map[string]any
}

func (w *webhookSink) ServeHTTP(_ http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var a map[string]any
	if json.Unmarshal(b, &a) == nil {
		w.mu.Lock()
		w.alerts = append(w.alerts, a)
		w.mu.Unlock()
	}
}

func (w *webhookSink) find(rule, topic string) map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.alerts {
		if a["rule"] == rule && a["topic"] == topic {
			return a
		}
	}
	return nil
}

// TestParkedTopicKeepsNeighbourFlowing: the cluster refuses one topic's
// template (400, as ES answers a mapping with a field named _id). That
// topic is parked (gauge, alert) and retried with backoff; the neighbour
// topic is indexed and committed within 10 s meanwhile. When the operator
// fixes the cause, the parked topic is released and catches up.
func TestParkedTopicKeepsNeighbourFlowing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	e.kc.CreateTopic("bad", 1, nil)
	badID := e.reg.Register(t, "bad-value", ordersSchema)
	var reject atomic.Bool
	reject.Store(true)
	var templateTries atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/_index_template/sluice-bad" {
			templateTries.Add(1)
			if reject.Load() {
				w.Header().Set("X-Elastic-Product", "Elasticsearch")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error":{"root_cause":[{"type":"mapper_parsing_exception","reason":"Failed to parse mapping: Field [_id] is a metadata field and cannot be added inside a document. Use the index API request parameters."}],"type":"mapper_parsing_exception","reason":"Failed to parse mapping: Field [_id] is a metadata field and cannot be added inside a document. Use the index API request parameters."},"status":400}`)
				return
			}
		}
		e.es.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	hook := &webhookSink{}
	hooks := httptest.NewServer(hook)
	t.Cleanup(hooks.Close)
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte("rules:\n  - {name: never, type: threshold, field: latency_ms, op: \">\", value: 1e18}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var msgs []kafkago.Message
	for i := 0; i < 3; i++ {
		msgs = append(msgs, kafkago.Message{Topic: "bad", Value: e.encodeFor(t, badID, i, "eu"), Time: day0})
	}
	for i := 0; i < 20; i++ {
		msgs = append(msgs, kafkago.Message{Topic: "orders", Partition: i % 2, Value: e.order(t, i, "eu", 1), Time: day0})
	}
	e.write(t, msgs...)

	admin := freeAddr(t)
	start := time.Now()
	startSink(t, e.args(t, "-search-sink-group-id", "park", "-search-sink-admin-addr", admin, "-es-url", front.URL,
		"-search-sink-park-retry-base", "200ms", "-search-sink-park-retry-max", "400ms",
		"-search-sink-rules-file", rulesFile, "-search-sink-alert-webhook-url", hooks.URL))
	eventually(t, 10*time.Second, "the neighbour indexed and committed while the bad topic is parked", func() bool {
		return len(e.es.Docs(dayIndex("orders", 0))) == 20 && sum(e.committedTopic(t, "park", "orders")) == 20
	})
	t.Logf("neighbour indexed and committed %s after the start", time.Since(start).Round(time.Millisecond))
	eventually(t, 5*time.Second, "parked gauge and alert", func() bool {
		return metricIs(t, admin, `sluice_sink_topics_parked{sink="search",topic="bad"}`, "1") && hook.find("sluice-topic-parked", "bad") != nil
	})
	if !metricIs(t, admin, `sluice_sink_topic_parks_total{reason="template",sink="search",topic="bad"}`, "1") {
		t.Fatalf("parks = %q", metric(t, admin, `sluice_sink_topic_parks_total{reason="template",sink="search",topic="bad"}`))
	}
	alert := hook.find("sluice-topic-parked", "bad")
	if msg, _ := alert["message"].(string); !strings.Contains(msg, "mapper_parsing_exception") || !strings.Contains(msg, "topic bad is parked (template)") {
		t.Fatalf("alert message = %q", msg)
	}
	eventually(t, 5*time.Second, "template retried with backoff", func() bool { return templateTries.Load() >= 3 })
	if e.es.Docs(dayIndex("bad", 0)) != nil || sum(e.committedTopic(t, "park", "bad")) != 0 {
		t.Fatal("records of the parked topic were indexed or committed")
	}

	reject.Store(false) // the operator fixed the mapping
	eventually(t, 10*time.Second, "the released topic indexed and committed", func() bool {
		return len(e.es.Docs(dayIndex("bad", 0))) == 3 && sum(e.committedTopic(t, "park", "bad")) == 3 &&
			metricIs(t, admin, `sluice_sink_topics_parked{sink="search",topic="bad"}`, "0")
	})
}

// TestRecordsOutsideTheTimeWindow: 60 records spread over six years (the
// issue's request that created 61 daily indices) and records far in the
// future go to the DLQ with the reason, counted per reason; only the
// in-window records create an index. Data streams apply the same bounds.
func TestRecordsOutsideTheTimeWindow(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"index", "datastream"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 1)
			now := time.Now().UTC()
			good := now.Add(-time.Hour)
			var msgs []kafkago.Message
			for i := 0; i < 60; i++ {
				at := now.AddDate(-6, 0, 0).Add(time.Duration(i) * 6 * 365 * 24 * time.Hour / 60)
				msgs = append(msgs, kafkago.Message{Value: e.order(t, i, "eu", 1), Time: at})
			}
			for i, at := range []time.Time{now.Add(2 * time.Hour), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), now.AddDate(100, 0, 0)} {
				msgs = append(msgs, kafkago.Message{Value: e.order(t, 100+i, "eu", 1), Time: at})
			}
			for i := 0; i < 5; i++ {
				msgs = append(msgs, kafkago.Message{Value: e.order(t, 200+i, "eu", 1), Time: good})
			}
			e.write(t, func() []kafkago.Message {
				for i := range msgs {
					msgs[i].Topic = "orders"
				}
				return msgs
			}()...)
			admin := freeAddr(t)
			startSink(t, e.args(t, "-search-sink-group-id", "window", "-search-sink-admin-addr", admin, "-search-sink-index-mode", mode))
			eventually(t, 30*time.Second, "every offset committed", func() bool { return sum(e.committed(t, "window")) == int64(len(msgs)) })
			index := "orders-" + good.Format("2006.01.02")
			if mode == "datastream" {
				index = "logs-orders-default"
			}
			if n := len(e.es.Docs(index)); n != 5 {
				t.Fatalf("%s has %d docs, want the 5 in-window records", index, n)
			}
			created := map[string]bool{}
			for _, r := range e.es.Requests() {
				if r.Path == "/_bulk" {
					for _, line := range strings.Split(string(r.Body), "\n") {
						var meta map[string]struct {
							Index string `json:"_index"`
						}
						if json.Unmarshal([]byte(line), &meta) == nil {
							for _, m := range meta {
								if m.Index != "" {
									created[m.Index] = true
								}
							}
						}
					}
				}
			}
			if len(created) != 1 || !created[index] {
				t.Fatalf("bulk requests wrote to %v, want only %s", created, index)
			}
			hs, _ := e.deadLetters(t, "orders", 63)
			old, future := 0, 0
			for _, h := range hs {
				switch {
				case h["sluice-stage"] != "limits":
					t.Fatalf("dead letter stage %q", h["sluice-stage"])
				case strings.Contains(h["sluice-error"], "is older than the retention window of 30d (SEARCH_SINK_RETENTION_DAYS)"):
					old++
				case strings.Contains(h["sluice-error"], "ahead of the clock (SEARCH_SINK_MAX_FUTURE_SKEW)"):
					future++
				default:
					t.Fatalf("dead letter reason %q", h["sluice-error"])
				}
			}
			if old != 60 || future != 3 {
				t.Fatalf("%d too old, %d too new, want 60 and 3", old, future)
			}
			if !strings.HasPrefix(hs[0]["sluice-error"], "record time "+now.AddDate(-6, 0, 0).Format("2006-01-02")) {
				t.Fatalf("reason does not name the record time: %q", hs[0]["sluice-error"])
			}
			for series, want := range map[string]string{
				`sluice_searchsink_records_refused_total{reason="too_old",topic="orders"}`: "60",
				`sluice_searchsink_records_refused_total{reason="too_new",topic="orders"}`: "3",
				`sluice_sink_records_dead_lettered_total{sink="search",topic="orders"}`:    "63",
			} {
				if !metricIs(t, admin, series, want) {
					t.Errorf("%s = %q, want %s", series, metric(t, admin, series), want)
				}
			}
		})
	}
}

// TestNewIndexBudgetParksTopic: a topic may create
// SEARCH_SINK_MAX_NEW_INDICES_PER_HOUR new indices an hour; an index that
// already exists costs nothing; past the budget the topic is parked
// (without losing or dead-lettering anything) until a slot frees.
func TestNewIndexBudgetParksTopic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	now := time.Now().UTC()
	day := func(n int) time.Time { return now.Truncate(24*time.Hour).AddDate(0, 0, -n).Add(time.Hour) }
	name := func(n int) string { return "orders-" + day(n).Format("2006.01.02") }
	req, _ := http.NewRequest(http.MethodPut, e.es.URL()+"/"+name(4), nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("creating %s: %v %v", name(4), err, res)
	}
	res.Body.Close()
	days := func(ns ...int) []kafkago.Message {
		var msgs []kafkago.Message
		for _, n := range ns {
			for k := 0; k < 2; k++ {
				msgs = append(msgs, kafkago.Message{Topic: "orders", Value: e.order(t, n*10+k, "eu", 1), Time: day(n)})
			}
		}
		return msgs
	}
	e.write(t, days(4, 3, 2)...) // oldest first: the existing index, then two new ones
	admin := freeAddr(t)
	startSink(t, e.args(t, "-search-sink-group-id", "budget", "-search-sink-admin-addr", admin, "-search-sink-max-new-indices-per-hour", "2"))
	eventually(t, 30*time.Second, "the budget's two new indices written and committed", func() bool { return sum(e.committed(t, "budget")) == 6 })
	// Parking abandons a topic's records in flight (they are fetched again
	// on release): the third new index comes after the first six are
	// committed, so the test does not depend on their timing.
	e.write(t, days(1)...)
	eventually(t, 30*time.Second, "the topic parked at the third new index", func() bool {
		return metricIs(t, admin, `sluice_sink_topics_parked{sink="search",topic="orders"}`, "1") &&
			metricIs(t, admin, `sluice_sink_topic_parks_total{reason="index_budget",sink="search",topic="orders"}`, "1")
	})
	if off := sum(e.committed(t, "budget")); off != 6 {
		t.Fatalf("committed %d, want 6", off)
	}
	for _, n := range []int{4, 3, 2} {
		if len(e.es.Docs(name(n))) != 2 {
			t.Fatalf("%s has %d docs, want 2", name(n), len(e.es.Docs(name(n))))
		}
	}
	if e.es.Docs(name(1)) != nil {
		t.Fatalf("%s was created past the budget", name(1))
	}
	if !metricIs(t, admin, `sluice_searchsink_new_indices_total{topic="orders"}`, "2") {
		t.Fatalf("new indices = %q", metric(t, admin, `sluice_searchsink_new_indices_total{topic="orders"}`))
	}
	// The runtime creates the series at 0 when it takes the partition.
	if got := metric(t, admin, `sluice_sink_records_dead_lettered_total{sink="search",topic="orders"}`); got != "" && !strings.HasSuffix(got, " 0") {
		t.Fatalf("records past the budget were dead-lettered: %s", got)
	}
}

// TestTopicNamesDoNotShareIndices: topics that the old sanitising mapped
// to one index (Orders, -orders, orders) get their own indices and
// templates; the plain lowercase topic keeps its index name.
func TestTopicNamesDoNotShareIndices(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	topics := []string{"orders", "Orders", "-orders", "orders."}
	var msgs []kafkago.Message
	for i, topic := range topics {
		if topic != "orders" {
			e.kc.CreateTopic(topic, 1, nil)
		}
		id := e.reg.Register(t, topic+"-value", ordersSchema)
		for k := 0; k < 2; k++ {
			msgs = append(msgs, kafkago.Message{Topic: topic, Value: e.encodeFor(t, id, i*10+k, "eu"), Time: day0})
		}
	}
	e.write(t, msgs...)
	startSink(t, e.args(t, "-search-sink-group-id", "names"))
	for _, topic := range topics {
		seg := target.Segment(topic, 200)
		index := seg + "-" + day0.Format("2006.01.02")
		eventually(t, 30*time.Second, "documents of "+topic, func() bool { return len(e.es.Docs(index)) == 2 })
		for id, doc := range e.es.Docs(index) {
			var d struct {
				Kafka struct{ Topic string } `json:"_kafka"`
			}
			if err := json.Unmarshal(doc, &d); err != nil || d.Kafka.Topic != topic {
				t.Fatalf("%s holds %s from topic %q, want only %q", index, id, d.Kafka.Topic, topic)
			}
		}
		if countRequests(e.es, http.MethodPut, "/_index_template/sluice-"+seg) != 1 {
			t.Fatalf("no template sluice-%s for %q", seg, topic)
		}
	}
	if target.Segment("orders", 200) != "orders" {
		t.Fatal("the plain topic's index name changed")
	}
}

// TestKeyModeIDsAndVersions: key ids are valid and distinct whatever the
// key's bytes, and a newer update of a key wins even when it comes from
// another partition with a smaller offset (a repartitioned key); replays
// by a new group leave the newest document in place.
func TestKeyModeIDsAndVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	t0 := time.Now().UTC().Add(-2 * time.Hour)
	var msgs []kafkago.Message
	for i := 0; i < 30; i++ { // raise partition 1's offsets
		msgs = append(msgs, kafkago.Message{Topic: "orders", Partition: 1, Key: []byte(fmt.Sprintf("filler-%d", i)), Value: e.order(t, i, "filler", 1), Time: t0})
	}
	long := []byte(strings.Repeat("k", 600))
	msgs = append(msgs,
		kafkago.Message{Topic: "orders", Partition: 1, Key: []byte("user-1"), Value: e.order(t, 100, "old", 1), Time: t0},                  // offset 30
		kafkago.Message{Topic: "orders", Partition: 0, Key: []byte("user-1"), Value: e.order(t, 101, "new", 1), Time: t0.Add(time.Second)}, // offset 0, newer
		kafkago.Message{Topic: "orders", Partition: 0, Key: []byte{0xff, 0xfe}, Value: e.order(t, 102, "binary", 1), Time: t0},
		kafkago.Message{Topic: "orders", Partition: 0, Key: []byte("b64:__4"), Value: e.order(t, 103, "lookalike", 1), Time: t0},
		kafkago.Message{Topic: "orders", Partition: 0, Key: long, Value: e.order(t, 104, "long", 1), Time: t0},
		kafkago.Message{Topic: "orders", Partition: 0, Key: []byte("line\nbreak"), Value: e.order(t, 105, "control", 1), Time: t0},
	)
	e.write(t, msgs...)
	for _, group := range []string{"key1", "key2"} { // key2 replays everything
		admin := freeAddr(t)
		stop := startSink(t, e.args(t, "-search-sink-group-id", group, "-search-sink-id-mode", "key", "-search-sink-index-pattern", "<topic>", "-search-sink-admin-addr", admin))
		eventually(t, 30*time.Second, "offsets committed", func() bool { return sum(e.committed(t, group)) == int64(len(msgs)) })
		docs := e.es.Docs("orders")
		want := map[string]string{"user-1": "new", "b64:__4": "binary", "b64:YjY0Ol9fNA": "lookalike", target.KeyID(long): "long", "b64:bGluZQpicmVhaw": "control"}
		for id, region := range want {
			var d struct{ Region string }
			if err := json.Unmarshal(docs[id], &d); err != nil || d.Region != region {
				t.Fatalf("%s: doc %q = %s, want region %q", group, id, docs[id], region)
			}
		}
		if len(docs) != 30+len(want) {
			t.Fatalf("%s: %d docs, want %d", group, len(docs), 30+len(want))
		}
		if group == "key2" && !metricIs(t, admin, "sluice_searchsink_docs_duplicate_total", fmt.Sprint(len(msgs))) {
			t.Fatalf("replay: duplicates = %q, want every record a 409 version conflict", metric(t, admin, "sluice_searchsink_docs_duplicate_total"))
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOversizedRecordsAreDeadLettered: a document over
// SEARCH_SINK_MAX_DOCUMENT_BYTES, and one the cluster refuses by request
// size (413 for the whole bulk request), go to the DLQ cut to
// SEARCH_SINK_DLQ_MAX_BYTES with the original size; every other record is
// indexed and every offset committed: nothing replays forever.
func TestOversizedRecordsAreDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	const clusterLimit = 96 << 10 // the cluster's http.max_content_length, far below the sink's bound
	var refused atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_bulk") && r.ContentLength > clusterLimit {
			refused.Add(1)
			w.Header().Set("X-Elastic-Product", "Elasticsearch")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		e.es.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	var msgs []kafkago.Message
	for i := 0; i < 30; i++ {
		region := "eu"
		switch i {
		case 10:
			region = strings.Repeat("x", 128<<10) // fits the sink's bound, not the cluster's
		case 20:
			region = strings.Repeat("y", 400<<10) // over SEARCH_SINK_MAX_DOCUMENT_BYTES
		}
		msgs = append(msgs, kafkago.Message{Topic: "orders", Key: []byte(fmt.Sprintf("k%d", i)), Value: e.order(t, i, region, 1), Time: day0})
	}
	e.write(t, msgs...)
	admin := freeAddr(t)
	startSink(t, e.args(t, "-search-sink-group-id", "big", "-search-sink-admin-addr", admin, "-es-url", front.URL,
		"-search-sink-flush-bytes", "1048576", "-search-sink-flush-interval", "300ms",
		"-search-sink-max-document-bytes", "262144", "-search-sink-dlq-max-bytes", "65536"))
	eventually(t, 30*time.Second, "every offset committed", func() bool { return sum(e.committed(t, "big")) == 30 })
	if n := len(e.es.Docs(dayIndex("orders", 0))); n != 28 {
		t.Fatalf("%d docs indexed, want 28", n)
	}
	if refused.Load() == 0 {
		t.Fatal("the cluster never refused a request: the test did not exercise the 413")
	}
	hs, ms := e.deadLetters(t, "orders", 2)
	byOffset := map[string]map[string]string{}
	for i, h := range hs {
		byOffset[h["sluice-source-offset"]] = h
		if size := len(ms[i].Key) + len(ms[i].Value); size > 65536 || h["sluice-truncated"] != "value" || h["sluice-original-size"] == "" {
			t.Fatalf("dead letter of offset %s: %d bytes, headers %v", h["sluice-source-offset"], size, h)
		}
	}
	if h := byOffset["20"]; h["sluice-stage"] != "limits" || !strings.Contains(h["sluice-error"], "exceeds SEARCH_SINK_MAX_DOCUMENT_BYTES (262144)") {
		t.Fatalf("offset 20: %v", h)
	}
	if h := byOffset["10"]; h["sluice-stage"] != "index" || !strings.Contains(h["sluice-error"], "413") {
		t.Fatalf("offset 10: %v", h)
	}
	for series, want := range map[string]string{
		`sluice_searchsink_records_refused_total{reason="document_too_large",topic="orders"}`: "1",
		`sluice_sink_dead_letters_truncated_total{sink="search",topic="orders"}`:              "2",
	} {
		if !metricIs(t, admin, series, want) {
			t.Errorf("%s = %q, want %s", series, metric(t, admin, series), want)
		}
	}
}

// TestPersistentItemFailureParksThenRecovers: an item the cluster keeps
// answering 429 is retried SEARCH_SINK_RETRY_ATTEMPTS times, then its
// topic is parked (not replayed forever); once the cluster takes it, the
// topic is released and everything is indexed and committed.
func TestPersistentItemFailureParksThenRecovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	var busy atomic.Bool
	busy.Store(true)
	var tries atomic.Int32
	e.es.SetItemFailures(func(_, _, id string, _ json.RawMessage) *estest.Error {
		if id == "orders+0+4" && busy.Load() {
			tries.Add(1)
			return estest.Rejected()
		}
		return nil
	})
	e.produce(t, 0, 10)
	admin := freeAddr(t)
	startSink(t, e.args(t, "-search-sink-group-id", "stuck", "-search-sink-admin-addr", admin, "-search-sink-retry-attempts", "3",
		"-search-sink-park-retry-base", "300ms", "-search-sink-park-retry-max", "600ms"))
	eventually(t, 30*time.Second, "the topic parked after the retries", func() bool {
		return metricIs(t, admin, `sluice_sink_topic_parks_total{reason="retries_exhausted",sink="search",topic="orders"}`, "1")
	})
	if off := sum(e.committed(t, "stuck")); off > 4 {
		t.Fatalf("committed %d past the failing offset 4", off)
	}
	busy.Store(false)
	eventually(t, 30*time.Second, "released, indexed and committed", func() bool {
		return sum(e.committed(t, "stuck")) == 10 && len(e.docs(dayIndex("orders", 0), dayIndex("orders", 1))) == 10 &&
			metricIs(t, admin, `sluice_sink_topics_parked{sink="search",topic="orders"}`, "0")
	})
	if n := tries.Load(); n < 3 {
		t.Fatalf("the item was tried %d times", n)
	}
}

// TestParkedTopicDoesNotHoldShutdown: records abandoned by a parked topic
// are not waited for at the end of a generation (shutdown, rebalance);
// after a restart the topic resumes from its committed offset.
func TestParkedTopicDoesNotHoldShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	var busy atomic.Bool
	busy.Store(true)
	e.es.SetItemFailures(func(_, _, id string, _ json.RawMessage) *estest.Error {
		if id == "orders+0+4" && busy.Load() {
			return estest.Rejected()
		}
		return nil
	})
	e.produce(t, 0, 10)
	admin := freeAddr(t)
	args := e.args(t, "-search-sink-group-id", "held", "-search-sink-admin-addr", admin, "-search-sink-retry-attempts", "3",
		"-search-sink-park-retry-base", "1h", "-search-sink-park-retry-max", "1h")
	stop := startSink(t, args)
	eventually(t, 30*time.Second, "the topic parked", func() bool {
		return metricIs(t, admin, `sluice_sink_topics_parked{sink="search",topic="orders"}`, "1")
	})
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %s: it waited for the parked topic's abandoned records (SEARCH_SINK_DRAIN_TIMEOUT is 10s)", d)
	}
	if off := sum(e.committed(t, "held")); off > 4 {
		t.Fatalf("committed %d, past the failing record at offset 4", off)
	}
	busy.Store(false)
	startSink(t, e.args(t, "-search-sink-group-id", "held"))
	eventually(t, 30*time.Second, "resumed after the restart", func() bool {
		return sum(e.committed(t, "held")) == 10 && len(e.docs(dayIndex("orders", 0), dayIndex("orders", 1))) == 10
	})
}
