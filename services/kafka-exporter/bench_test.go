package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

// BenchmarkExporter measures the exporter on 10,000 partitions (500
// topics x 20 partitions over 3 kfake brokers) and 500 consumer groups
// (one per topic): full collection time per op, scrape latency
// percentiles while collections keep running, and memory. The baseline is
// kafka-go's Client.ListOffsets for the same partitions, which sends one
// request per partition (the per-partition pattern that makes
// kafka_exporter time out on big clusters).
func BenchmarkExporter(b *testing.B) {
	const topics, parts, groups = 500, 20, 500
	c := kafkatest.Start(b, kfake.NumBrokers(3))
	for i := 0; i < topics; i++ {
		c.CreateTopic(fmt.Sprintf("topic-%03d", i), parts, nil)
	}
	f := newFixture(b, c, "-exporter-concurrency=16", "-exporter-probe-enabled=false")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// One record per partition; every group commits offset 1 on half the
	// partitions of its topic (the rest report -1, as kafka_exporter does).
	w := f.kc.NewWriter(skafka.WriterOptions{Balancer: &kafkago.RoundRobin{}, BatchTimeout: time.Millisecond})
	msgs := make([]kafkago.Message, 0, topics*parts)
	for i := 0; i < topics; i++ {
		for p := 0; p < parts; p++ {
			msgs = append(msgs, kafkago.Message{Topic: fmt.Sprintf("topic-%03d", i), Value: []byte("x")})
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		b.Fatalf("seeding records: %v", err)
	}
	_ = w.Close()
	// The writer's transport holds many connections after 10,000
	// partitions; release them (kfake shares this process's descriptors).
	f.kc.Transport.CloseIdleConnections()
	for g := 0; g < groups; g++ {
		offs := map[int]int64{}
		for p := 0; p < parts/2; p++ {
			offs[p] = 1
		}
		commit(b, f.kc, fmt.Sprintf("group-%03d", g), fmt.Sprintf("topic-%03d", g%topics), offs)
	}

	// Baseline: per-partition ListOffsets through kafka-go's client.
	req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	for i := 0; i < topics; i++ {
		for p := 0; p < parts; p++ {
			t := fmt.Sprintf("topic-%03d", i)
			req.Topics[t] = append(req.Topics[t], kafkago.LastOffsetOf(p))
		}
	}
	tr := &kafkago.Transport{ClientID: "baseline"}
	start := time.Now()
	if _, err := (&kafkago.Client{Addr: kafkago.TCP(c.Brokers()...), Transport: tr}).ListOffsets(ctx, req); err != nil {
		b.Fatalf("baseline list offsets: %v", err)
	}
	baseline := time.Since(start)
	tr.CloseIdleConnections()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := f.refresh(b); err != nil { // warm connections
		b.Fatalf("first collection: %.600v", err)
	}

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := f.refresh(b); err != nil {
			b.Fatalf("collection: %v", err)
		}
	}
	b.StopTimer()
	snap := f.col.Current()
	if n := len(snap.Topics); n != topics {
		b.Fatalf("snapshot has %d topics, want %d", n, topics)
	}
	if n := len(snap.Groups); n != groups {
		b.Fatalf("snapshot has %d groups, want %d", n, groups)
	}
	collection := snap.Duration

	// Scrapes served from the snapshot (no collection running).
	idle := scrapeLatencies(b, f.srv.URL+"/metrics", false, 100)

	runtime.GC()
	debug.FreeOSMemory()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	b.ReportMetric(collection.Seconds(), "collection_s")
	b.ReportMetric(baseline.Seconds(), "baseline_listoffsets_s")
	b.ReportMetric(baseline.Seconds()/collection.Seconds(), "baseline_ratio")
	b.ReportMetric(ms(idle[len(idle)*99/100]), "scrape_inproc_p99_ms")
	b.ReportMetric(float64(len(snap.Rendered))/(1<<20), "exposition_MiB")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "exporter_heap_MiB")
	b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "process_heap_MiB")
	b.ReportMetric(rssMiB("self"), "process_rss_MiB")

	// The real binary in its own process, collecting every second while it
	// is scraped: the production shape, and its memory excludes kfake.
	cp := childProcess(b, c.Brokers())
	b.ReportMetric(cp.rss, "exporter_rss_MiB")
	b.ReportMetric(cp.peak, "exporter_peak_rss_MiB")
	b.ReportMetric(cp.avgCollection, "exporter_collection_avg_s")
	b.ReportMetric(ms(cp.plain[len(cp.plain)*50/100]), "scrape_p50_ms")
	b.ReportMetric(ms(cp.plain[len(cp.plain)*99/100]), "scrape_p99_ms")
	b.ReportMetric(ms(cp.gzip[len(cp.gzip)*99/100]), "scrape_gzip_p99_ms")
}

// child is what childProcess measured.
type child struct {
	rss, peak, avgCollection float64
	plain, gzip              []time.Duration
}

// childProcess builds and runs the exporter binary against brokers,
// scrapes it while it collects every second, and returns its RSS and peak
// RSS (MiB), mean collection time (s) and scrape latencies.
func childProcess(b *testing.B, brokers []string) child {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "kafka-exporter")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("building exporter: %v\n%s", err, out)
	}
	addr := freeAddr(b)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+strings.Join(brokers, ","), "EXPORTER_ADMIN_ADDR="+addr,
		"EXPORTER_INTERVAL=1s", "EXPORTER_PROBE_ENABLED=false", "EXPORTER_CONCURRENCY=16", "LOG_LEVEL=error")
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting exporter: %v", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	var mfs map[string]*dto.MetricFamily
	eventually(b, 2*time.Minute, func() error {
		res, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		mfs = scrape(b, "http://"+addr+"/metrics", true)
		if n := series(mfs, "sluice_exporter_collections_total")["result=success"]; n < 2 {
			return fmt.Errorf("%v collections", n)
		}
		return nil
	})
	var out child
	out.plain = scrapeLatencies(b, "http://"+addr+"/metrics", false, 200)
	out.gzip = scrapeLatencies(b, "http://"+addr+"/metrics", true, 200)
	mfs = scrape(b, "http://"+addr+"/metrics", true)
	if n := series(mfs, "sluice_exporter_collections_total")["result=success"]; n < 4 {
		b.Logf("only %v collections ran during the scrapes", n)
	}
	h := mfs["sluice_exporter_collection_duration_seconds"].GetMetric()[0].GetHistogram()
	out.avgCollection = h.GetSampleSum() / float64(h.GetSampleCount())
	out.rss, out.peak = rssMiB(strconv.Itoa(cmd.Process.Pid)), peakMiB(strconv.Itoa(cmd.Process.Pid))
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// scrapeLatencies times n full scrapes (body read to the end), sorted.
func scrapeLatencies(b *testing.B, url string, gzip bool, n int) []time.Duration {
	b.Helper()
	tr := &http.Transport{DisableCompression: !gzip}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		res, err := cl.Get(url)
		if err != nil {
			b.Fatalf("scrape: %v", err)
		}
		if _, err := io.Copy(io.Discard, res.Body); err != nil {
			b.Fatalf("reading scrape: %v", err)
		}
		_ = res.Body.Close()
		out = append(out, time.Since(start))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// rssMiB reads a process's resident set size (Linux); for "self" it
// includes the in-process kfake cluster.
func rssMiB(pid string) float64 { return procStatus(pid, "VmRSS:") }

// peakMiB reads a process's peak resident set size (Linux).
func peakMiB(pid string) float64 { return procStatus(pid, "VmHWM:") }

func procStatus(pid, field string) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
