package sinktest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/backoff"
	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/sink"
)

func backoffPolicy(base, maxDelay time.Duration, attempts int) backoff.Policy {
	return backoff.Policy{Base: base, Max: maxDelay, Attempts: attempts}
}

func skafkaWriterOptions() skafka.WriterOptions {
	return skafka.WriterOptions{BatchTimeout: time.Millisecond}
}

// logger writes the runtime's log to the test log at warn level and above.
func logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(b []byte) (int, error) {
	w.tb.Logf("%s", b)
	return len(b), nil
}

// counter counts writer opens and closes across runtimes.
type counter struct {
	opens, closes atomic.Int64
}

// countingWriter counts opens and closes.
type countingWriter struct {
	w   sink.Writer
	c   *counter // every runtime's
	own *counter // this runtime's
}

func (w *countingWriter) Open(ctx context.Context, tp sink.TopicPartition, start int64, acks sink.Acks) (sink.PartitionWriter, error) {
	pw, err := w.w.Open(ctx, tp, start, acks)
	if err != nil {
		return nil, err
	}
	w.c.opens.Add(1)
	w.own.opens.Add(1)
	return &countingPW{PartitionWriter: pw, c: w.c, own: w.own}, nil
}

type countingPW struct {
	sink.PartitionWriter
	c, own *counter
	once   sync.Once
}

func (p *countingPW) Close(ctx context.Context) error {
	p.once.Do(func() {
		p.c.closes.Add(1)
		p.own.closes.Add(1)
	})
	return p.PartitionWriter.Close(ctx)
}

// faultyWriter fails every Write of the broken topics with a transient
// error (as a destination refusing a topic's writes would).
type faultyWriter struct {
	w      sink.Writer
	mu     sync.Mutex
	broken map[string]bool
}

func (w *faultyWriter) setBroken(topic string, b bool) {
	w.mu.Lock()
	w.broken[topic] = b
	w.mu.Unlock()
}

func (w *faultyWriter) isBroken(topic string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.broken[topic]
}

func (w *faultyWriter) Open(ctx context.Context, tp sink.TopicPartition, start int64, acks sink.Acks) (sink.PartitionWriter, error) {
	pw, err := w.w.Open(ctx, tp, start, acks)
	if err != nil {
		return nil, err
	}
	return &faultyPW{PartitionWriter: pw, w: w, topic: tp.Topic}, nil
}

type faultyPW struct {
	sink.PartitionWriter
	w     *faultyWriter
	topic string
}

func (p *faultyPW) Write(ctx context.Context, batch []sink.Record) error {
	if p.w.isBroken(p.topic) {
		return sink.Transient("destination_refused", errors.New("sinktest: the destination refuses this topic"))
	}
	return p.PartitionWriter.Write(ctx, batch)
}
