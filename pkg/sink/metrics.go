package sink

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/service"
)

// Metrics are the runtime's series, the same names and meanings for every
// sink: sluice_sink_* with a constant label sink="<name>". Topic labels go
// through a service.LabelLimit (topics past the bound are "_other").
type Metrics struct {
	labels        *service.LabelLimit
	labelOverflow prometheus.Counter

	recordsIn    *prometheus.CounterVec
	written      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	dlqTruncated *prometheus.CounterVec
	freshness    *prometheus.HistogramVec
	commitSecs   prometheus.Histogram
	commits      prometheus.Counter
	commitErrors prometheus.Counter
	generations  prometheus.Counter
	retries      *prometheus.CounterVec
	replays      *prometheus.CounterVec
	parked       *prometheus.GaugeVec
	parks        *prometheus.CounterVec

	mu    sync.Mutex
	parts map[TopicPartition]*partState
	now   func() time.Time
}

// FreshnessBuckets are the freshness histogram's buckets (seconds): from
// sub-second pipelines to a day behind.
var FreshnessBuckets = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400}

// NewMetrics registers the runtime's metrics for the sink named sink on
// reg; at most topicLabels distinct topics get their own label value.
func NewMetrics(reg prometheus.Registerer, sink string, topicLabels int) *Metrics {
	cl := prometheus.Labels{"sink": sink}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_" + name, Help: help, ConstLabels: cl}, labels)
	}
	m := &Metrics{
		labelOverflow: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_sink_topic_label_overflow_total", ConstLabels: cl,
			Help: "Metric updates for topics past the sink's topic label limit, reported with topic=\"_other\"."}),
		recordsIn:    counter("records_in_total", "Records fetched from Kafka (a replay fetches records again).", "topic"),
		written:      counter("records_written_total", "Records the destination reported durable.", "topic"),
		deadLettered: counter("records_dead_lettered_total", "Records written to <topic>.dlq (acknowledged by all in-sync replicas).", "topic"),
		skipped:      counter("records_skipped_total", "Records passed over on purpose (e.g. tombstones the configuration ignores).", "topic"),
		dlqTruncated: counter("dead_letters_truncated_total", "Dead letters cut to the sink's DLQ max bytes (headers sluice-original-size and sluice-truncated).", "topic"),
		freshness: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_sink_freshness_seconds", ConstLabels: cl,
			Help:    "End-to-end freshness: the time a record became durable in the destination minus its record timestamp.",
			Buckets: FreshnessBuckets}, []string{"topic"}),
		commitSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_sink_commit_duration_seconds", ConstLabels: cl,
			Help: "Latency of offset commits.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_sink_offset_commits_total", ConstLabels: cl,
			Help: "Offset commits the group coordinator accepted."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_sink_offset_commit_errors_total", ConstLabels: cl,
			Help: "Offset commits that failed (usually a revoked partition)."}),
		generations: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_sink_generations_total", ConstLabels: cl,
			Help: "Consumer group generations joined (rebalances)."}),
		retries: counter("retries_total", "Transient failures retried, by reason.", "topic", "reason"),
		replays: counter("partition_replays_total", "Partitions replayed from their committed offset after a failure.", "topic"),
		parks:   counter("topic_parks_total", "Times a topic was parked, by reason.", "topic", "reason"),
		parked: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_sink_topics_parked", ConstLabels: cl,
			Help: "Topics parked now (stopped after a failure retrying soon cannot fix, retried with backoff while every other topic flows)."}, []string{"topic"}),
		parts: map[TopicPartition]*partState{},
		now:   time.Now,
	}
	m.labels = service.NewLabelLimit(topicLabels, m.labelOverflow)
	reg.MustRegister(m.labelOverflow, m.recordsIn, m.written, m.deadLettered, m.skipped, m.dlqTruncated, m.freshness,
		m.commitSecs, m.commits, m.commitErrors, m.generations, m.retries, m.replays, m.parks, m.parked,
		lagCollector{m: m, records: prometheus.NewDesc("sluice_sink_lag_records",
			"Records in the partition not yet committed (high watermark minus committed offset).", []string{"topic", "partition"}, cl),
			seconds: prometheus.NewDesc("sluice_sink_lag_seconds",
				"Age (now minus record timestamp) of the first record not yet committed; 0 when caught up.", []string{"topic", "partition"}, cl),
			unread: prometheus.NewDesc("sluice_sink_unread_records",
				"Records in the partition not fetched yet (high watermark minus the fetch position).", []string{"topic", "partition"}, cl)})
	return m
}

// TopicLabel is the label value for topic (bounded by the label limit);
// sinks use it for their own per-topic metrics.
func (m *Metrics) TopicLabel(topic string) string { return m.labels.Value(topic) }

// partState is what the lag collector reads of an owned partition.
type partState struct {
	label     string
	t         *tracker
	mu        sync.Mutex
	highWater int64
	read      int64 // offset after the last record fetched
	committed int64
}

func (m *Metrics) track(tp TopicPartition, label string, t *tracker) *partState {
	ps := &partState{label: label, t: t, highWater: -1, read: -1, committed: -1}
	m.mu.Lock()
	m.parts[tp] = ps
	m.mu.Unlock()
	return ps
}

func (m *Metrics) untrack(tp TopicPartition, ps *partState) {
	m.mu.Lock()
	if m.parts[tp] == ps {
		delete(m.parts, tp)
	}
	m.mu.Unlock()
}

// lagCollector reports lag for the partitions this process owns now.
type lagCollector struct {
	m                        *Metrics
	records, seconds, unread *prometheus.Desc
}

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.records
	ch <- c.seconds
	ch <- c.unread
}

// Collect reports every owned partition; partitions of topics past the
// label limit are summed (records) or maxed (seconds) into one
// topic="_other", partition="_other" series each.
func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	parts := make(map[TopicPartition]*partState, len(c.m.parts))
	for k, v := range c.m.parts {
		parts[k] = v
	}
	now := c.m.now()
	c.m.mu.Unlock()
	var otherLag, otherSecs, otherUnread float64
	other := false
	for tp, ps := range parts {
		ps.mu.Lock()
		hw, read, committed := ps.highWater, ps.read, ps.committed
		ps.mu.Unlock()
		if hw < 0 || committed < 0 {
			continue
		}
		unread := float64(max(hw-read, 0))
		lag := float64(max(hw-committed, 0))
		secs := 0.0
		if lag > 0 {
			if ts, _ := ps.t.oldestPending(); !ts.IsZero() {
				secs = max(now.Sub(ts).Seconds(), 0)
			}
		}
		if ps.label == service.OtherLabel {
			otherLag += lag
			otherSecs = max(otherSecs, secs)
			otherUnread += unread
			other = true
			continue
		}
		p := strconv.Itoa(tp.Partition)
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, lag, ps.label, p)
		ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, secs, ps.label, p)
		ch <- prometheus.MustNewConstMetric(c.unread, prometheus.GaugeValue, unread, ps.label, p)
	}
	if other {
		o := service.OtherLabel
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, otherLag, o, o)
		ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, otherSecs, o, o)
		ch <- prometheus.MustNewConstMetric(c.unread, prometheus.GaugeValue, otherUnread, o, o)
	}
}
