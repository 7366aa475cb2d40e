package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/service"
	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/services/s3-sink/internal/config"
	"github.com/sluicehq/sluice/services/s3-sink/internal/partition"
	"github.com/sluicehq/sluice/services/s3-sink/internal/sink"
)

// flakyS3 fails every third PutObject until it has failed limit times.
type flakyS3 struct {
	*s3.Client
	mu           sync.Mutex
	calls, fails int
	limit        int
}

func (f *flakyS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.mu.Lock()
	f.calls++
	fail := f.calls%3 == 0 && f.fails < f.limit
	if fail {
		f.fails++
	}
	f.mu.Unlock()
	if fail {
		return nil, errors.New("injected: 503 SlowDown")
	}
	return f.Client.PutObject(ctx, in, o...)
}

// TestS3FailuresReplayPartition: failed uploads do not stop the sink or
// lose data: the worker drops its files, waits, and replays the partition
// from the committed offset; every record still lands exactly once.
func TestS3FailuresReplayPartition(t *testing.T) {
	h := newHarness(t)
	topic := "flaky"
	h.kc.CreateTopic(topic, 3, nil)
	events := genEvents(1500, 3, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	h.produce(t, topic, events)

	env := h.env(map[string]string{"S3_SINK_TOPICS": topic, "S3_SINK_PREFIX": "fl", "S3_SINK_FLUSH_RECORDS": "100", "S3_SINK_ROTATE_MAX_OPEN": "500ms"})
	cfg, err := config.Load(flags(env), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kafka.New(cfg.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	dlq := kc.NewWriter(kafka.WriterOptions{})
	defer dlq.Close()
	flaky := &flakyS3{Client: h.s3.Client(), limit: 8}
	sk, err := sink.New(sink.Options{
		Config: cfg.Sink, Bucket: testBucket, S3: flaky, Brokers: kc.Brokers(), Dialer: kc.Dialer,
		Admin: psink.NewKafkaAdmin(kc, time.Second), Codecs: avro.NewCodecs(registry.New(cfg.Registry)), DLQ: dlq,
		Partitioner: partition.Default{}, Metrics: sink.NewMetrics(prometheus.NewRegistry(), 100),
		Log: service.NewLogger(os.Stderr, "s3-sink", "warn"),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sk.Run(context.Background()) }()
	objs := h.waitRecords(t, "fl/", len(events), 2*time.Minute)
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sk.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("sink stopped with %v; S3 errors must not be fatal", err)
	}
	objs, err = h.objects(t.Context(), "fl/")
	if err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, topic, "fl", objs, events, func(e event) string { return fmt.Sprintf("partition=%d", e.Partition) })
	flaky.mu.Lock()
	defer flaky.mu.Unlock()
	if flaky.fails < 3 {
		t.Fatalf("only %d injected failures happened", flaky.fails)
	}
	t.Logf("%d of %d PutObject calls failed", flaky.fails, flaky.calls)
}
