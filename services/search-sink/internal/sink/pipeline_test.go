package sink

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/pkg/backoff"
	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
	"github.com/sluicehq/sluice/services/search-sink/internal/es"
)

// TestBackpressureWhileClusterDown: with the cluster answering 503, the
// buffer fills to its bound and Acquire blocks (consumption pauses), the
// pause grows per failed request (not per item), nothing is acknowledged;
// when the cluster recovers every document is indexed and acknowledged.
func TestBackpressureWhileClusterDown(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	down.Store(true)
	var calls atomic.Int32
	double := estest.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_bulk" {
			calls.Add(1)
			if down.Load() {
				w.Header().Set("X-Elastic-Product", "Elasticsearch")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, `{"error":{"type":"unavailable_shards_exception","reason":"down"},"status":503}`)
				return
			}
		}
		double.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := es.New(es.Options{URLs: []string{srv.URL}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry(), nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const maxDocs = 8
	pl, err := NewPipeline(c, PipelineOptions{Workers: 1, FlushBytes: 1 << 20, FlushInterval: 10 * time.Millisecond,
		MaxBufferedDocs: maxDocs, MaxBufferedBytes: 1 << 20, Retry: backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second}}, m, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = pl.RunRetries(ctx) }()
	acks := newRecAcks()
	pw := &partWriter{tp: psink.TopicPartition{Topic: "orders"}, acks: acks}
	for i := 0; i < maxDocs; i++ {
		if err := pl.Acquire(ctx, 100); err != nil {
			t.Fatal(err)
		}
		d := &document.Doc{Index: "orders-x", ID: "id-" + strconv.Itoa(i), Action: document.ActionIndex, Version: -1, Body: []byte(`{"n":1}`)}
		if err := pl.Submit(ctx, pw, &psink.Record{Topic: "orders", Offset: int64(i)}, d, 100); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no retried bulk requests")
		}
		time.Sleep(5 * time.Millisecond)
	}
	actx, acancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err = pl.Acquire(actx, 100)
	acancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire beyond the bound = %v, want it to block", err)
	}
	if n := acks.done(); n != 0 {
		t.Fatalf("%d records acknowledged while every bulk request failed", n)
	}
	if got := testutil.ToFloat64(m.Buffered); got != maxDocs {
		t.Fatalf("buffered docs = %v, want %d", got, maxDocs)
	}
	// One failed request of 8 items grows the backoff once, not 8 times:
	// after n failed requests the pause is at most base*2^(n-1).
	n := int(calls.Load())
	if until := time.Until(time.Unix(0, pl.pauseUntil.Load())); until > time.Duration(1<<n)*50*time.Millisecond {
		t.Fatalf("pause %s after %d failed requests", until, n)
	}
	down.Store(false)
	deadline = time.Now().Add(15 * time.Second)
	for acks.done() != maxDocs {
		if time.Now().After(deadline) {
			t.Fatalf("%d documents still pending after recovery", maxDocs-acks.done())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if off := acks.committable(); off != maxDocs {
		t.Fatalf("committable = %d, want %d", off, maxDocs)
	}
	if len(double.Docs("orders-x")) != maxDocs {
		t.Fatalf("%d docs indexed", len(double.Docs("orders-x")))
	}
	if err := pl.Acquire(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if err := pl.WaitGate(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestFlushActionsTriggersBulk: with byte and interval thresholds out of
// reach, FlushActions documents cause a bulk request.
func TestFlushActionsTriggersBulk(t *testing.T) {
	t.Parallel()
	double := estest.Start(t)
	c, err := es.New(es.Options{URLs: []string{double.URL()}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry(), nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pl, err := NewPipeline(c, PipelineOptions{Workers: 2, FlushActions: 10, FlushBytes: 64 << 20, FlushInterval: time.Hour,
		MaxBufferedDocs: 100, MaxBufferedBytes: 64 << 20}, m, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = pl.RunFlusher(ctx) }()
	acks := newRecAcks()
	pw := &partWriter{tp: psink.TopicPartition{Topic: "orders"}, acks: acks}
	for i := 0; i < 10; i++ {
		if err := pl.Acquire(ctx, 100); err != nil {
			t.Fatal(err)
		}
		d := &document.Doc{Index: "orders-x", ID: "id-" + strconv.Itoa(i), Action: document.ActionIndex, Version: -1, Body: []byte(`{"n":1}`)}
		if err := pl.Submit(ctx, pw, &psink.Record{Topic: "orders", Offset: int64(i)}, d, 100); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for acks.done() != 10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d documents not flushed after FlushActions were added (bulk calls: %d)", 10-acks.done(), double.BulkCalls())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(double.Docs("orders-x")) != 10 {
		t.Fatal("documents missing")
	}
}
