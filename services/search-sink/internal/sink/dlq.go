package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/pkg/deadletter"
)

// MessageWriter is the part of kafka.Writer the DLQ uses.
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafkago.Message) error
}

type dlqItem struct {
	msg kafkago.Message
	it  *item
}

// DLQOptions configure dead-letter writing.
type DLQOptions struct {
	// MaxBytes is the size a dead letter is cut to (deadletter.Fit): at
	// most the dead-letter topic's max.message.bytes.
	MaxBytes int
	// Retry paces rewrites of failed dead letters; after Retry.Attempts the
	// source topic is parked.
	Retry backoff.Policy
}

// DLQ writes rejected records to <topic>.dlq with the original key, value
// and headers plus the sluice-* headers, cut to MaxBytes if they must be.
// A record's offset is only committed after its dead letter is written; a
// dead letter that cannot be written within the retry attempts parks its
// source topic instead of blocking every other topic's dead letters.
type DLQ struct {
	w      MessageWriter
	ensure func(ctx context.Context, topic string) error
	o      DLQOptions
	m      *Metrics
	log    *slog.Logger

	mu    sync.Mutex
	queue []dlqItem
	wake  chan struct{}
	known map[string]bool
}

// NewDLQ returns a DLQ writing with w; ensure creates a DLQ topic once.
func NewDLQ(w MessageWriter, ensure func(ctx context.Context, topic string) error, o DLQOptions, m *Metrics, log *slog.Logger) *DLQ {
	if o.MaxBytes <= 0 {
		o.MaxBytes = deadletter.DefaultMaxBytes
	}
	if o.Retry.Base <= 0 {
		o.Retry.Base = 100 * time.Millisecond
	}
	if o.Retry.Max <= 0 {
		o.Retry.Max = 10 * time.Second
	}
	return &DLQ{w: w, ensure: ensure, o: o, m: m, log: log, wake: make(chan struct{}, 1), known: map[string]bool{}}
}

// Send queues it's record for its topic's DLQ; the item is acknowledged
// once the dead letter is written.
func (d *DLQ) Send(it *item, stage, reason string) {
	out := deadletter.Message(it.msg, stage, reason)
	fitted := deadletter.Fit(out, d.o.MaxBytes)
	if len(fitted.Headers) != len(out.Headers) || len(fitted.Value) != len(out.Value) || len(fitted.Key) != len(out.Key) {
		d.m.DLQTruncated.WithLabelValues(d.m.topicLabel(it.msg.Topic)).Inc()
		d.log.Warn("dead letter cut to fit SEARCH_SINK_DLQ_MAX_BYTES", "topic", it.msg.Topic, "partition", it.msg.Partition, "offset", it.msg.Offset, "size", deadletter.Size(&out), "max", d.o.MaxBytes)
	}
	d.mu.Lock()
	d.queue = append(d.queue, dlqItem{msg: fitted, it: it})
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run writes queued dead letters until ctx ends.
func (d *DLQ) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		}
		for {
			d.mu.Lock()
			batch := d.queue
			d.queue = nil
			d.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			pending := batch
			err := d.o.Retry.Retry(ctx, func(ctx context.Context) error {
				var err error
				pending, err = d.write(ctx, pending)
				return err
			}, func(err error, wait time.Duration) {
				d.log.Error("writing dead letters, will retry", "err", err, "records", len(pending), "retry_in", wait.Round(time.Millisecond))
			})
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return nil // not acknowledged: delivered and dead-lettered again after a restart
			}
			for _, di := range pending {
				topic := di.it.msg.Topic
				why := fmt.Sprintf("dead letter for partition %d offset %d cannot be written to %s after %d attempts (SEARCH_SINK_RETRY_ATTEMPTS): %v", di.it.msg.Partition, di.it.msg.Offset, di.msg.Topic, d.o.Retry.Attempts, err)
				di.it.pl.ParkTopic(topic, ParkDeadLetter, why, nil)
				di.it.drop()
			}
		}
	}
}

// write produces the batch and returns the dead letters that failed.
// Items nobody waits for any more (their topic was parked) are dropped.
func (d *DLQ) write(ctx context.Context, batch []dlqItem) ([]dlqItem, error) {
	live := batch[:0:0]
	for _, di := range batch {
		if di.it.stale() {
			di.it.drop()
			continue
		}
		live = append(live, di)
	}
	if len(live) == 0 {
		return nil, nil
	}
	msgs := make([]kafkago.Message, 0, len(live))
	for _, di := range live {
		t := di.msg.Topic
		if !d.known[t] {
			if err := d.ensure(ctx, t); err != nil {
				return live, fmt.Errorf("ensuring DLQ topic %s: %w", t, err)
			}
			d.known[t] = true
		}
		msgs = append(msgs, di.msg)
	}
	err := d.w.WriteMessages(ctx, msgs...)
	var failed []dlqItem
	var werrs kafkago.WriteErrors
	switch {
	case err == nil:
	case errors.As(err, &werrs) && len(werrs) == len(live):
		for i, e := range werrs {
			if e != nil {
				failed = append(failed, live[i])
			}
		}
	default:
		return live, fmt.Errorf("producing %d dead letters: %w", len(msgs), err)
	}
	for i, di := range live {
		if err != nil && werrs[i] != nil {
			continue
		}
		d.m.DLQ.WithLabelValues(d.m.topicLabel(di.it.msg.Topic)).Inc()
		di.it.done()
	}
	if len(failed) > 0 {
		return failed, fmt.Errorf("producing %d of %d dead letters: %w", len(failed), len(msgs), err)
	}
	return nil, nil
}
