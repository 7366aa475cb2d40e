package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/proctest"
	"github.com/sluicehq/sluice/pkg/wire"

	"github.com/sluicehq/sluice/pkg/avro/avrogen"
)

// seedSchema writes a schema straight into the registry's _schemas log, as
// a schema registered before any registration limit (or by a Confluent
// registry sharing the topic) is, and waits until the registry serves it.
func (h *harness) seedSchema(t testing.TB, subject string, id int, schema string) {
	t.Helper()
	key, _ := json.Marshal(map[string]any{"keytype": "SCHEMA", "subject": subject, "version": 1, "magic": 1})
	val, _ := json.Marshal(map[string]any{"subject": subject, "version": 1, "id": id, "schema": schema, "deleted": false})
	if err := h.writer(t).WriteMessages(kafkatest.Context(t, 30*time.Second), kafkago.Message{Topic: "_schemas", Key: key, Value: val}); err != nil {
		t.Fatalf("writing to _schemas: %v", err)
	}
	url := h.reg.URL() + "/schemas/ids/" + strconv.Itoa(id)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry does not serve seeded schema id %d", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
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

// TestHostileSchemaDeadLettered is issue 13 against the s3-sink binary: a
// schema of shared named types 22 levels deep (registered before any
// registration limit) and three 0-byte records of it. goavro expands each
// into 2^23 maps (1.7 GB, seconds of CPU; a few levels more and the pod is
// OOM-killed, restarts at the same offset and crash-loops). The sink must
// dead-letter them with the budget reason, stay small, and keep writing
// the next record of the topic and a neighbour topic: both when it only
// validates records and when a field partitioner decodes them.
func TestHostileSchemaDeadLettered(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	src, err := os.Getwd() // before s3test changes the working directory
	if err != nil {
		t.Fatal(err)
	}
	bin := buildSink(t, src, t.TempDir())
	h := newHarness(t)
	const hostileID = 7000
	h.seedSchema(t, "hostile-value", hostileID, avrogen.SharedChain(22, ""))
	h.kc.CreateTopic("hostile", 1, nil)
	h.kc.CreateTopic("neighbour", 1, nil)
	goodID := h.reg.Register(t, "neighbour-value", eventSchema)
	base := time.UnixMilli(1700000000000).UTC()
	good := func(i int64) []byte {
		return encodeEvent(t, mustCodec(t), goodID, event{ID: i, Country: "DE", TS: base.Add(time.Duration(i) * time.Second)})
	}
	var msgs []kafkago.Message
	for range 3 {
		msgs = append(msgs, kafkago.Message{Topic: "hostile", Value: wire.Encode(hostileID, nil)})
	}
	msgs = append(msgs, kafkago.Message{Topic: "hostile", Value: good(100)}) // the next record of the same partition
	for i := range int64(20) {
		msgs = append(msgs, kafkago.Message{Topic: "neighbour", Value: good(i)})
	}
	if err := h.writer(t).WriteMessages(kafkatest.Context(t, time.Minute), msgs...); err != nil {
		t.Fatal(err)
	}
	wantReason := fmt.Sprintf("avro: schema id %d: decode budget exceeded: a record of 0 bytes needs more than 65536 steps (AVRO_DECODE_BASE_STEPS 65536 + AVRO_DECODE_STEPS_PER_BYTE 8 per byte)", hostileID)

	dlq := kafkago.NewReader(kafkago.ReaderConfig{Brokers: h.kc.Brokers(), Topic: "hostile.dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer dlq.Close()
	cases := []struct {
		name string
		env  map[string]string
	}{
		{"validated only", map[string]string{}},
		{"decoded by a field partitioner", map[string]string{"S3_SINK_PARTITIONER": "field", "S3_SINK_PARTITION_FIELD": "country"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := "h" + strconv.Itoa(i)
			admin := freeAddr(t)
			env := h.env(map[string]string{"S3_SINK_TOPICS": "hostile,neighbour", "S3_SINK_PREFIX": prefix, "S3_SINK_GROUP_ID": "g-" + prefix,
				"S3_SINK_ROTATE_MAX_OPEN": "300ms", "S3_SINK_ADMIN_ADDR": admin})
			logf, err := os.Create(t.TempDir() + "/sink.log")
			if err != nil {
				t.Fatal(err)
			}
			p := startProc(t, bin, env, logf)
			defer func() {
				if t.Failed() {
					b, _ := os.ReadFile(logf.Name())
					t.Logf("sink log:\n%s", b)
				}
			}()

			h.waitRecords(t, prefix+"/neighbour/", 20, 60*time.Second)
			objs := h.waitRecords(t, prefix+"/hostile/", 1, 60*time.Second)
			if n := countRecords(objs); n != 1 || objs[0].Records[0]["id"] != int64(100) {
				t.Fatalf("hostile topic in S3: %d records %v, want only the good record after the hostile ones", n, objs)
			}
			ctx := kafkatest.Context(t, 30*time.Second)
			for j := range 3 {
				m, err := dlq.ReadMessage(ctx)
				if err != nil {
					t.Fatalf("reading dead letter %d: %v", j, err)
				}
				hd := map[string]string{}
				for _, x := range m.Headers {
					hd[x.Key] = string(x.Value)
				}
				if hd["sluice-error"] != wantReason || hd["sluice-source-offset"] != strconv.Itoa(j) || string(m.Value) != string(wire.Encode(hostileID, nil)) {
					t.Fatalf("dead letter %d: headers %v value %x\nwant sluice-error %q", j, hd, m.Value, wantReason)
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				v, ok := scrape(t, "http://"+admin+"/metrics", `sluice_s3sink_avro_budget_exceeded_total{limit="steps",topic="hostile"}`)
				lag, lok := scrape(t, "http://"+admin+"/metrics", `sluice_sink_lag_records{partition="0",sink="s3",topic="hostile"}`)
				if ok && v == 3 && lok && lag == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("budget metric %v (%v), lag %v (%v); want 3 and 0", v, ok, lag, lok)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if rss := peakRSS(t, p.cmd.Process.Pid); rss > 150<<20 {
				t.Fatalf("peak RSS %d MiB, want under 150 MiB", rss>>20)
			} else {
				t.Logf("peak RSS %d MiB", rss>>20)
			}
			if err := p.signal(t, 15); err != nil {
				t.Fatalf("sink exit: %v", err)
			}
		})
	}
}
