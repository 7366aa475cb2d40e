package sink

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/avro"
	psink "github.com/sluicehq/sluice/pkg/sink"
)

// Metrics are the S3 writer's own Prometheus series (files, uploads,
// buffers) next to the runtime's sluice_sink_* series (Runtime), on one
// explicit registry. Topic labels go through the runtime's label limit;
// nothing is labelled by a partitioner value.
type Metrics struct {
	// Runtime are the shared sink runtime's metrics (sink="s3").
	Runtime        *psink.Metrics
	earlyRotations *prometheus.CounterVec
	shortenedKeys  *prometheus.CounterVec

	bytesWritten  *prometheus.CounterVec
	filesWritten  *prometheus.CounterVec
	tombstones    *prometheus.CounterVec
	uploadSeconds *prometheus.HistogramVec
	uploadErrors  *prometheus.CounterVec
	openFiles     prometheus.Gauge
	bufferedBytes prometheus.Gauge
	droppedFiles  prometheus.Counter
	adopted       prometheus.Counter
	budget        *avro.BudgetCounter
}

// NewMetrics creates and registers the sink's metrics on reg; at most
// topicLabels distinct topics get their own label value.
func NewMetrics(reg prometheus.Registerer, topicLabels int) *Metrics {
	m := &Metrics{
		Runtime:        psink.NewMetrics(reg, "s3", topicLabels),
		earlyRotations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_early_rotations_total", Help: "Files completed early because the partition had S3_SINK_MAX_OPEN_FILES open and a record needed another."}, []string{"topic"}),
		shortenedKeys:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_shortened_keys_total", Help: "Objects whose key had a path segment shortened (cut + hash) to fit the key limits."}, []string{"topic"}),

		bytesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_bytes_written_total", Help: "Object bytes (OCF, compressed) that completed uploading."}, []string{"topic"}),
		filesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_files_written_total", Help: "Objects that completed uploading."}, []string{"topic"}),
		tombstones:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_tombstones_total", Help: "Records with a null value, by what was done with them."}, []string{"topic", "action"}),
		uploadSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_s3sink_upload_duration_seconds", Help: "Latency of S3 requests by operation (put, create, part, complete, abort).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"op"}),
		uploadErrors:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_upload_errors_total", Help: "Failed S3 requests by operation."}, []string{"op"}),
		openFiles:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_s3sink_open_files", Help: "Objects being written."}),
		bufferedBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_s3sink_buffered_bytes", Help: "Bytes held in upload buffers."}),
		droppedFiles:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_s3sink_dropped_files_total", Help: "Open files dropped without upload (partition revoked, replayed or parked, or shutdown without flush)."}),
		adopted:       prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_s3sink_adopted_objects_total", Help: "Objects a previous run completed that a replay adopted instead of rewriting (wall-clock rotation)."}),
		budget:        avro.NewBudgetCounter(reg, "s3sink"),
	}
	reg.MustRegister(m.bytesWritten, m.filesWritten, m.tombstones,
		m.uploadSeconds, m.uploadErrors, m.openFiles, m.bufferedBytes, m.droppedFiles, m.adopted,
		m.earlyRotations, m.shortenedKeys)
	return m
}

// TopicLabel is the label value for topic (bounded by the label limit).
func (m *Metrics) TopicLabel(topic string) string { return m.Runtime.TopicLabel(topic) }

// Request implements upload.Observer.
func (m *Metrics) Request(op string, d time.Duration, err error) {
	m.uploadSeconds.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.uploadErrors.WithLabelValues(op).Inc()
	}
}

// Buffered implements upload.Observer.
func (m *Metrics) Buffered(delta int64) { m.bufferedBytes.Add(float64(delta)) }
