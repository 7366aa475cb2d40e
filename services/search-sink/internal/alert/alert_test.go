package alert

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/services/search-sink/internal/rules"
)

type flaky struct {
	name  string
	fails int32
	calls atomic.Int32
	block chan struct{}
	mu    sync.Mutex
	got   []string
}

func (f *flaky) Name() string { return f.name }
func (f *flaky) Send(ctx context.Context, a *rules.Alert) error {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.calls.Add(1) <= f.fails {
		return errors.New("HTTP 500")
	}
	f.mu.Lock()
	f.got = append(f.got, a.Rule)
	f.mu.Unlock()
	return nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeliveryRetriesAndCountsFailures(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	ok := &flaky{name: "webhook", fails: 2}
	bad := &flaky{name: "slack", fails: 1000}
	d := NewDispatcher([]Notifier{ok, bad}, 3, time.Millisecond, m, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	d.Emit(rules.Alert{Rule: "r1"})
	d.Emit(rules.Alert{Rule: "only-webhook", Notify: []string{"webhook"}})
	waitFor(t, "deliveries", func() bool {
		return testutil.ToFloat64(m.Delivered.WithLabelValues("webhook")) == 2 && testutil.ToFloat64(m.Failures.WithLabelValues("slack")) == 1
	})
	if c := bad.calls.Load(); c != 3 {
		t.Fatalf("slack attempts = %d, want 3", c)
	}
	if ok.calls.Load() != 4 { // 2 failures + 2 successes
		t.Fatalf("webhook attempts = %d", ok.calls.Load())
	}
	cancel()
	<-done
}

func TestEmitNeverBlocks(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	stuck := &flaky{name: "webhook", block: make(chan struct{})}
	d := NewDispatcher([]Notifier{stuck}, 1, time.Millisecond, m, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = d.Run(ctx) }()
	start := time.Now()
	for i := 0; i < 5000; i++ { // far more than the queue holds
		d.Emit(rules.Alert{Rule: "flood"})
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("Emit blocked on a stuck destination")
	}
	if f := testutil.ToFloat64(m.Failures.WithLabelValues("webhook")); f < 5000-1025 {
		t.Fatalf("dropped alerts counted = %v", f)
	}
	close(stuck.block)
}

func TestSlackAndWebhookHTTP(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	status := http.StatusInternalServerError
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, string(b))
		if r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "no_service")
	}))
	defer srv.Close()
	a := &rules.Alert{Rule: "r", Type: "threshold", Severity: "warning", Message: "latency_ms = 2000 > 1000", Value: 2000,
		Group: map[string]string{"region": "eu", "az": "b"}, RecordTime: time.Unix(0, 0).UTC(), FiredAt: time.Unix(60, 0).UTC()}
	s := &Slack{URL: srv.URL, HTTP: srv.Client()}
	if err := s.Send(context.Background(), a); err == nil || !strings.Contains(err.Error(), "HTTP 500: no_service") {
		t.Fatalf("slack error = %v", err)
	}
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	if err := s.Send(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	w := &Webhook{URL: srv.URL, HTTP: srv.Client()}
	if err := w.Send(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(bodies[1], `"text":":warning: [WARNING] r: latency_ms = 2000 \u003e 1000"`) || !strings.Contains(bodies[1], `*Group*\naz=b, region=eu`) {
		t.Fatalf("slack body = %s", bodies[1])
	}
	if !strings.Contains(bodies[2], `"rule":"r"`) || !strings.Contains(bodies[2], `"group":{"az":"b","region":"eu"}`) || strings.Contains(bodies[2], "window_start") {
		t.Fatalf("webhook body = %s", bodies[2])
	}
}

func TestDeliveryErrorDoesNotLeakURL(t *testing.T) {
	t.Parallel()
	s := &Slack{URL: "http://127.0.0.1:1/services/T0/B0/SECRETTOKEN", HTTP: &http.Client{Timeout: time.Second}}
	err := s.Send(context.Background(), &rules.Alert{Rule: "r"})
	if err == nil || strings.Contains(err.Error(), "SECRETTOKEN") {
		t.Fatalf("err = %v", err)
	}
}
