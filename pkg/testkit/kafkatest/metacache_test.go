package kafkatest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

// The writers pkg/kafka builds answer kafka-go's per-message partition-count
// lookups from memory (metacache.go). These tests pin what that cache must
// not change: a missing topic is not remembered, entries expire after
// KAFKA_METADATA_TTL, and each topic keeps its own partition count.

// clientsWithTTL builds pkg/kafka clients for c with KAFKA_METADATA_TTL = ttl.
func clientsWithTTL(t *testing.T, c *kafkatest.Cluster, ttl time.Duration) *skafka.Clients {
	t.Helper()
	cfg := c.Config()
	cfg.MetadataTTL = ttl
	if err := cfg.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	cl, err := skafka.New(cfg)
	if err != nil {
		t.Fatalf("kafka clients: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// readAt reads the record at partition/offset of topic with a plain
// (group-less) kafka-go reader.
func readAt(ctx context.Context, t *testing.T, brokers []string, topic string, partition int, offset int64) kafkago.Message {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		t.Fatalf("set offset: %v", err)
	}
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("reading %s/%d@%d: %v", topic, partition, offset, err)
	}
	return m
}

// TestMetaCacheDoesNotRememberMissingTopic: a write to a topic that does not
// exist fails, and once the topic exists the very next writes succeed, long
// before the metadata TTL (30s here) could have expired a remembered "unknown
// topic" answer. EnsureTopic goes through the same Transport and returns only
// once that Transport's metadata shows the topic, so only the writer's own
// cache could still hide it.
func TestMetaCacheDoesNotRememberMissingTopic(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t)
	cl := clientsWithTTL(t, c, 30*time.Second)
	ctx := kafkatest.Context(t, 20*time.Second)
	w := cl.NewWriter(skafka.WriterOptions{Topic: "later", MaxAttempts: 1})
	t.Cleanup(func() { _ = w.Close() })

	for i := 0; i < 3; i++ { // repeated misses must not turn into a cached answer either
		err := w.WriteMessages(ctx, kafkago.Message{Value: []byte("early")})
		if !errors.Is(err, kafkago.UnknownTopicOrPartition) {
			t.Fatalf("write %d to a missing topic: %v, want UnknownTopicOrPartition", i, err)
		}
	}
	if _, err := cl.EnsureTopic(ctx, skafka.TopicSpec{Name: "later", Partitions: 1}); err != nil {
		t.Fatalf("ensure topic: %v", err)
	}
	// Bounded by 3s, a tenth of the TTL: a cached error would fail for 30s.
	deadline := time.Now().Add(3 * time.Second)
	var err error
	for {
		if err = w.WriteMessages(ctx, kafkago.Message{Value: []byte("after")}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes still fail 3s after the topic was created (metadata TTL 30s): %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m := readAt(ctx, t, c.Brokers(), "later", 0, 0); string(m.Value) != "after" {
		t.Fatalf("first record of the new topic = %q, want %q", m.Value, "after")
	}
}

// TestMetaCacheExpiresAfterTTL: after partitions are added, a writer with a
// 300ms KAFKA_METADATA_TTL is offered the new partitions and produces to
// one of them within a bounded time, and the record is there.
func TestMetaCacheExpiresAfterTTL(t *testing.T) {
	t.Parallel()
	const ttl = 300 * time.Millisecond
	c := kafkatest.Start(t)
	c.CreateTopic("grow", 1, nil)
	cl := clientsWithTTL(t, c, ttl)
	ctx := kafkatest.Context(t, 20*time.Second)

	var (
		mu      sync.Mutex
		offered int // partitions offered to the balancer on the last write
	)
	highest := kafkago.BalancerFunc(func(_ kafkago.Message, partitions ...int) int {
		mu.Lock()
		offered = len(partitions)
		mu.Unlock()
		return partitions[len(partitions)-1]
	})
	type landed struct {
		partition int
		offset    int64
	}
	got := make(chan landed, 64)
	w := cl.NewWriter(skafka.WriterOptions{Topic: "grow", Balancer: highest, Completion: func(msgs []kafkago.Message, err error) {
		for _, m := range msgs {
			if err == nil {
				got <- landed{m.Partition, m.Offset}
			}
		}
	}})
	t.Cleanup(func() { _ = w.Close() })
	write := func(v string) landed {
		t.Helper()
		if err := w.WriteMessages(ctx, kafkago.Message{Value: []byte(v)}); err != nil {
			t.Fatalf("write %s: %v", v, err)
		}
		select {
		case l := <-got: // sync writes complete before WriteMessages returns
			return l
		default:
			t.Fatalf("write %s: no completion before WriteMessages returned", v)
		}
		return landed{}
	}

	// Warm the cache with the one-partition answer.
	for i := 0; i < 5; i++ {
		if l := write(fmt.Sprintf("before-%d", i)); l.partition != 0 {
			t.Fatalf("write before growth landed in partition %d", l.partition)
		}
	}
	res, err := cl.Admin.CreatePartitions(ctx, &kafkago.CreatePartitionsRequest{Topics: []kafkago.TopicPartitionsConfig{{Name: "grow", Count: 3}}})
	if err != nil {
		t.Fatalf("create partitions: %v", err)
	}
	if err := res.Errors["grow"]; err != nil {
		t.Fatalf("create partitions: %v", err)
	}
	grown := time.Now()
	// Two TTLs at most (the Transport's own refresh, then the writer's
	// entry); 5s leaves ample room under -race.
	deadline := grown.Add(5 * time.Second)
	for i := 0; ; i++ {
		v := fmt.Sprintf("after-%d", i)
		l := write(v)
		if l.partition == 2 {
			t.Logf("new partition used %v after growth (TTL %v)", time.Since(grown).Round(time.Millisecond), ttl)
			if m := readAt(ctx, t, c.Brokers(), "grow", 2, l.offset); string(m.Value) != v {
				t.Fatalf("grow/2@%d = %q, want %q", l.offset, m.Value, v)
			}
			break
		}
		if l.partition != 0 {
			t.Fatalf("write %s landed in partition %d, want 0 (stale) or 2 (highest)", v, l.partition)
		}
		if time.Now().After(deadline) {
			mu.Lock()
			n := offered
			mu.Unlock()
			t.Fatalf("5s after growing to 3 partitions the writer is still offered %d (metadata TTL %v)", n, ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetaCachePerTopic: a writer whose messages name their topics sees
// each topic's own partition count, however the writes interleave.
func TestMetaCachePerTopic(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t)
	want := map[string]int{"one": 1, "four": 4, "seven": 7}
	for name, n := range want {
		c.CreateTopic(name, int32(n), nil)
	}
	cl := c.Clients()
	ctx := kafkatest.Context(t, 20*time.Second)
	var (
		mu   sync.Mutex
		seen = map[string]map[int]bool{}
	)
	bal := kafkago.BalancerFunc(func(m kafkago.Message, partitions ...int) int {
		mu.Lock()
		defer mu.Unlock()
		if seen[m.Topic] == nil {
			seen[m.Topic] = map[int]bool{}
		}
		seen[m.Topic][len(partitions)] = true
		return partitions[len(partitions)-1]
	})
	w := cl.NewWriter(skafka.WriterOptions{Balancer: bal})
	t.Cleanup(func() { _ = w.Close() })
	topics := []string{"one", "four", "seven"}
	for i := 0; i < 30; i++ {
		topic := topics[i%len(topics)]
		msgs := []kafkago.Message{{Topic: topic, Value: []byte(fmt.Sprintf("%s-%d", topic, i))}}
		if i%5 == 0 { // a multi-topic call too
			msgs = append(msgs, kafkago.Message{Topic: topics[(i+1)%len(topics)], Value: []byte("mixed")})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for name, n := range want {
		if len(seen[name]) != 1 || !seen[name][n] {
			t.Errorf("topic %s: balancer offered partition counts %v, want only %d", name, seen[name], n)
		}
	}
}
