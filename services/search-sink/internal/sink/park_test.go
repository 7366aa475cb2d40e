package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/pkg/deadletter"
	"github.com/sluicehq/sluice/pkg/service"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
	"github.com/sluicehq/sluice/services/search-sink/internal/es"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestParkerProbesWithBackoffAndReleases: a parked topic is probed with
// growing waits until the probe succeeds; the gauge, the counter, the log
// line and the notice name the topic and the reason.
func TestParkerProbesWithBackoffAndReleases(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry(), 10)
	var logs bytes.Buffer
	var mu sync.Mutex
	var notices []ParkNotice
	p := NewParker(backoff.Policy{Base: 20 * time.Millisecond, Max: 80 * time.Millisecond}, m, slog.New(slog.NewJSONHandler(&logs, nil)),
		func(n ParkNotice) { mu.Lock(); notices = append(notices, n); mu.Unlock() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	go func() { defer close(ran); _ = p.Run(ctx) }()

	var probes []time.Time
	var fixed atomic.Bool
	h := p.Handle("bad")
	e0 := h.Epoch()
	p.Park("bad", ParkTemplate, "installing the index template: HTTP 400 mapper_parsing_exception", func(context.Context) error {
		mu.Lock()
		probes = append(probes, time.Now())
		mu.Unlock()
		if fixed.Load() {
			return nil
		}
		return errors.New("still 400")
	})
	if !h.Parked() || h.Epoch() == e0 || !p.Parked("bad") || p.Parked("good") {
		t.Fatal("park state wrong")
	}
	if g := testutil.ToFloat64(m.Parked.WithLabelValues("bad")); g != 1 {
		t.Fatalf("parked gauge = %v", g)
	}
	waitFor(t, 5*time.Second, "four probes", func() bool { mu.Lock(); defer mu.Unlock(); return len(probes) >= 4 })
	fixed.Store(true)
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := p.Wait(wctx, h); err != nil {
		t.Fatalf("not released: %v", err)
	}
	// The parker logs from its own goroutine: stop it before reading.
	cancel()
	<-ran
	mu.Lock()
	defer mu.Unlock()
	// Waits grow (equal jitter: each in [d/2, d], d doubling to the cap).
	if gap := probes[3].Sub(probes[2]); gap < 35*time.Millisecond {
		t.Fatalf("probe gaps did not grow: %v", gap)
	}
	if g := testutil.ToFloat64(m.Parked.WithLabelValues("bad")); g != 0 {
		t.Fatalf("parked gauge after release = %v", g)
	}
	if c := testutil.ToFloat64(m.Parks.WithLabelValues("bad", ParkTemplate)); c != 1 {
		t.Fatalf("parks counter = %v", c)
	}
	if len(notices) != 1 || notices[0].Topic != "bad" || notices[0].Kind != ParkTemplate || !strings.Contains(notices[0].Reason, "mapper_parsing_exception") {
		t.Fatalf("notices = %+v", notices)
	}
	for _, want := range []string{`"msg":"topic parked: its records wait while every other topic keeps flowing"`, `"topic":"bad"`, `"reason_kind":"template"`, `"msg":"topic released`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs.String())
		}
	}
}

func TestParkUntilReleasesAtTheTime(t *testing.T) {
	t.Parallel()
	p := NewParker(backoff.Policy{Base: time.Hour, Max: time.Hour}, NewMetrics(prometheus.NewRegistry(), 10), discard(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Run(ctx) }()
	start := time.Now()
	p.ParkUntil("t", ParkIndexBudget, "budget", start.Add(100*time.Millisecond))
	if err := p.Wait(ctx, p.Handle("t")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 3*time.Second {
		t.Fatalf("released after %v, want ~100ms", d)
	}
}

func TestTopicLabelsAreBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, 2)
	for _, topic := range []string{"a", "b", "c", "d"} {
		m.Indexed.WithLabelValues(m.topicLabel(topic)).Inc()
	}
	if got := testutil.CollectAndCount(m.Indexed); got != 3 {
		t.Fatalf("%d series for 4 topics with a bound of 2, want 3 (a, b, _other)", got)
	}
	if v := testutil.ToFloat64(m.Indexed.WithLabelValues(service.OtherLabel)); v != 2 {
		t.Fatalf("_other = %v", v)
	}
	if v := testutil.ToFloat64(m.LabelOverflow); v != 2 {
		t.Fatalf("overflow = %v", v)
	}
}

func TestOutcomeOf(t *testing.T) {
	t.Parallel()
	item := func(status int, typ string) esutil.BulkIndexerResponseItem {
		var r esutil.BulkIndexerResponseItem
		r.Status, r.Error.Type, r.Error.Reason = status, typ, "why"
		return r
	}
	cases := []struct {
		name   string
		action document.Action
		res    esutil.BulkIndexerResponseItem
		err    error
		want   int
	}{
		{"version conflict is done", document.ActionIndex, item(409, VersionConflict), nil, outcomeDuplicate},
		{"another 409 is not", document.ActionIndex, item(409, "some_other_exception"), nil, outcomeDeadLetter},
		{"mapping rejection", document.ActionIndex, item(400, "document_parsing_exception"), nil, outcomeDeadLetter},
		{"delete of nothing", document.ActionDelete, item(404, ""), nil, outcomeDone},
		{"delete in a missing index", document.ActionDelete, item(404, "index_not_found_exception"), nil, outcomeDone},
		{"404 on an index action", document.ActionIndex, item(404, "index_not_found_exception"), nil, outcomeDeadLetter},
		{"item 429", document.ActionIndex, item(429, "es_rejected_execution_exception"), nil, outcomeRetry},
		{"item 503", document.ActionIndex, item(503, "unavailable_shards_exception"), nil, outcomeRetry},
		{"connection refused", document.ActionIndex, esutil.BulkIndexerResponseItem{}, errors.New("flush: dial tcp: connection refused"), outcomeRequest},
		{"request 503", document.ActionIndex, esutil.BulkIndexerResponseItem{}, errors.New("flush: [503 Service Unavailable] {}"), outcomeRequest},
		{"request 429", document.ActionIndex, esutil.BulkIndexerResponseItem{}, errors.New("flush: [429 Too Many Requests] {}"), outcomeRequest},
		{"request 413", document.ActionIndex, esutil.BulkIndexerResponseItem{}, errors.New("flush: [413 Request Entity Too Large] {}"), outcomeIsolate},
		{"request 400", document.ActionIndex, esutil.BulkIndexerResponseItem{}, errors.New("flush: [400 Bad Request] {\"error\":{}}"), outcomeIsolate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := outcomeOf(tc.action, tc.res, tc.err).kind; got != tc.want {
				t.Fatalf("outcome %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPartitionRewind(t *testing.T) {
	t.Parallel()
	p := newPartition("t", 0)
	if off := p.rewind(-2); off != -2 {
		t.Fatalf("rewind before any ack = %d, want the start offset", off)
	}
	a, b, c := p.add(10), p.add(11), p.add(12)
	p.ack(a)
	p.ack(c) // done, but behind the unacknowledged 11
	if off := p.rewind(-2); off != 11 {
		t.Fatalf("rewind = %d, want 11 (the committed watermark)", off)
	}
	if p.pending() != 0 || p.live(b) {
		t.Fatal("records survived the rewind")
	}
	p.ack(b) // a late acknowledgement of an abandoned record is ignored
	d := p.add(11)
	if !p.live(d) {
		t.Fatal("refetched record not live")
	}
	if off, _ := p.take(); off != 11 {
		t.Fatalf("commit = %d, want 11: the late ack moved the watermark", off)
	}
	p.ack(d)
	if off, _ := p.take(); off != 12 {
		t.Fatalf("commit = %d, want 12", off)
	}
}

// fakeWriter fails chosen messages (by source offset header) as kafka-go
// does for a synchronous batch: WriteErrors, one entry per message.
type fakeWriter struct {
	mu      sync.Mutex
	fail    map[string]error
	written []kafkago.Message
	calls   int
}

func (w *fakeWriter) WriteMessages(_ context.Context, msgs ...kafkago.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	werr := make(kafkago.WriteErrors, len(msgs))
	failed := false
	for i, m := range msgs {
		for _, h := range m.Headers {
			if h.Key == deadletter.HeaderSourceOffset && w.fail[string(h.Value)] != nil {
				werr[i] = w.fail[string(h.Value)]
				failed = true
			}
		}
		if werr[i] == nil {
			w.written = append(w.written, m)
		}
	}
	if failed {
		return werr
	}
	return nil
}

// TestDLQCutsAndParksOnPermanentFailure: an oversized dead letter is cut
// with the size headers; a dead letter Kafka keeps refusing parks its
// topic after the retry attempts instead of blocking the others.
func TestDLQCutsAndParksOnPermanentFailure(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry(), 10)
	w := &fakeWriter{fail: map[string]error{"7": kafkago.MessageSizeTooLarge}}
	dlq := NewDLQ(w, func(context.Context, string) error { return nil }, DLQOptions{MaxBytes: 8192, Retry: backoff.Policy{Base: time.Millisecond, Max: 2 * time.Millisecond, Attempts: 3}}, m, discard())
	parker := NewParker(backoff.Policy{Base: time.Hour, Max: time.Hour}, m, discard(), nil)
	pl, err := NewPipeline(nil, PipelineOptions{Workers: 1, FlushBytes: 1 << 20, FlushInterval: time.Hour, MaxBufferedDocs: 10, MaxBufferedBytes: 1 << 20}, m, dlq, parker, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = dlq.Run(ctx) }()
	ptA, ptB := newPartition("big", 0), newPartition("refused", 0)
	ptA.h, ptB.h = parker.Handle("big"), parker.Handle("refused")
	huge := bytes.Repeat([]byte("v"), 100000)
	for _, c := range []struct {
		pt  *partition
		off int64
	}{{ptA, 3}, {ptB, 7}} {
		if err := pl.Acquire(ctx, 1000); err != nil {
			t.Fatal(err)
		}
		seq := c.pt.add(c.off)
		pl.DeadLetter(&kafkago.Message{Topic: c.pt.topic, Offset: c.off, Key: []byte("k"), Value: huge}, c.pt, seq, 1000, "decode", "bad bytes")
	}
	waitFor(t, 5*time.Second, "the big dead letter written and acknowledged", func() bool { off, ok := ptA.take(); return ok && off == 4 })
	waitFor(t, 5*time.Second, "the refused topic parked", func() bool { return parker.Parked("refused") })
	w.mu.Lock()
	got := w.written[0]
	w.mu.Unlock()
	h := map[string]string{}
	for _, x := range got.Headers {
		h[x.Key] = string(x.Value)
	}
	if deadletter.Size(&got) > 8192 || h[deadletter.HeaderTruncated] != "value" || h[deadletter.HeaderOriginalSize] == "" || h[deadletter.HeaderError] != "bad bytes" {
		t.Fatalf("dead letter of %d bytes, headers %v", deadletter.Size(&got), h)
	}
	if v := testutil.ToFloat64(m.DLQTruncated.WithLabelValues("big")); v != 1 {
		t.Fatalf("truncated = %v", v)
	}
	if _, ok := ptB.take(); ok {
		t.Fatal("the refused record was acknowledged")
	}
	waitFor(t, 5*time.Second, "buffer released", func() bool { return testutil.ToFloat64(m.Buffered) == 0 })
	if c := testutil.ToFloat64(m.Parks.WithLabelValues("refused", ParkDeadLetter)); c != 1 {
		t.Fatalf("parks = %v", c)
	}
}

// TestRetriesExhaustedParkTopic: an item answered 429 every time is
// retried Retry.Attempts times, then its topic is parked, its buffer
// space released and its offset not committed; another topic is indexed.
func TestRetriesExhaustedParkTopic(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	double := estest.Start(t, estest.WithItemFailures(func(_, _, id string, _ json.RawMessage) *estest.Error {
		if id == "stuck" {
			calls.Add(1)
			return estest.Rejected()
		}
		return nil
	}))
	c, err := es.New(es.Options{URLs: []string{double.URL()}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry(), 10)
	parker := NewParker(backoff.Policy{Base: time.Hour, Max: time.Hour}, m, discard(), nil)
	pl, err := NewPipeline(c, PipelineOptions{Workers: 1, FlushBytes: 1 << 20, FlushInterval: 5 * time.Millisecond, MaxBufferedDocs: 10, MaxBufferedBytes: 1 << 20,
		Retry: backoff.Policy{Base: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 4}}, m, NewDLQ(nil, nil, DLQOptions{}, m, discard()), parker, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = pl.RunRetries(ctx) }()
	submit := func(pt *partition, off int64, id string) {
		if err := pl.Acquire(ctx, 100); err != nil {
			t.Fatal(err)
		}
		seq := pt.add(off)
		d := &document.Doc{Index: pt.topic + "-x", ID: id, Action: document.ActionIndex, Version: -1, Body: []byte(`{"n":1}`)}
		if err := pl.Submit(ctx, &kafkago.Message{Topic: pt.topic, Offset: off}, d, pt, seq, 100); err != nil {
			t.Fatal(err)
		}
	}
	bad, good := newPartition("bad", 0), newPartition("good", 0)
	bad.h, good.h = parker.Handle("bad"), parker.Handle("good")
	submit(bad, 0, "ok-0")
	submit(bad, 1, "stuck")
	submit(good, 0, "g-0")
	waitFor(t, 10*time.Second, "the topic parked", func() bool { return parker.Parked("bad") })
	if n := calls.Load(); n != 4 {
		t.Fatalf("the stuck item was tried %d times, want 4 (SEARCH_SINK_RETRY_ATTEMPTS)", n)
	}
	waitFor(t, 5*time.Second, "good indexed", func() bool { off, ok := good.take(); return ok && off == 1 })
	if off, _ := bad.take(); off != 1 {
		t.Fatalf("bad committed %d, want 1 (up to the stuck record)", off)
	}
	waitFor(t, 5*time.Second, "buffer released", func() bool { return testutil.ToFloat64(m.Buffered) == 0 })
	if c := testutil.ToFloat64(m.Parks.WithLabelValues("bad", ParkRetries)); c != 1 {
		t.Fatalf("parks = %v", c)
	}
	if parker.Parked("good") {
		t.Fatal("the good topic was parked")
	}
}
