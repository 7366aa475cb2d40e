package alert

import (
	"context"
	"encoding/json"
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
	"unicode/utf16"
	"unicode/utf8"

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
	if !strings.Contains(bodies[1], `"text":":warning: [WARNING] r: latency_ms = 2000 \u0026gt; 1000"`) || !strings.Contains(bodies[1], `*Group*\naz=b, region=eu`) {
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

// hostile is what a producer can put into an alert: group-by values, new
// terms and topic names come from records.
const hostile = "<!channel> <!here|here> <@U024BE7LH> <http://evil.example|click here> & @here @everyone @Channel \x00\xff"

// slackTexts collects every text of a Slack payload (top-level, header,
// sections, fields, context).
func slackTexts(t *testing.T, p map[string]any) []string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Type, Text string
				Verbatim   bool
			} `json:"text"`
			Fields []struct {
				Type, Text string
				Verbatim   bool
			} `json:"fields"`
			Elements []struct {
				Type, Text string
				Verbatim   bool
			} `json:"elements"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		t.Fatal(err)
	}
	out := []string{msg.Text}
	for _, bl := range msg.Blocks {
		if bl.Text != nil {
			if bl.Text.Type == "mrkdwn" && !bl.Text.Verbatim {
				t.Errorf("%s block: mrkdwn text without verbatim", bl.Type)
			}
			out = append(out, bl.Text.Text)
		}
		for _, f := range append(bl.Fields, bl.Elements...) {
			if f.Type == "mrkdwn" && !f.Verbatim {
				t.Errorf("%s block: mrkdwn field without verbatim", bl.Type)
			}
			out = append(out, f.Text)
		}
	}
	return out
}

func TestSlackEscapesRecordData(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		alert rules.Alert
	}{
		{"group value", rules.Alert{Rule: "r", Type: "threshold", Severity: "critical", Message: "x", Group: map[string]string{"user": hostile}}},
		{"new term in the message", rules.Alert{Rule: "r", Type: "new_term", Severity: "info", Message: "new value " + hostile + " of country"}},
		{"topic", rules.Alert{Rule: "r", Type: "threshold", Severity: "warning", Message: "x", Topic: hostile}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			texts := slackTexts(t, SlackPayload(&tc.alert))
			joined := strings.Join(texts, "\n")
			for _, bad := range []string{"<!", "<@", "<http", "@here", "@everyone", "@Channel", "@channel"} {
				if strings.Contains(joined, bad) {
					t.Errorf("Slack text contains %q: %s", bad, joined)
				}
			}
			if !strings.Contains(joined, "&lt;!channel&gt;") || !strings.Contains(joined, "&lt;http://evil.example|click here&gt;") || !strings.Contains(joined, " &amp; ") {
				t.Errorf("record data not escaped as Slack asks (&amp; &lt; &gt;): %s", joined)
			}
		})
	}
}

func TestSlackTextsWithinLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("&<>é😀", 2000) // escapes grow, the emoji counts twice
	a := &rules.Alert{Rule: strings.Repeat("r", 400), Type: "new_term", Severity: "critical", Message: long, Topic: long,
		Group: map[string]string{"k": long}}
	p := SlackPayload(a)
	texts := slackTexts(t, p)
	limits := []int{slackTextMax, slackHeaderMax, slackSectionMax, slackFieldMax, slackFieldMax, slackFieldMax, slackFieldMax, 3000}
	if len(texts) != len(limits) {
		t.Fatalf("%d texts, want %d", len(texts), len(limits))
	}
	for i, s := range texts {
		n := len(utf16.Encode([]rune(s)))
		if n > limits[i] {
			t.Errorf("text %d is %d characters, limit %d", i, n, limits[i])
		}
		if i != 3 && i != 4 && i != 7 && !strings.HasSuffix(s, "…") { // rule type, value and times are short
			t.Errorf("text %d was not cut with an ellipsis: ...%s", i, s[max(0, len(s)-20):])
		}
		if strings.HasSuffix(strings.TrimSuffix(s, "…"), "&") || strings.Contains(s[max(0, len(s)-8):], "&l…") || strings.Contains(s[max(0, len(s)-8):], "&a…") {
			t.Errorf("text %d cut inside an entity: %q", i, s[max(0, len(s)-12):])
		}
	}
	short := SlackPayload(&rules.Alert{Rule: "r", Severity: "info", Message: "fine & dandy"})
	if got := slackTexts(t, short)[2]; got != "fine &amp; dandy" {
		t.Errorf("short text = %q", got)
	}
}

// TestWebhookIsJSONEncoded: record data in a webhook alert is JSON
// (escaped, invalid UTF-8 replaced) and decodes back to the same strings.
func TestWebhookIsJSONEncoded(t *testing.T) {
	t.Parallel()
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	val := "\"}],\"injected\":true,\"x\":[{\"" + hostile + "\n\u2028"
	a := &rules.Alert{Rule: "r", Type: "new_term", Message: val, Group: map[string]string{"k": val}, Topic: "t"}
	if err := (&Webhook{URL: srv.URL, HTTP: srv.Client()}).Send(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(got) {
		t.Fatalf("webhook body is not JSON: %s", got)
	}
	var back map[string]any
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if _, injected := back["injected"]; injected {
		t.Fatalf("a value broke out of its string: %s", got)
	}
	want := strings.ToValidUTF8(val, "\uFFFD")
	if back["message"] != want || back["group"].(map[string]any)["k"] != want {
		t.Fatalf("message = %q, want %q", back["message"], want)
	}
	if strings.ContainsAny(string(got), "<>") {
		t.Fatalf("< or > unescaped in webhook JSON: %s", got)
	}
}

// FuzzSlackMrkdwn: escaped texts have no < or >, every & starts one of
// the three entities, fit the limit, and unescape to the input (or, when
// cut, to a prefix of it).
func FuzzSlackMrkdwn(f *testing.F) {
	for _, s := range []string{hostile, "a&b<c>d", strings.Repeat("&", 40), "😀😀😀", "@here@channel", ""} {
		f.Add(s, 20)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 1 || max > 5000 || !utf8.ValidString(s) {
			return
		}
		out := slackMrkdwn(s, max)
		if n := len(utf16.Encode([]rune(out))); n > max {
			t.Fatalf("%d characters, limit %d", n, max)
		}
		if strings.ContainsAny(out, "<>") {
			t.Fatalf("unescaped < or > in %q", out)
		}
		for i := strings.IndexByte(out, '&'); i >= 0; i = next(out, i) {
			if !strings.HasPrefix(out[i:], "&amp;") && !strings.HasPrefix(out[i:], "&lt;") && !strings.HasPrefix(out[i:], "&gt;") {
				t.Fatalf("bare & at %d in %q", i, out)
			}
		}
		body, cut := strings.CutSuffix(out, "…")
		back := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&", "@\u2060", "@").Replace(body)
		if cut && !strings.HasSuffix(s, "…") {
			if !strings.HasPrefix(s, back) {
				t.Fatalf("cut text %q is not a prefix of %q", back, s)
			}
		} else if back != s && !(cut && back+"…" == s) {
			t.Fatalf("%q unescapes to %q", s, back)
		}
	})
}

func next(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '&')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}
