package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/services/s3-sink/internal/config"
	"github.com/sluicehq/sluice/services/s3-sink/internal/sink"
)

// faultProxy sits between the sink and versitygw and answers chosen
// requests itself with a real S3 error document, so the SDK parses the
// failure exactly as it would AWS's.
type faultProxy struct {
	srv    *httptest.Server
	mu     sync.Mutex
	rules  []*faultRule
	counts map[string]int // requests answered with a fault, by rule prefix
}

type faultRule struct {
	prefix string // bucket-relative key prefix
	status int
	code   string
}

func (h *harness) faultProxy(t testing.TB) *faultProxy {
	t.Helper()
	target, err := url.Parse(h.s3.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	base := rp.Director
	rp.Director = func(r *http.Request) {
		host := r.Host
		base(r)
		r.Host = host // the SigV4 signature covers the Host header
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rule := p.match(r); rule != nil {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(rule.status)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the test</Message><RequestId>t</RequestId></Error>`, rule.code)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) match(r *http.Request) *faultRule {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		return nil
	}
	key := strings.TrimPrefix(r.URL.Path, "/"+testBucket+"/")
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rule := range p.rules {
		if strings.HasPrefix(key, rule.prefix) {
			p.counts[rule.prefix]++
			return rule
		}
	}
	return nil
}

// fail answers writes under prefix with status and code until clear.
func (p *faultProxy) fail(prefix string, status int, code string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &faultRule{prefix: prefix, status: status, code: code})
}

func (p *faultProxy) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

func (p *faultProxy) count(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[prefix]
}

// logBuffer collects the sink's JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// find returns the log lines with msg whose attributes include attrs.
func (l *logBuffer) find(msg string, attrs map[string]string) []map[string]any {
	l.mu.Lock()
	lines := strings.Split(l.buf.String(), "\n")
	l.mu.Unlock()
	var out []map[string]any
	for _, line := range lines {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range attrs {
			if fmt.Sprint(m[k]) != v {
				ok = false
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// inproc is a sink built in the test process from the same parts as run()
// but with a chosen S3 endpoint, a metrics registry and logs the test can
// read.
type inproc struct {
	sk   *sink.Sink
	reg  *prometheus.Registry
	logs *logBuffer
	done chan error
	cfg  *config.Config
}

func (h *harness) startInProc(t *testing.T, endpoint string, extra map[string]string) *inproc {
	t.Helper()
	env := h.env(extra)
	if endpoint != "" {
		env["S3_ENDPOINT"] = endpoint
	}
	cfg, err := config.Load(flags(env), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kafka.New(cfg.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	s3c, err := newS3(t.Context(), cfg.S3)
	if err != nil {
		t.Fatal(err)
	}
	part, err := newPartitioner(cfg.Sink)
	if err != nil {
		t.Fatal(err)
	}
	dlq := kc.NewWriter(kafka.WriterOptions{BatchTimeout: time.Millisecond, BatchBytes: int64(max(1<<20, cfg.Sink.DLQMaxBytes+64<<10))})
	t.Cleanup(func() { _ = dlq.Close() })
	p := &inproc{reg: prometheus.NewRegistry(), logs: &logBuffer{}, done: make(chan error, 1), cfg: cfg}
	reg := registry.New(cfg.Registry)
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(p.logs, os.Stderr), &slog.HandlerOptions{Level: slog.LevelInfo}))
	p.sk, err = sink.New(sink.Options{
		Config: cfg.Sink, Bucket: testBucket, S3: s3c, Brokers: kc.Brokers(), Dialer: kc.Dialer,
		Admin: psink.NewKafkaAdmin(kc, time.Second), Codecs: avro.NewCodecs(reg), Subjects: reg, DLQ: dlq,
		Partitioner: part, Metrics: sink.NewMetrics(p.reg, cfg.Sink.TopicLabelLimit), Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.sk.Run(context.Background()) }()
	t.Cleanup(func() { _ = p.stop() })
	return p
}

func (p *inproc) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.sk.Stop(ctx); err != nil {
		return err
	}
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// metric returns the value of the series name{labels} (0, false if absent).
func (p *inproc) metric(name string, labels map[string]string) (float64, bool) {
	mfs, err := p.reg.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			}
		}
	}
	return 0, false
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// eventually polls cond until it holds or within passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// committed returns the group's committed offset per partition of topic
// (-1 where none).
func (h *harness) committed(t testing.TB, group, topic string, partitions int) []int64 {
	t.Helper()
	cl := &kafkago.Client{Addr: kafkago.TCP(h.kc.Brokers()...), Timeout: 10 * time.Second}
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	res, err := cl.OffsetFetch(t.Context(), &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	out := make([]int64, partitions)
	for i := range out {
		out[i] = -1
	}
	if err != nil || res.Error != nil {
		return out
	}
	for _, p := range res.Topics[topic] {
		if p.Error == nil && p.Partition < partitions {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out
}

// keys lists the object keys under prefix.
func (h *harness) keys(t testing.TB, prefix string) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(h.s3.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(testBucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("listing %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}
