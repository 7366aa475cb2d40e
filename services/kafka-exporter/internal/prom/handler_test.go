package prom

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"
)

// TestHandlerStaleness: Kafka metrics are served from a fresh snapshot and
// withheld from one older than MaxAge; the process registry always is.
func TestHandlerStaleness(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	snap := snapshotWith("orders", "g")
	snap.Time = now.Add(-time.Minute)
	snap.Rendered, snap.Gzipped = Render(snap)
	reg := prometheus.NewRegistry()
	up := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_exporter_up", Help: "x"})
	reg.MustRegister(up)
	for _, tc := range []struct {
		name   string
		maxAge time.Duration
		kafka  bool
	}{{"fresh", 2 * time.Minute, true}, {"stale", 30 * time.Second, false}, {"no limit", 0, true}} {
		h := &Handler{Snapshot: func() *collector.Snapshot { return snap }, Gatherer: reg, MaxAge: tc.maxAge, Now: func() time.Time { return now }}
		srv := httptest.NewServer(h)
		res, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		srv.Close()
		body := string(b)
		if got := strings.Contains(body, "kafka_brokers 1"); got != tc.kafka {
			t.Errorf("%s: kafka metrics served = %v, want %v", tc.name, got, tc.kafka)
		}
		if !strings.Contains(body, "sluice_exporter_up 0") {
			t.Errorf("%s: registry metrics missing", tc.name)
		}
	}
}
