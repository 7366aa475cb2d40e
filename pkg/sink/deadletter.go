package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/pkg/deadletter"
)

// deadLetter writes one record the runtime decided to dead-letter and
// marks it done once the dead letter is acknowledged (acks=all).
func (p *partition) deadLetter(ctx context.Context, rec *Record, stage, reason string) error {
	p.t.mark(p.t.currentEpoch(), rec.Offset, stateDeadLetterPending)
	return p.writeDeadLetters(ctx, []dlqJob{{rec: *rec, stage: stage, reason: reason}})
}

// asyncDeadLetters writes j and every other dead letter the writer has
// queued, in one produce request.
func (p *partition) asyncDeadLetters(ctx context.Context, j *dlqJob) error {
	jobs := []dlqJob{*j}
	for len(p.dlq) > 0 && len(jobs) < 1000 {
		jobs = append(jobs, *<-p.dlq)
	}
	return p.writeDeadLetters(ctx, jobs)
}

// writeDeadLetters writes jobs to their <topic>.dlq, cut to DLQMaxBytes,
// retrying transient failures (then the topic parks with
// ReasonDLQUnavailable); a refusal no retry changes parks it at once.
// Without a DLQ a dead letter stops the runtime.
func (p *partition) writeDeadLetters(ctx context.Context, jobs []dlqJob) error {
	r := p.r
	if r.o.DLQ == nil {
		j := jobs[0]
		return Fatal(fmt.Errorf("record at offset %d is bad (%s: %s) and the DLQ is disabled", j.rec.Offset, j.stage, j.reason))
	}
	limit := r.o.DLQMaxBytes
	if limit <= 0 {
		limit = deadletter.DefaultMaxBytes
	}
	msgs := make([]kafkago.Message, len(jobs))
	truncated := make([]bool, len(jobs))
	for i, j := range jobs {
		m := j.rec.Message()
		out := deadletter.Message(&m, j.stage, j.reason)
		msgs[i] = deadletter.Fit(out, limit)
		truncated[i] = len(msgs[i].Headers) != len(out.Headers) || len(msgs[i].Value) != len(out.Value) || len(msgs[i].Key) != len(out.Key)
	}
	dlq := msgs[0].Topic
	pol := r.o.Retry
	if pol.Attempts <= 0 {
		pol.Attempts = 5
	}
	err := pol.Retry(p.wait, func(context.Context) error {
		if err := r.ensureDLQ(ctx, dlq); err != nil {
			return dlqFailure(fmt.Errorf("creating %s: %w", dlq, err))
		}
		if err := r.o.DLQ.WriteMessages(ctx, msgs...); err != nil {
			return dlqFailure(fmt.Errorf("writing %d dead letters to %s: %w", len(msgs), dlq, err))
		}
		return nil
	}, func(err error, _ time.Duration) {
		r.o.Metrics.retries.WithLabelValues(p.label, string(ReasonDLQUnavailable)).Inc()
		p.log.Warn("writing dead letters failed; retrying", "err", err)
	})
	switch {
	case err == nil:
	case p.wait.Err() != nil:
		return errStopped
	case errors.Is(err, backoff.ErrExhausted):
		return Park(ReasonDLQUnavailable, err, nil)
	default:
		return err
	}
	epoch := p.t.currentEpoch()
	for i, j := range jobs {
		if truncated[i] {
			r.o.Metrics.dlqTruncated.WithLabelValues(p.label).Inc()
		}
		p.log.Warn("record sent to the DLQ", "offset", j.rec.Offset, "dlq", dlq, "stage", j.stage,
			"reason", deadletter.Reason(j.reason), "truncated", truncated[i])
		p.t.mark(epoch, j.rec.Offset, stateDeadLettered)
	}
	return nil
}

func (r *Runtime) ensureDLQ(ctx context.Context, topic string) error {
	r.dlqMu.Lock()
	ok := r.dlqTopics[topic]
	r.dlqMu.Unlock()
	if ok {
		return nil
	}
	if err := r.o.Admin.EnsureTopic(ctx, topic); err != nil {
		return err
	}
	r.dlqMu.Lock()
	r.dlqTopics[topic] = true
	r.dlqMu.Unlock()
	return nil
}

// dlqFailure classifies an error writing dead letters: a refusal no retry
// can change (too large, not authorized, invalid topic) parks the topic at
// once; anything else is retried.
func dlqFailure(err error) error {
	var we kafkago.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				err = fmt.Errorf("%w (%w)", err, e)
				break
			}
		}
	}
	var ke kafkago.Error
	if errors.As(err, &ke) {
		switch ke {
		case kafkago.MessageSizeTooLarge, kafkago.RecordListTooLarge, kafkago.InvalidRecord,
			kafkago.TopicAuthorizationFailed, kafkago.ClusterAuthorizationFailed, kafkago.InvalidTopic,
			kafkago.PolicyViolation:
			return backoff.Permanent(Park(ReasonDLQRefused, err, nil))
		}
	}
	var mt kafkago.MessageTooLargeError
	if errors.As(err, &mt) {
		return backoff.Permanent(Park(ReasonDLQRefused, err, nil))
	}
	return err
}
