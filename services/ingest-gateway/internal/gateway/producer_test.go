package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

// completions records what the producer reported per message.
type completions struct {
	mu   sync.Mutex
	got  map[string]kafkago.Message // by value
	errs []error
}

func (c *completions) complete(msgs []kafkago.Message, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	for _, m := range msgs {
		c.got[string(m.Value)] = m
	}
}

func newTestProducer(t *testing.T, k *kafkatest.Cluster, batchSize int, linger time.Duration) (*producer, *completions) {
	t.Helper()
	c := &completions{got: map[string]kafkago.Message{}}
	kc := k.Clients()
	p := newProducer(&kafkago.Client{Addr: kafkago.TCP(k.Brokers()...), Transport: kc.Transport},
		slog.New(slog.NewTextHandler(io.Discard, nil)), batchSize, 1<<20, linger, 5*time.Second, c.complete)
	p.backoffMin = 5 * time.Millisecond
	t.Cleanup(func() { _ = p.Close() })
	return p, c
}

// readAll consumes a topic from the start with franz-go, an independent
// client that checks record batch CRCs, until want records arrived.
func readAll(t *testing.T, k *kafkatest.Cluster, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from %s", len(out), want, topic)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetching %s: %v", topic, e.Err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func TestProducerRecordsAsWritten(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t)
	k.CreateTopic("p", 3, nil)
	p, c := newTestProducer(t, k, 50, 0)
	base := time.UnixMilli(1_700_000_000_123)
	const callers, per = 8, 120
	var wg sync.WaitGroup
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := make([]kafkago.Message, per)
			for i := range msgs {
				m := &msgs[i]
				m.Topic, m.Partition = "p", (g+i)%3
				m.Value = []byte(fmt.Sprintf("v-%d-%d", g, i))
				if i%4 != 0 {
					m.Key = []byte(fmt.Sprintf("k-%d", i))
				}
				if i%3 == 0 {
					m.Headers = []kafkago.Header{{Key: "h", Value: []byte("x")}, {Key: "nil", Value: nil}}
				}
				m.Time = base.Add(time.Duration(g*per+i) * time.Millisecond)
			}
			if err := p.WriteMessages(context.Background(), msgs...); err != nil {
				t.Errorf("caller %d: %v", g, err)
			}
		}()
	}
	wg.Wait()
	recs := readAll(t, k, "p", callers*per)
	if len(recs) != callers*per {
		t.Fatalf("read %d records, want %d", len(recs), callers*per)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		v := string(r.Value)
		var g, i int
		if _, err := fmt.Sscanf(v, "v-%d-%d", &g, &i); err != nil || seen[v] {
			t.Fatalf("unexpected or repeated record %q", v)
		}
		seen[v] = true
		if int(r.Partition) != (g+i)%3 {
			t.Errorf("%s in partition %d, want %d", v, r.Partition, (g+i)%3)
		}
		if wantKey := fmt.Sprintf("k-%d", i); (i%4 == 0 && r.Key != nil) || (i%4 != 0 && string(r.Key) != wantKey) {
			t.Errorf("%s key %q", v, r.Key)
		}
		if i%3 == 0 && (len(r.Headers) != 2 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != "x" || r.Headers[1].Value != nil) {
			t.Errorf("%s headers %+v", v, r.Headers)
		}
		if want := base.Add(time.Duration(g*per+i) * time.Millisecond); !r.Timestamp.Equal(want) {
			t.Errorf("%s timestamp %v, want %v", v, r.Timestamp, want)
		}
		m, ok := c.got[v]
		if !ok || m.Offset != r.Offset || int32(m.Partition) != r.Partition {
			t.Errorf("%s completed as partition %d offset %d (%v), Kafka has %d/%d", v, m.Partition, m.Offset, ok, r.Partition, r.Offset)
		}
	}
	if len(c.errs) > 0 {
		t.Fatalf("completion errors: %v", c.errs)
	}
}

func TestProducerSplitsBatchesInOrder(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t)
	k.CreateTopic("s", 1, nil)
	p, c := newTestProducer(t, k, 10, 0)
	msgs := make([]kafkago.Message, 35)
	for i := range msgs {
		msgs[i] = kafkago.Message{Topic: "s", Value: []byte(fmt.Sprintf("%02d", i))}
	}
	if err := p.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, k, "s", 35)
	for i, r := range recs {
		if string(r.Value) != fmt.Sprintf("%02d", i) || r.Offset != int64(i) || c.got[string(r.Value)].Offset != int64(i) {
			t.Fatalf("record %d: value %q offset %d (completion offset %d)", i, r.Value, r.Offset, c.got[string(r.Value)].Offset)
		}
	}
}

func TestProducerRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t)
	k.CreateTopic("r", 1, nil)
	p, c := newTestProducer(t, k, 100, 0)
	k.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "r", Err: kerr.NotLeaderForPartition, Count: 2})
	if err := p.WriteMessages(context.Background(), kafkago.Message{Topic: "r", Value: []byte("once")}); err != nil {
		t.Fatal(err)
	}
	if len(c.errs) != 0 || c.got["once"].Offset != 0 {
		t.Fatalf("errors %v, completion %+v", c.errs, c.got["once"])
	}
	if recs := readAll(t, k, "r", 1); len(recs) != 1 || string(recs[0].Value) != "once" {
		t.Fatalf("read %v", recs)
	}
}

func TestProducerReportsPermanentErrors(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t)
	k.CreateTopic("x", 1, nil)
	p, c := newTestProducer(t, k, 100, 0)
	k.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "x", Err: kerr.TopicAuthorizationFailed, Count: -1})
	start := time.Now()
	if err := p.WriteMessages(context.Background(), kafkago.Message{Topic: "x", Value: []byte("no")}); err != nil {
		t.Fatal(err) // answered: the error goes to the completion
	}
	if len(c.errs) != 1 || len(c.got) != 0 {
		t.Fatalf("completion errors %v, successes %v", c.errs, c.got)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("a permanent error was retried for %v", time.Since(start))
	}
}

func TestProducerCloseFlushesLingering(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t)
	k.CreateTopic("l", 1, nil)
	p, c := newTestProducer(t, k, 100, time.Hour)
	done := make(chan error, 1)
	go func() {
		done <- p.WriteMessages(context.Background(), kafkago.Message{Topic: "l", Value: []byte("late")})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.WriteMessages(ctx, kafkago.Message{Topic: "l", Value: []byte("late2")}); err == nil {
		t.Fatal("a record was sent before its linger ran out")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(c.got) != 2 || len(readAll(t, k, "l", 2)) != 2 {
		t.Fatalf("after Close: completions %v", c.got)
	}
	if err := p.WriteMessages(context.Background(), kafkago.Message{Topic: "l", Value: []byte("after")}); err != errProducerClosed {
		t.Fatalf("write after Close: %v", err)
	}
}

func TestRecordBatchEncoding(t *testing.T) {
	msgs := []kafkago.Message{
		{Key: []byte("k"), Value: []byte("v"), Time: time.UnixMilli(1000), Headers: []kafkago.Header{{Key: "a", Value: []byte("b")}}},
		{Value: nil, Time: time.UnixMilli(900)},
	}
	raw := appendRecordBatch(nil, msgs)
	var b kmsg.RecordBatch
	if err := b.ReadFrom(raw[4:]); err != nil {
		t.Fatal(err)
	}
	if int(b.Length) != len(raw)-16 || b.Magic != 2 || b.NumRecords != 2 || b.LastOffsetDelta != 1 || b.FirstTimestamp != 1000 || b.MaxTimestamp != 1000 || b.ProducerID != -1 {
		t.Fatalf("header %+v", b)
	}
	if got := int32(crc32c(raw[4+21:])); got != b.CRC {
		t.Fatalf("crc %x, header says %x", got, b.CRC)
	}
	recs := b.Records
	var r0, r1 kmsg.Record
	n := readRecord(t, recs, &r0)
	readRecord(t, recs[n:], &r1)
	if string(r0.Key) != "k" || string(r0.Value) != "v" || len(r0.Headers) != 1 || r1.Key != nil || r1.Value != nil || r1.TimestampDelta64 != -100 || r1.OffsetDelta != 1 {
		t.Fatalf("records %+v %+v", r0, r1)
	}
	if !bytes.Equal(raw[:4], []byte{0, 0, 0, byte(len(raw) - 4)}) {
		t.Fatalf("size prefix % x for %d bytes", raw[:4], len(raw)-4)
	}
}

func readRecord(t *testing.T, b []byte, r *kmsg.Record) int {
	t.Helper()
	l, n := kbinVarint(b)
	if err := r.ReadFrom(b[:n+int(l)]); err != nil {
		t.Fatal(err)
	}
	return n + int(l)
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func kbinVarint(b []byte) (int64, int) { return binary.Varint(b) }
