package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/proctest"
	"github.com/sluicehq/sluice/pkg/wire"

	"github.com/sluicehq/sluice/pkg/avro/avrogen"
)

// seedSchema writes a schema straight into the registry's _schemas log, as
// a schema registered before any registration limit (or by a Confluent
// registry sharing the topic) is, and waits until the registry serves it.
func (e *env) seedSchema(t testing.TB, subject string, id int, schema string) {
	t.Helper()
	key, _ := json.Marshal(map[string]any{"keytype": "SCHEMA", "subject": subject, "version": 1, "magic": 1})
	val, _ := json.Marshal(map[string]any{"subject": subject, "version": 1, "id": id, "schema": schema, "deleted": false})
	w := e.kc.Clients().NewWriter(kafka.WriterOptions{Topic: "_schemas"})
	defer w.Close()
	if err := w.WriteMessages(kafkatest.Context(t, 30*time.Second), kafkago.Message{Key: key, Value: val}); err != nil {
		t.Fatalf("writing to _schemas: %v", err)
	}
	url := e.reg.URL() + "/schemas/ids/" + strconv.Itoa(id)
	eventually(t, 30*time.Second, "the registry serving the seeded schema", func() bool {
		res, err := http.Get(url)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}

// peakRSS is a process's high-water resident set (VmHWM), in bytes.
func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := proctest.PeakRSSBytes(pid)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileSchemaDeadLettered is issue 13 against the search-sink
// binary: a schema of shared named types 22 levels deep, registered before
// any registration limit, and three 0-byte records of it. Its index
// template used to take 4.5 GB and 13 s of CPU (a few levels more: OOM,
// restart at the same offset, crash loop); each record decodes into a
// tree of 2^23 values. Now the template is built within the mapping
// limits, the records are dead-lettered with the budget reason, the next
// record of the topic and a neighbour topic's records are indexed, and
// the process stays small: with records transcoded straight to JSON, and
// with anomaly rules (records decoded through goavro for their fields).
func TestHostileSchemaDeadLettered(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Parallel()
	bin := sinkBinary(t)
	e := newEnv(t, 1)
	const hostileID = 7000
	e.seedSchema(t, "hostile-value", hostileID, avrogen.SharedChain(22, `{"name":"x","type":"long"}`))
	// The records are of a version without the leaf: 0 bytes each.
	const emptyID = 7001
	e.seedSchema(t, "hostile-empty-value", emptyID, avrogen.SharedChain(22, ""))
	e.kc.CreateTopic("hostile", 1, nil)
	hw := e.kc.Clients().NewWriter(kafka.WriterOptions{Topic: "hostile"})
	t.Cleanup(func() { _ = hw.Close() })
	var msgs []kafkago.Message
	for range 3 {
		msgs = append(msgs, kafkago.Message{Value: wire.Encode(emptyID, nil), Time: day0})
	}
	msgs = append(msgs, kafkago.Message{Value: e.order(t, 100, "eu", 1), Time: day0}) // the next record: indexed
	if err := hw.WriteMessages(kafkatest.Context(t, 30*time.Second), msgs...); err != nil {
		t.Fatal(err)
	}
	e.produce(t, 0, 20) // the neighbour topic, orders
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("rules:\n  - name: slow\n    topic: orders\n    type: threshold\n    field: latency_ms\n    op: \">\"\n    value: 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantReason := fmt.Sprintf("decoding avro (schema id %d): decode budget exceeded: a record of 0 bytes needs more than 65536 steps (AVRO_DECODE_BASE_STEPS 65536 + AVRO_DECODE_STEPS_PER_BYTE 8 per byte)", emptyID)

	dlq := kafkago.NewReader(kafkago.ReaderConfig{Brokers: e.kc.Brokers(), Topic: "hostile.dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer dlq.Close()
	cases := []struct {
		name  string
		extra []string
	}{
		{"transcoded", nil},
		{"decoded for anomaly rules", []string{"SEARCH_SINK_RULES_FILE=" + rules, "SEARCH_SINK_ALERTS_TOPIC=-"}},
	}
	for i, tc := range cases {
		// Sequential: the cases share the DLQ reader and the indices.
		t.Run(tc.name, func(t *testing.T) {
			group := "hostile-" + strconv.Itoa(i)
			admin := freeAddr(t)
			logs := &syncBuf{}
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(),
				"KAFKA_BROKERS="+strings.Join(e.kc.Brokers(), ","), "REGISTRY_URL="+e.reg.URL(), "ES_URL="+e.es.URL(),
				"SEARCH_SINK_ADMIN_ADDR="+admin, "SEARCH_SINK_GROUP_ID="+group, "SEARCH_SINK_TOPICS=hostile,orders",
				"SEARCH_SINK_COMMIT_INTERVAL=50ms", "SEARCH_SINK_FLUSH_INTERVAL=20ms", "LOG_LEVEL=info")
			cmd.Env = append(cmd.Env, tc.extra...)
			cmd.Stderr = logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
			defer func() {
				if t.Failed() {
					t.Logf("sink logs:\n%s", logs.String())
				}
			}()

			// Counted by this process: the neighbour's records and the one
			// after the hostile records are indexed.
			eventually(t, 60*time.Second, "the orders and the record after the hostile ones indexed", func() bool {
				return metric(t, admin, `sluice_sink_records_written_total{sink="search",topic="orders"}`) == `sluice_sink_records_written_total{sink="search",topic="orders"} 20` &&
					metric(t, admin, `sluice_sink_records_written_total{sink="search",topic="hostile"}`) == `sluice_sink_records_written_total{sink="search",topic="hostile"} 1`
			})
			if e.es.Docs("hostile-" + day0.Format("2006.01.02"))["hostile+0+3"] == nil {
				t.Fatal("the record after the hostile ones is not in the hostile index")
			}
			ctx := kafkatest.Context(t, 30*time.Second)
			for j := range 3 {
				m, err := dlq.ReadMessage(ctx)
				if err != nil {
					t.Fatalf("reading dead letter %d: %v", j, err)
				}
				h := map[string]string{}
				for _, x := range m.Headers {
					h[x.Key] = string(x.Value)
				}
				if h["sluice-error"] != wantReason || h["sluice-stage"] != "decode" || h["sluice-source-offset"] != strconv.Itoa(j) {
					t.Fatalf("dead letter %d headers %v\nwant sluice-error %q", j, h, wantReason)
				}
			}
			eventually(t, 20*time.Second, "the budget metric and the commit past the hostile records", func() bool {
				return metric(t, admin, `sluice_searchsink_avro_budget_exceeded_total{limit="steps",topic="hostile"}`) ==
					`sluice_searchsink_avro_budget_exceeded_total{limit="steps",topic="hostile"} 3` &&
					sum(e.committedTopic(t, group, "hostile")) == 4
			})
			// The template was generated within Elasticsearch's limits
			// from the latest schema (with the leaf), the rest disabled.
			tmpl := lastTemplate(t, e, "sluice-hostile")
			if len(tmpl) > 256<<10 || !strings.Contains(string(tmpl), `"enabled":false`) {
				t.Fatalf("template of %d bytes, want a small one with disabled objects: %.300s", len(tmpl), tmpl)
			}
			if m := metric(t, admin, `sluice_searchsink_mapping_truncated_total{limit="total_fields",topic="hostile"}`); m == "" {
				t.Fatal("no mapping truncation counted for the hostile topic")
			}
			if !strings.Contains(logs.String(), `"topic":"hostile"`) || !strings.Contains(logs.String(), "schema too large to map in full") {
				t.Fatalf("no log line naming the topic whose mapping was truncated")
			}
			rss := peakRSS(t, cmd.Process.Pid)
			t.Logf("peak RSS %d MiB", rss>>20)
			if rss > 150<<20 {
				t.Fatalf("peak RSS %d MiB, want under 150 MiB", rss>>20)
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("sink exit: %v", err)
			}
		})
	}
}

// lastTemplate is the body of the last PUT of an index template.
func lastTemplate(t testing.TB, e *env, name string) []byte {
	t.Helper()
	var body []byte
	for _, r := range e.es.Requests() {
		if r.Method == "PUT" && strings.HasSuffix(r.Path, "/_index_template/"+name) {
			body = r.Body
		}
	}
	if body == nil {
		t.Fatalf("no template %s installed", name)
	}
	return body
}
