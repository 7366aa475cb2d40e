package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/wire"
)

// hostileValues are field-partitioner values a producer may choose.
var hostileValues = []string{
	strings.Repeat("a", 5000),
	strings.Repeat("a", 5000) + "b", // shares 5,000 bytes with the one above
	strings.Repeat("/", 3000),
	strings.Repeat("é", 2000),
	"../../etc/passwd", "..", ".", "a/b/c", "", "__empty__",
	"\x00\x01\n\t\x7f", "\xff\xfe\xc3(", "日本語", "%2F", "a!b+c", "key=value?x#y", "DE",
}

// TestHostileFieldValues: whatever a producer puts in the partitioning
// field (5 KB, '/', "..", control characters, invalid UTF-8...), and with
// the longest legal topic name, objects are written to versitygw (whose
// posix backend refuses a key segment over 255 bytes) under keys within
// 1024 bytes and 255-byte segments, made of safe bytes; distinct values
// get distinct paths; every record lands exactly once; and a replay
// rewrites the same keys with the same bytes.
func TestHostileFieldValues(t *testing.T) {
	h := newHarness(t)
	longTopic := strings.Repeat("t", 249)
	topics := []string{"hostile", longTopic}
	perValue := 4
	codec := mustCodec(t)
	events := map[string][]event{}
	for _, topic := range topics {
		h.kc.CreateTopic(topic, 2, nil)
		id := h.reg.Register(t, topic+"-value", eventSchema)
		var msgs []kafkago.Message
		var evs []event
		next := []int64{0, 0}
		for i := 0; i < len(hostileValues)*perValue; i++ {
			p := i % 2
			e := event{ID: int64(i), Country: hostileValues[i%len(hostileValues)], TS: time.UnixMilli(1767225600000 + int64(i)), Partition: p, Offset: next[p]}
			next[p]++
			evs = append(evs, e)
			msgs = append(msgs, kafkago.Message{Topic: topic, Partition: p, Time: e.TS, Value: encodeEvent(t, codec, id, e)})
		}
		if err := h.writer(t).WriteMessages(kafkatest.Context(t, time.Minute), msgs...); err != nil {
			t.Fatal(err)
		}
		events[topic] = evs
	}
	env := map[string]string{
		"S3_SINK_TOPICS": strings.Join(topics, ","), "S3_SINK_PREFIX": "hv", "S3_SINK_GROUP_ID": "hv1",
		"S3_SINK_PARTITIONER": "field", "S3_SINK_PARTITION_FIELD": "country", "S3_SINK_FLUSH_RECORDS": "1",
	}
	p := h.startInProc(t, "", env)
	total := len(hostileValues) * perValue * len(topics)
	h.waitRecords(t, "hv/", total, 90*time.Second)
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if v, _ := p.metric("sluice_s3sink_shortened_keys_total", map[string]string{"topic": longTopic}); v != float64(total/2) {
		t.Fatalf("shortened keys of the long topic = %v, want %d (every file name shortened)", v, total/2)
	}

	for _, topic := range topics {
		objs, err := h.objects(t.Context(), "hv/"+topic+"/")
		if err != nil {
			t.Fatal(err)
		}
		dirOf := map[string]string{} // value -> directory
		valueOf := map[string]string{}
		seen := map[int64]bool{}
		for _, o := range objs {
			checkSafeKey(t, o.Key)
			dir := o.Key[:strings.LastIndexByte(o.Key, '/')]
			for _, r := range o.Records {
				id, v := r["id"].(int64), r["country"].(string)
				if seen[id] {
					t.Fatalf("record %d twice", id)
				}
				seen[id] = true
				if d, ok := dirOf[v]; ok && d != dir {
					t.Fatalf("value %.40q under %s and %s", v, d, dir)
				}
				if w, ok := valueOf[dir]; ok && w != v {
					t.Fatalf("values %.40q and %.40q share %s", v, w, dir)
				}
				dirOf[v], valueOf[dir] = dir, v
			}
		}
		if len(seen) != len(events[topic]) || len(dirOf) != len(hostileValues) {
			t.Fatalf("topic %.20s: %d records, %d paths; want %d and %d", topic, len(seen), len(dirOf), len(events[topic]), len(hostileValues))
		}
		if d := dirOf["DE"]; !strings.HasSuffix(d, "/country=DE") {
			t.Fatalf("a plain value is not readable in its path: %s", d)
		}
	}

	// A second group replays everything into the same prefix: the same
	// keys, byte for byte.
	before := h.rawObjects(t, "hv/")
	env["S3_SINK_GROUP_ID"] = "hv2"
	p2 := h.startInProc(t, "", env)
	eventually(t, 90*time.Second, "replay rewrote every file", func() bool {
		a, _ := p2.metric("sluice_s3sink_files_written_total", map[string]string{"topic": "hostile"})
		b, _ := p2.metric("sluice_s3sink_files_written_total", map[string]string{"topic": longTopic})
		return int(a+b) == total
	})
	if err := p2.stop(); err != nil {
		t.Fatal(err)
	}
	after := h.rawObjects(t, "hv/")
	if len(after) != len(before) {
		t.Fatalf("%d objects after the replay, %d before: the replay wrote other keys", len(after), len(before))
	}
	for k, b := range before {
		if !bytes.Equal(after[k], b) {
			t.Fatalf("object %s changed on replay", k)
		}
	}
}

// checkSafeKey asserts a key is within S3's and file systems' limits and
// made of bytes S3 and common tools handle.
func checkSafeKey(t *testing.T, key string) {
	t.Helper()
	if len(key) > 1024 || !utf8.ValidString(key) {
		t.Fatalf("key of %d bytes: %q", len(key), key)
	}
	for _, seg := range strings.Split(key, "/") {
		if len(seg) > 255 || seg == "" || seg == "." || seg == ".." {
			t.Fatalf("segment %q (%d bytes) in %s", seg, len(seg), key)
		}
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-/=%+!", c) >= 0) {
			t.Fatalf("byte %q in key %s", c, key)
		}
	}
}

// rawObjects returns every object's bytes under prefix.
func (h *harness) rawObjects(t *testing.T, prefix string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, key := range h.keys(t, prefix) {
		res, err := h.s3.Client().GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[key] = b
	}
	return out
}

// dlqRecords reads n records from topic.dlq.
func (h *harness) dlqRecords(t *testing.T, topic string, n int) []kafkago.Message {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: h.kc.Brokers(), Topic: topic + ".dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx := kafkatest.Context(t, 30*time.Second)
	var out []kafkago.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s.dlq record %d: %v", topic, len(out), err)
		}
		out = append(out, m)
	}
	return out
}

func headers(m kafkago.Message) map[string]string {
	hd := map[string]string{}
	for _, x := range m.Headers {
		hd[x.Key] = string(x.Value)
	}
	return hd
}

// TestDeadLetterTooLarge: a bad 200 KB record whose dead-letter topic
// takes at most 64 KiB is cut to S3_SINK_DLQ_MAX_BYTES and dead-lettered
// with its original size and what was cut, and the partition moves on;
// a dead-letter topic that refuses even that (16 KiB) parks its topic
// (reason dlq_refused) instead of retrying forever, while the other flows.
func TestDeadLetterTooLarge(t *testing.T) {
	h := newHarness(t)
	for _, topic := range []string{"big", "bigger"} {
		h.kc.CreateTopic(topic, 1, nil)
	}
	h.kc.CreateTopic("big.dlq", 1, map[string]string{"max.message.bytes": "65536"})
	h.kc.CreateTopic("bigger.dlq", 1, map[string]string{"max.message.bytes": "16384"})
	codec := mustCodec(t)
	originals := map[string][]byte{}
	for _, topic := range []string{"big", "bigger"} {
		id := h.reg.Register(t, topic+"-value", eventSchema)
		good := func(i int64) []byte {
			return encodeEvent(t, codec, id, event{ID: i, Country: "DE", TS: time.UnixMilli(1700000000000 + i)})
		}
		bad := append(good(1), bytes.Repeat([]byte{0xAB}, 200_000)...) // trailing bytes: not one Avro datum
		originals[topic] = bad
		msgs := []kafkago.Message{
			{Topic: topic, Value: good(0)},
			{Topic: topic, Key: []byte("the-key"), Value: bad, Headers: []kafkago.Header{{Key: "trace", Value: bytes.Repeat([]byte("t"), 1000)}}},
			{Topic: topic, Value: good(2)},
		}
		if err := h.writer(t).WriteMessages(kafkatest.Context(t, time.Minute), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	p := h.startInProc(t, "", parkEnv("big,bigger", "dl", map[string]string{"S3_SINK_FLUSH_RECORDS": "1", "S3_SINK_DLQ_MAX_BYTES": "60000"}))
	h.waitRecords(t, "dl/big/", 2, 30*time.Second)
	eventually(t, 30*time.Second, "big committed past its bad record", func() bool {
		return h.committed(t, "dl", "big", 1)[0] == 3
	})
	m := h.dlqRecords(t, "big", 1)[0]
	hd := headers(m)
	size := len(m.Key) + len(m.Value)
	origSize := len("the-key") + len(originals["big"])
	for _, x := range m.Headers {
		size += len(x.Key) + len(x.Value)
		if x.Key != "sluice-original-size" && x.Key != "sluice-truncated" {
			origSize += len(x.Key) + len(x.Value)
		}
	}
	if size > 60000 || !bytes.HasPrefix(originals["big"], m.Value) || string(m.Key) != "the-key" {
		t.Fatalf("dead letter of %d bytes: key %q, %d value bytes; want the key and a prefix of the value within 60000 bytes", size, m.Key, len(m.Value))
	}
	if hd["sluice-original-size"] != strconv.Itoa(origSize) || hd["sluice-truncated"] != "value" ||
		!strings.HasPrefix(hd["sluice-error"], "avro: ") || hd["sluice-source-offset"] != "1" || hd["trace"] == "" {
		t.Fatalf("dead letter headers: %v", hd)
	}
	if v, _ := p.metric("sluice_sink_dead_letters_truncated_total", map[string]string{"topic": "big"}); v != 1 {
		t.Fatalf("dlq_truncated_total = %v", v)
	}
	eventually(t, 30*time.Second, "bigger parked: its dead-letter topic refuses the record", func() bool {
		n, _ := p.metric("sluice_sink_topic_parks_total", map[string]string{"topic": "bigger", "reason": "dlq_refused"})
		return n >= 1
	})
	if got := h.committed(t, "dl", "bigger", 1)[0]; got > 1 {
		t.Fatalf("bigger committed %d past a record that is neither stored nor dead-lettered", got)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestSchemaProblems: with a field partitioner, the topic's current schema
// (latest of <topic>-value) lacking the field parks the topic (reason
// schema) after the records before it are committed; a record framed with
// some other schema id lacking the field, or whose field value has a type
// that cannot name a path, is dead-lettered and its topic keeps flowing.
func TestSchemaProblems(t *testing.T) {
	h := newHarness(t)
	for _, topic := range []string{"evolved", "foreign"} {
		h.kc.CreateTopic(topic, 1, nil)
	}
	noCountry := `{"type":"record","name":"Event","namespace":"sluice.test","fields":[{"name":"id","type":"long"},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"payload","type":"string"}]}`
	v1 := h.reg.Register(t, "evolved-value", eventSchema)
	v2 := h.reg.Register(t, "evolved-value", noCountry)
	mixed := `{"type":"record","name":"Event","namespace":"sluice.test","fields":[{"name":"id","type":"long"},
 {"name":"country","type":["string",{"type":"array","items":"string"}]},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"payload","type":"string"}]}`
	fid := h.reg.Register(t, "foreign-value", mixed)
	c1, c2 := mustCodec(t), codecOf(t, noCountry)
	cm := codecOf(t, mixed)
	enc := func(c *goavro.Codec, id int, i int64, country any) []byte {
		rec := map[string]any{"id": i, "ts": time.UnixMilli(1700000000000 + i), "payload": "payload-" + strconv.FormatInt(i, 10)}
		if country != nil {
			rec["country"] = country
		}
		bin, err := c.BinaryFromNative(nil, rec)
		if err != nil {
			t.Fatal(err)
		}
		return wire.Encode(uint32(id), bin)
	}
	var evolved []kafkago.Message
	for i := int64(0); i < 10; i++ {
		evolved = append(evolved, kafkago.Message{Topic: "evolved", Value: enc(c1, v1, i, "DE")})
	}
	evolved = append(evolved, kafkago.Message{Topic: "evolved", Value: enc(c2, v2, 10, nil)})
	foreign := []kafkago.Message{
		{Topic: "foreign", Value: enc(cm, fid, 0, goavro.Union("string", "FR"))},
		{Topic: "foreign", Value: enc(c2, v2, 1, nil)},                                     // another subject's schema without the field
		{Topic: "foreign", Value: enc(cm, fid, 2, goavro.Union("array", []any{"a", "b"}))}, // a value that cannot name a path
		{Topic: "foreign", Value: enc(cm, fid, 3, goavro.Union("string", "FR"))},
	}
	if err := h.writer(t).WriteMessages(kafkatest.Context(t, time.Minute), append(evolved, foreign...)...); err != nil {
		t.Fatal(err)
	}
	p := h.startInProc(t, "", parkEnv("evolved,foreign", "sp", map[string]string{
		"S3_SINK_PARTITIONER": "field", "S3_SINK_PARTITION_FIELD": "country", "S3_SINK_FLUSH_RECORDS": "1",
	}))
	eventually(t, 30*time.Second, "evolved parked for its schema", func() bool {
		n, _ := p.metric("sluice_sink_topic_parks_total", map[string]string{"topic": "evolved", "reason": "schema"})
		return n >= 1 && h.committed(t, "sp", "evolved", 1)[0] == 10
	})
	if lines := p.logs.find("topic parked: its records wait here while other topics flow; fix the cause, it is retried",
		map[string]string{"topic": "evolved", "reason": "schema"}); len(lines) == 0 || !strings.Contains(fmt.Sprint(lines[0]["err"]), "country") {
		t.Fatalf("park log lines: %v", lines)
	}
	h.waitRecords(t, "sp/evolved/", 10, 10*time.Second)
	h.waitRecords(t, "sp/foreign/", 2, 30*time.Second)
	eventually(t, 30*time.Second, "foreign committed to its end", func() bool { return h.committed(t, "sp", "foreign", 1)[0] == 4 })
	dl := h.dlqRecords(t, "foreign", 2)
	for i, want := range []string{"partitioning: schema id " + strconv.Itoa(v2) + ": field not usable in schema: country", "partitioning: field country: value of type"} {
		if got := headers(dl[i])["sluice-error"]; !strings.HasPrefix(got, want) {
			t.Fatalf("dead letter %d: sluice-error %q, want prefix %q", i, got, want)
		}
	}
	if v, ok := p.metric("sluice_sink_topics_parked", map[string]string{"topic": "foreign"}); ok && v != 0 {
		t.Fatal("foreign parked")
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
}

func codecOf(t testing.TB, schema string) *goavro.Codec {
	t.Helper()
	c, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTopicLabelLimit: with S3_SINK_TOPIC_LABEL_LIMIT=2, a third topic's
// series are reported as topic="_other" (and counted), so producers
// creating topics cannot grow the metric series without bound.
func TestTopicLabelLimit(t *testing.T) {
	h := newHarness(t)
	topics := []string{"la", "lb", "lc"}
	for _, topic := range topics {
		h.kc.CreateTopic(topic, 1, nil)
		h.produce(t, topic, genEvents(10, 1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	}
	p := h.startInProc(t, "", parkEnv("la,lb,lc", "ll", map[string]string{"S3_SINK_FLUSH_RECORDS": "10", "S3_SINK_TOPIC_LABEL_LIMIT": "2"}))
	h.waitRecords(t, "ll/", 30, 30*time.Second)
	eventually(t, 10*time.Second, "records counted", func() bool {
		sum := 0.0
		for _, l := range append(topics, "_other") {
			v, _ := p.metric("sluice_sink_records_written_total", map[string]string{"topic": l})
			sum += v
		}
		return sum == 30
	})
	labels := map[string]bool{}
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "topic" {
					labels[l.GetValue()] = true
				}
			}
		}
	}
	if len(labels) != 3 || !labels["_other"] {
		t.Fatalf("topic label values %v; want two topics and _other", labels)
	}
	if v, _ := p.metric("sluice_sink_topic_label_overflow_total", nil); v < 1 {
		t.Fatal("overflow not counted")
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
}
