package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// producer is the gateway's Kafka producer. It has kafka-go Writer's
// contract as the engine uses it (WriteMessages waits for Kafka's answer to
// every message, Completion is called once per produced batch with
// partitions, offsets and times filled in, Close flushes) but:
//
//   - messages arrive with their partition already chosen (the engine knows
//     partition counts), so there is no per-message metadata lookup;
//   - it encodes Kafka v2 record batches itself and sends them with
//     kafka-go's Client.RawProduce through the same Transport (TLS, SASL,
//     leader routing), instead of kafka-go's reflection-driven encoder;
//   - a partition's batch goes out as soon as that partition has no request
//     in flight (after at most linger): records arriving meanwhile
//     accumulate into the next batch. Sync callers never wait for a timer
//     when the partition is idle, and batches still grow under load.
//
// Every request asks for acks from all in-sync replicas. One request per
// partition is in flight at a time, so retries cannot reorder a partition.
// Retries follow the Writer's policy: temporary Kafka errors and transient
// network errors, up to maxAttempts, with exponential backoff. Like the
// Writer (and any producer without idempotence), a retried request whose
// first attempt was written but not acknowledged can duplicate records.
type producer struct {
	client      *kafkago.Client
	log         *slog.Logger
	batchSize   int
	batchBytes  int
	linger      time.Duration
	maxAttempts int
	backoffMin  time.Duration
	backoffMax  time.Duration
	reqTimeout  time.Duration
	completion  func(msgs []kafkago.Message, err error)
	// splitBudget bounds the extra produce requests spent cutting one
	// request's records apart after a record-level refusal (cuts between
	// requests are not counted: they are bounded by the batch's requests).
	splitBudget int

	// life is held shared by WriteMessages while it hands messages over
	// and exclusively by Close to close, so no sender starts after Close
	// began waiting for them.
	life    sync.RWMutex
	closed  atomic.Bool
	senders sync.WaitGroup
	partsMu sync.Mutex
	parts   map[topicPartition]*partProducer
}

type topicPartition struct {
	topic     string
	partition int32
}

// errProducerClosed refuses messages after Close.
var errProducerClosed = errors.New("kafka producer is closed")

// produceCall tracks one WriteMessages call.
type produceCall struct {
	remaining atomic.Int64
	done      chan struct{}
}

func (c *produceCall) finish(n int) {
	if c.remaining.Add(int64(-n)) == 0 {
		close(c.done)
	}
}

// prodBatch is a partition's batch: messages and the call each belongs to.
type prodBatch struct {
	msgs   []kafkago.Message
	owners []*produceCall // parallel to msgs
	bytes  int
	first  time.Time // when the first message was added
}

type partProducer struct {
	p  *producer
	tp topicPartition

	mu    sync.Mutex
	cur   *prodBatch   // being filled
	queue []*prodBatch // full, waiting for the sender
	busy  bool         // a sender goroutine is running
	kick  chan struct{}
}

func newProducer(client *kafkago.Client, log *slog.Logger, batchSize int, batchBytes int64, linger, reqTimeout time.Duration, completion func([]kafkago.Message, error)) *producer {
	return &producer{
		client:      client,
		log:         log,
		batchSize:   batchSize,
		batchBytes:  int(batchBytes),
		linger:      linger,
		maxAttempts: 5,
		backoffMin:  50 * time.Millisecond,
		backoffMax:  time.Second,
		reqTimeout:  reqTimeout,
		completion:  completion,
		splitBudget: 32,
		parts:       map[topicPartition]*partProducer{},
	}
}

// WriteMessages hands msgs (Topic and Partition set) to their partitions'
// batches and waits until Kafka answered for all of them, or ctx ends (the
// messages are then still produced, and completed, later).
func (p *producer) WriteMessages(ctx context.Context, msgs ...kafkago.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if len(msgs) > 1<<16 {
		return errors.New("kafka producer: more than 65536 messages in one call")
	}
	call := &produceCall{done: make(chan struct{})}
	call.remaining.Store(int64(len(msgs)))
	// Group by partition without copying or allocating per message:
	// requests mostly hit a handful of partitions.
	var ppsBuf [16]*partProducer
	pps := ppsBuf[:0]
	var giBuf [1024]uint16
	gi := giBuf[:0]
	if len(msgs) > len(giBuf) {
		gi = make([]uint16, 0, len(msgs))
	}
	now := time.Now()
	p.life.RLock()
	if p.closed.Load() {
		p.life.RUnlock()
		return errProducerClosed
	}
	for i := range msgs {
		if msgs[i].Time.IsZero() {
			msgs[i].Time = now
		}
		tp := topicPartition{msgs[i].Topic, int32(msgs[i].Partition)}
		g := -1
		for j, pp := range pps {
			if pp.tp == tp {
				g = j
				break
			}
		}
		if g < 0 {
			pps = append(pps, p.partition(tp))
			g = len(pps) - 1
		}
		gi = append(gi, uint16(g))
	}
	for g, pp := range pps {
		pp.add(msgs, gi, uint16(g), call)
	}
	p.life.RUnlock()
	select {
	case <-call.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// partition returns tp's producer, creating it on first use.
func (p *producer) partition(tp topicPartition) *partProducer {
	p.partsMu.Lock()
	defer p.partsMu.Unlock()
	pp := p.parts[tp]
	if pp == nil {
		pp = &partProducer{p: p, tp: tp, kick: make(chan struct{}, 1)}
		p.parts[tp] = pp
	}
	return pp
}

// add appends the messages of group g to the partition's batches and
// makes sure a sender runs. Called with p.life held shared.
func (pp *partProducer) add(msgs []kafkago.Message, gi []uint16, g uint16, call *produceCall) {
	pp.mu.Lock()
	for i := range msgs {
		if gi[i] != g {
			continue
		}
		size := recordSizeBound(&msgs[i])
		if pp.cur != nil && (len(pp.cur.msgs) >= pp.p.batchSize || pp.cur.bytes+size > pp.p.batchBytes) {
			pp.queue = append(pp.queue, pp.cur)
			pp.cur = nil
		}
		if pp.cur == nil {
			pp.cur = newProdBatch()
		}
		b := pp.cur
		b.msgs = append(b.msgs, msgs[i])
		b.bytes += size
		b.owners = append(b.owners, call)
	}
	start := !pp.busy
	pp.busy = true
	if start {
		pp.p.senders.Add(1)
		go pp.run()
	} else if len(pp.queue) > 0 {
		select { // wake a lingering sender: a batch is full
		case pp.kick <- struct{}{}:
		default:
		}
	}
	pp.mu.Unlock()
}

// run sends the partition's batches one at a time until there are none.
func (pp *partProducer) run() {
	defer pp.p.senders.Done()
	for {
		pp.mu.Lock()
		var b *prodBatch
		var wait time.Duration
		switch {
		case len(pp.queue) > 0:
			b = pp.queue[0]
			pp.queue[0] = nil
			pp.queue = pp.queue[1:]
		case pp.cur != nil:
			if age := time.Since(pp.cur.first); age < pp.p.linger && !pp.p.closed.Load() {
				wait = pp.p.linger - age
			} else {
				b, pp.cur = pp.cur, nil
			}
		default:
			pp.busy = false
			pp.mu.Unlock()
			return
		}
		pp.mu.Unlock()
		if b == nil {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-pp.kick:
			}
			t.Stop()
			continue
		}
		pp.p.send(pp.tp, b)
	}
}

var batchBufs sync.Pool // *[]byte

// send produces one batch, retrying as kafka-go's Writer does, then
// reports the outcome to the completion callback and the waiting calls.
// A batch the broker refuses for something one record can cause is split
// and its parts sent again (see sendRange), so records of other requests
// batched with the culprit are not failed with it.
func (p *producer) send(tp topicPartition, b *prodBatch) {
	budget := p.splitBudget
	p.sendRange(tp, b, 0, len(b.msgs), &budget)
	b.recycle()
}

// recordLevel reports whether a produce error refuses the whole batch for
// something a single record (or the batch's total size) can cause.
func recordLevel(err error) bool {
	for _, e := range []kafkago.Error{kafkago.InvalidTimestamp, kafkago.MessageSizeTooLarge, kafkago.RecordListTooLarge,
		kafkago.InvalidRecord, kafkago.InvalidMessage} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// splitPoint chooses where to cut b.msgs[lo:hi] after a record-level
// refusal: at the request (owner) boundary nearest the middle, so whole
// requests are told apart first; within one request, at the middle while
// budget lasts (each such cut costs one more produce request than it
// saves). It returns lo when the range is not to be cut.
func splitPoint(owners []*produceCall, lo, hi int, budget *int) int {
	if hi-lo < 2 {
		return lo
	}
	mid, best := (lo+hi)/2, lo
	for j := lo + 1; j < hi; j++ {
		if owners[j] != owners[j-1] && (best == lo || abs(j-mid) < abs(best-mid)) {
			best = j
		}
	}
	if best > lo {
		return best
	}
	if *budget < 2 {
		return lo
	}
	*budget -= 2
	return mid
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// sendRange produces b.msgs[lo:hi] and reports it. On a record-level
// refusal the range is cut in two and each part is sent on its own, left
// first (order within the partition is kept and one request stays in
// flight): parts without the offending record succeed, the part holding
// it fails alone. Cuts between requests are bounded by the number of
// requests in the batch, cuts within one request by budget.
func (p *producer) sendRange(tp topicPartition, b *prodBatch, lo, hi int, budget *int) {
	msgs := b.msgs[lo:hi]
	resp, err := p.produce(tp, msgs)
	if err != nil && recordLevel(err) {
		if mid := splitPoint(b.owners, lo, hi, budget); mid > lo {
			p.log.Warn("kafka refused a batch for one of its records; sending it in parts", "topic", tp.topic, "partition", tp.partition, "records", hi-lo, "err", err)
			p.sendRange(tp, b, lo, mid, budget)
			p.sendRange(tp, b, mid, hi, budget)
			return
		}
	}
	if err == nil {
		appendTime := resp.LogAppendTime.UnixMilli() > 0
		for i := range msgs {
			msgs[i].Offset = resp.BaseOffset + int64(i)
			if appendTime {
				msgs[i].Time = resp.LogAppendTime
			}
		}
	}
	if p.completion != nil {
		p.completion(msgs, err)
	}
	// Each call's share of this range: its messages are contiguous.
	owners := b.owners[lo:hi]
	for i := 0; i < len(owners); {
		j := i + 1
		for j < len(owners) && owners[j] == owners[i] {
			j++
		}
		owners[i].finish(j - i)
		i = j
	}
}

// produce encodes msgs as one record batch and sends it, retrying
// temporary errors.
func (p *producer) produce(tp topicPartition, msgs []kafkago.Message) (*kafkago.ProduceResponse, error) {
	bufp, _ := batchBufs.Get().(*[]byte)
	if bufp == nil {
		bufp = new([]byte)
	}
	buf := appendRecordBatch((*bufp)[:0], msgs)
	var (
		resp *kafkago.ProduceResponse
		err  error
	)
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), p.reqTimeout)
		resp, err = p.client.RawProduce(ctx, &kafkago.RawProduceRequest{
			Topic:        tp.topic,
			Partition:    int(tp.partition),
			RequiredAcks: kafkago.RequireAll,
			RawRecords:   protocol.RawRecordSet{Reader: bytes.NewReader(buf)},
		})
		cancel()
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err == nil || attempt+1 >= p.maxAttempts || !retriable(err) {
			break
		}
		backoff := min(p.backoffMin<<attempt, p.backoffMax)
		p.log.Debug("retrying kafka produce", "topic", tp.topic, "partition", tp.partition, "attempt", attempt+1, "err", err)
		time.Sleep(backoff)
	}
	if err == nil || (resp != nil && resp.Error != nil) {
		// The request was written and answered: the buffer is ours again.
		*bufp = buf
		if cap(buf) <= 4<<20 {
			batchBufs.Put(bufp)
		}
	}
	return resp, err
}

var prodBatches sync.Pool // *prodBatch: a busy partition fills thousands

func newProdBatch() *prodBatch {
	b, _ := prodBatches.Get().(*prodBatch)
	if b == nil {
		b = &prodBatch{}
	}
	b.first = time.Now()
	return b
}

// recycle returns a sent batch; its messages were reported and its calls
// told, so nothing refers to it any more.
func (b *prodBatch) recycle() {
	if cap(b.msgs) > 1<<14 {
		return
	}
	clear(b.msgs)
	clear(b.owners)
	b.msgs, b.owners, b.bytes = b.msgs[:0], b.owners[:0], 0
	prodBatches.Put(b)
}

// Close flushes every partition's batches, waits until Kafka answered for
// them, and refuses further messages.
func (p *producer) Close() error {
	p.life.Lock()
	p.closed.Store(true)
	p.life.Unlock()
	p.partsMu.Lock()
	for _, pp := range p.parts {
		select { // cut lingering short
		case pp.kick <- struct{}{}:
		default:
		}
	}
	p.partsMu.Unlock()
	p.senders.Wait()
	return nil
}

// retriable mirrors kafka-go's Writer: temporary Kafka errors (including
// request timeouts) and transient network errors are retried.
func retriable(err error) bool {
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// recordSizeBound is an upper bound of a message's encoded record size.
func recordSizeBound(m *kafkago.Message) int {
	n := 1 + 3*binary.MaxVarintLen32 + binary.MaxVarintLen64 + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += 2*binary.MaxVarintLen32 + len(h.Key) + len(h.Value)
	}
	return n
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecordBatch appends msgs as one uncompressed Kafka record batch
// (magic 2, create-time timestamps, no producer id), preceded by its int32
// size as a produce request's record set is.
func appendRecordBatch(dst []byte, msgs []kafkago.Message) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, 4+61)...) // size, then the batch header
	base := msgs[0].Time.UnixMilli()
	maxTS := base
	for i := range msgs {
		m := &msgs[i]
		ts := m.Time.UnixMilli()
		maxTS = max(maxTS, ts)
		bodyLen := 1 + varintLen(ts-base) + varintLen(int64(i)) + bytesLen(m.Key) + bytesLen(m.Value) + varintLen(int64(len(m.Headers)))
		for _, h := range m.Headers {
			bodyLen += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
		}
		dst = binary.AppendVarint(dst, int64(bodyLen))
		dst = append(dst, 0) // attributes
		dst = binary.AppendVarint(dst, ts-base)
		dst = binary.AppendVarint(dst, int64(i))
		dst = appendBytes(dst, m.Key)
		dst = appendBytes(dst, m.Value)
		dst = binary.AppendVarint(dst, int64(len(m.Headers)))
		for _, h := range m.Headers {
			dst = binary.AppendVarint(dst, int64(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = appendBytes(dst, h.Value)
		}
	}
	h := dst[start:]
	be := binary.BigEndian
	be.PutUint32(h[0:], uint32(len(h)-4))   // record set size
	be.PutUint64(h[4:], 0)                  // base offset
	be.PutUint32(h[12:], uint32(len(h)-16)) // batch length: after this field
	be.PutUint32(h[16:], 0xffffffff)        // partition leader epoch: -1
	h[20] = 2                               // magic
	// h[21:25] crc, below
	be.PutUint16(h[25:], 0) // attributes: no compression, create time
	be.PutUint32(h[27:], uint32(len(msgs)-1))
	be.PutUint64(h[31:], uint64(base))
	be.PutUint64(h[39:], uint64(maxTS))
	be.PutUint64(h[47:], 0xffffffffffffffff) // producer id: -1
	be.PutUint16(h[55:], 0xffff)             // producer epoch: -1
	be.PutUint32(h[57:], 0xffffffff)         // base sequence: -1
	be.PutUint32(h[61:], uint32(len(msgs)))
	be.PutUint32(h[21:], crc32.Checksum(h[25:], castagnoli))
	return dst
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func bytesLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + len(b)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}
