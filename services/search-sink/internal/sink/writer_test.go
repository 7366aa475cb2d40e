package sink

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/avro"
	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
	"github.com/sluicehq/sluice/services/search-sink/internal/es"
	"github.com/sluicehq/sluice/services/search-sink/internal/limits"
	"github.com/sluicehq/sluice/services/search-sink/internal/target"
)

const writerSchema = `{"type":"record","name":"E","fields":[{"name":"n","type":"long"}]}`

// testWriter builds a Writer over the ES double with rules observing.
func testWriter(t *testing.T, prepare func(context.Context, string) error, observe Observer) *Writer {
	t.Helper()
	double := estest.Start(t)
	c, err := es.New(es.Options{URLs: []string{double.URL()}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := NewMetrics(prometheus.NewRegistry(), nil)
	pl, err := NewPipeline(c, PipelineOptions{Workers: 1, FlushBytes: 1 << 20, FlushInterval: 10 * time.Millisecond,
		MaxBufferedDocs: 100, MaxBufferedBytes: 1 << 20}, m, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pl.Close(context.Background()) })
	ac, err := avro.NewCodec(1, writerSchema)
	if err != nil {
		t.Fatal(err)
	}
	namer, err := document.NewNamer(document.ModeIndex, "<topic>", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return NewWriter(Options{
		Builder:  document.NewBuilder(oneCodec{&document.Codec{ID: 1, Schema: writerSchema, Codec: ac}}, document.Options{Namer: namer, Fields: true}),
		Pipeline: pl, Metrics: m, Log: log, Namer: target.NewNamer(namer), Prepare: prepare, Observe: observe,
		Window: limits.TimeWindow{MaxSkew: time.Hour, SkewVar: "SEARCH_SINK_MAX_FUTURE_SKEW"},
	})
}

func writerRecord(t *testing.T, offset int64, ts time.Time) psink.Record {
	t.Helper()
	ac, _ := avro.NewCodec(1, writerSchema)
	bin, err := ac.Codec.BinaryFromNative(nil, map[string]any{"n": offset})
	if err != nil {
		t.Fatal(err)
	}
	return psink.Record{Topic: "orders", Offset: offset, Value: wire.Encode(1, bin), Time: ts}
}

// TestWriterRefusalsAndSkips: a record outside the time window is Poison
// with stage limits (records before it in the batch are taken), a keyless
// tombstone is skipped, and good records are acknowledged once indexed.
func TestWriterRefusalsAndSkips(t *testing.T) {
	t.Parallel()
	w := testWriter(t, nil, nil)
	acks := newRecAcks()
	ctx := context.Background()
	pw, err := w.Open(ctx, psink.TopicPartition{Topic: "orders"}, 0, acks)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tomb := psink.Record{Topic: "orders", Offset: 1, Time: now}
	batch := []psink.Record{writerRecord(t, 0, now), tomb, writerRecord(t, 2, now.Add(48*time.Hour)), writerRecord(t, 3, now)}
	err = pw.Write(ctx, batch)
	var pe *psink.PoisonError
	if !errors.As(err, &pe) || pe.Offset != 2 || pe.Stage != StageLimits {
		t.Fatalf("Write = %v, want Poison of offset 2 at stage limits", err)
	}
	if err := pw.Write(ctx, batch[3:]); err != nil {
		t.Fatal(err)
	}
	if err := pw.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for acks.done() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged %d of 3 (0 indexed, 1 skipped, 3 indexed)", acks.done())
		}
		time.Sleep(5 * time.Millisecond)
	}
	acks.mu.Lock()
	defer acks.mu.Unlock()
	if !acks.acked[0] || !acks.acked[1] || acks.acked[2] || !acks.acked[3] {
		t.Fatalf("acknowledged %v, want 0, 1 (skipped) and 3", acks.acked)
	}
}

// TestWriterTemplateFailureParks: Open parks the topic when its template
// cannot be installed, with the installation as the probe; once the probe
// succeeds Open works without installing again.
func TestWriterTemplateFailureParks(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	var installs atomic.Int32
	fail.Store(true)
	w := testWriter(t, func(context.Context, string) error {
		installs.Add(1)
		if fail.Load() {
			return errors.New("400 mapper_parsing_exception")
		}
		return nil
	}, nil)
	ctx := context.Background()
	_, err := w.Open(ctx, psink.TopicPartition{Topic: "orders"}, 0, newRecAcks())
	var park *psink.ParkError
	if !errors.As(err, &park) || park.Reason != ReasonTemplate || park.Probe == nil {
		t.Fatalf("Open = %v, want a park with reason template and a probe", err)
	}
	if err := park.Probe(ctx); err == nil {
		t.Fatal("the probe succeeded while the template is refused")
	}
	fail.Store(false)
	if err := park.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	n := installs.Load()
	if _, err := w.Open(ctx, psink.TopicPartition{Topic: "orders"}, 0, newRecAcks()); err != nil {
		t.Fatal(err)
	}
	if installs.Load() != n {
		t.Fatal("Open installed the template again after the probe installed it")
	}
}

// TestWriterRulesSeeEachRecordOnce: records handed again after a replay
// (a new partition writer from the committed offset) are indexed again but
// not shown to the rules twice.
func TestWriterRulesSeeEachRecordOnce(t *testing.T) {
	t.Parallel()
	var seen []int64
	w := testWriter(t, nil, func(_ string, _ time.Time, f map[string]any) {
		seen = append(seen, f["n"].(int64))
	})
	ctx := context.Background()
	now := time.Now()
	batch := []psink.Record{writerRecord(t, 0, now), writerRecord(t, 1, now)}
	for range 2 { // the second incarnation replays the same offsets
		pw, err := w.Open(ctx, psink.TopicPartition{Topic: "orders"}, 0, newRecAcks())
		if err != nil {
			t.Fatal(err)
		}
		if err := pw.Write(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := pw.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 2 || seen[0] != 0 || seen[1] != 1 {
		t.Fatalf("rules saw %v, want [0 1] once each", seen)
	}
}
