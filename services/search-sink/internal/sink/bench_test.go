package sink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/linkedin/goavro/v2"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
	"github.com/sluicehq/sluice/services/search-sink/internal/es"
	"github.com/sluicehq/sluice/services/search-sink/internal/target"
)

const benchSchema = `{"type":"record","name":"Order","fields":[
 {"name":"id","type":"long"},{"name":"region","type":"string"},{"name":"customer","type":"string"},
 {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
 {"name":"latency_ms","type":["null","double"]},{"name":"created","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"tags","type":{"type":"array","items":"string"}}]}`

type oneCodec struct{ c *document.Codec }

func (o oneCodec) Codec(context.Context, int) (*document.Codec, error) { return o.c, nil }

func benchMessages(b *testing.B, n int) ([]kafkago.Message, *document.Codec) {
	ac, err := avro.NewCodec(1, benchSchema)
	if err != nil {
		b.Fatal(err)
	}
	gc := ac.Codec
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	msgs := make([]kafkago.Message, n)
	for i := range msgs {
		bin, err := gc.BinaryFromNative(nil, map[string]any{
			"id": int64(i), "region": []string{"eu", "us", "ap"}[i%3], "customer": fmt.Sprintf("customer-%06d", i%5000),
			"amount": goavroRat(i), "latency_ms": goavro.Union("double", float64(i%250)), "created": base.Add(time.Duration(i) * time.Second),
			"tags": []any{"web", "checkout"},
		})
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = kafkago.Message{Topic: "orders", Partition: i % 4, Offset: int64(i / 4), Value: wire.Encode(1, bin), Time: base.Add(time.Duration(i) * time.Second)}
	}
	return msgs, &document.Codec{ID: 1, Schema: benchSchema, Codec: ac}
}

// BenchmarkIndexing measures documents/s into the Elasticsearch double
// through the search Writer as the runtime drives it (partition writers'
// Write: limits, index name, decode, document, bulk, per-item ack) next to a raw esutil.BulkIndexer fed pre-encoded documents,
// in the same run, and reports the ratio.
func BenchmarkIndexing(b *testing.B) {
	const n = 30000
	msgs, codec := benchMessages(b, n)
	namer, _ := document.NewNamer(document.ModeIndex, "<topic>-{yyyy.MM.dd}", "", "")
	builder := document.NewBuilder(oneCodec{codec}, document.Options{Namer: namer, MetaField: "_kafka"})
	// Pre-encode for the baseline with the same builder (not timed).
	pre := make([]*document.Doc, n)
	var bytesTotal int
	for i := range msgs {
		d, err := builder.Build(context.Background(), &msgs[i])
		if err != nil {
			b.Fatal(err)
		}
		pre[i] = d
		bytesTotal += len(d.Body)
	}
	const workers, flush = 2, 1 << 20
	runRaw := func() (time.Duration, time.Duration) {
		srv := httptest.NewServer(estest.New())
		defer srv.Close()
		c, _ := es.New(es.Options{URLs: []string{srv.URL}, Timeout: 30 * time.Second})
		bi, _ := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: c, NumWorkers: workers, FlushBytes: flush, FlushInterval: time.Second})
		cpu0, start := cpuTime(), time.Now()
		for _, d := range pre {
			if err := bi.Add(context.Background(), esutil.BulkIndexerItem{Index: d.Index, Action: "index", DocumentID: d.ID, Body: bytes.NewReader(d.Body)}); err != nil {
				b.Fatal(err)
			}
		}
		if err := bi.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		wall, cpu := time.Since(start), cpuTime()-cpu0
		if st := bi.Stats(); st.NumFlushed != n {
			b.Fatalf("raw flushed %d of %d", st.NumFlushed, n)
		}
		return wall, cpu
	}
	runSink := func() (time.Duration, time.Duration) {
		srv := httptest.NewServer(estest.New())
		defer srv.Close()
		c, _ := es.New(es.Options{URLs: []string{srv.URL}, Timeout: 30 * time.Second})
		m := NewMetrics(prometheus.NewRegistry(), nil)
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		pl, err := NewPipeline(c, PipelineOptions{Workers: workers, FlushBytes: flush, FlushInterval: time.Second, MaxBufferedDocs: 20000, MaxBufferedBytes: 64 << 20}, m, log)
		if err != nil {
			b.Fatal(err)
		}
		// The runtime's side, not timed: records per partition as it
		// hands them to partition writers.
		recs := make([][]psink.Record, 4)
		for i := range msgs {
			msg := &msgs[i]
			recs[msg.Partition] = append(recs[msg.Partition], psink.Record{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset,
				Key: msg.Key, Value: msg.Value, Headers: msg.Headers, Time: msg.Time})
		}
		w := NewWriter(Options{Builder: builder, Pipeline: pl, Metrics: m, Log: log, Namer: target.NewNamer(namer)})
		ctx := context.Background()
		parts := make([]psink.PartitionWriter, 4)
		acks := make([]*recAcks, 4)
		for i := range parts {
			acks[i] = newRecAcks()
			pw, err := w.Open(ctx, psink.TopicPartition{Topic: "orders", Partition: i}, 0, acks[i])
			if err != nil {
				b.Fatal(err)
			}
			parts[i] = pw
		}
		const batch = 125 // the runtime's batches, interleaved across partitions
		cpu0, start := cpuTime(), time.Now()
		for off := 0; off < n/4; off += batch {
			for i, pw := range parts {
				if err := pw.Write(ctx, recs[i][off:min(off+batch, n/4)]); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := pl.Close(ctx); err != nil {
			b.Fatal(err)
		}
		wall, cpu := time.Since(start), cpuTime()-cpu0
		for i, a := range acks {
			if got := a.committable(); got != n/4 {
				b.Fatalf("partition %d acknowledged up to %d, want %d", i, got, n/4)
			}
		}
		return wall, cpu
	}
	var rawTotal, sinkTotal, rawCPU, sinkCPU time.Duration
	runs := 0
	for iter := 0; iter < b.N; iter++ {
		// raw, sink, sink, raw: the machine's load drifts, and alternating
		// keeps the comparison fair.
		for _, f := range []bool{false, true, true, false} {
			if f {
				w, c := runSink()
				sinkTotal, sinkCPU = sinkTotal+w, sinkCPU+c
			} else {
				w, c := runRaw()
				rawTotal, rawCPU = rawTotal+w, rawCPU+c
			}
		}
		runs += 2
	}
	rawRate := float64(n*runs) / rawTotal.Seconds()
	sinkRate := float64(n*runs) / sinkTotal.Seconds()
	b.ReportMetric(rawRate, "raw_docs/s")
	b.ReportMetric(sinkRate, "docs/s")
	b.ReportMetric(float64(bytesTotal*runs)/sinkTotal.Seconds()/1e6, "MB/s")
	b.ReportMetric(sinkRate/rawRate, "ratio")
	// CPU time of the process covers client and the in-process double: on
	// a shared machine it is the steadier comparison.
	b.ReportMetric(float64(n*runs)/rawCPU.Seconds(), "raw_docs/cpu_s")
	b.ReportMetric(float64(n*runs)/sinkCPU.Seconds(), "docs/cpu_s")
}

// cpuTime is the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func goavroRat(i int) any {
	r := new(big.Rat)
	r.SetFrac64(int64(i%100000), 100)
	return r
}
