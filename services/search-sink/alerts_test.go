package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

type slackReceiver struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (s *slackReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, b)
	s.mu.Unlock()
	_, _ = io.WriteString(w, "ok") // what Slack answers
}

func (s *slackReceiver) posts() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...)
}

// TestSpikeAlertsSlackOnce: a spike in the order rate sends exactly one
// Slack message; a second spike within the re-alert interval is suppressed.
func TestSpikeAlertsSlackOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	slack := &slackReceiver{}
	hook := httptest.NewServer(slack)
	t.Cleanup(hook.Close)
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(`
defaults:
  allowed_lateness: 5s
rules:
  - name: order-spike
    topic: orders
    type: spike
    window: 1m
    factor: 3
    group_by: [region]
    realert: 30m
    severity: critical
`), 0o600); err != nil {
		t.Fatal(err)
	}
	// Per minute: 5,5,5,5,5, 30 (spike), 5, 30 (spike again: suppressed), 5, then one record to close the windows.
	perMinute := []int{5, 5, 5, 5, 5, 30, 5, 30, 5, 1}
	var msgs []kafkago.Message
	i := 0
	for m, n := range perMinute {
		for k := 0; k < n; k++ {
			at := day0.Add(time.Duration(m)*time.Minute + time.Duration(k)*time.Minute/time.Duration(n))
			msgs = append(msgs, kafkago.Message{Value: e.order(t, i, "eu", 100), Time: at})
			i++
		}
	}
	ctx := kafkatest.Context(t, 60*time.Second)
	if err := e.w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	admin := freeAddr(t)
	args := e.args(t, "-search-sink-group-id", "alerts", "-search-sink-rules-file", rulesFile,
		"-search-sink-slack-webhook-url", hook.URL, "-search-sink-admin-addr", admin)
	startSink(t, args)
	eventually(t, 30*time.Second, "every record indexed", func() bool {
		return len(e.docs(dayIndex("orders", 0), dayIndex("orders", 1))) == len(msgs)
	})
	// Every record has been observed (rules run before indexing); wait for
	// the fired and suppressed counters and the deliveries.
	eventually(t, 10*time.Second, "suppressed alert counted", func() bool {
		return strings.HasSuffix(metric(t, admin, `sluice_searchsink_alerts_suppressed_total{rule="order-spike"}`), " 1")
	})
	eventually(t, 10*time.Second, "deliveries", func() bool {
		return strings.HasSuffix(metric(t, admin, `sluice_searchsink_alert_deliveries_total{destination="slack"}`), " 1") &&
			strings.HasSuffix(metric(t, admin, `sluice_searchsink_alert_deliveries_total{destination="index"}`), " 1") &&
			strings.HasSuffix(metric(t, admin, `sluice_searchsink_alert_deliveries_total{destination="kafka"}`), " 1")
	})
	if got := metric(t, admin, `sluice_searchsink_alerts_fired_total{rule="order-spike"}`); !strings.HasSuffix(got, " 1") {
		t.Fatalf("fired = %q, want 1", got)
	}
	posts := slack.posts()
	if len(posts) != 1 {
		t.Fatalf("slack got %d posts, want exactly 1: %s", len(posts), posts)
	}
	var p struct {
		Text   string           `json:"text"`
		Blocks []map[string]any `json:"blocks"`
	}
	if err := json.Unmarshal(posts[0], &p); err != nil {
		t.Fatalf("slack payload %s: %v", posts[0], err)
	}
	wantText := ":rotating_light: [CRITICAL] order-spike: spike: count = 30 vs reference 5 (factor 3) over 1m0s"
	if p.Text != wantText {
		t.Fatalf("text = %q, want %q", p.Text, wantText)
	}
	if len(p.Blocks) != 4 || p.Blocks[0]["type"] != "header" || p.Blocks[1]["type"] != "section" || p.Blocks[3]["type"] != "context" {
		t.Fatalf("blocks = %v", p.Blocks)
	}
	fields, _ := json.Marshal(p.Blocks[2]["fields"])
	for _, want := range []string{`*Rule type*\nspike`, `*Value*\n30`, `*Topic*\norders`, `*Group*\nregion=eu`} {
		if !strings.Contains(string(fields), want) {
			t.Errorf("fields %s lack %q", fields, want)
		}
	}
	ctxText := fmt.Sprint(p.Blocks[3]["elements"])
	if want := "window " + day0.Add(5*time.Minute).Format(time.RFC3339) + " – " + day0.Add(6*time.Minute).Format(time.RFC3339); !strings.Contains(ctxText, want) {
		t.Errorf("context = %s", ctxText)
	}
	// The same alert went to the alerts index and the alerts topic.
	alerts := e.es.Docs("sluice-alerts")
	if len(alerts) != 1 {
		t.Fatalf("alerts index has %d docs", len(alerts))
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: e.kc.Brokers(), Topic: "_sluice-alerts", MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]any
	if err := json.Unmarshal(m.Value, &a); err != nil || a["rule"] != "order-spike" || a["value"] != 30.0 || string(m.Key) != "order-spike|eu" {
		t.Fatalf("alerts topic record %s key %s: %v", m.Value, m.Key, err)
	}
	// The alerts topic is not indexed as data.
	for _, req := range e.es.Requests() {
		if strings.HasSuffix(req.Path, "/_bulk") && strings.Contains(string(req.Body), `"topic":"_sluice-alerts"`) {
			t.Fatal("alerts topic was indexed as a data topic")
		}
	}
}
