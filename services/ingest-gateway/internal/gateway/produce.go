package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/sluicehq/sluice/pkg/avro"
)

// recordOverhead is what Produce allocates per record besides its bytes
// (a slot and a message), reserved from the batch's hold.
const recordOverhead = int64(unsafe.Sizeof(slot{}) + unsafe.Sizeof(kafkago.Message{}))

// produceBufs are Produce's per-batch scratch slices, recycled when the
// batch settles.
type produceBufs struct {
	slots []slot
	msgs  []kafkago.Message
	arena []byte
}

var produceBufsPool sync.Pool

func getProduceBufs(n, arena int) *produceBufs {
	pb, _ := produceBufsPool.Get().(*produceBufs)
	if pb == nil {
		pb = &produceBufs{}
	}
	if cap(pb.slots) < n {
		pb.slots = make([]slot, n)
	}
	pb.slots = pb.slots[:n]
	if cap(pb.msgs) < n {
		pb.msgs = make([]kafkago.Message, 0, n)
	}
	if cap(pb.arena) < arena {
		pb.arena = make([]byte, 0, arena)
	}
	return pb
}

func putProduceBufs(pb *produceBufs) {
	if cap(pb.arena) > 8<<20 || cap(pb.slots) > 100_000 {
		return
	}
	clear(pb.slots)
	clear(pb.msgs[:cap(pb.msgs)])
	pb.msgs, pb.arena = pb.msgs[:0], pb.arena[:0]
	produceBufsPool.Put(pb)
}

// slot carries one message's routing and receives its delivery report.
type slot struct {
	partition int32 // explicit partition, -1 for the balancer
	tr        *tracker
	index     int
	dlq       bool

	// written by the writer's completion callback, published by done
	gotPartition int32
	offset       int64
	time         time.Time
	err          error
	done         atomic.Bool
	size         int
}

// tracker counts a batch's outstanding messages and releases its budget
// when the last one is answered.
type tracker struct {
	e         *Engine
	topic     string
	hold      *Hold
	remaining atomic.Int64
	async     bool
	finished  chan struct{}
	once      sync.Once
}

func (t *tracker) finish() {
	t.once.Do(func() {
		t.hold.Release()
		close(t.finished)
		t.e.pending.done()
	})
}

// choosePartition honours an explicit partition, else takes murmur2 of
// the key as Java clients do (kafka-go's Murmur2Balancer; keyless records
// spread round-robin).
func (e *Engine) choosePartition(msg *kafkago.Message, partitions int) int {
	if s, ok := msg.WriterData.(*slot); ok && s.partition >= 0 && !s.dlq {
		return int(s.partition)
	}
	return e.murmur.Balance(*msg, e.partitionList(partitions)...)
}

// partitionList is []int{0..n-1}, cached: balancers take partition lists.
func (e *Engine) partitionList(n int) []int {
	if l, ok := e.partLists.Load(n); ok {
		return l.([]int)
	}
	l := make([]int, n)
	for i := range l {
		l[i] = i
	}
	e.partLists.Store(n, l)
	return l
}

// complete is the writer's delivery callback.
func (e *Engine) complete(msgs []kafkago.Message, err error) {
	var t tally
	var topic string
	for i := range msgs {
		s, ok := msgs[i].WriterData.(*slot)
		if !ok {
			continue
		}
		s.gotPartition = int32(msgs[i].Partition)
		s.offset = msgs[i].Offset
		s.time = msgs[i].Time
		s.err = err
		s.done.Store(true)
		if s.tr.async {
			topic = s.tr.topic
			t.count(s, nil)
			if err != nil {
				e.log.Error("async record not produced", "topic", topic, "err", err)
			}
		}
		if s.tr.remaining.Add(-1) == 0 {
			s.tr.finish()
		}
	}
	if topic != "" {
		e.flush(topic, &t)
	}
}

// Produce validates, encodes and produces a batch. A returned error is a
// request-level *Error (unknown topic, no schema, ...); otherwise there is
// one Result per record, in order. With Async, results carry no offsets.
func (e *Engine) Produce(ctx context.Context, b *Batch) ([]Result, error) {
	owned := true
	b.Settled = true
	defer func() {
		if owned {
			b.Hold.Release()
		}
	}()
	pl, results, rerr := e.plan(ctx, b)
	if rerr != nil {
		return nil, rerr
	}
	if pl == nil {
		return results, nil
	}
	e.metrics.BatchRecords.Observe(float64(len(b.Records)))

	size := arenaSize(b)
	if b.Hold != nil {
		// The arena, slots and messages are memory too.
		need := int64(size) + int64(len(b.Records))*recordOverhead
		if gerr := b.Hold.Grow(need - b.ArenaPaid); gerr != nil {
			return nil, gerr
		}
	}
	pb := getProduceBufs(len(b.Records), size)
	recycle := true // pb goes back to the pool unless the writer may hold it
	defer func() {
		if recycle {
			putProduceBufs(pb)
		}
	}()
	var t tally
	defer func() { e.flush(b.Topic, &t) }()
	tr := &tracker{e: e, topic: b.Topic, hold: b.Hold, async: b.Async, finished: make(chan struct{})}
	results = make([]Result, len(b.Records))
	msgs, rejected := e.encodeBatch(b, pl, tr, pb, results, &t)
	if rejected > 0 && b.AllOrNothing {
		if err := firstRejection(results, pb.slots); err != nil {
			return nil, err
		}
	}
	if len(msgs) == 0 {
		return results, nil
	}
	for i := range msgs {
		n := pl.partitions
		if msgs[i].Topic != b.Topic {
			n = pl.dlqPartitions
		}
		msgs[i].Partition = e.choosePartition(&msgs[i], n)
	}
	tr.remaining.Store(int64(len(msgs)))
	e.pending.add()
	owned = false // the tracker releases the hold from here on

	if b.Async {
		recycle, b.Settled = false, false
		// Queued: dead letters are reported as such (their reason stays in
		// Err), as the sync path does once Kafka answered.
		for i := range pb.slots {
			if pb.slots[i].dlq {
				results[i].DeadLettered = true
			}
		}
		go e.writeAsync(msgs, tr)
		return results, nil
	}
	if !e.writeSync(ctx, msgs, tr, results, &t) {
		recycle, b.Settled = false, false
	}
	return results, nil
}

// producePlan is what Produce resolved about a batch before encoding it.
type producePlan struct {
	partitions    int
	dlq           bool // invalid records go to the dead-letter topic
	dlqPartitions int
	vc, kc        *avro.Codec
	now           time.Time
}

// plan checks a batch's topic and schemas and prepares its dead-letter
// topic. A nil plan without an error means every record was refused (a
// schema that is not the topic's): the results say so.
func (e *Engine) plan(ctx context.Context, b *Batch) (*producePlan, []Result, *Error) {
	if e.closing.Load() {
		return nil, nil, Errorf(KindShuttingDown, "gateway is shutting down; retry against another instance")
	}
	if len(b.Records) > e.cfg.MaxRecords {
		return nil, nil, Errorf(KindRequestTooLarge, "request has %d records, more than the limit of %d", len(b.Records), e.cfg.MaxRecords)
	}
	partitions, terr := e.CheckTopic(ctx, b.Topic)
	if terr != nil {
		return nil, nil, terr
	}
	vc, err := e.valueCodec(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	kc, err := e.keyCodec(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	// A schema the producer chose (an id, another subject) must belong to
	// the topic: refused per record, so every API reports it in place.
	schemaErr := e.checkSchemaOwner(ctx, b.Topic, b.Topic+"-value", "schema_id", b.Value, vc)
	if schemaErr == nil && b.KeySchema != nil && kc != nil {
		schemaErr = e.checkSchemaOwner(ctx, b.Topic, b.Topic+"-key", "key_schema_id", *b.KeySchema, kc)
	}
	if schemaErr != nil {
		if schemaErr.Kind != KindSchemaNotOfTopic || b.AllOrNothing {
			return nil, nil, schemaErr
		}
		results := make([]Result, len(b.Records))
		var t tally
		for i := range results {
			results[i] = Result{SchemaID: vc.ID, Err: schemaErr}
			t.reject(schemaErr.Kind.reason())
		}
		e.flush(b.Topic, &t)
		return nil, results, nil
	}
	pl := &producePlan{partitions: partitions, dlq: e.cfg.Topics.DeadLetters(b.Topic), vc: vc, kc: kc}
	if pl.dlq {
		n, derr := e.ensureDLQ(ctx, b.Topic)
		if derr != nil {
			return nil, nil, derr
		}
		pl.dlqPartitions = n
	}
	pl.now = time.Now()
	return pl, nil, nil
}

// arenaSize is the arena the batch's encoded keys and values need.
func arenaSize(b *Batch) int {
	size := 0
	for i := range b.Records {
		if b.Records[i].Pre.Codec == nil {
			size += len(b.Records[i].Value)
		}
		size += len(b.Records[i].KeyJSON) + 16
	}
	return size
}

// encodeBatch encodes every record into a message (or, for an invalid
// record on a topic with dead letters, a dead letter), filling results
// and slots; it returns the messages and how many records were refused.
func (e *Engine) encodeBatch(b *Batch, pl *producePlan, tr *tracker, pb *produceBufs, results []Result, t *tally) ([]kafkago.Message, int) {
	slots, msgs, arena := pb.slots, pb.msgs, pb.arena
	win := e.window(pl.now)
	rejected := 0
	for i := range b.Records {
		r := &b.Records[i]
		results[i].SchemaID = pl.vc.ID
		s := &slots[i]
		s.tr, s.index, s.partition = tr, i, -1
		msg, rerr := e.encode(&arena, b, r, pl.vc, pl.kc, pl.partitions, pl.now, &win)
		if rerr == nil {
			if pl.kc != nil {
				results[i].KeySchemaID = pl.kc.ID
			}
			s.partition = r.Partition
			s.size = msgSize(&msg)
			msg.WriterData = s
			msgs = append(msgs, msg)
			continue
		}
		results[i].Err = rerr
		if rerr.Kind.DeadLetterable() && pl.dlq {
			m := e.deadLetter(b.Topic, r, pl.vc.ID, rerr, pl.now)
			// An oversize dead letter would make the writer refuse the
			// whole batch: reject it instead.
			if size := msgSize(&m); size <= e.cfg.MaxRecordBytes {
				s.dlq = true
				s.size = size
				m.WriterData = s
				msgs = append(msgs, m)
				continue
			}
		}
		rejected++
		t.reject(rerr.Kind.reason())
	}
	return msgs, rejected
}

// firstRejection is the request error of an all-or-nothing batch: its
// first record refused (not dead-lettered), or nil.
func firstRejection(results []Result, slots []slot) *Error {
	for i := range results {
		if err := results[i].Err; err != nil && !slots[i].dlq {
			return &Error{Kind: err.Kind, Message: fmt.Sprintf("records[%d]: %s", i, err.Message), Field: err.Field}
		}
	}
	return nil
}

// writeSync writes the messages and waits for Kafka's answers, filling
// results. It reports whether the writer is done with the messages (their
// buffers may be recycled): after a timeout some completions may still
// come, and the writer still holds those messages.
func (e *Engine) writeSync(ctx context.Context, msgs []kafkago.Message, tr *tracker, results []Result, t *tally) bool {
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, e.cfg.ProduceTimeout)
	werr := e.writer.WriteMessages(wctx, msgs...)
	cancel()
	e.metrics.ProduceDuration.Observe(time.Since(start).Seconds())
	refused := false
	if werr != nil {
		refused = e.afterWriteError(werr, tr)
	}
	// Completions run before WriteMessages returns; after a timeout some
	// may still come, and the writer still holds those messages.
	settled := tr.remaining.Load() == 0 || refused
	for _, m := range msgs {
		s := m.WriterData.(*slot)
		res := &results[s.index]
		if !s.done.Load() {
			if refused {
				res.Err = Errorf(KindUnavailable, "Kafka error: %v; retry later", werr)
			} else {
				res.Err = Errorf(KindUnavailable, "Kafka did not acknowledge the record within %s (it may still be written); retry later", e.cfg.ProduceTimeout)
			}
			t.reject(KindUnavailable.reason())
			continue
		}
		if s.err != nil {
			res.Err = kafkaError(s.err)
			t.reject(res.Err.Kind.reason())
			continue
		}
		res.Partition, res.Offset, res.Time = s.gotPartition, s.offset, s.time
		if s.dlq {
			res.DeadLettered = true
		}
		t.count(s, res.Err)
	}
	return settled
}

// kafkaError converts the error Kafka answered for a record's batch. The
// producer has already split batches refused for a record-level reason, so
// such an error belongs to this record (or its request): it is reported as
// the record's problem, not as a retryable outage.
func kafkaError(err error) *Error {
	switch {
	case errors.Is(err, kafkago.InvalidTimestamp):
		return &Error{Kind: KindInvalidTimestamp, Field: "timestamp", Message: fmt.Sprintf(
			"timestamp: Kafka refused the record's timestamp (the topic's message.timestamp.* bounds are stricter than the gateway's): %v", err)}
	case errors.Is(err, kafkago.MessageSizeTooLarge), errors.Is(err, kafkago.RecordListTooLarge):
		return &Error{Kind: KindRecordTooLarge, Message: fmt.Sprintf(
			"Kafka refused the record as too large (the topic's max.message.bytes is below GATEWAY_MAX_RECORD_BYTES): %v", err)}
	case errors.Is(err, kafkago.InvalidRecord), errors.Is(err, kafkago.InvalidMessage):
		return &Error{Kind: KindInvalidRecord, Message: fmt.Sprintf("Kafka refused the record: %v", err)}
	}
	return Errorf(KindUnavailable, "Kafka error: %v", err)
}

func (e *Engine) writeAsync(msgs []kafkago.Message, tr *tracker) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*e.cfg.ProduceTimeout)
	defer cancel()
	if err := e.writer.WriteMessages(ctx, msgs...); err != nil {
		_ = e.afterWriteError(err, tr)
	}
}

// afterWriteError makes sure the batch's budget is released even when the
// producer never took the messages (it is closed) or the wait timed out
// and acks will arrive later or never. It reports whether the producer
// refused the messages outright. (Kafka's own errors arrive through the
// completion callback, not here.)
func (e *Engine) afterWriteError(err error, tr *tracker) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// Possibly enqueued: completions may still come; release at the
		// latest after the writer's retries are surely over.
		go func() {
			t := time.NewTimer(2*e.cfg.ProduceTimeout + 30*time.Second)
			defer t.Stop()
			select {
			case <-tr.finished:
			case <-t.C:
				tr.finish()
			}
		}()
		return false
	}
	e.log.Warn("kafka writer refused a batch", "topic", tr.topic, "err", err)
	tr.finish()
	return true
}

func msgSize(m *kafkago.Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}
