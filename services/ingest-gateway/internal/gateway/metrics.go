package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/service"
)

// Metrics are the engine's Prometheus collectors.
type Metrics struct {
	Records         *prometheus.CounterVec
	Bytes           *prometheus.CounterVec
	RecordErrors    *prometheus.CounterVec
	ProduceDuration prometheus.Histogram
	BatchRecords    prometheus.Histogram
	InflightBytes   prometheus.GaugeFunc
	Rejected        *prometheus.CounterVec
	// LabelOverflow counts topic label values reported as "_other".
	LabelOverflow prometheus.Counter

	topics *service.LabelLimit
}

// Topic returns the metric label for topic: the topic itself for the
// first GATEWAY_METRIC_TOPICS distinct topics, "_other" after that (a
// wildcard grant lets producers choose topic names).
func (m *Metrics) Topic(topic string) string { return m.topics.Value(topic) }

func newMetrics(reg prometheus.Registerer, inflight func() float64, maxTopics int) *Metrics {
	m := &Metrics{
		LabelOverflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_gateway_metric_label_overflow_total",
			Help: "Topic label values reported as _other because GATEWAY_METRIC_TOPICS distinct topics were already labelled.",
		}),
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_records_total",
			Help: "Records by topic and outcome (accepted, rejected, dead_lettered).",
		}, []string{"topic", "outcome"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_record_bytes_total",
			Help: "Encoded record bytes by topic and outcome (accepted, rejected, dead_lettered).",
		}, []string{"topic", "outcome"}),
		RecordErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_record_errors_total",
			Help: "Records not produced (or dead-lettered) by topic and reason (invalid, timestamp, schema_not_of_topic, too_large, unknown_partition, busy, kafka_unavailable, other).",
		}, []string{"topic", "reason"}),
		ProduceDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_gateway_produce_duration_seconds",
			Help:    "Time from handing a request's records to the Kafka writer until every ack (acks=all) arrived.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		BatchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_gateway_batch_records",
			Help:    "Records per produce call (request, gRPC batch or stream chunk).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		InflightBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_gateway_inflight_bytes",
			Help: "Request bytes currently held by in-flight requests (bounded by GATEWAY_INFLIGHT_BYTES).",
		}, inflight),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_requests_rejected_total",
			Help: "Requests refused as a whole, by reason (busy, rate_limited, too_large, unauthorized, forbidden, unknown_topic, no_schema, schema_not_of_topic, invalid_record, bad_request, registry_unavailable, kafka_unavailable, shutting_down).",
		}, []string{"reason"}),
	}
	m.topics = service.NewLabelLimit(maxTopics, m.LabelOverflow)
	reg.MustRegister(m.Records, m.Bytes, m.RecordErrors, m.ProduceDuration, m.BatchRecords, m.InflightBytes, m.Rejected, m.LabelOverflow)
	return m
}

// RejectReason is the requests_rejected_total label of a request-level error.
func RejectReason(k Kind) string {
	switch k {
	case KindBusy:
		return "busy"
	case KindRateLimited:
		return "rate_limited"
	case KindRequestTooLarge:
		return "too_large"
	case KindUnauthorized:
		return "unauthorized"
	case KindForbidden:
		return "forbidden"
	case KindUnknownTopic, KindUnknownPartition:
		return "unknown_topic"
	case KindNoSchema, KindInvalidSchema:
		return "no_schema"
	case KindSchemaNotOfTopic:
		return "schema_not_of_topic"
	case KindInvalidRecord, KindRecordTooLarge, KindInvalidTimestamp:
		return "invalid_record"
	case KindShuttingDown:
		return "shutting_down"
	case KindBadRequest:
		return "bad_request"
	case KindRegistryUnavailable:
		return "registry_unavailable"
	}
	return "kafka_unavailable"
}
