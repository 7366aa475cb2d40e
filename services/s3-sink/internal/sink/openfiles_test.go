package sink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/linkedin/goavro/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/s3test"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/services/s3-sink/internal/config"
	"github.com/sluicehq/sluice/services/s3-sink/internal/partition"
)

const kvSchema = `{"type":"record","name":"KV","fields":[{"name":"k","type":"string"},{"name":"n","type":"long"}]}`

// staticCodecs serves one schema under id 1.
type staticCodecs struct{ c *avro.Codec }

func (s staticCodecs) ByID(_ context.Context, id int) (*avro.Codec, error) {
	if id != 1 {
		return nil, fmt.Errorf("%w: no schema id %d here", avro.ErrUnusableSchema, id)
	}
	return s.c, nil
}

type testAdmin struct{ cl *skafka.Clients }

func (a testAdmin) ListTopics(context.Context) ([]string, error) { return nil, nil }
func (a testAdmin) EnsureTopic(ctx context.Context, name string) error {
	_, err := a.cl.EnsureTopic(ctx, skafka.TopicSpec{Name: name, Partitions: 1})
	return err
}

// maxGauge is the open-files gauge, remembering its highest value.
type maxGauge struct {
	prometheus.Gauge
	mu       sync.Mutex
	cur, max float64
}

func (g *maxGauge) Inc() { g.Add(1) }
func (g *maxGauge) Dec() { g.Add(-1) }
func (g *maxGauge) Add(d float64) {
	g.mu.Lock()
	g.cur += d
	g.max = max(g.max, g.cur)
	g.mu.Unlock()
	g.Gauge.Add(d)
}

func (g *maxGauge) peak() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.max
}

// TestOpenFilesCap: one partition whose field partitioner sees over a
// hundred distinct values keeps at most S3_SINK_MAX_OPEN_FILES files open,
// counts the early rotations, and stores every record exactly once even
// though it is stopped several times without flushing (as a crash would)
// while files are being evicted: a commit never falls inside an evicted
// file, and commits keep moving although no file ever fills.
func TestOpenFilesCap(t *testing.T) {
	kc := kafkatest.Start(t)
	s3s := s3test.Start(t)
	s3s.CreateBucket("cap")
	const topic, n, maxOpen = "many", 3000, 8
	kc.CreateTopic(topic, 1, nil)
	codec, err := avro.NewCodec(1, kvSchema)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := make([]kafkago.Message, n)
	for i := range msgs {
		// A sliding window of six active values (each active for six
		// phases of 60 records, so the least recently written file is
		// one that started before the others and has records after
		// their starts), and now and then a value seen once.
		k := fmt.Sprintf("v%d", i/60+rng.IntN(6))
		if rng.IntN(50) == 0 {
			k = fmt.Sprintf("once%d", i)
		}
		bin, err := codec.BinaryFromNative(nil, map[string]any{"k": k, "n": int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafkago.Message{Topic: topic, Value: wire.Encode(1, bin)}
	}
	// The records trickle in while the sink runs, so commits on the
	// commit interval land between evictions and the stops below find
	// the partition in the middle of evicting.
	w := kc.Clients().NewWriter(skafka.WriterOptions{BatchSize: 1000})
	defer w.Close()
	produced := make(chan error, 1)
	go func() {
		ctx := kafkatest.Context(t, time.Minute)
		for i := 0; i < n; i += 20 {
			if err := w.WriteMessages(ctx, msgs[i:i+20]...); err != nil {
				produced <- err
				return
			}
			time.Sleep(15 * time.Millisecond) // pacing the producer, not synchronisation
		}
		produced <- nil
	}()

	env := map[string]string{"S3_BUCKET": "cap", "S3_SINK_TOPICS": topic, "S3_SINK_PREFIX": "cap", "S3_SINK_PARTITIONER": "field",
		"S3_SINK_PARTITION_FIELD": "k", "S3_SINK_MAX_OPEN_FILES": fmt.Sprint(maxOpen), "S3_SINK_FLUSH_RECORDS": "1000",
		"S3_SINK_COMMIT_INTERVAL": "10ms", "S3_SINK_FLUSH_ON_SHUTDOWN": "false", "S3_SINK_CODEC": "null",
		"S3_SINK_SESSION_TIMEOUT": "2s", "S3_SINK_REBALANCE_TIMEOUT": "2s", "S3_SINK_HEARTBEAT_INTERVAL": "200ms"}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	part, err := partition.NewField("k", cfg.Sink.MaxSegmentBytes)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, 10)
	gauge := &maxGauge{Gauge: metrics.openFiles}
	metrics.openFiles = gauge
	cl := kc.Clients()
	newSink := func(flush bool) *Sink {
		c := cfg.Sink
		c.FlushOnShutdown = flush
		sk, err := New(Options{Config: c, Bucket: "cap", S3: s3s.Client(), Brokers: kc.Brokers(), Dialer: cl.Dialer,
			Admin: testAdmin{cl}, Codecs: staticCodecs{codec}, Partitioner: part, Metrics: metrics,
			Log: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatal(err)
		}
		return sk
	}
	// unread is the partition's sluice_sink_unread_records (ok: the
	// partition is owned and has been read from).
	unread := func() (float64, bool) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "sluice_sink_unread_records" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "topic" && l.GetValue() == topic {
						return m.GetGauge().GetValue(), true
					}
				}
			}
		}
		return 0, false
	}
	runSink := func(flush bool, until func() bool) {
		sk := newSink(flush)
		done := make(chan error, 1)
		go func() { done <- sk.Run(context.Background()) }()
		deadline := time.Now().Add(60 * time.Second)
		for !until() {
			if time.Now().After(deadline) {
				t.Fatal("sink made no progress within 60s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sk.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Crash-like stops (open files dropped, nothing flushed) at random
	// moments while records arrive and files are evicted.
	for i := 0; i < 8; i++ {
		until := time.Now().Add(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		runSink(false, func() bool { _, ok := unread(); return ok && time.Now().After(until) })
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	runSink(true, func() bool { v, ok := unread(); return ok && v == 0 })

	if peak := gauge.peak(); peak > maxOpen {
		t.Fatalf("%v files open at once, limit %d", peak, maxOpen)
	}
	var em dto.Metric
	if err := metrics.earlyRotations.WithLabelValues(topic).Write(&em); err != nil {
		t.Fatal(err)
	}
	early := em.GetCounter().GetValue()
	if early < 40 {
		t.Fatalf("only %v early rotations", early)
	}
	// Every record exactly once, each object's records in offset order
	// from its key's offset, all with the object's path value.
	seen := make([]int, n)
	objects := 0
	p := s3.NewListObjectsV2Paginator(s3s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String("cap")})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			objects++
			key := aws.ToString(o.Key)
			res, err := s3s.Client().GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("cap"), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			r, err := goavro.NewOCFReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			last := int64(-1)
			for r.Scan() {
				v, err := r.Read()
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				rec := v.(map[string]any)
				off := rec["n"].(int64)
				if last < 0 && !strings.HasSuffix(key, fmt.Sprintf("+0+%020d.avro", off)) {
					t.Fatalf("%s starts with offset %d", key, off)
				}
				if off <= last || !strings.Contains(key, "/k="+rec["k"].(string)+"/") {
					t.Fatalf("%s: record %d (k=%s) after %d", key, off, rec["k"], last)
				}
				last = off
				seen[off]++
			}
		}
	}
	for off, c := range seen {
		if c != 1 {
			t.Fatalf("record %d stored %d times", off, c)
		}
	}
	t.Logf("%d objects, peak %v open files, %v early rotations", objects, gauge.peak(), early)
}
