package main

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/wire"
)

// checkExactlyOnce verifies objects against the produced events: every
// event exactly once, each object's records in offset order starting at
// the key's offset, all from the key's partition, each under the path
// pathOf gives for it.
func checkExactlyOnce(t *testing.T, topic, prefix string, objs []object, events []event, pathOf func(e event) string) {
	t.Helper()
	byID := map[int64]event{}
	for _, e := range events {
		byID[e.ID] = e
	}
	seen := map[int64]string{}
	for _, o := range objs {
		dir := strings.TrimPrefix(o.Key[:strings.LastIndex(o.Key, "/")], prefix+"/"+topic+"/")
		if !strings.HasPrefix(o.Key, prefix+"/"+topic+"/") {
			t.Fatalf("object %s outside %s/%s/", o.Key, prefix, topic)
		}
		last := int64(-1)
		for i, r := range o.Records {
			id, ok := r["id"].(int64)
			if !ok {
				t.Fatalf("object %s record %d: id is %T", o.Key, i, r["id"])
			}
			e, ok := byID[id]
			if !ok {
				t.Fatalf("object %s holds unknown id %d", o.Key, id)
			}
			if prev, dup := seen[id]; dup {
				t.Fatalf("id %d in %s and again in %s", id, prev, o.Key)
			}
			seen[id] = o.Key
			if e.Partition != o.Partition {
				t.Fatalf("id %d from partition %d is in %s", id, e.Partition, o.Key)
			}
			if i == 0 && e.Offset != o.Start {
				t.Fatalf("object %s starts with offset %d", o.Key, e.Offset)
			}
			if e.Offset <= last {
				t.Fatalf("object %s: offset %d after %d", o.Key, e.Offset, last)
			}
			last = e.Offset
			if want := pathOf(e); dir != want {
				t.Fatalf("id %d (partition %d, country %s, ts %s) is under %q, want %q", id, e.Partition, e.Country, e.TS, dir, want)
			}
			if r["country"] != e.Country || r["payload"] != "payload-"+strconv.FormatInt(id, 10) {
				t.Fatalf("id %d decoded as %v", id, r)
			}
			if ts, ok := r["ts"].(time.Time); !ok || !ts.Equal(e.TS) {
				t.Fatalf("id %d ts = %v, want %s", id, r["ts"], e.TS)
			}
		}
	}
	if len(seen) != len(events) {
		t.Fatalf("%d distinct records in S3, want %d", len(seen), len(events))
	}
}

// TestPartitioners: 6 partitions, each partitioner; hamba's OCF reader
// decodes exactly the produced records, once each, in offset order under
// the right paths.
func TestPartitioners(t *testing.T) {
	h := newHarness(t)
	base := time.Date(2026, 5, 31, 21, 10, 0, 0, time.UTC)
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	cases := []struct {
		name   string
		env    map[string]string
		pathOf func(e event) string
		check  func(t *testing.T, o object)
	}{
		{"default", map[string]string{}, func(e event) string { return fmt.Sprintf("partition=%d", e.Partition) }, nil},
		{"field", map[string]string{"S3_SINK_PARTITIONER": "field", "S3_SINK_PARTITION_FIELD": "country"},
			func(e event) string { return "country=" + e.Country }, nil},
		{"time-record-hourly", map[string]string{"S3_SINK_PARTITIONER": "time", "S3_SINK_PATH_FORMAT": "hourly"},
			func(e event) string {
				u := e.TS.UTC()
				return fmt.Sprintf("year=%04d/month=%02d/day=%02d/hour=%02d", u.Year(), u.Month(), u.Day(), u.Hour())
			}, nil},
		{"time-field-daily-tokyo", map[string]string{"S3_SINK_PARTITIONER": "time", "S3_SINK_PATH_FORMAT": "dt=YYYY-MM-dd",
			"S3_SINK_TIMESTAMP_SOURCE": "field", "S3_SINK_TIMESTAMP_FIELD": "ts", "S3_SINK_TIMEZONE": "Asia/Tokyo", "S3_SINK_CODEC": "deflate"},
			func(e event) string { return "dt=" + e.TS.In(tokyo).Format("2006-01-02") }, nil},
		{"record-time-interval", map[string]string{"S3_SINK_ROTATE_INTERVAL": "1h", "S3_SINK_FLUSH_RECORDS": "0"},
			func(e event) string { return fmt.Sprintf("partition=%d", e.Partition) },
			func(t *testing.T, o object) {
				// Every file holds records of one interval-aligned hour.
				first := o.Records[0]["ts"].(time.Time).Truncate(time.Hour)
				for _, r := range o.Records {
					if h := r["ts"].(time.Time).Truncate(time.Hour); !h.Equal(first) {
						t.Fatalf("object %s mixes hours %s and %s", o.Key, first, h)
					}
				}
			}},
	}
	const n = 3000
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			topic := "events-" + c.name
			h.kc.CreateTopic(topic, 6, nil)
			events := genEvents(n, 6, base)
			h.produce(t, topic, events)
			env := map[string]string{
				"S3_SINK_TOPICS": topic, "S3_SINK_GROUP_ID": "g-" + c.name, "S3_SINK_PREFIX": "p/" + c.name,
				"S3_SINK_FLUSH_RECORDS": "150", "S3_SINK_ROTATE_MAX_OPEN": "1s",
			}
			for k, v := range c.env {
				env[k] = v
			}
			stop := h.startSink(t, env)
			objs := h.waitRecords(t, "p/"+c.name+"/", n, 90*time.Second)
			if err := stop(); err != nil {
				t.Fatalf("sink: %v", err)
			}
			objs, err := h.objects(t.Context(), "p/"+c.name+"/")
			if err != nil {
				t.Fatal(err)
			}
			checkExactlyOnce(t, topic, "p/"+c.name, objs, events, c.pathOf)
			if len(objs) < 6 {
				t.Fatalf("only %d objects", len(objs))
			}
			for _, o := range objs {
				if c.check != nil {
					c.check(t, o)
				}
			}
		})
	}
}

// TestSchemaEvolution: v1 then v2 records on the same partition land in
// separate files, each carrying (and readable with) its own schema.
func TestSchemaEvolution(t *testing.T) {
	h := newHarness(t)
	topic := "evolving"
	h.kc.CreateTopic(topic, 1, nil)
	v1 := `{"type":"record","name":"User","namespace":"sluice.test","fields":[{"name":"id","type":"long"}]}`
	v2 := `{"type":"record","name":"User","namespace":"sluice.test","fields":[{"name":"id","type":"long"},{"name":"email","type":"string","default":""}]}`
	id1 := h.reg.Register(t, topic+"-value", v1)
	id2 := h.reg.Register(t, topic+"-value", v2)
	if id1 == id2 {
		t.Fatalf("v1 and v2 share id %d", id1)
	}
	var msgs []kafkago.Message
	for i := 0; i < 100; i++ {
		bin := append([]byte(nil), zigzag(int64(i))...)
		msgs = append(msgs, kafkago.Message{Topic: topic, Value: wire.Encode(uint32(id1), bin)})
	}
	for i := 100; i < 150; i++ {
		email := fmt.Sprintf("u%d@example.com", i)
		bin := append(zigzag(int64(i)), zigzag(int64(len(email)))...)
		bin = append(bin, email...)
		msgs = append(msgs, kafkago.Message{Topic: topic, Value: wire.Encode(uint32(id2), bin)})
	}
	if err := h.writer(t).WriteMessages(kafkatest.Context(t, time.Minute), msgs...); err != nil {
		t.Fatal(err)
	}
	stop := h.startSink(t, map[string]string{"S3_SINK_TOPICS": topic, "S3_SINK_ROTATE_MAX_OPEN": "1s", "S3_SINK_PREFIX": "evo"})
	objs := h.waitRecords(t, "evo/", 150, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("%d objects, want 2 (one per schema): %v", len(objs), objs)
	}
	if objs[0].Start != 0 || len(objs[0].Records) != 100 || strings.Contains(objs[0].Schema, "email") {
		t.Fatalf("v1 file: start %d, %d records, schema %s", objs[0].Start, len(objs[0].Records), objs[0].Schema)
	}
	if objs[1].Start != 100 || len(objs[1].Records) != 50 || !strings.Contains(objs[1].Schema, "email") {
		t.Fatalf("v2 file: start %d, %d records, schema %s", objs[1].Start, len(objs[1].Records), objs[1].Schema)
	}
	for i, r := range objs[1].Records {
		if r["email"] != fmt.Sprintf("u%d@example.com", 100+i) || r["id"] != int64(100+i) {
			t.Fatalf("v2 record %d = %v", i, r)
		}
	}
}

func zigzag(v int64) []byte {
	u := uint64((v << 1) ^ (v >> 63))
	var b []byte
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestBadInput: garbage, an unknown schema id, corrupt Avro and a tombstone
// go to <topic>.dlq with the original bytes and headers, while the good
// records around them land in S3 and the sink keeps going.
func TestBadInput(t *testing.T) {
	h := newHarness(t)
	topic := "mixed"
	h.kc.CreateTopic(topic, 1, nil)
	id := h.reg.Register(t, topic+"-value", eventSchema)
	good := func(i int64) []byte {
		return encodeEvent(t, mustCodec(t), id, event{ID: i, Country: "DE", TS: time.UnixMilli(1700000000000 + i)})
	}
	corrupt := good(99)
	corrupt = corrupt[:len(corrupt)-4]
	bad := []struct {
		value  []byte
		reason string
	}{
		{[]byte("not avro at all"), "framing"},
		{wire.Encode(987654, []byte{2}), "schema"},
		{corrupt, "avro"},
		{nil, "tombstone"},
	}
	msgs := []kafkago.Message{{Topic: topic, Value: good(0)}}
	for i, b := range bad {
		msgs = append(msgs, kafkago.Message{Topic: topic, Key: []byte("k" + strconv.Itoa(i)), Value: b.value,
			Headers: []kafkago.Header{{Key: "trace", Value: []byte("t" + strconv.Itoa(i))}}})
	}
	msgs = append(msgs, kafkago.Message{Topic: topic, Value: good(1)})
	if err := h.writer(t).WriteMessages(kafkatest.Context(t, time.Minute), msgs...); err != nil {
		t.Fatal(err)
	}
	admin := freeAddr(t)
	stop := h.startSink(t, map[string]string{"S3_SINK_TOPICS": topic, "S3_SINK_ROTATE_MAX_OPEN": "500ms", "S3_SINK_PREFIX": "bad",
		"S3_SINK_TOMBSTONES": "dlq", "S3_SINK_ADMIN_ADDR": admin})
	objs := h.waitRecords(t, "bad/", 2, 60*time.Second)
	if countRecords(objs) != 2 {
		t.Fatalf("%d records in S3, want 2", countRecords(objs))
	}
	ids := []any{}
	for _, o := range objs {
		for _, r := range o.Records {
			ids = append(ids, r["id"])
		}
	}
	if fmt.Sprint(ids) != "[0 1]" {
		t.Fatalf("ids in S3 = %v", ids)
	}

	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: h.kc.Brokers(), Topic: topic + ".dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx := kafkatest.Context(t, 30*time.Second)
	for i, b := range bad {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading DLQ record %d: %v", i, err)
		}
		hd := map[string]string{}
		for _, x := range m.Headers {
			hd[x.Key] = string(x.Value)
		}
		if string(m.Value) != string(b.value) || string(m.Key) != "k"+strconv.Itoa(i) {
			t.Fatalf("DLQ record %d: key %q value %q, want the original", i, m.Key, m.Value)
		}
		if !strings.HasPrefix(hd["sluice-error"], b.reason) || hd["sluice-stage"] != "s3-sink" || hd["sluice-source-topic"] != topic ||
			hd["sluice-source-partition"] != "0" || hd["sluice-source-offset"] != strconv.Itoa(i+1) || hd["trace"] != "t"+strconv.Itoa(i) {
			t.Fatalf("DLQ record %d headers = %v (want reason %s)", i, hd, b.reason)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, ok := scrape(t, "http://"+admin+"/metrics", `sluice_sink_records_dead_lettered_total{sink="s3",topic="mixed"}`)
		lag, lok := scrape(t, "http://"+admin+"/metrics", `sluice_sink_lag_records{partition="0",sink="s3",topic="mixed"}`)
		if ok && v == 4 && lok && lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dlq metric %v (%v), lag %v (%v); want 4 and 0 (offsets committed past the bad records)", v, ok, lag, lok)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestTopicRegexPicksUpNewTopics: in regex mode the sink takes every
// matching topic except internal and dead-letter ones, and a topic created
// while it runs is picked up at the next re-evaluation.
func TestTopicRegexPicksUpNewTopics(t *testing.T) {
	h := newHarness(t)
	h.kc.CreateTopic("orders", 2, nil)
	h.kc.CreateTopic("_internal", 1, nil)
	h.kc.CreateTopic("orders.dlq", 1, nil)
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	orders := genEvents(40, 2, base)
	h.produce(t, "orders", orders)
	h.produce(t, "_internal", genEvents(5, 1, base))
	h.produce(t, "orders.dlq", genEvents(5, 1, base))
	stop := h.startSink(t, map[string]string{"S3_SINK_TOPIC_REGEX": ".*", "S3_SINK_ROTATE_MAX_OPEN": "500ms", "S3_SINK_PREFIX": "rx"})
	h.waitRecords(t, "rx/orders/", 40, 60*time.Second)

	h.kc.CreateTopic("payments", 3, nil)
	payments := genEvents(30, 3, base)
	h.produce(t, "payments", payments)
	h.waitRecords(t, "rx/payments/", 30, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	all, err := h.objects(t.Context(), "rx/")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range all {
		if strings.HasPrefix(o.Key, "rx/_internal/") || strings.HasPrefix(o.Key, "rx/orders.dlq/") {
			t.Fatalf("excluded topic was sunk: %s", o.Key)
		}
	}
	for topic, evs := range map[string][]event{"orders": orders, "payments": payments} {
		objs, err := h.objects(t.Context(), "rx/"+topic+"/")
		if err != nil {
			t.Fatal(err)
		}
		checkExactlyOnce(t, topic, "rx", objs, evs, func(e event) string { return fmt.Sprintf("partition=%d", e.Partition) })
	}
}

// TestRebalanceTwoSinks: a second sink joins the group mid-stream and the
// first one leaves later; partitions move twice, revoked workers drop
// their open files, and S3 still ends up with every record exactly once.
func TestRebalanceTwoSinks(t *testing.T) {
	h := newHarness(t)
	topic := "moving"
	h.kc.CreateTopic(topic, 6, nil)
	events := genEvents(12000, 6, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
	env := map[string]string{"S3_SINK_TOPICS": topic, "S3_SINK_PREFIX": "mv", "S3_SINK_FLUSH_RECORDS": "300", "S3_SINK_ROTATE_MAX_OPEN": "1s"}
	h.produce(t, topic, events[:4000])
	stopA := h.startSink(t, env)
	h.waitRecords(t, "mv/", 1000, 60*time.Second)
	h.produce(t, topic, events[4000:8000])
	stopB := h.startSink(t, env)
	h.waitRecords(t, "mv/", 5000, 60*time.Second)
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	h.produce(t, topic, events[8000:])
	objs := h.waitRecords(t, "mv/", len(events), 90*time.Second)
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	objs, err := h.objects(t.Context(), "mv/")
	if err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, topic, "mv", objs, events, func(e event) string { return fmt.Sprintf("partition=%d", e.Partition) })
}

// TestTombstoneModes: write records tombstones in _tombstones/ files,
// ignore skips them (and commits past them), fail stops the sink with an
// error naming the offset and writes nothing past it.
func TestTombstoneModes(t *testing.T) {
	h := newHarness(t)
	topic := "deletes"
	h.kc.CreateTopic(topic, 1, nil)
	id := h.reg.Register(t, topic+"-value", eventSchema)
	good := func(i int64) []byte {
		return encodeEvent(t, mustCodec(t), id, event{ID: i, Country: "FR", TS: time.UnixMilli(1700000000000 + i)})
	}
	ts := time.UnixMilli(1700000000123)
	msgs := []kafkago.Message{
		{Topic: topic, Value: good(0)},
		{Topic: topic, Key: []byte("gone"), Time: ts},
		{Topic: topic, Value: good(2)},
	}
	if err := h.writer(t).WriteMessages(kafkatest.Context(t, time.Minute), msgs...); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"S3_SINK_TOPICS": topic, "S3_SINK_ROTATE_MAX_OPEN": "300ms"}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}

	t.Run("write", func(t *testing.T) {
		stop := h.startSink(t, with(map[string]string{"S3_SINK_TOMBSTONES": "write", "S3_SINK_GROUP_ID": "tw", "S3_SINK_PREFIX": "tw"}))
		h.waitRecords(t, "tw/", 3, time.Minute)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		tomb, err := h.objects(t.Context(), "tw/deletes/_tombstones/partition=0/")
		if err != nil {
			t.Fatal(err)
		}
		if len(tomb) != 1 || len(tomb[0].Records) != 1 || tomb[0].Start != 1 {
			t.Fatalf("tombstone objects = %+v", tomb)
		}
		r := tomb[0].Records[0]
		if string(anyBytes(r["key"])) != "gone" || r["offset"] != int64(1) || fmt.Sprint(r["partition"]) != "0" {
			t.Fatalf("tombstone record = %v", r)
		}
		if got, ok := r["timestamp"].(time.Time); !ok || !got.Equal(ts) {
			t.Fatalf("tombstone timestamp = %v, want %s", r["timestamp"], ts)
		}
		data, err := h.objects(t.Context(), "tw/deletes/partition=0/")
		if err != nil {
			t.Fatal(err)
		}
		if countRecords(data) != 2 {
			t.Fatalf("%d data records, want 2", countRecords(data))
		}
	})

	t.Run("ignore", func(t *testing.T) {
		admin := freeAddr(t)
		stop := h.startSink(t, with(map[string]string{"S3_SINK_TOMBSTONES": "ignore", "S3_SINK_GROUP_ID": "ti", "S3_SINK_PREFIX": "ti", "S3_SINK_ADMIN_ADDR": admin}))
		h.waitRecords(t, "ti/", 2, time.Minute)
		deadline := time.Now().Add(20 * time.Second)
		for {
			lag, ok := scrape(t, "http://"+admin+"/metrics", `sluice_sink_lag_records{partition="0",sink="s3",topic="deletes"}`)
			ign, ok2 := scrape(t, "http://"+admin+"/metrics", `sluice_s3sink_tombstones_total{action="ignored",topic="deletes"}`)
			if ok && ok2 && lag == 0 && ign == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lag %v, ignored %v; want 0 and 1", lag, ign)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		objs, err := h.objects(t.Context(), "ti/")
		if err != nil {
			t.Fatal(err)
		}
		if countRecords(objs) != 2 {
			t.Fatalf("%d records, want 2", countRecords(objs))
		}
	})

	t.Run("fail", func(t *testing.T) {
		ctx := kafkatest.Context(t, time.Minute)
		err := run(ctx, flags(h.env(with(map[string]string{"S3_SINK_TOMBSTONES": "fail", "S3_SINK_GROUP_ID": "tf", "S3_SINK_PREFIX": "tf"}))))
		if err == nil || !strings.Contains(err.Error(), "tombstone at offset 1") {
			t.Fatalf("run returned %v, want the tombstone failure", err)
		}
		if n := h.countObjects(t.Context(), "tf/"); n != 0 {
			t.Fatalf("%d objects written by a sink that failed before any file completed", n)
		}
	})
}

func anyBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case map[string]any:
		for _, inner := range x {
			return anyBytes(inner)
		}
	}
	return nil
}

// TestReplayRewritesIdenticalObjects: a second consumer group replaying
// the topic from the start into the same prefix rewrites every object
// byte for byte (deterministic keys, block cuts, header and sync marker),
// which is what makes a replay after a crash harmless.
func TestReplayRewritesIdenticalObjects(t *testing.T) {
	h := newHarness(t)
	topic := "replayed"
	h.kc.CreateTopic(topic, 6, nil)
	events := genEvents(1800, 6, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	h.produce(t, topic, events)
	snapshot := func() map[string]string {
		objs, err := h.objects(t.Context(), "rp/")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, o := range objs {
			out[o.Key] = fmt.Sprint(o.Records)
		}
		return out
	}
	raw := func() map[string]string {
		out := map[string]string{}
		cl := h.s3.Client()
		for key := range snapshot() {
			res, err := cl.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[key] = string(b)
		}
		return out
	}
	env := map[string]string{"S3_SINK_TOPICS": topic, "S3_SINK_PREFIX": "rp", "S3_SINK_FLUSH_RECORDS": "100", "S3_SINK_CODEC": "deflate"}
	env["S3_SINK_GROUP_ID"] = "first"
	stop := h.startSink(t, env)
	h.waitRecords(t, "rp/", len(events), time.Minute)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	before := raw()
	if len(before) != 18 {
		t.Fatalf("%d objects, want 18 (6 partitions x 300 records / 100)", len(before))
	}

	admin := freeAddr(t)
	env["S3_SINK_GROUP_ID"], env["S3_SINK_ADMIN_ADDR"] = "second", admin
	stop = h.startSink(t, env)
	deadline := time.Now().Add(time.Minute)
	for {
		if v, ok := scrape(t, "http://"+admin+"/metrics", `sluice_s3sink_files_written_total{topic="replayed"}`); ok && v == 18 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replay did not rewrite 18 files within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	after := raw()
	if len(after) != len(before) {
		t.Fatalf("%d objects after the replay, %d before", len(after), len(before))
	}
	for k, b := range before {
		if after[k] != b {
			t.Fatalf("object %s changed on replay", k)
		}
	}
}
