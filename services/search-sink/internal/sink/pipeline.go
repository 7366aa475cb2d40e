package sink

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/sync/semaphore"

	"github.com/sluicehq/sluice/services/search-sink/internal/document"
)

// PipelineOptions tune bulk indexing.
type PipelineOptions struct {
	Workers          int
	FlushActions     int // flush once this many documents were added since the last flush; 0: bytes and interval only
	FlushBytes       int
	FlushInterval    time.Duration
	MaxBufferedDocs  int64
	MaxBufferedBytes int64
	RetryBase        time.Duration // first item retry delay
	RetryMax         time.Duration // cap on item and request retry delays
}

// Pipeline indexes documents through esutil.BulkIndexer and acknowledges
// each record to its partition tracker once the cluster has it (or its
// dead letter is written). Memory is bounded by the buffered-docs and
// buffered-bytes semaphores that fetchers acquire before submitting.
type Pipeline struct {
	bi  esutil.BulkIndexer
	o   PipelineOptions
	m   *Metrics
	dlq *DLQ
	log *slog.Logger

	docs  *semaphore.Weighted
	bytes *semaphore.Weighted

	reqFailures atomic.Int32
	pauseUntil  atomic.Int64 // unix nanos; fetchers wait until then

	rmu     sync.Mutex
	retries retryHeap
	wake    chan struct{}

	sinceFlush atomic.Int64
	flushReq   chan struct{}
}

// item is one record in flight.
type item struct {
	msg      *kafkago.Message
	doc      *document.Doc
	p        *partition
	seq      uint64
	size     int64
	attempts int
	due      time.Time
	released atomic.Bool
}

type flushStartKey struct{}

// NewPipeline builds the bulk indexer over transport t.
func NewPipeline(t esapi.Transport, o PipelineOptions, m *Metrics, dlq *DLQ, log *slog.Logger) (*Pipeline, error) {
	if o.RetryBase <= 0 {
		o.RetryBase = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	p := &Pipeline{o: o, m: m, dlq: dlq, log: log,
		docs:     semaphore.NewWeighted(o.MaxBufferedDocs),
		bytes:    semaphore.NewWeighted(o.MaxBufferedBytes),
		wake:     make(chan struct{}, 1),
		flushReq: make(chan struct{}, 1),
	}
	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client:        t,
		NumWorkers:    o.Workers,
		FlushBytes:    o.FlushBytes,
		FlushInterval: o.FlushInterval,
		// OnError runs once per failed bulk request, before the per-item
		// OnFailure calls: that is where the request backoff grows.
		OnError: func(_ context.Context, err error) {
			p.requestFailed()
			log.Warn("bulk request failed; pausing consumption", "err", err, "retry_in", time.Until(time.Unix(0, p.pauseUntil.Load())).Round(time.Millisecond))
		},
		OnFlushStart: func(ctx context.Context) context.Context {
			return context.WithValue(ctx, flushStartKey{}, time.Now())
		},
		OnFlushEnd: func(ctx context.Context) {
			if t, ok := ctx.Value(flushStartKey{}).(time.Time); ok {
				m.Bulk.Observe(time.Since(t).Seconds())
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("building bulk indexer: %w", err)
	}
	p.bi = bi
	return p, nil
}

// Acquire reserves buffer space for a record of size bytes, blocking while
// the buffer is full (that is how consumption pauses under backpressure).
func (p *Pipeline) Acquire(ctx context.Context, size int64) error {
	if size > p.o.MaxBufferedBytes {
		size = p.o.MaxBufferedBytes
	}
	if err := p.docs.Acquire(ctx, 1); err != nil {
		return err
	}
	if err := p.bytes.Acquire(ctx, size); err != nil {
		p.docs.Release(1)
		return err
	}
	p.m.Buffered.Inc()
	return nil
}

func (p *Pipeline) release(size int64) {
	if size > p.o.MaxBufferedBytes {
		size = p.o.MaxBufferedBytes
	}
	p.bytes.Release(size)
	p.docs.Release(1)
	p.m.Buffered.Dec()
}

// WaitGate blocks while whole-request failures have paused consumption.
func (p *Pipeline) WaitGate(ctx context.Context) error {
	for {
		until := p.pauseUntil.Load()
		d := time.Until(time.Unix(0, until))
		if until == 0 || d <= 0 {
			return nil
		}
		if !sleepCtx(ctx, d) {
			return ctx.Err()
		}
	}
}

// Paused reports whether consumption is paused by request failures.
func (p *Pipeline) Paused() bool {
	return time.Now().UnixNano() < p.pauseUntil.Load()
}

// finish marks an item done: partition acknowledged, buffer released.
func (p *Pipeline) finish(it *item) {
	if it.released.Swap(true) {
		return
	}
	it.p.ack(it.seq)
	p.release(it.size)
}

// Skip acknowledges a record that produces no document (tombstone without
// key); the caller has acquired its buffer space.
func (p *Pipeline) Skip(pt *partition, seq uint64, size int64) {
	p.finish(&item{p: pt, seq: seq, size: size})
}

// DeadLetter sends a record that cannot become a document to the DLQ.
func (p *Pipeline) DeadLetter(msg *kafkago.Message, pt *partition, seq uint64, size int64, stage, reason string) {
	it := &item{msg: msg, p: pt, seq: seq, size: size}
	p.dlq.Send(msg, stage, reason, func() { p.finish(it) })
}

// Submit hands a document to the bulk indexer.
func (p *Pipeline) Submit(ctx context.Context, msg *kafkago.Message, d *document.Doc, pt *partition, seq uint64, size int64) error {
	it := &item{msg: msg, doc: d, p: pt, seq: seq, size: size}
	return p.add(ctx, it)
}

func (p *Pipeline) add(ctx context.Context, it *item) error {
	bi := esutil.BulkIndexerItem{
		Index:      it.doc.Index,
		Action:     string(it.doc.Action),
		DocumentID: it.doc.ID,
		OnSuccess: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem) {
			p.reqFailures.Store(0)
			p.m.Indexed.WithLabelValues(it.doc.Index).Inc()
			p.finish(it)
		},
		OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, err error) {
			p.failed(it, res, err)
		},
	}
	if it.doc.Action != document.ActionDelete {
		bi.Body = bytes.NewReader(it.doc.Body)
	}
	if it.doc.Version >= 0 {
		v := it.doc.Version
		bi.Version = &v
		bi.VersionType = "external"
	}
	if err := p.bi.Add(ctx, bi); err != nil {
		return fmt.Errorf("adding to bulk indexer: %w", err)
	}
	if p.o.FlushActions > 0 && p.sinceFlush.Add(1) >= int64(p.o.FlushActions) {
		select {
		case p.flushReq <- struct{}{}:
		default:
		}
	}
	return nil
}

// RunFlusher flushes the indexer whenever FlushActions documents were
// added since the last flush (esutil.BulkIndexer itself flushes only by
// bytes and interval). It returns when ctx ends.
func (p *Pipeline) RunFlusher(ctx context.Context) error {
	if p.o.FlushActions <= 0 {
		<-ctx.Done()
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.flushReq:
		}
		p.sinceFlush.Store(0)
		if err := p.bi.Flush(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("count-triggered flush", "err", err)
		}
	}
}

func (p *Pipeline) failed(it *item, res esutil.BulkIndexerResponseItem, err error) {
	switch {
	case err != nil:
		// The whole bulk request failed (connection, 503, 429 on the request):
		// OnError has paused consumption; resend when the pause ends.
		p.m.Failed.WithLabelValues(it.doc.Index, "request").Inc()
		p.m.Retries.WithLabelValues("request").Inc()
		p.schedule(it, time.Unix(0, p.pauseUntil.Load()))
	case res.Status == http.StatusConflict:
		// Already there from an earlier delivery (create on a data stream) or
		// a newer external version exists: the record is done.
		p.m.Duplicates.Inc()
		p.finish(it)
	case res.Status == http.StatusNotFound && it.doc.Action == document.ActionDelete:
		p.m.Indexed.WithLabelValues(it.doc.Index).Inc()
		p.finish(it)
	case res.Status == http.StatusTooManyRequests || res.Status >= 500:
		reason := "rejected"
		if res.Status >= 500 {
			reason = "server_error"
		}
		p.m.Failed.WithLabelValues(it.doc.Index, reason).Inc()
		p.m.Retries.WithLabelValues("item").Inc()
		it.attempts++
		p.schedule(it, time.Now().Add(expBackoff(p.o.RetryBase, p.o.RetryMax, it.attempts-1)))
	default:
		typ := res.Error.Type
		if typ == "" {
			typ = http.StatusText(res.Status)
		}
		p.m.Failed.WithLabelValues(it.doc.Index, typ).Inc()
		reason := fmt.Sprintf("%d %s: %s", res.Status, res.Error.Type, res.Error.Reason)
		if res.Error.Cause.Reason != "" {
			reason += " (caused by " + res.Error.Cause.Type + ": " + res.Error.Cause.Reason + ")"
		}
		p.log.Warn("document rejected, sending to DLQ", "topic", it.msg.Topic, "partition", it.msg.Partition, "offset", it.msg.Offset, "index", it.doc.Index, "reason", reason)
		p.dlq.Send(it.msg, "index", reason, func() { p.finish(it) })
	}
}

// requestFailed grows the request backoff and pauses consumption until it
// has elapsed; a successful item resets it.
func (p *Pipeline) requestFailed() {
	n := p.reqFailures.Add(1)
	d := expBackoff(p.o.RetryBase, p.o.RetryMax, int(n-1))
	until := time.Now().Add(d).UnixNano()
	for {
		cur := p.pauseUntil.Load()
		if cur >= until || p.pauseUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

func (p *Pipeline) schedule(it *item, due time.Time) {
	it.due = due
	p.rmu.Lock()
	heap.Push(&p.retries, it)
	p.rmu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// RunRetries resends items whose backoff has elapsed, until ctx ends.
// Items still waiting at shutdown are simply not acknowledged, so their
// offsets are not committed and they are delivered again.
func (p *Pipeline) RunRetries(ctx context.Context) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		p.rmu.Lock()
		var ready []*item
		now := time.Now()
		for p.retries.Len() > 0 && !p.retries[0].due.After(now) {
			ready = append(ready, heap.Pop(&p.retries).(*item))
		}
		wait := time.Hour
		if p.retries.Len() > 0 {
			wait = time.Until(p.retries[0].due)
		}
		p.rmu.Unlock()
		for _, it := range ready {
			if err := p.add(ctx, it); err != nil {
				return nil // indexer closed or ctx done
			}
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-t.C:
		}
	}
}

// Flush sends everything queued in the indexer and waits for the answers.
func (p *Pipeline) Flush(ctx context.Context) error { return p.bi.Flush(ctx) }

// Close flushes and stops the indexer workers.
func (p *Pipeline) Close(ctx context.Context) error { return p.bi.Close(ctx) }

// Stats exposes the bulk indexer's counters.
func (p *Pipeline) Stats() esutil.BulkIndexerStats { return p.bi.Stats() }

type retryHeap []*item

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(*item)) }
func (h *retryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
