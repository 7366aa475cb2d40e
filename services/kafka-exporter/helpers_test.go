package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	kafkago "github.com/segmentio/kafka-go"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/config"
	ikafka "github.com/sluicehq/sluice/services/kafka-exporter/internal/kafka"
	"github.com/sluicehq/sluice/services/kafka-exporter/internal/prom"
)

// fixture is an exporter (collector + HTTP routes) over a kfake cluster.
type fixture struct {
	cluster *kafkatest.Cluster
	kc      *skafka.Clients
	col     *collector.Collector
	app     *service.App
	srv     *httptest.Server
	now     *fakeClock
	admin   *ikafka.Client
}

// fakeClock is the collector's and handler's clock in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newFixture builds the exporter against c with args translated like the
// real command line (kafka_exporter flags included).
func newFixture(t testing.TB, c *kafkatest.Cluster, args ...string) *fixture {
	t.Helper()
	env := map[string]string{"KAFKA_BROKERS": strings.Join(c.Brokers(), ",")}
	cfg, _, err := config.Load(args, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	clock := &fakeClock{t: time.Now().Truncate(time.Second)}
	app := service.New("kafka-exporter", cfg.Service, service.NewLogger(io.Discard, "kafka-exporter", "error"))
	admin, err := ikafka.New(cfg.Kafka, ikafka.Options{ConnsPerBroker: cfg.Concurrency})
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	t.Cleanup(admin.Close)
	tf, te, gf, ge := cfg.Regexps()
	col := collector.New(admin, collector.Options{
		Interval: cfg.Interval, Timeout: 30 * time.Second,
		TopicFilter: tf, TopicExclude: te, GroupFilter: gf, GroupExclude: ge,
		Concurrency: cfg.Concurrency, LagPoints: cfg.LagPoints, StatusWindow: cfg.StatusWindow,
		Render: new(prom.Renderer).Render, Registry: app.Metrics(), Now: clock.Now,
	})
	srv := httptest.NewServer(routes(app, col, cfg, clock.Now))
	t.Cleanup(srv.Close)
	return &fixture{cluster: c, kc: c.Clients(), col: col, app: app, srv: srv, now: clock, admin: admin}
}

// refresh runs one collection now.
func (f *fixture) refresh(t testing.TB) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := f.col.Refresh(ctx)
	return err
}

// scrape fetches the telemetry path over HTTP and parses it.
func scrape(t testing.TB, url string, gzip bool) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	tr := &http.Transport{DisableCompression: !gzip}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parsing scrape: %v", err)
	}
	return mfs
}

// series returns name's samples keyed by their sorted label pairs
// ("a=x,b=y").
func series(mfs map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	mf := mfs[name]
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		var parts []string
		for _, l := range m.GetLabel() {
			parts = append(parts, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(parts)
		var v float64
		switch {
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		case m.Histogram != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		}
		out[strings.Join(parts, ",")] = v
	}
	return out
}

// produce writes n records to one partition with acks=all.
func produce(t testing.TB, kc *skafka.Clients, topic string, partition, n int) {
	t.Helper()
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs := make([]kafkago.Record, n)
	for i := range recs {
		recs[i] = kafkago.Record{Value: kafkago.NewBytes([]byte(fmt.Sprintf("r%d", i)))}
	}
	res, err := kc.Admin.Produce(ctx, &kafkago.ProduceRequest{
		Topic: topic, Partition: partition, RequiredAcks: kafkago.RequireAll, Records: kafkago.NewRecordReader(recs...),
	})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		t.Fatalf("producing to %s/%d: %v", topic, partition, err)
	}
}

// commit stores offsets for a group without joining it (as a simple
// consumer or an offset-reset tool would).
func commit(t testing.TB, kc *skafka.Clients, group, topic string, offsets map[int]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ocs []kafkago.OffsetCommit
	for p, o := range offsets {
		ocs = append(ocs, kafkago.OffsetCommit{Partition: p, Offset: o})
	}
	res, err := kc.Admin.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{
		GroupID: group, GenerationID: -1, Topics: map[string][]kafkago.OffsetCommit{topic: ocs},
	})
	if err != nil {
		t.Fatalf("committing for %s: %v", group, err)
	}
	for _, ps := range res.Topics {
		for _, p := range ps {
			if p.Error != nil {
				t.Fatalf("committing for %s %s/%d: %v", group, topic, p.Partition, p.Error)
			}
		}
	}
}

// eventually polls fn until it returns nil or the deadline passes.
func eventually(t testing.TB, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
