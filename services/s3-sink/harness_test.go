package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	hocf "github.com/hamba/avro/v2/ocf"
	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/registrytest"
	"github.com/sluicehq/sluice/pkg/testkit/s3test"
	"github.com/sluicehq/sluice/pkg/wire"
)

const testBucket = "sluice-archive"

// harness is a real Kafka (kfake), S3 (versitygw) and schema-registry
// (subprocess) for one test.
type harness struct {
	t   *testing.T
	kc  *kafkatest.Cluster
	cl  *kafka.Clients
	s3  *s3test.Server
	reg *registrytest.Registry
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	kc := kafkatest.Start(t)
	h := &harness{t: t, kc: kc, cl: kc.Clients()}
	h.reg = registrytest.Start(t, kc.Brokers())
	h.s3 = s3test.Start(t)
	h.s3.CreateBucket(testBucket)
	return h
}

// env is the sink's configuration for this harness plus extra settings.
func (h *harness) env(extra map[string]string) map[string]string {
	e := map[string]string{
		"KAFKA_BROKERS":              strings.Join(h.kc.Brokers(), ","),
		"REGISTRY_URL":               h.reg.URL(),
		"S3_ENDPOINT":                h.s3.Endpoint(),
		"S3_REGION":                  h.s3.Region(),
		"S3_BUCKET":                  testBucket,
		"S3_ACCESS_KEY_ID":           h.s3.AccessKey(),
		"S3_SECRET_ACCESS_KEY":       h.s3.SecretKey(),
		"S3_FORCE_PATH_STYLE":        "true",
		"S3_SINK_ADMIN_ADDR":         "127.0.0.1:0",
		"S3_SINK_SESSION_TIMEOUT":    "2s",
		"S3_SINK_REBALANCE_TIMEOUT":  "4s",
		"S3_SINK_HEARTBEAT_INTERVAL": "250ms",
		"S3_SINK_COMMIT_INTERVAL":    "200ms",
		"S3_SINK_TOPIC_REFRESH":      "1s",
		"LOG_LEVEL":                  "warn",
	}
	for k, v := range extra {
		e[k] = v
	}
	return e
}

// flags turns an env map into command-line flags for run().
func flags(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, "-"+strings.ReplaceAll(strings.ToLower(k), "_", "-")+"="+v)
	}
	sort.Strings(out)
	return out
}

// startSink runs the service in-process; the returned func stops it
// gracefully (as SIGTERM would) and returns run's error.
func (h *harness) startSink(t testing.TB, extra map[string]string) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args := flags(h.env(extra))
	go func() { done <- run(ctx, args) }()
	stopped := false
	var err error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				err = errors.New("sink did not stop within 60s")
			}
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

const eventSchema = `{"type":"record","name":"Event","namespace":"sluice.test","fields":[
 {"name":"id","type":"long"},
 {"name":"country","type":"string"},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"payload","type":"string"}]}`

// event is a produced record and where it went.
type event struct {
	ID        int64
	Country   string
	TS        time.Time
	Partition int
	Offset    int64
}

var countries = []string{"DE", "FR", "US", "JP"}

// genEvents spreads n events round-robin over partitions, with record
// timestamps walking through a few hours.
func genEvents(n, partitions int, base time.Time) []event {
	out := make([]event, n)
	next := make([]int64, partitions)
	for i := range out {
		p := i % partitions
		out[i] = event{
			ID: int64(i), Country: countries[(i/7)%len(countries)],
			TS:        base.Add(time.Duration(i) * 3 * time.Second).Truncate(time.Millisecond),
			Partition: p, Offset: next[p],
		}
		next[p]++
	}
	return out
}

// byPartition sends each message to its Partition field.
type byPartition struct{}

func (byPartition) Balance(m kafkago.Message, _ ...int) int { return m.Partition }

// writer builds a producer on fresh clients: a shared transport caches
// metadata and would not see topics created after its last refresh.
func (h *harness) writer(t testing.TB) *kafkago.Writer {
	w := h.kc.Clients().NewWriter(kafka.WriterOptions{Balancer: byPartition{}, BatchSize: 5000, BatchBytes: 4 << 20, BatchTimeout: 10 * time.Millisecond})
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func encodeEvent(t testing.TB, codec *goavro.Codec, id int, e event) []byte {
	t.Helper()
	bin, err := codec.BinaryFromNative(nil, map[string]any{
		"id": e.ID, "country": e.Country, "ts": e.TS, "payload": "payload-" + strconv.FormatInt(e.ID, 10),
	})
	if err != nil {
		t.Fatal(err)
	}
	return wire.Encode(uint32(id), bin)
}

// produce registers the schema under <topic>-value and writes the events.
func (h *harness) produce(t testing.TB, topic string, events []event) {
	t.Helper()
	id := h.reg.Register(t, topic+"-value", eventSchema)
	codec, err := goavro.NewCodec(eventSchema)
	if err != nil {
		t.Fatal(err)
	}
	w := h.writer(t)
	msgs := make([]kafkago.Message, 0, 5000)
	ctx := kafkatest.Context(t, 2*time.Minute)
	flush := func() {
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("producing: %v", err)
		}
		msgs = msgs[:0]
	}
	for _, e := range events {
		msgs = append(msgs, kafkago.Message{Topic: topic, Partition: e.Partition, Time: e.TS, Value: encodeEvent(t, codec, id, e)})
		if len(msgs) == cap(msgs) {
			flush()
		}
	}
	flush()
}

// object is one OCF file in the bucket, decoded.
type object struct {
	Key       string
	Partition int
	Start     int64
	Schema    string
	Records   []map[string]any
}

// objects lists and decodes every object under prefix with hamba's OCF
// reader (independent of goavro, which wrote them).
func (h *harness) objects(ctx context.Context, prefix string) ([]object, error) {
	cl := h.s3.Client()
	var out []object
	p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(testBucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			res, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: o.Key})
			if err != nil {
				return nil, fmt.Errorf("get %s: %w", key, err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				return nil, err
			}
			obj, err := decodeObject(key, body)
			if err != nil {
				return nil, err
			}
			out = append(out, obj)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func decodeObject(key string, body []byte) (object, error) {
	obj := object{Key: key}
	name := key[strings.LastIndex(key, "/")+1:]
	parts := strings.Split(strings.TrimSuffix(name, ".avro"), "+")
	if len(parts) != 3 || len(parts[2]) != 20 {
		return obj, fmt.Errorf("object %s: name is not <topic>+<partition>+<20-digit offset>.avro", key)
	}
	var err error
	if obj.Partition, err = strconv.Atoi(parts[1]); err != nil {
		return obj, fmt.Errorf("object %s: %w", key, err)
	}
	if obj.Start, err = strconv.ParseInt(parts[2], 10, 64); err != nil {
		return obj, fmt.Errorf("object %s: %w", key, err)
	}
	dec, err := hocf.NewDecoder(bytes.NewReader(body))
	if err != nil {
		return obj, fmt.Errorf("object %s: %w", key, err)
	}
	obj.Schema = string(dec.Metadata()["avro.schema"])
	for dec.HasNext() {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			return obj, fmt.Errorf("object %s record %d: %w", key, len(obj.Records), err)
		}
		obj.Records = append(obj.Records, v)
	}
	if err := dec.Error(); err != nil {
		return obj, fmt.Errorf("object %s: %w", key, err)
	}
	return obj, nil
}

func countRecords(objs []object) int {
	n := 0
	for _, o := range objs {
		n += len(o.Records)
	}
	return n
}

// waitRecords polls the bucket until prefix holds want records (counting
// duplicates) or the deadline passes.
func (h *harness) waitRecords(t testing.TB, prefix string, want int, within time.Duration) []object {
	t.Helper()
	deadline := time.Now().Add(within)
	var last []object
	var lastErr error
	for time.Now().Before(deadline) {
		objs, err := h.objects(t.Context(), prefix)
		if err == nil {
			last = objs
			if countRecords(objs) >= want {
				return objs
			}
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("after %s: %d records under %s, want %d (last error %v)", within, countRecords(last), prefix, want, lastErr)
	return nil
}

// metric scrapes one sample value from the sink's /metrics.
func scrape(t testing.TB, url, series string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func mustCodec(t testing.TB) *goavro.Codec {
	t.Helper()
	c, err := goavro.NewCodec(eventSchema)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
