package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/registrytest"
	"github.com/sluicehq/sluice/pkg/testkit/s3test"
	"github.com/sluicehq/sluice/pkg/wire"
)

func newBenchEnv(b *testing.B) *harness {
	b.Helper()
	kc := kafkatest.Start(b)
	h := &harness{kc: kc, cl: kc.Clients()}
	h.reg = registrytest.Start(b, kc.Brokers())
	h.s3 = s3test.Start(b)
	h.s3.CreateBucket(testBucket)
	return h
}

// produceBench writes perPart records of about size bytes to each
// partition and returns the total value bytes.
func produceBench(b *testing.B, h *harness, topic string, partitions, perPart, size int) int64 {
	b.Helper()
	h.kc.CreateTopic(topic, int32(partitions), nil)
	id := h.reg.Register(b, topic+"-value", eventSchema)
	codec := mustCodec(b)
	// Incompressible payloads, so OCF compression does not flatter the sink.
	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	pads := make([]string, 64)
	for i := range pads {
		var sb strings.Builder
		for j := 0; j < max(size-40, 1); j++ {
			sb.WriteByte(alphabet[rnd.IntN(len(alphabet))])
		}
		pads[i] = sb.String()
	}
	w := h.writer(b)
	ctx := kafkatest.Context(b, 5*time.Minute)
	var total int64
	msgs := make([]kafkago.Message, 0, 4000)
	for i := 0; i < perPart; i++ {
		for p := 0; p < partitions; p++ {
			n := int64(i*partitions + p)
			bin, err := codec.BinaryFromNative(nil, map[string]any{
				"id": n, "country": countries[n%4], "ts": time.UnixMilli(1767225600000 + n), "payload": pads[n%64],
			})
			if err != nil {
				b.Fatal(err)
			}
			v := wire.Encode(uint32(id), bin)
			total += int64(len(v))
			msgs = append(msgs, kafkago.Message{Topic: topic, Partition: p, Value: v})
			if len(msgs) == cap(msgs) {
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					b.Fatal(err)
				}
				msgs = msgs[:0]
			}
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		b.Fatal(err)
	}
	return total
}

// rawBaseline reads every partition with a plain kafka-go reader and puts
// the same bytes to S3 in objects of perFile records: the floor any sink
// pays for moving the data.
func rawBaseline(b *testing.B, h *harness, topic string, partitions, perPart, perFile int) time.Duration {
	b.Helper()
	cl := h.s3.Client()
	opts := func(o *s3.Options) {
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}
	ctx := kafkatest.Context(b, 5*time.Minute)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, partitions)
	for p := 0; p < partitions; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: h.kc.Brokers(), Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond, QueueCapacity: 256})
			defer r.Close()
			var buf bytes.Buffer
			for i := 0; i < perPart; i++ {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					errs <- err
					return
				}
				buf.Write(m.Value)
				if (i+1)%perFile == 0 || i+1 == perPart {
					key := fmt.Sprintf("raw/%s/%d/%020d", topic, p, i)
					if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: &key, Body: bytes.NewReader(buf.Bytes()), ContentLength: aws.Int64(int64(buf.Len()))}, opts); err != nil {
						errs <- err
						return
					}
					buf.Reset()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkSinkVsRaw measures Kafka -> versitygw through the sink (decode,
// validate, OCF encode, upload, commit) next to the raw baseline on the
// same data in the same run.
func BenchmarkSinkVsRaw(b *testing.B) {
	const (
		partitions = 8
		perPart    = 100_000
		perFile    = 20_000
		size       = 250
	)
	h := newBenchEnv(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		topic := "bench" + strconv.Itoa(i)
		total := produceBench(b, h, topic, partitions, perPart, size)
		records := float64(partitions * perPart)
		b.StartTimer()

		// Baseline and sink alternate twice on the same data and the
		// faster run of each counts: on a shared machine one run alone is
		// mostly noise.
		raw := time.Duration(1<<63 - 1)
		sinkD := raw
		for round := 0; round < 2; round++ {
			raw = min(raw, rawBaseline(b, h, topic, partitions, perPart, perFile))
			sinkD = min(sinkD, sinkRun(b, h, topic, fmt.Sprintf("bench-%s-%d", topic, round), perFile, records))
		}
		b.StopTimer()
		mb := float64(total) / (1 << 20)
		b.ReportMetric(mb/sinkD.Seconds(), "MB/s")
		b.ReportMetric(records/sinkD.Seconds(), "records/s")
		b.ReportMetric(mb/raw.Seconds(), "raw-MB/s")
		b.ReportMetric(records/raw.Seconds(), "raw-records/s")
		b.ReportMetric(raw.Seconds()/sinkD.Seconds(), "ratio")
	}
}

// sinkRun starts the sink in-process with a fresh group and returns how
// long it took until every record was in a completed object.
func sinkRun(b *testing.B, h *harness, topic, group string, perFile int, records float64) time.Duration {
	b.Helper()
	admin := freeAddr(b)
	start := time.Now()
	stop := h.startSink(b, map[string]string{
		"S3_SINK_TOPICS": topic, "S3_SINK_GROUP_ID": group, "S3_SINK_PREFIX": group,
		"S3_SINK_FLUSH_RECORDS": strconv.Itoa(perFile), "S3_SINK_CODEC": "snappy", "S3_SINK_ADMIN_ADDR": admin,
		// A starved process must not be evicted mid-measurement.
		"S3_SINK_SESSION_TIMEOUT": "15s", "S3_SINK_HEARTBEAT_INTERVAL": "1s",
	})
	series := `sluice_sink_records_written_total{sink="s3",topic="` + topic + `"}`
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if v, ok := scrape(b, "http://"+admin+"/metrics", series); ok && v >= records {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("sink did not write every record within 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := time.Since(start)
	if err := stop(); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkMemory100Partitions runs the sink binary on a 100-partition
// topic with a flush size no file reaches, waits until all 100 files are
// open holding every record (about 1 MiB each), reads the process's peak
// RSS (VmHWM), then stops it with SIGTERM, which uploads the 100 files and
// commits.
func BenchmarkMemory100Partitions(b *testing.B) {
	const (
		partitions = 100
		perPart    = 4_000
		size       = 250
	)
	src, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	tmp := b.TempDir()
	bin := buildSink(b, src, tmp)
	h := newBenchEnv(b)
	for i := 0; i < b.N; i++ {
		topic := "mem" + strconv.Itoa(i)
		total := produceBench(b, h, topic, partitions, perPart, size)
		payload := float64(total - 5*partitions*perPart) // minus the framing
		admin := freeAddr(b)
		prefix := "mem" + strconv.Itoa(i)
		env := h.env(map[string]string{
			"S3_SINK_TOPICS": topic, "S3_SINK_GROUP_ID": "mem-" + topic, "S3_SINK_PREFIX": prefix,
			"S3_SINK_FLUSH_RECORDS": strconv.Itoa(perPart + 1), "S3_SINK_CODEC": "null", "S3_SINK_ADMIN_ADDR": admin,
			"S3_SINK_SESSION_TIMEOUT": "15s", "S3_SINK_HEARTBEAT_INTERVAL": "1s",
		})
		logf, err := os.Create(filepath.Join(tmp, "sink.log"))
		if err != nil {
			b.Fatal(err)
		}
		p := startProc(b, bin, env, logf)
		metrics := "http://" + admin + "/metrics"
		deadline := time.Now().Add(5 * time.Minute)
		for {
			open, ok1 := scrape(b, metrics, "sluice_s3sink_open_files")
			buf, ok2 := scrape(b, metrics, "sluice_s3sink_buffered_bytes")
			// Pending OCF blocks (< 128 KiB per file) are not in upload
			// buffers yet.
			if ok1 && ok2 && open == partitions && buf >= payload-partitions*128<<10 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("after 5 minutes: %v open files, %v buffered bytes, want %d and ~%.0f", open, buf, partitions, payload)
			}
			time.Sleep(20 * time.Millisecond)
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		hwm := 0.0
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
				hwm = kb / 1024
			}
		}
		if err := p.signal(b, syscall.SIGTERM); err != nil {
			b.Fatalf("graceful stop: %v", err)
		}
		logf.Close()
		if n := h.countObjects(b.Context(), prefix+"/"); n != partitions {
			b.Fatalf("after SIGTERM %d objects, want %d (one flushed file per partition)", n, partitions)
		}
		b.ReportMetric(hwm, "peak-RSS-MiB")
		b.ReportMetric(payload/partitions/(1<<20), "MiB/open-file")
	}
}

// BenchmarkMemoryHostileField runs the sink binary with a field
// partitioner on one partition whose records cycle through 400 distinct
// values (8 rounds of 8 KiB records), once with the default
// S3_SINK_MAX_OPEN_FILES (16) and once with the cap out of reach, and
// reports the peak RSS and the open files once every record is handled:
// memory follows the configuration, not the data.
func BenchmarkMemoryHostileField(b *testing.B) {
	const values, rounds, size = 400, 8, 8 << 10
	src, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	tmp := b.TempDir()
	bin := buildSink(b, src, tmp)
	h := newBenchEnv(b)
	pad := strings.Repeat("x", size)
	for i := 0; i < b.N; i++ {
		for _, maxOpen := range []int{16, 1 << 20} {
			topic := fmt.Sprintf("hostile%d-%d", i, maxOpen)
			h.kc.CreateTopic(topic, 1, nil)
			id := h.reg.Register(b, topic+"-value", eventSchema)
			codec := mustCodec(b)
			msgs := make([]kafkago.Message, 0, values*rounds)
			for j := 0; j < values*rounds; j++ {
				bin, err := codec.BinaryFromNative(nil, map[string]any{
					"id": int64(j), "country": fmt.Sprintf("value-%06d", j%values), "ts": time.UnixMilli(1767225600000), "payload": pad,
				})
				if err != nil {
					b.Fatal(err)
				}
				msgs = append(msgs, kafkago.Message{Topic: topic, Value: wire.Encode(uint32(id), bin)})
			}
			w := h.writer(b)
			for k := 0; k < len(msgs); k += 64 { // batches under the broker's 1 MiB
				if err := w.WriteMessages(kafkatest.Context(b, time.Minute), msgs[k:min(k+64, len(msgs))]...); err != nil {
					b.Fatal(err)
				}
			}
			admin := freeAddr(b)
			env := h.env(map[string]string{
				"S3_SINK_TOPICS": topic, "S3_SINK_GROUP_ID": topic, "S3_SINK_PREFIX": topic, "S3_SINK_PARTITIONER": "field",
				"S3_SINK_PARTITION_FIELD": "country", "S3_SINK_FLUSH_RECORDS": "100000", "S3_SINK_MAX_OPEN_FILES": strconv.Itoa(maxOpen),
				"S3_SINK_CODEC": "null", "S3_SINK_ADMIN_ADDR": admin, "S3_SINK_SESSION_TIMEOUT": "15s", "S3_SINK_HEARTBEAT_INTERVAL": "1s",
			})
			logf, err := os.Create(filepath.Join(tmp, topic+".log"))
			if err != nil {
				b.Fatal(err)
			}
			p := startProc(b, bin, env, logf)
			deadline := time.Now().Add(5 * time.Minute)
			peakOpen := 0.0
			for {
				if v, ok := scrape(b, "http://"+admin+"/metrics", "sluice_s3sink_open_files"); ok {
					peakOpen = max(peakOpen, v)
				}
				if v, ok := scrape(b, "http://"+admin+"/metrics", `sluice_sink_unread_records{partition="0",sink="s3",topic="`+topic+`"}`); ok && v == 0 {
					break
				}
				if time.Now().After(deadline) {
					b.Fatal("records not handled within 5 minutes")
				}
				time.Sleep(20 * time.Millisecond)
			}
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
			if err != nil {
				b.Fatal(err)
			}
			hwm := 0.0
			for _, line := range strings.Split(string(status), "\n") {
				if strings.HasPrefix(line, "VmHWM:") {
					kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
					hwm = kb / 1024
				}
			}
			if err := p.signal(b, syscall.SIGTERM); err != nil {
				b.Fatalf("graceful stop: %v", err)
			}
			logf.Close()
			if got := h.countObjects(b.Context(), topic+"/"); got < values {
				b.Fatalf("cap %d: %d objects, want at least one per value (%d)", maxOpen, got, values)
			}
			name := "capped"
			if maxOpen > values {
				name = "uncapped"
			}
			b.ReportMetric(hwm, name+"-peak-RSS-MiB")
			b.ReportMetric(peakOpen, name+"-peak-open-files")
		}
	}
}
