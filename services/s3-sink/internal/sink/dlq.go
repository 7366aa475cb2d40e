package sink

import (
	"context"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/deadletter"
)

// deadLetter writes m to <topic>.dlq with the reason and waits for the
// ack (acks=all) before the record counts as handled: a record is never
// skipped silently. A dead letter larger than S3_SINK_DLQ_MAX_BYTES is cut
// to fit (deadletter.Fit: producer headers, then value and key, with
// sluice-original-size and sluice-truncated headers). Transient write
// failures are retried in place (bounded, then the topic parks); a refusal
// no retry changes (too large for the topic, not authorized) parks the
// topic at once.
func (w *worker) deadLetter(ctx context.Context, m kafkago.Message, reason string) error {
	if !w.s.cfg.DLQ || w.s.o.DLQ == nil {
		return &fatalError{fmt.Errorf("record at offset %d is bad (%s) and the DLQ is disabled", m.Offset, reason)}
	}
	m.Topic, m.Partition = w.topic, w.partition
	msg := deadletter.Fit(deadletter.Message(&m, "s3-sink", reason), w.s.cfg.DLQMaxBytes)
	dlq := msg.Topic
	truncated := len(msg.Headers) > 0 && msg.Headers[len(msg.Headers)-1].Key == deadletter.HeaderTruncated
	err := w.retryInPlace(ReasonDLQUnavailable, "writing to "+dlq, func() error {
		if err := w.s.ensureDLQ(ctx, dlq); err != nil {
			return dlqFailure(fmt.Errorf("creating %s: %w", dlq, err))
		}
		if err := w.s.o.DLQ.WriteMessages(ctx, msg); err != nil {
			return dlqFailure(fmt.Errorf("writing offset %d to %s: %w", m.Offset, dlq, err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.s.o.Metrics.dlqRecords.WithLabelValues(w.label).Inc()
	if truncated {
		w.s.o.Metrics.dlqTruncated.WithLabelValues(w.label).Inc()
	}
	w.log.Warn("record sent to the DLQ", "offset", m.Offset, "dlq", dlq, "reason", deadletter.Reason(reason), "truncated", truncated, "size", deadletter.Size(&m))
	return nil
}

func (s *Sink) ensureDLQ(ctx context.Context, topic string) error {
	s.dlqMu.Lock()
	ok := s.dlqTopics[topic]
	s.dlqMu.Unlock()
	if ok {
		return nil
	}
	if err := s.o.Admin.EnsureTopic(ctx, topic); err != nil {
		return err
	}
	s.dlqMu.Lock()
	s.dlqTopics[topic] = true
	s.dlqMu.Unlock()
	return nil
}
