package sink

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/service"
)

// MaxReasonLabels bounds the distinct reason label values of
// sluice_searchsink_docs_failed_total (Elasticsearch error types).
const MaxReasonLabels = 64

// Metrics are the sink's Prometheus collectors. Every topic label goes
// through one service.LabelLimit (SEARCH_SINK_MAX_TOPIC_LABELS): topics are
// producer-influenced (a wildcard API key creates them), so after the
// first N distinct topics the rest are reported as "_other".
type Metrics struct {
	Indexed        *prometheus.CounterVec // topic
	Duplicates     prometheus.Counter
	Failed         *prometheus.CounterVec // topic, reason
	DLQ            *prometheus.CounterVec // topic
	DLQTruncated   *prometheus.CounterVec // topic
	Refused        *prometheus.CounterVec // topic, reason
	Parked         *prometheus.GaugeVec   // topic
	Parks          *prometheus.CounterVec // topic, reason
	NewIndices     *prometheus.CounterVec // topic
	TemplateErrors *prometheus.CounterVec // topic
	Bulk           prometheus.Histogram
	Buffered       prometheus.Gauge
	LagRecords     *prometheus.GaugeVec // topic, partition
	LagSeconds     *prometheus.GaugeVec // topic, partition
	Commits        prometheus.Counter
	Retries        *prometheus.CounterVec // by kind (item, request)
	LabelOverflow  prometheus.Counter

	topics  *service.LabelLimit
	reasons *service.LabelLimit
}

// NewMetrics registers the sink collectors on reg; at most maxTopics
// distinct topics appear in labels (<= 0: unbounded).
func NewMetrics(reg prometheus.Registerer, maxTopics int) *Metrics {
	m := &Metrics{
		Indexed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_docs_indexed_total",
			Help: "Documents acknowledged by the search cluster, by source topic."}, []string{"topic"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_searchsink_docs_duplicate_total",
			Help: "Bulk items answered 409 version_conflict_engine_exception (already present from an earlier delivery, or a newer external version): counted as done."}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_docs_failed_total",
			Help: "Failed document attempts by topic and reason (request, rejected and server_error are retried; decode and Elasticsearch error types go to the DLQ)."}, []string{"topic", "reason"}),
		DLQ: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_dlq_records_total",
			Help: "Records written to <topic>.dlq, by source topic."}, []string{"topic"}),
		DLQTruncated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_dlq_truncated_total",
			Help: "Dead letters cut to SEARCH_SINK_DLQ_MAX_BYTES (headers sluice-original-size and sluice-truncated say what was cut), by source topic."}, []string{"topic"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_records_refused_total",
			Help: "Records dead-lettered before indexing because they are outside a limit, by topic and reason (no_timestamp, too_old, too_new, document_too_large)."}, []string{"topic", "reason"}),
		Parked: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_searchsink_topics_parked",
			Help: "Topics parked now (consumption paused for them alone), by topic."}, []string{"topic"}),
		Parks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_topic_parks_total",
			Help: "Times a topic was parked, by topic and reason (template, retries_exhausted, index_budget, name_collision, dead_letter)."}, []string{"topic", "reason"}),
		NewIndices: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_new_indices_total",
			Help: "New indices admitted (counted against SEARCH_SINK_MAX_NEW_INDICES_PER_HOUR), by topic."}, []string{"topic"}),
		TemplateErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_template_failures_total",
			Help: "Failed index template installations, by topic (the first one parks the topic; a failed refresh after a schema change keeps the installed template)."}, []string{"topic"}),
		Bulk: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_searchsink_bulk_duration_seconds",
			Help: "Latency of bulk requests.", Buckets: prometheus.ExponentialBuckets(0.002, 2, 14)}),
		Buffered: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_searchsink_buffered_docs",
			Help: "Documents fetched and not yet acknowledged (bounded by SEARCH_SINK_MAX_BUFFERED_DOCS)."}),
		LagRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_searchsink_lag_records",
			Help: "Records between the partition's high watermark and the next record to fetch (topics beyond SEARCH_SINK_MAX_TOPIC_LABELS are not reported)."}, []string{"topic", "partition"}),
		LagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_searchsink_lag_seconds",
			Help: "Age of the last fetched record when the partition is behind (0 when caught up)."}, []string{"topic", "partition"}),
		Commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_searchsink_offset_commits_total",
			Help: "Successful offset commits."}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_retries_total",
			Help: "Bulk retries scheduled, by kind (item: 429/5xx item; request: whole bulk request failed)."}, []string{"kind"}),
		LabelOverflow: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_searchsink_metric_label_overflow_total",
			Help: "Label values reported as _other because SEARCH_SINK_MAX_TOPIC_LABELS topics (or 64 error reasons) were already in use."}),
	}
	m.topics = service.NewLabelLimit(maxTopics, m.LabelOverflow)
	m.reasons = service.NewLabelLimit(MaxReasonLabels, m.LabelOverflow)
	reg.MustRegister(m.Indexed, m.Duplicates, m.Failed, m.DLQ, m.DLQTruncated, m.Refused, m.Parked, m.Parks, m.NewIndices,
		m.TemplateErrors, m.Bulk, m.Buffered, m.LagRecords, m.LagSeconds, m.Commits, m.Retries, m.LabelOverflow)
	return m
}

// topicLabel returns the label value to use for topic.
func (m *Metrics) topicLabel(topic string) string { return m.topics.Value(topic) }

// TopicLabel is topicLabel for other packages of the service.
func (m *Metrics) TopicLabel(topic string) string { return m.topicLabel(topic) }

// failed counts a failed attempt.
func (m *Metrics) failed(topic, reason string) {
	m.Failed.WithLabelValues(m.topicLabel(topic), m.reasons.Value(reason)).Inc()
}
