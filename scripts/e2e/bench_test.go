package e2e

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/scripts/loadgen/load"
)

// seen records when each record id was first observed in a sink.
type seen struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (s *seen) mark(id string, t time.Time) {
	s.mu.Lock()
	if _, ok := s.at[id]; !ok {
		s.at[id] = t
	}
	s.mu.Unlock()
}

func (s *seen) len() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.at) }

func (s *seen) has(id string) bool { s.mu.Lock(); defer s.mu.Unlock(); _, ok := s.at[id]; return ok }

// BenchmarkPipeline sends records through the gateway over HTTP while
// pollers watch S3 and the search index, and reports the gateway's
// acknowledged throughput against a raw kafka-go writer in the same run, the
// whole pipeline's throughput, and the latency from gateway ack to object
// in S3 and to document indexed. Each service's peak RSS is reported on its
// row.
func BenchmarkPipeline(b *testing.B) {
	const perIter = 50000
	st := startStack(b, map[string]map[string]string{
		"s3-sink":     {"S3_SINK_FLUSH_RECORDS": "10000", "S3_SINK_ROTATE_MAX_OPEN": "1s"},
		"search-sink": {"SEARCH_SINK_FLUSH_INTERVAL": "200ms"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	total := perIter * b.N

	acks := &seen{at: map[string]time.Time{}}
	inS3 := &seen{at: map[string]time.Time{}}
	inSearch := &seen{at: map[string]time.Time{}}
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go pollS3(pollCtx, st, inS3)
	go pollSearch(pollCtx, st, inSearch)

	b.ResetTimer()
	start := time.Now()
	sum, err := load.Run(ctx, load.Config{Protocol: "http", HTTPURL: st.gwHTTP, Topic: "orders", Count: int64(total),
		Batch: 500, Concurrency: 4, RecordSize: 200, IDPrefix: "b-",
		OnAck: func(id string, _ int32, _ int64) { acks.mark(id, time.Now()) }})
	if err != nil {
		b.Fatal(err)
	}
	for !(inS3.len() >= int(sum.Acked) && inSearch.len() >= int(sum.Acked)) {
		if ctx.Err() != nil {
			b.Fatalf("pipeline did not drain: %d acked, %d in S3, %d indexed", sum.Acked, inS3.len(), inSearch.len())
		}
		time.Sleep(50 * time.Millisecond)
	}
	drained := time.Since(start)
	b.StopTimer()
	stopPoll()

	raw := rawWriterRate(b, ctx, st, total)
	lat := func(s *seen) (p50, p99 float64) {
		var d []float64
		acks.mu.Lock()
		s.mu.Lock()
		for id, at := range acks.at {
			if t, ok := s.at[id]; ok {
				d = append(d, float64(t.Sub(at))/float64(time.Millisecond))
			}
		}
		s.mu.Unlock()
		acks.mu.Unlock()
		sort.Float64s(d)
		if len(d) == 0 {
			return 0, 0
		}
		return d[len(d)/2], d[min(len(d)*99/100, len(d)-1)]
	}
	s3p50, s3p99 := lat(inS3)
	sp50, sp99 := lat(inSearch)
	mb := float64(sum.Bytes) / 1e6
	b.Run("gateway-ack", func(b *testing.B) {
		b.ReportMetric(sum.RecordsPerSec, "records/s")
		b.ReportMetric(sum.MBPerSec, "MB/s")
		b.ReportMetric(float64(sum.P50)/1e6, "req_p50_ms")
		b.ReportMetric(float64(sum.P99)/1e6, "req_p99_ms")
		b.ReportMetric(sum.RecordsPerSec/raw, "x_raw")
		b.ReportMetric(raw, "raw_records/s")
		b.ReportMetric(st.gw.PeakRSSMiB(), "gateway_peak_rss_MiB")
	})
	b.Run("ack-to-s3-object", func(b *testing.B) {
		b.ReportMetric(float64(sum.Acked)/drained.Seconds(), "records/s")
		b.ReportMetric(mb/drained.Seconds(), "MB/s")
		b.ReportMetric(s3p50, "e2e_p50_ms")
		b.ReportMetric(s3p99, "e2e_p99_ms")
		b.ReportMetric(st.s3sink.PeakRSSMiB(), "s3sink_peak_rss_MiB")
	})
	b.Run("ack-to-search-doc", func(b *testing.B) {
		b.ReportMetric(float64(sum.Acked)/drained.Seconds(), "records/s")
		b.ReportMetric(mb/drained.Seconds(), "MB/s")
		b.ReportMetric(sp50, "e2e_p50_ms")
		b.ReportMetric(sp99, "e2e_p99_ms")
		b.ReportMetric(st.search.PeakRSSMiB(), "searchsink_peak_rss_MiB")
	})
}

// rawWriterRate produces n pre-framed records of the same size with a bare
// pkg/kafka writer (acks=all) to a fresh topic: the baseline the gateway is
// compared against.
func rawWriterRate(b *testing.B, ctx context.Context, st *stack, n int) float64 {
	b.Helper()
	st.kc.CreateTopic("raw-baseline", 6, nil)
	w := st.kc.Clients().NewWriter(skafka.WriterOptions{Topic: "raw-baseline", BatchSize: 2000, BatchTimeout: 2 * time.Millisecond})
	defer w.Close()
	payload := wire.Encode(1, []byte(strings.Repeat("x", 200)))
	msgs := make([]kafkago.Message, 500)
	for i := range msgs {
		msgs[i] = kafkago.Message{Key: []byte("k" + string(rune('a'+i%26))), Value: payload}
	}
	start := time.Now()
	var wg sync.WaitGroup
	per := n / 4
	for w0 := 0; w0 < 4; w0++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent := 0; sent < per; sent += len(msgs) {
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(per*4) / time.Since(start).Seconds()
}

func pollS3(ctx context.Context, st *stack, s *seen) {
	cl := st.s3.Client()
	done := map[string]bool{}
	for ctx.Err() == nil {
		out, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("topics/orders/")})
		now := time.Now()
		if err == nil {
			for _, o := range out.Contents {
				k := aws.ToString(o.Key)
				if done[k] {
					continue
				}
				obj, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
				if err != nil {
					continue
				}
				rd, err := goavro.NewOCFReader(obj.Body)
				if err == nil {
					for rd.Scan() {
						if rec, err := rd.Read(); err == nil {
							s.mark(rec.(map[string]any)["id"].(string), now)
						}
					}
					done[k] = true
				}
				_ = obj.Body.Close()
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pollSearch(ctx context.Context, st *stack, s *seen) {
	day := func(t time.Time) string { return "orders-" + t.UTC().Format("2006.01.02") }
	for ctx.Err() == nil {
		now := time.Now()
		for _, idx := range []string{day(now), day(now.Add(-24 * time.Hour))} {
			for _, raw := range st.es.Docs(idx) {
				var d struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(raw, &d) == nil {
					s.mark(d.ID, now)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
