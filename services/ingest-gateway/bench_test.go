package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluicehq/sluice/pkg/avro"
	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/wire"
)

// benchSchema encodes to about 200 bytes per record.
const benchSchema = `{"type":"record","name":"PageView","namespace":"bench","fields":[
 {"name":"id","type":{"type":"string","logicalType":"uuid"}},
 {"name":"user","type":"string"},
 {"name":"event","type":{"type":"enum","name":"Event","symbols":["VIEW","CLICK","BUY"]}},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"url","type":"string"},
 {"name":"referrer","type":["null","string"],"default":null},
 {"name":"duration_ms","type":"int"},
 {"name":"amount","type":"double"},
 {"name":"tags","type":{"type":"map","values":"string"}}
]}`

func benchJSON(i int) string {
	return fmt.Sprintf(`{"id":"6f1c8a7e-3b2d-4c5e-9f00-%012d","user":"user-%08d","event":"CLICK","ts":"2024-05-01T12:00:00.%03dZ",`+
		`"url":"https://shop.example.com/catalog/category-%04d/product-%06d?utm=newsletter","referrer":"https://search.example.org/?q=item%d",`+
		`"duration_ms":%d,"amount":%d.25,"tags":{"region":"eu-west-1","ab":"variant-b"}}`, i, i%100000, i%1000, i%5000, i, i, i%10000, i%500)
}

type benchCase struct {
	batch, clients, total int
}

// BenchmarkProduce measures records/s and request latency (p50, p99) for
// batches of 1, 100, 500 and 1000 records of a ~200-byte schema over HTTP
// and gRPC, next to a stock kafka-go Writer (acks=all, 2000-record and
// 1 MiB batches, 2 ms linger) producing the same Avro-encoded records,
// keys pre-built, from the same number of concurrent callers in the same
// run; x_raw is the gateway's throughput divided by the raw writer's.
// cpu_us/rec is the whole process's CPU per record (load generator,
// gateway and kfake share the two cores), which tells a CPU-bound case
// from a latency-bound one.
func BenchmarkProduce(b *testing.B) {
	cases := []benchCase{{1, 32, 10000}, {100, 8, 100000}, {500, 8, 300000}, {1000, 8, 300000}}
	// grpc-avro sends Avro binary values (validated by decoding, no JSON):
	// it separates the gateway's own overhead from JSON conversion.
	modes := []string{"raw", "http", "grpc", "grpc-avro"}
	// Topics exist before the raw writer starts: pkg/kafka's shared
	// transport caches metadata for 30s.
	kf := kafkatest.Start(b)
	for _, c := range cases {
		for _, mode := range modes {
			kf.CreateTopic(fmt.Sprintf("bench-%s-%d", mode, c.batch), 3, nil)
		}
	}
	e := startEnv(b, kf, nil, "-gateway-produce-timeout", "30s", "-gateway-max-records", "1000", "-log-level", "error")
	id := e.reg.Register(b, "bench-value", benchSchema)
	codec, err := avro.NewCodec(id, benchSchema)
	if err != nil {
		b.Fatal(err)
	}
	// Pre-build the payloads: JSON for the gateway, framed Avro for raw.
	maxN := 100000
	jsons := make([][]byte, maxN)
	framed := make([][]byte, maxN)
	var encoded int
	for i := range jsons {
		jsons[i] = []byte(benchJSON(i))
		bin, err := codec.BinaryFromJSON(wire.AppendHeader(nil, uint32(id)), jsons[i], avro.Options{})
		if err != nil {
			b.Fatal(err)
		}
		framed[i] = bin
		encoded += len(bin)
	}
	b.Logf("record: %d bytes Avro (framed), %d bytes JSON", encoded/maxN, len(jsons[0]))

	kc := e.kafka.Clients()
	for _, c := range cases {
		raw := 0.0
		for _, mode := range modes {
			topic := fmt.Sprintf("bench-%s-%d", mode, c.batch)
			if mode != "raw" {
				e.reg.Register(b, topic+"-value", benchSchema)
			}
			b.Run(fmt.Sprintf("batch=%d/%s", c.batch, mode), func(b *testing.B) {
				var rps float64
				for n := 0; n < b.N; n++ {
					rps = runBenchCase(b, e, kc, mode, topic, c, jsons, framed)
				}
				if mode == "raw" {
					raw = rps
				} else if raw > 0 {
					b.ReportMetric(rps/raw, "x_raw")
				}
			})
			// Drop the data so every case starts with the same heap (kfake
			// keeps records in memory; a growing heap taxes later cases).
			if err := kf.DeleteTopic(topic); err != nil {
				b.Logf("deleting %s: %v", topic, err)
			}
			runtime.GC()
		}
	}
}

// processCPU is the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runBenchCase(b *testing.B, e *env, kc *kafka.Clients, mode, topic string, c benchCase, jsons, framed [][]byte) float64 {
	requests := c.total / c.batch
	var next atomic.Int64
	lat := make([]time.Duration, requests)
	var w *kafkago.Writer
	var client ingestv1.IngestServiceClient
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.clients, MaxConnsPerHost: c.clients}}
	bodies := make([][]byte, 0)
	grpcReqs := make([]*ingestv1.ProduceRequest, 0)
	// Pre-build a few distinct request bodies per client and reuse them.
	distinct := min(requests, 64)
	for r := 0; r < distinct; r++ {
		switch mode {
		case "http":
			var buf bytes.Buffer
			buf.WriteString(`{"records":[`)
			for j := 0; j < c.batch; j++ {
				if j > 0 {
					buf.WriteByte(',')
				}
				i := (r*c.batch + j) % len(jsons)
				fmt.Fprintf(&buf, `{"key":"u%d","value":%s}`, i, jsons[i])
			}
			buf.WriteString(`]}`)
			bodies = append(bodies, buf.Bytes())
		case "grpc", "grpc-avro":
			req := &ingestv1.ProduceRequest{Topic: topic}
			for j := 0; j < c.batch; j++ {
				i := (r*c.batch + j) % len(jsons)
				v := jsons[i]
				if mode == "grpc-avro" {
					req.Format = ingestv1.ValueFormat_VALUE_FORMAT_AVRO_BINARY
					v = framed[i][5:]
				}
				req.Records = append(req.Records, &ingestv1.Record{Key: []byte(fmt.Sprintf("u%d", i)), Value: v})
			}
			grpcReqs = append(grpcReqs, req)
		}
	}
	// Keys are pre-built too, as the gateway's request bodies are.
	var keys [][]byte
	switch mode {
	case "raw":
		keys = make([][]byte, len(framed))
		for i := range keys {
			keys[i] = []byte(fmt.Sprintf("u%d", i))
		}
		// A stock kafka-go Writer (not pkg/kafka's, which adds a metadata
		// cache), configured as pkg/kafka configures its writers.
		w = &kafkago.Writer{
			Addr:         kafkago.TCP(kc.Brokers()...),
			Topic:        topic,
			Balancer:     &kafkago.Murmur2Balancer{Consistent: true},
			RequiredAcks: kafkago.RequireAll,
			BatchTimeout: 2 * time.Millisecond,
			BatchSize:    2000,
			BatchBytes:   1 << 20,
			Transport:    kc.Transport,
		}
		defer w.Close()
	case "grpc", "grpc-avro":
		// The load generator encodes each distinct request once, as the
		// HTTP mode pre-builds its bodies: the client's marshalling is not
		// the gateway's cost.
		pre := &premarshaled{std: encoding.GetCodecV2(grpcproto.Name), bufs: map[proto.Message]mem.BufferSlice{}}
		for _, req := range grpcReqs {
			bs, err := pre.std.Marshal(req)
			if err != nil {
				b.Fatal(err)
			}
			pre.bufs[req] = bs
		}
		cc, err := grpc.NewClient(e.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(pre)))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		client = ingestv1.NewIngestServiceClient(cc)
	}
	ctx := context.Background()
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for cl := 0; cl < c.clients; cl++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := make([]kafkago.Message, c.batch)
			var respBuf bytes.Buffer // reused, as a tuned client would
			for {
				r := int(next.Add(1)) - 1
				if r >= requests {
					return
				}
				t0 := time.Now()
				switch mode {
				case "raw":
					for j := range msgs {
						i := ((r%distinct)*c.batch + j) % len(framed)
						msgs[j] = kafkago.Message{Key: keys[i], Value: framed[i]}
					}
					if err := w.WriteMessages(ctx, msgs...); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
				case "http":
					resp, err := httpc.Post(e.httpURL+"/v1/topics/"+topic+"/records", "application/json", bytes.NewReader(bodies[r%distinct]))
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					respBuf.Reset()
					_, _ = respBuf.ReadFrom(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, respBuf.String())
					}
				case "grpc", "grpc-avro":
					resp, err := client.Produce(ctx, grpcReqs[r%distinct])
					if err != nil || len(resp.Results) != c.batch || slices.ContainsFunc(resp.Results, func(r *ingestv1.RecordResult) bool { return r.Error != nil }) {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprint(err, resp))
					}
				}
				lat[r] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d requests failed; first: %.500v", f, requests, firstErr.Load())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	rps := float64(requests*c.batch) / elapsed.Seconds()
	b.ReportMetric(rps, "records/s")
	b.ReportMetric(rps*float64(len(framed[0]))/1e6, "MB/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	// CPU of the whole process (client, gateway and kfake share it) per
	// record: tells a CPU-bound case from a latency-bound one.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(requests*c.batch)/1000, "cpu_us/rec")
	return rps
}

// premarshaled is a client codec that sends the bytes marshalled once for
// the benchmark's pre-built requests (and marshals anything else as usual).
type premarshaled struct {
	std  encoding.CodecV2
	bufs map[proto.Message]mem.BufferSlice
}

func (p *premarshaled) Name() string { return grpcproto.Name }

func (p *premarshaled) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(proto.Message); ok {
		if bs, ok := p.bufs[m]; ok {
			// gRPC frees what Marshal returns: hand it a reference.
			bs.Ref()
			return bs, nil
		}
	}
	return p.std.Marshal(v)
}

// Unmarshal checks a ProduceResponse the way the HTTP mode checks its
// status code: it only looks whether some result carries an error (field
// 4) and decodes fully only then; results are otherwise placeholders.
func (p *premarshaled) Unmarshal(data mem.BufferSlice, v any) error {
	resp, ok := v.(*ingestv1.ProduceResponse)
	if !ok {
		return p.std.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	n, failed := 0, false
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		if num == 1 && typ == protowire.BytesType {
			n++
			res, _ := protowire.ConsumeBytes(b)
			for len(res) > 0 && !failed {
				rn, rt, rl := protowire.ConsumeTag(res)
				if rl < 0 {
					return protowire.ParseError(rl)
				}
				failed = rn == 4
				res = res[rl:]
				if rl = protowire.ConsumeFieldValue(rn, rt, res); rl < 0 {
					return protowire.ParseError(rl)
				}
				res = res[rl:]
			}
		}
		b = b[l:]
	}
	if failed {
		return proto.Unmarshal(buf.ReadOnlyData(), resp)
	}
	resp.Results = make([]*ingestv1.RecordResult, n)
	for i := range resp.Results {
		resp.Results[i] = &okResult
	}
	return nil
}

var okResult ingestv1.RecordResult
