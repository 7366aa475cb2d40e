package sink

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/service"
)

// MaxReasonLabels bounds the distinct reason label values of
// sluice_searchsink_docs_failed_total (Elasticsearch error types).
const MaxReasonLabels = 64

// Metrics are the search-specific Prometheus collectors; records in,
// written, dead-lettered, lag, commits and parks are the runtime's
// (pkg/sink: sluice_sink_*{sink="search"}). Topic labels go through the
// runtime's label limit (SEARCH_SINK_MAX_TOPIC_LABELS).
type Metrics struct {
	Duplicates     prometheus.Counter
	Failed         *prometheus.CounterVec // topic, reason
	Refused        *prometheus.CounterVec // topic, reason
	NewIndices     *prometheus.CounterVec // topic
	TemplateErrors *prometheus.CounterVec // topic
	Bulk           prometheus.Histogram
	Buffered       prometheus.Gauge
	Retries        *prometheus.CounterVec // by kind (item, request, isolate)
	LabelOverflow  prometheus.Counter

	topics  func(topic string) string
	reasons *service.LabelLimit
}

// NewMetrics registers the search collectors on reg; topicLabel bounds
// topic label values (the runtime's Metrics.TopicLabel; nil: as is).
func NewMetrics(reg prometheus.Registerer, topicLabel func(topic string) string) *Metrics {
	if topicLabel == nil {
		topicLabel = func(t string) string { return t }
	}
	m := &Metrics{
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_searchsink_docs_duplicate_total",
			Help: "Bulk items answered 409 version_conflict_engine_exception (already present from an earlier delivery, or a newer external version): counted as done."}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_docs_failed_total",
			Help: "Failed document attempts by topic and reason (request, rejected and server_error are retried; decode and Elasticsearch error types go to the DLQ)."}, []string{"topic", "reason"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_records_refused_total",
			Help: "Records dead-lettered before indexing because they are outside a limit, by topic and reason (no_timestamp, too_old, too_new, document_too_large)."}, []string{"topic", "reason"}),
		NewIndices: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_new_indices_total",
			Help: "New indices admitted (counted against SEARCH_SINK_MAX_NEW_INDICES_PER_HOUR), by topic."}, []string{"topic"}),
		TemplateErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_template_failures_total",
			Help: "Failed index template installations, by topic (the first one parks the topic; a failed refresh after a schema change keeps the installed template)."}, []string{"topic"}),
		Bulk: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_searchsink_bulk_duration_seconds",
			Help: "Latency of bulk requests.", Buckets: prometheus.ExponentialBuckets(0.002, 2, 14)}),
		Buffered: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_searchsink_buffered_docs",
			Help: "Documents handed to the bulk indexer and not yet acknowledged (bounded by SEARCH_SINK_MAX_BUFFERED_DOCS)."}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_retries_total",
			Help: "Bulk retries scheduled, by kind (item: 429/5xx item; request: whole bulk request failed; isolate: a refused request's records sent one by one)."}, []string{"kind"}),
		LabelOverflow: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_searchsink_metric_label_overflow_total",
			Help: "Reason label values reported as _other because 64 error reasons were already in use."}),
		topics: topicLabel,
	}
	m.reasons = service.NewLabelLimit(MaxReasonLabels, m.LabelOverflow)
	reg.MustRegister(m.Duplicates, m.Failed, m.Refused, m.NewIndices, m.TemplateErrors, m.Bulk, m.Buffered, m.Retries, m.LabelOverflow)
	return m
}

// topicLabel returns the label value to use for topic.
func (m *Metrics) topicLabel(topic string) string { return m.topics(topic) }

// failed counts a failed attempt.
func (m *Metrics) failed(topic, reason string) {
	m.Failed.WithLabelValues(m.topicLabel(topic), m.reasons.Value(reason)).Inc()
}
