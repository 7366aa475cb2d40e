// Package alert delivers fired rules to Slack incoming webhooks, generic
// JSON webhooks, a Kafka topic and an alerts index, each from its own
// bounded queue with retries, so delivery never blocks indexing.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/services/search-sink/internal/rules"
)

// Notifier delivers one alert to one destination.
type Notifier interface {
	Name() string // slack, webhook, kafka, index
	Send(ctx context.Context, a *rules.Alert) error
}

// Metrics count deliveries.
type Metrics struct {
	Fired      *prometheus.CounterVec // by rule
	Suppressed *prometheus.CounterVec // by rule
	Late       *prometheus.CounterVec // by rule
	Delivered  *prometheus.CounterVec // by destination
	Failures   *prometheus.CounterVec // by destination
	Dropped    *prometheus.CounterVec // rule state not remembered, by rule and kind
	Cut        *prometheus.CounterVec // group-by values and terms cut, by rule
}

// NewMetrics registers alerting metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Fired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_alerts_fired_total",
			Help: "Alerts fired (after de-duplication), by rule."}, []string{"rule"}),
		Suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_alerts_suppressed_total",
			Help: "Alerts suppressed by the re-alert interval, by rule."}, []string{"rule"}),
		Late: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_rule_late_records_total",
			Help: "Records that arrived after their window closed (beyond allowed lateness), by rule."}, []string{"rule"}),
		Delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_alert_deliveries_total",
			Help: "Alerts delivered, by destination."}, []string{"destination"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_alert_delivery_failures_total",
			Help: "Alerts given up on after all retries or dropped because the queue was full, by destination."}, []string{"destination"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_rule_state_dropped_total",
			Help: "Rule state not remembered because max_keys or SEARCH_SINK_RULES_MAX_STATE_BYTES was reached, by rule and kind (series, term, value, dedup)."}, []string{"rule", "kind"}),
		Cut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_rule_values_cut_total",
			Help: "Group-by values and terms longer than SEARCH_SINK_RULES_MAX_TERM_BYTES, cut to it (ending with ~ and a hash), by rule."}, []string{"rule"}),
	}
	reg.MustRegister(m.Fired, m.Suppressed, m.Late, m.Delivered, m.Failures, m.Dropped, m.Cut)
	return m
}

// Stats adapts the metrics to rules.Stats.
func (m *Metrics) Stats() rules.Stats { return stats{m} }

type stats struct{ m *Metrics }

func (s stats) Fired(rule string)      { s.m.Fired.WithLabelValues(rule).Inc() }
func (s stats) Suppressed(rule string) { s.m.Suppressed.WithLabelValues(rule).Inc() }
func (s stats) Late(rule string)       { s.m.Late.WithLabelValues(rule).Inc() }
func (s stats) Cut(rule string)        { s.m.Cut.WithLabelValues(rule).Inc() }
func (s stats) Dropped(rule, kind string) {
	s.m.Dropped.WithLabelValues(rule, kind).Inc()
}

// Stats returns the rules.Stats that count into the dispatcher's metrics.
func (d *Dispatcher) Stats() rules.Stats { return d.m.Stats() }

// Destinations returns the number of configured destinations.
func (d *Dispatcher) Destinations() int { return len(d.dests) }

// ParkedRule names the alerts the sink sends about its own parked topics.
const ParkedRule = "sluice-topic-parked"

// Parked is the alert for a topic the sink parked: its records wait (not
// lost, offsets not committed) while every other topic keeps flowing.
func Parked(topic, kind, reason string, at, retryAt time.Time) rules.Alert {
	sev := "critical"
	if kind == "index_budget" {
		sev = "warning" // throttled, not broken
	}
	return rules.Alert{Rule: ParkedRule, Type: "parked", Severity: sev, Topic: topic, Key: topic, Value: 1,
		Message: fmt.Sprintf("topic %s is parked (%s): %s. Its records wait and are consumed again when it is released; every other topic keeps flowing. Next retry at %s.",
			topic, kind, reason, retryAt.UTC().Format(time.RFC3339)),
		RecordTime: at.UTC(), FiredAt: at.UTC()}
}

// Dispatcher fans alerts out to notifiers.
type Dispatcher struct {
	dests    []*dest
	m        *Metrics
	log      *slog.Logger
	attempts int
	base     time.Duration
}

type dest struct {
	n Notifier
	q chan *rules.Alert
}

// NewDispatcher builds a dispatcher; attempts is per alert and destination.
func NewDispatcher(ns []Notifier, attempts int, base time.Duration, m *Metrics, log *slog.Logger) *Dispatcher {
	d := &Dispatcher{m: m, log: log, attempts: attempts, base: base}
	for _, n := range ns {
		d.dests = append(d.dests, &dest{n: n, q: make(chan *rules.Alert, 1024)})
		m.Failures.WithLabelValues(n.Name())
		m.Delivered.WithLabelValues(n.Name())
	}
	return d
}

// Emit queues a for every destination the alert's rule wants (all when it
// names none). It never blocks: a full queue drops and counts a failure.
func (d *Dispatcher) Emit(a rules.Alert) {
	for _, ds := range d.dests {
		if len(a.Notify) > 0 && !contains(a.Notify, ds.n.Name()) {
			continue
		}
		select {
		case ds.q <- &a:
		default:
			d.m.Failures.WithLabelValues(ds.n.Name()).Inc()
			d.log.Error("alert queue full, dropping alert", "destination", ds.n.Name(), "rule", a.Rule)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Run delivers until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	done := make(chan struct{})
	for _, ds := range d.dests {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-ctx.Done():
					return
				case a := <-ds.q:
					d.deliver(ctx, ds.n, a)
				}
			}
		}()
	}
	for range d.dests {
		<-done
	}
	return nil
}

func (d *Dispatcher) deliver(ctx context.Context, n Notifier, a *rules.Alert) {
	attempts := 0
	policy := backoff.Policy{Base: d.base, Max: 30 * time.Second, Attempts: d.attempts}
	err := policy.Retry(ctx, func(ctx context.Context) error {
		attempts++
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return n.Send(sctx, a)
	}, nil)
	if err == nil {
		d.m.Delivered.WithLabelValues(n.Name()).Inc()
		return
	}
	d.m.Failures.WithLabelValues(n.Name()).Inc()
	if ctx.Err() == nil {
		d.log.Error("alert delivery failed", "destination", n.Name(), "rule", a.Rule, "attempts", attempts, "err", err)
	}
}

func postJSON(ctx context.Context, hc *http.Client, url string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding alert: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		// *url.Error carries the URL, which is a secret for Slack: keep only
		// the operation and the cause.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("posting alert: %s: %w", ue.Op, ue.Err)
		}
		return fmt.Errorf("posting alert: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode >= 300 {
		return fmt.Errorf("alert webhook answered HTTP %d: %s", res.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// Slack posts to an incoming webhook with text (notification fallback)
// and Block Kit blocks.
type Slack struct {
	URL  string
	HTTP *http.Client
}

// Name implements Notifier.
func (s *Slack) Name() string { return "slack" }

// Send implements Notifier.
func (s *Slack) Send(ctx context.Context, a *rules.Alert) error {
	return postJSON(ctx, s.HTTP, s.URL, SlackPayload(a))
}

var severityEmoji = map[string]string{"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}

// Slack's limits, in characters: longer texts are cut with an ellipsis
// (Slack refuses a message whose header exceeds 150 or section text 3000).
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
	slackFieldMax   = 2000
	slackTextMax    = 3000 // the notification text (Slack cuts messages after 40,000)
)

// SlackPayload renders an alert as a Slack message. Everything that comes
// from records (topic, group values, terms in the message) is escaped as
// Slack asks (&, <, > as HTML entities, so no <!channel>, <@U...> or
// <http://evil|click> survives), mrkdwn texts are verbatim (no automatic
// mentions or links), and each text is cut to Slack's limit.
func SlackPayload(a *rules.Alert) map[string]any {
	title := slackPlain(fmt.Sprintf("%s [%s] %s", severityEmoji[a.Severity], strings.ToUpper(a.Severity), a.Rule), slackHeaderMax)
	text := slackMrkdwn(fmt.Sprintf("%s [%s] %s: %s", severityEmoji[a.Severity], strings.ToUpper(a.Severity), a.Rule, a.Message), slackTextMax)
	md := func(s string) map[string]any {
		return map[string]any{"type": "mrkdwn", "text": s, "verbatim": true}
	}
	fields := []any{
		md("*Rule type*\n" + slackMrkdwn(a.Type, slackFieldMax-12)),
		md(fmt.Sprintf("*Value*\n%g", a.Value)),
	}
	if a.Topic != "" {
		fields = append(fields, md("*Topic*\n"+slackMrkdwn(a.Topic, slackFieldMax-10)))
	}
	if len(a.Group) > 0 {
		keys := make([]string, 0, len(a.Group))
		for k := range a.Group {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + a.Group[k]
		}
		fields = append(fields, md("*Group*\n"+slackMrkdwn(strings.Join(parts, ", "), slackFieldMax-10)))
	}
	when := "record time " + a.RecordTime.Format(time.RFC3339)
	if !a.WindowStart.IsZero() {
		when = "window " + a.WindowStart.Format(time.RFC3339) + " – " + a.WindowEnd.Format(time.RFC3339)
	}
	return map[string]any{
		"text": text,
		"blocks": []any{
			map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": title, "emoji": true}},
			map[string]any{"type": "section", "text": md(slackMrkdwn(a.Message, slackSectionMax))},
			map[string]any{"type": "section", "fields": fields},
			map[string]any{"type": "context", "elements": []any{md(when + " · fired " + a.FiredAt.Format(time.RFC3339))}},
		},
	}
}

// slackMrkdwn escapes s for a Slack mrkdwn (or the top-level text) field
// and cuts it to max characters (UTF-16 code units, as Slack counts),
// ending with "…" when cut; an entity is never split. @channel, @here and
// @everyone get a word joiner after the @ so they cannot notify anyone
// even where Slack parses bare mentions.
func slackMrkdwn(s string, max int) string {
	return slackCut(s, max, true)
}

// slackPlain cuts s for a plain_text field (no entities there).
func slackPlain(s string, max int) string {
	return slackCut(s, max, false)
}

func slackCut(s string, max int, escape bool) string {
	var b strings.Builder
	cut, n := -1, 0 // length of b (bytes) and width when the ellipsis still fits
	for i, r := range s {
		piece := string(r)
		if escape {
			switch r {
			case '&':
				piece = "&amp;"
			case '<':
				piece = "&lt;"
			case '>':
				piece = "&gt;"
			case '@':
				rest := strings.ToLower(s[i+1:])
				if strings.HasPrefix(rest, "channel") || strings.HasPrefix(rest, "here") || strings.HasPrefix(rest, "everyone") {
					piece = "@\u2060"
				}
			}
		}
		w := 0
		for _, pr := range piece {
			w += utf16.RuneLen(pr)
		}
		if n+w > max-1 && cut < 0 {
			cut = b.Len() // the last place an ellipsis (1 character) fits
		}
		if n+w > max {
			return b.String()[:cut] + "…"
		}
		b.WriteString(piece)
		n += w
	}
	return b.String()
}

// Webhook posts the alert as JSON.
type Webhook struct {
	URL  string
	HTTP *http.Client
}

// Name implements Notifier.
func (w *Webhook) Name() string { return "webhook" }

// Send implements Notifier.
func (w *Webhook) Send(ctx context.Context, a *rules.Alert) error {
	return postJSON(ctx, w.HTTP, w.URL, a)
}

// Kafka produces the alert as JSON to a topic, keyed by rule and key.
type Kafka struct {
	Topic  string
	Writer interface {
		WriteMessages(ctx context.Context, msgs ...kafkago.Message) error
	}
}

// Name implements Notifier.
func (k *Kafka) Name() string { return "kafka" }

// Send implements Notifier.
func (k *Kafka) Send(ctx context.Context, a *rules.Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encoding alert: %w", err)
	}
	if err := k.Writer.WriteMessages(ctx, kafkago.Message{Topic: k.Topic, Key: []byte(a.Rule + "|" + a.Key), Value: b, Time: a.FiredAt}); err != nil {
		return fmt.Errorf("producing alert to %s: %w", k.Topic, err)
	}
	return nil
}

// Index writes the alert into an index with a stable id (rule, key, time),
// so a re-delivery overwrites rather than duplicates.
type Index struct {
	Index     string
	Transport interface {
		Perform(*http.Request) (*http.Response, error)
	}
}

// Name implements Notifier.
func (x *Index) Name() string { return "index" }

// Send implements Notifier.
func (x *Index) Send(ctx context.Context, a *rules.Alert) error {
	doc := map[string]any{}
	b, _ := json.Marshal(a)
	_ = json.Unmarshal(b, &doc)
	doc["@timestamp"] = a.RecordTime
	src, _ := json.Marshal(doc)
	meta, _ := json.Marshal(map[string]any{"index": map[string]any{"_index": x.Index, "_id": a.ID()}})
	body := append(append(append(meta, '\n'), src...), '\n')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/_bulk", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := x.Transport.Perform(req)
	if err != nil {
		return fmt.Errorf("indexing alert: %w", err)
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if res.StatusCode >= 300 {
		return fmt.Errorf("indexing alert: HTTP %d: %s", res.StatusCode, rb)
	}
	var out struct {
		Errors bool `json:"errors"`
	}
	if json.Unmarshal(rb, &out) == nil && out.Errors {
		return fmt.Errorf("indexing alert: item failed: %s", rb)
	}
	return nil
}
