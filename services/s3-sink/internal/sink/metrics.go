package sink

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/service"
)

// Metrics are the sink's Prometheus series, registered on an explicit
// registry. Topic labels go through a service.LabelLimit (topics beyond
// the bound are reported as "_other"); nothing is labelled by a
// partitioner value.
type Metrics struct {
	labels         *service.LabelLimit
	labelOverflow  prometheus.Counter
	topicsParked   *prometheus.GaugeVec
	topicParks     *prometheus.CounterVec
	retries        *prometheus.CounterVec
	earlyRotations *prometheus.CounterVec
	shortenedKeys  *prometheus.CounterVec
	dlqTruncated   *prometheus.CounterVec

	recordsWritten *prometheus.CounterVec
	bytesWritten   *prometheus.CounterVec
	filesWritten   *prometheus.CounterVec
	dlqRecords     *prometheus.CounterVec
	tombstones     *prometheus.CounterVec
	uploadSeconds  *prometheus.HistogramVec
	uploadErrors   *prometheus.CounterVec
	openFiles      prometheus.Gauge
	bufferedBytes  prometheus.Gauge
	commits        prometheus.Counter
	generations    prometheus.Counter
	droppedFiles   prometheus.Counter
	replays        prometheus.Counter
	adopted        prometheus.Counter
	budget         *avro.BudgetCounter

	mu    sync.Mutex
	parts map[partKey]*partState
	now   func() time.Time
}

type partKey struct {
	topic     string
	partition int
}

// NewMetrics creates and registers the sink's metrics on reg; at most
// topicLabels distinct topics get their own label value.
func NewMetrics(reg prometheus.Registerer, topicLabels int) *Metrics {
	m := &Metrics{
		labelOverflow:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_s3sink_topic_label_overflow_total", Help: "Metric updates for topics past S3_SINK_TOPIC_LABEL_LIMIT, reported with topic=\"_other\"."}),
		topicsParked:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_s3sink_topics_parked", Help: "Topics with at least one parked partition (stopped after a permanent failure or exhausted retries, retried with backoff)."}, []string{"topic"}),
		topicParks:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_topic_parks_total", Help: "Times a partition of the topic was parked, by reason."}, []string{"topic", "reason"}),
		retries:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_retries_total", Help: "Transient failures retried (S3 5xx/throttling, network, registry or DLQ outage)."}, []string{"topic"}),
		earlyRotations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_early_rotations_total", Help: "Files completed early because the partition had S3_SINK_MAX_OPEN_FILES open and a record needed another."}, []string{"topic"}),
		shortenedKeys:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_shortened_keys_total", Help: "Objects whose key had a path segment shortened (cut + hash) to fit the key limits."}, []string{"topic"}),
		dlqTruncated:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_dlq_truncated_total", Help: "Dead letters cut to S3_SINK_DLQ_MAX_BYTES (headers sluice-original-size, sluice-truncated)."}, []string{"topic"}),

		recordsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_records_written_total", Help: "Records in objects that completed uploading."}, []string{"topic"}),
		bytesWritten:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_bytes_written_total", Help: "Object bytes (OCF, compressed) that completed uploading."}, []string{"topic"}),
		filesWritten:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_files_written_total", Help: "Objects that completed uploading."}, []string{"topic"}),
		dlqRecords:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_dlq_records_total", Help: "Records sent to <topic>.dlq."}, []string{"topic"}),
		tombstones:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_tombstones_total", Help: "Records with a null value, by what was done with them."}, []string{"topic", "action"}),
		uploadSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_s3sink_upload_duration_seconds", Help: "Latency of S3 requests by operation (put, create, part, complete, abort).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"op"}),
		uploadErrors:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_s3sink_upload_errors_total", Help: "Failed S3 requests by operation."}, []string{"op"}),
		openFiles:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_s3sink_open_files", Help: "Objects being written."}),
		bufferedBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_s3sink_buffered_bytes", Help: "Bytes held in upload buffers."}),
		commits:       prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_s3sink_offset_commits_total", Help: "Offset commits sent to the group coordinator."}),
		generations:   prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_s3sink_generations_total", Help: "Consumer group generations joined (rebalances)."}),
		droppedFiles:  prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_s3sink_dropped_files_total", Help: "Open files dropped without upload because their partition was revoked."}),
		replays:       prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_s3sink_partition_replays_total", Help: "Partitions replayed from the committed offset after an S3 or Kafka error."}),
		adopted:       prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_s3sink_adopted_objects_total", Help: "Objects a previous run completed that a replay adopted instead of rewriting (wall-clock rotation)."}),
		budget:        avro.NewBudgetCounter(reg, "s3sink"),
		parts:         map[partKey]*partState{},
		now:           time.Now,
	}
	m.labels = service.NewLabelLimit(topicLabels, m.labelOverflow)
	reg.MustRegister(m.recordsWritten, m.bytesWritten, m.filesWritten, m.dlqRecords, m.tombstones,
		m.uploadSeconds, m.uploadErrors, m.openFiles, m.bufferedBytes, m.commits, m.generations, m.droppedFiles, m.replays, m.adopted,
		m.labelOverflow, m.topicsParked, m.topicParks, m.retries, m.earlyRotations, m.shortenedKeys, m.dlqTruncated, lagCollector{m})
	return m
}

// TopicLabel is the label value for topic (bounded by the label limit).
func (m *Metrics) TopicLabel(topic string) string { return m.labels.Value(topic) }

// Request implements upload.Observer.
func (m *Metrics) Request(op string, d time.Duration, err error) {
	m.uploadSeconds.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.uploadErrors.WithLabelValues(op).Inc()
	}
}

// Buffered implements upload.Observer.
func (m *Metrics) Buffered(delta int64) { m.bufferedBytes.Add(float64(delta)) }

// partState is the per-partition view the lag collector reads.
type partState struct {
	label         string // topic label
	mu            sync.Mutex
	highWater     int64
	read          int64 // offset after the last record read
	committed     int64
	lastWrittenTS time.Time
}

func (m *Metrics) track(topic, label string, partition int) *partState {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := &partState{label: label, committed: -1, highWater: -1, read: -1}
	m.parts[partKey{topic, partition}] = ps
	return ps
}

func (m *Metrics) untrack(topic string, partition int, ps *partState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.parts[partKey{topic, partition}] == ps {
		delete(m.parts, partKey{topic, partition})
	}
}

var (
	lagRecordsDesc = prometheus.NewDesc("sluice_s3sink_lag_records", "Records in the partition not yet covered by a committed object (high watermark minus committed offset).", []string{"topic", "partition"}, nil)
	unreadDesc     = prometheus.NewDesc("sluice_s3sink_unread_records", "Records in the partition not read yet (high watermark minus the read position).", []string{"topic", "partition"}, nil)
	lagSecondsDesc = prometheus.NewDesc("sluice_s3sink_lag_seconds", "Now minus the timestamp of the last record written to S3 for the partition.", []string{"topic", "partition"}, nil)
)

// lagCollector reports lag for the partitions this process owns now.
type lagCollector struct{ m *Metrics }

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagRecordsDesc
	ch <- unreadDesc
	ch <- lagSecondsDesc
}

// Collect reports every owned partition; partitions of topics past the
// label limit are summed (records) or maxed (seconds) into one
// topic="_other", partition="_other" series each.
func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	now := c.m.now()
	var other struct {
		lag, unread, seconds    float64
		hasLag, hasUnread, hasS bool
	}
	for k, ps := range c.m.parts {
		ps.mu.Lock()
		hw, read, committed, ts := ps.highWater, ps.read, ps.committed, ps.lastWrittenTS
		ps.mu.Unlock()
		if ps.label == service.OtherLabel {
			if hw >= 0 && committed >= 0 {
				other.lag += float64(max(hw-committed, 0))
				other.hasLag = true
			}
			if hw >= 0 && read >= 0 {
				other.unread += float64(max(hw-read, 0))
				other.hasUnread = true
			}
			if !ts.IsZero() {
				other.seconds = max(other.seconds, now.Sub(ts).Seconds())
				other.hasS = true
			}
			continue
		}
		p := strconv.Itoa(k.partition)
		if hw >= 0 && committed >= 0 {
			ch <- prometheus.MustNewConstMetric(lagRecordsDesc, prometheus.GaugeValue, float64(max(hw-committed, 0)), ps.label, p)
		}
		if hw >= 0 && read >= 0 {
			ch <- prometheus.MustNewConstMetric(unreadDesc, prometheus.GaugeValue, float64(max(hw-read, 0)), ps.label, p)
		}
		if !ts.IsZero() {
			ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, now.Sub(ts).Seconds(), ps.label, p)
		}
	}
	o := service.OtherLabel
	if other.hasLag {
		ch <- prometheus.MustNewConstMetric(lagRecordsDesc, prometheus.GaugeValue, other.lag, o, o)
	}
	if other.hasUnread {
		ch <- prometheus.MustNewConstMetric(unreadDesc, prometheus.GaugeValue, other.unread, o, o)
	}
	if other.hasS {
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, other.seconds, o, o)
	}
}
