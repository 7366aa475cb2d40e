package sink

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/sluicehq/sluice/pkg/deadletter"
)

// MessageWriter is the part of kafka.Writer the DLQ uses.
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafkago.Message) error
}

type dlqItem struct {
	msg  kafkago.Message
	done func()
}

// DLQ writes rejected records to <topic>.dlq with the original key, value
// and headers plus the sluice-* headers, retrying until Kafka takes them.
// A record's offset is only committed after its dead letter is written.
type DLQ struct {
	w      MessageWriter
	ensure func(ctx context.Context, topic string) error
	m      *Metrics
	log    *slog.Logger

	mu    sync.Mutex
	queue []dlqItem
	wake  chan struct{}
	known map[string]bool
}

// NewDLQ returns a DLQ writing with w; ensure creates a DLQ topic once.
func NewDLQ(w MessageWriter, ensure func(ctx context.Context, topic string) error, m *Metrics, log *slog.Logger) *DLQ {
	return &DLQ{w: w, ensure: ensure, m: m, log: log, wake: make(chan struct{}, 1), known: map[string]bool{}}
}

// Send queues m for its topic's DLQ; done runs once it is written.
func (d *DLQ) Send(m *kafkago.Message, stage, reason string, done func()) {
	out := deadletter.Message(m, stage, reason)
	d.mu.Lock()
	d.queue = append(d.queue, dlqItem{msg: out, done: done})
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run writes queued dead letters until ctx ends.
func (d *DLQ) Run(ctx context.Context) error {
	backoff := newBackoff(100*time.Millisecond, 10*time.Second)
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
			for {
				err := d.write(ctx, batch)
				if err == nil {
					backoff.reset()
					break
				}
				d.log.Error("writing dead letters", "err", err, "records", len(batch))
				if !sleepCtx(ctx, backoff.next()) {
					return nil
				}
			}
			for _, it := range batch {
				d.m.DLQ.WithLabelValues(deadletter.Source(it.msg.Topic)).Inc()
				it.done()
			}
		}
	}
}

func (d *DLQ) write(ctx context.Context, batch []dlqItem) error {
	msgs := make([]kafkago.Message, len(batch))
	for i, it := range batch {
		t := it.msg.Topic
		if !d.known[t] {
			if err := d.ensure(ctx, t); err != nil {
				return fmt.Errorf("ensuring DLQ topic %s: %w", t, err)
			}
			d.known[t] = true
		}
		msgs[i] = it.msg
	}
	if err := d.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("producing %d dead letters: %w", len(msgs), err)
	}
	return nil
}

// backoff is capped exponential backoff with full jitter avoided on
// purpose: retries are few and deterministic timing keeps logs readable.
type backoff struct {
	base, max, cur time.Duration
}

func newBackoff(base, max time.Duration) *backoff { return &backoff{base: base, max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.base
	} else {
		b.cur *= 2
		if b.cur > b.max {
			b.cur = b.max
		}
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// expBackoff returns base*2^attempt capped at max.
func expBackoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}

// sleepCtx waits d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
