package sink

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	"golang.org/x/sync/semaphore"

	"github.com/sluicehq/sluice/pkg/backoff"
	psink "github.com/sluicehq/sluice/pkg/sink"
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
	// Retry paces retries of 429/5xx items and failed bulk requests; after
	// Retry.Attempts failed attempts of one record its topic is parked.
	Retry backoff.Policy
}

// Pipeline indexes documents through one esutil.BulkIndexer shared by
// every partition writer and reports each record to its writer's Acks once
// the cluster has it (Ack), refused it for good (DeadLetter) or kept
// failing (Fail with a park). Memory is bounded by the buffered-docs and
// buffered-bytes semaphores that writers acquire before submitting.
type Pipeline struct {
	bi  esutil.BulkIndexer
	t   esapi.Transport
	o   PipelineOptions
	m   *Metrics
	log *slog.Logger

	docs  *semaphore.Weighted
	bytes *semaphore.Weighted
	alone *semaphore.Weighted // concurrent single-record requests

	reqFailures atomic.Int32
	pauseUntil  atomic.Int64 // unix nanos; writers wait until then

	rmu     sync.Mutex
	retries retryHeap
	wake    chan struct{}

	sinceFlush atomic.Int64
	flushReq   chan struct{}
}

// item is one record in flight.
type item struct {
	pl       *Pipeline
	pw       *partWriter
	rec      psink.Record
	doc      *document.Doc
	size     int64
	attempts int
	alone    bool // its bulk request was refused as a whole: send it by itself
	due      time.Time
	released atomic.Bool
}

type flushStartKey struct{}

// NewPipeline builds the bulk indexer over transport t.
func NewPipeline(t esapi.Transport, o PipelineOptions, m *Metrics, log *slog.Logger) (*Pipeline, error) {
	if o.Retry.Base <= 0 {
		o.Retry.Base = 100 * time.Millisecond
	}
	if o.Retry.Max <= 0 {
		o.Retry.Max = 30 * time.Second
	}
	workers := int64(o.Workers)
	if workers <= 0 {
		workers = 1
	}
	p := &Pipeline{t: t, o: o, m: m, log: log,
		docs:     semaphore.NewWeighted(o.MaxBufferedDocs),
		bytes:    semaphore.NewWeighted(o.MaxBufferedBytes),
		alone:    semaphore.NewWeighted(workers),
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
			if st := requestStatus(err); st >= 400 && st < 500 && st != 429 {
				log.Warn("bulk request refused as a whole; sending its records one by one", "err", err)
				return
			}
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
		if !backoff.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// Paused reports whether consumption is paused by request failures.
func (p *Pipeline) Paused() bool {
	return time.Now().UnixNano() < p.pauseUntil.Load()
}

// done marks an item done: acknowledged to its writer, buffer released.
func (it *item) done() {
	if it.released.Swap(true) {
		return
	}
	it.pw.acks.Ack(it.rec.Offset)
	it.pl.release(it.size)
}

// drop gives up an item without acknowledging it (its writer was closed:
// the record is fetched again): only its buffer space is released.
func (it *item) drop() {
	if it.released.Swap(true) {
		return
	}
	it.pl.release(it.size)
}

// stale reports whether nobody waits for the item any more: its partition
// writer was closed (parked topic, replay, rebalance, shutdown).
func (it *item) stale() bool { return it.pw.closed.Load() }

// Submit hands a document for rec to the bulk indexer; the caller has
// acquired size bytes of buffer space.
func (p *Pipeline) Submit(ctx context.Context, pw *partWriter, rec *psink.Record, d *document.Doc, size int64) error {
	return p.add(ctx, &item{pl: p, pw: pw, rec: *rec, doc: d, size: size})
}

func (p *Pipeline) add(ctx context.Context, it *item) error {
	bi := esutil.BulkIndexerItem{
		Index:      it.doc.Index,
		Action:     string(it.doc.Action),
		DocumentID: it.doc.ID,
		OnSuccess: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem) {
			p.succeeded(it)
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

func (p *Pipeline) succeeded(it *item) {
	p.reqFailures.Store(0)
	it.done()
}

// failed classifies a failed item (see outcomeOf) and acts on it.
func (p *Pipeline) failed(it *item, res esutil.BulkIndexerResponseItem, err error) {
	if it.stale() {
		it.drop()
		return
	}
	topic := it.rec.Topic
	switch oc := outcomeOf(it.doc.Action, res, err); oc.kind {
	case outcomeIsolate:
		// The whole request was refused (400, 413...): one of its records
		// is to blame. Each is sent alone, so only that one is dead-lettered.
		if it.alone {
			p.deadLetter(it, "index", oc.reason)
			return
		}
		it.alone = true
		p.m.Retries.WithLabelValues("isolate").Inc()
		p.schedule(it, time.Now())
	case outcomeRequest:
		p.m.failed(topic, "request")
		due := time.Now().Add(p.o.Retry.Delay(it.attempts))
		if pause := time.Unix(0, p.pauseUntil.Load()); pause.After(due) {
			due = pause
		}
		p.retryOrPark(it, "request", oc.reason, due)
	case outcomeDuplicate:
		p.m.Duplicates.Inc()
		it.done()
	case outcomeDone:
		p.succeeded(it)
	case outcomeRetry:
		p.m.failed(topic, oc.metric)
		p.retryOrPark(it, "item", oc.reason, time.Now().Add(p.o.Retry.Delay(it.attempts)))
	default:
		p.m.failed(topic, oc.metric)
		p.deadLetter(it, "index", oc.reason)
	}
}

// deadLetter hands a refused item to the runtime's dead letters; the
// record is done once its dead letter is acknowledged.
func (p *Pipeline) deadLetter(it *item, stage, reason string) {
	if it.released.Swap(true) {
		return
	}
	p.log.Warn("document rejected, sending to DLQ", "topic", it.rec.Topic, "partition", it.rec.Partition, "offset", it.rec.Offset, "index", it.doc.Index, "reason", reason)
	it.pw.acks.DeadLetter(&it.rec, stage, reason)
	p.release(it.size)
}

// retryOrPark schedules another attempt at due, or, after Retry.Attempts
// failed attempts, parks the record's topic (the record is fetched again
// when the topic is released) instead of retrying the same offset forever.
func (p *Pipeline) retryOrPark(it *item, kind, reason string, due time.Time) {
	it.attempts++
	if p.o.Retry.Attempts > 0 && it.attempts >= p.o.Retry.Attempts {
		why := fmt.Errorf("%d attempts to index partition %d offset %d failed (SEARCH_SINK_RETRY_ATTEMPTS), last: %s", it.attempts, it.rec.Partition, it.rec.Offset, reason)
		it.pw.acks.Fail(psink.Park(ReasonRetries, why, nil))
		it.drop()
		return
	}
	p.m.Retries.WithLabelValues(kind).Inc()
	p.schedule(it, due)
}

// purge gives up pw's records waiting for a retry, so their buffer space
// goes to the partitions still flowing.
func (p *Pipeline) purge(pw *partWriter) {
	p.rmu.Lock()
	kept := p.retries[:0]
	var dropped []*item
	for _, it := range p.retries {
		if it.pw == pw {
			dropped = append(dropped, it)
		} else {
			kept = append(kept, it)
		}
	}
	clear(p.retries[len(kept):])
	p.retries = kept
	heap.Init(&p.retries)
	p.rmu.Unlock()
	for _, it := range dropped {
		it.drop()
	}
}

// requestFailed grows the request backoff and pauses consumption until it
// has elapsed; a successful item resets it.
func (p *Pipeline) requestFailed() {
	n := p.reqFailures.Add(1)
	until := time.Now().Add(p.o.Retry.Delay(int(n - 1))).UnixNano()
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
			switch {
			case it.stale():
				it.drop()
			case it.alone:
				if err := p.alone.Acquire(ctx, 1); err != nil {
					return nil
				}
				go func() {
					defer p.alone.Release(1)
					p.sendAlone(ctx, it)
				}()
			default:
				if err := p.add(ctx, it); err != nil {
					return nil // indexer closed or ctx done
				}
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
