package sink

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the sink's Prometheus collectors.
type Metrics struct {
	Indexed    *prometheus.CounterVec // by index
	Duplicates prometheus.Counter
	Failed     *prometheus.CounterVec // by reason
	DLQ        *prometheus.CounterVec // by source topic
	Bulk       prometheus.Histogram
	Buffered   prometheus.Gauge
	LagRecords *prometheus.GaugeVec // topic, partition
	LagSeconds *prometheus.GaugeVec // topic, partition
	Commits    prometheus.Counter
	Retries    *prometheus.CounterVec // by kind (item, request)
}

// NewMetrics registers the sink collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Indexed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_docs_indexed_total",
			Help: "Documents acknowledged by the search cluster, by index or data stream."}, []string{"index"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_searchsink_docs_duplicate_total",
			Help: "Bulk items answered 409 (already present from an earlier delivery, or an older external version): counted as done."}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_docs_failed_total",
			Help: "Failed document attempts by target index and reason (request, rejected and server_error are retried; decode and Elasticsearch error types go to the DLQ; index is empty for decode failures)."}, []string{"index", "reason"}),
		DLQ: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_dlq_records_total",
			Help: "Records written to <topic>.dlq, by source topic."}, []string{"topic"}),
		Bulk: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_searchsink_bulk_duration_seconds",
			Help: "Latency of bulk requests.", Buckets: prometheus.ExponentialBuckets(0.002, 2, 14)}),
		Buffered: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_searchsink_buffered_docs",
			Help: "Documents fetched and not yet acknowledged (bounded by SEARCH_SINK_MAX_BUFFERED_DOCS)."}),
		LagRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_searchsink_lag_records",
			Help: "Records between the partition's high watermark and the next record to fetch."}, []string{"topic", "partition"}),
		LagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_searchsink_lag_seconds",
			Help: "Age of the last fetched record when the partition is behind (0 when caught up)."}, []string{"topic", "partition"}),
		Commits: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_searchsink_offset_commits_total",
			Help: "Successful offset commits."}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_searchsink_retries_total",
			Help: "Bulk retries scheduled, by kind (item: 429/5xx item; request: whole bulk request failed)."}, []string{"kind"}),
	}
	reg.MustRegister(m.Indexed, m.Duplicates, m.Failed, m.DLQ, m.Bulk, m.Buffered, m.LagRecords, m.LagSeconds, m.Commits, m.Retries)
	return m
}
