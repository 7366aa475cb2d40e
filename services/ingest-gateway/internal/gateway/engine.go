package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/deadletter"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/wire"
)

// Registry is the part of pkg/registry the engine uses.
type Registry interface {
	SchemaByID(ctx context.Context, id int) (*registry.Schema, error)
	Latest(ctx context.Context, subject string) (*registry.Schema, error)
	ByVersion(ctx context.Context, subject string, version int) (*registry.Schema, error)
	Register(ctx context.Context, subject, schemaType, schema string, refs []registry.Reference) (int, error)
	// Lookup finds an already registered schema's id (a read-only
	// credential may); IsNotFound when it is not registered.
	Lookup(ctx context.Context, subject, schemaType, schema string, refs []registry.Reference) (int, error)
	// IDInSubject reports whether schema id is a version of subject
	// (cached: yes for good, no briefly).
	IDInSubject(ctx context.Context, id int, subject string) (bool, error)
}

// Format says how record values (and JSON keys) are written in a request.
type Format uint8

// Value formats.
const (
	FormatJSON       Format = iota // plain JSON, unions inferred
	FormatAvroJSON                 // Avro JSON encoding, unions wrapped
	FormatAvroBinary               // Avro binary, validated by decoding
)

// SchemaRef selects a schema: by global id, by version of the subject, as
// inline schema text (registered under the subject, REST Proxy v2), or the
// subject's latest when all are zero.
type SchemaRef struct {
	ID      int
	Version int
	Schema  string
	// Subject overrides <topic>-value / <topic>-key for Version, Schema and
	// latest (Confluent v3's "subject"); an ID needs no subject.
	Subject string
}

// Record is one record of a request.
type Record struct {
	// Key is the raw key (nil: no key) when KeyJSON is nil.
	Key []byte
	// KeyJSON is a key given as JSON: Avro-encoded when <topic>-key has a
	// schema (or Batch.KeySchema is set), else a JSON string's text or the
	// JSON text itself.
	KeyJSON json.RawMessage
	// Value is JSON text (JSON formats; nil means null) or Avro binary.
	Value     []byte
	Headers   []kafkago.Header
	Time      time.Time // zero: the gateway's receive time
	Partition int32     // -1: by key hash (murmur2, as Java clients)
	// Pre is the value already encoded while the request was parsed; it
	// is used when its codec and format are the batch's.
	Pre Prepared
	// Invalid is an error found while the request was parsed (a negative
	// partition, an invalid timestamp): the record is answered with it and
	// never encoded.
	Invalid *Error
}

// Prepared is a record value encoded ahead of Produce with Codec in Format:
// Framed (Confluent-framed Avro) or Err, the value's validation error.
type Prepared struct {
	Codec  *avro.Codec
	Format Format
	Framed []byte
	Err    *Error
}

// ValueError converts an encoder error for the value at root into the
// record's error.
func ValueError(err error, root string) *Error {
	var fe *avro.FieldError
	if errors.As(err, &fe) {
		return &Error{Kind: KindInvalidRecord, Message: fe.Error(), Field: fe.Path}
	}
	return &Error{Kind: KindInvalidRecord, Message: err.Error(), Field: root}
}

// ValueCodec is the codec of topic's latest <topic>-value schema, for
// encoding values while a request is parsed; nil when it cannot be had
// (unknown subject, registry down: Produce then reports the problem).
func (e *Engine) ValueCodec(ctx context.Context, topic string) *avro.Codec {
	if !e.cfg.Topics.Allowed(topic) {
		return nil
	}
	c, err := e.valueCodec(ctx, &Batch{Topic: topic})
	if err != nil {
		return nil
	}
	return c
}

// Batch is one produce call for one topic.
type Batch struct {
	Topic     string
	Value     SchemaRef
	KeySchema *SchemaRef // explicit key schema (REST Proxy v2); nil: <topic>-key if it exists
	Format    Format
	// KeyFormat is the format of KeyJSON keys (defaults to Format; binary
	// formats use plain JSON keys).
	KeyFormat Format
	Records   []Record
	// Async answers once the records are handed to the writer (202).
	Async bool
	// JSONKeys writes keys that have no key schema as their JSON text
	// (a string key keeps its quotes), as Confluent REST Proxy's JSON
	// embedded format does; otherwise a JSON string key is written as the
	// string itself.
	JSONKeys bool
	// AllOrNothing fails the whole request (nothing produced) when a record
	// is invalid, as Confluent's REST Proxy does; dead-letter topics still
	// take invalid records.
	AllOrNothing bool
	// Hold is the in-flight budget taken for this batch; Produce releases it
	// once Kafka has answered for every record, whatever happens. Produce
	// grows it by the encoding arena it allocates, less ArenaPaid (what
	// the caller reserved for that already).
	Hold      *Hold
	ArenaPaid int64
	// Settled is set by Produce when none of the batch's records is left
	// with the Kafka writer (everything answered, or nothing written), so
	// the caller may reuse the memory Records point into. Async batches and
	// timed-out writes are never settled.
	Settled bool
}

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

// Result is the outcome of one record.
type Result struct {
	Partition    int32
	Offset       int64
	Time         time.Time
	SchemaID     int
	KeySchemaID  int
	DeadLettered bool
	Err          *Error // nil on success (and for dead-lettered records, the reason is in Err too)
}

// Config tunes the engine.
type Config struct {
	Topics TopicPolicy
	// MaxTimestampSkew and MaxTimestampAge bound producer-given record
	// timestamps around the gateway's clock (0: that side unbounded).
	MaxTimestampSkew time.Duration
	MaxTimestampAge  time.Duration
	// MetricTopics bounds the distinct topic label values (0: unbounded).
	MetricTopics int
	// TopicCacheSize bounds the topics (and key subjects) remembered.
	TopicCacheSize int
	// SplitBudget bounds the extra produce requests spent cutting one
	// request's records apart after a record-level refusal of their batch.
	SplitBudget    int
	AutoCreate     bool
	Partitions     int // for auto-created and dead-letter topics
	MaxRecordBytes int
	MaxRecords     int
	InflightBytes  int64
	ProduceTimeout time.Duration
	BatchTimeout   time.Duration
	BatchSize      int
	BatchBytes     int64
	Avro           avro.Limits // the per-record decode budget of every codec (zero: the defaults)
}

// Engine validates, encodes and produces records. Safe for concurrent use.
type Engine struct {
	cfg       Config
	log       *slog.Logger
	kc        *kafka.Clients
	reg       Registry
	codecs    *avro.Codecs
	writer    *producer
	murmur    kafkago.Murmur2Balancer
	partLists sync.Map // int -> []int{0..n-1}
	metrics   *Metrics
	topics    *topicCache

	inflight atomic.Int64
	closing  atomic.Bool
	pending  waiter // batches whose acks have not all arrived

	mu       sync.Mutex
	noKey    map[string]time.Time // subjects known to have no key schema, until
	inline   map[string]int       // subject + schema text -> registered id
	inlineMu sync.Mutex
}

// New builds an engine; Close flushes it.
func New(cfg Config, log *slog.Logger, kc *kafka.Clients, reg Registry, metrics prometheus.Registerer) *Engine {
	e := &Engine{
		cfg:    cfg,
		log:    log,
		kc:     kc,
		reg:    reg,
		codecs: avro.NewCodecs(reg, avro.WithLimits(cfg.Avro)),
		topics: &topicCache{kc: kc, autoCreate: cfg.AutoCreate, partitions: cfg.Partitions, max: cfg.TopicCacheSize, m: map[string]topicEntry{}},
		noKey:  map[string]time.Time{},
		inline: map[string]int{},
	}
	e.metrics = newMetrics(metrics, func() float64 { return float64(e.inflight.Load()) }, cfg.MetricTopics)
	e.writer = newProducer(
		&kafkago.Client{Addr: kafkago.TCP(kc.Brokers()...), Transport: kc.Transport},
		log, cfg.BatchSize, cfg.BatchBytes, cfg.BatchTimeout, 10*time.Second, e.complete)
	e.writer.splitBudget = cfg.SplitBudget
	return e
}

// Metrics returns the engine's collectors.
func (e *Engine) Metrics() *Metrics { return e.metrics }

// Inflight returns the bytes currently reserved.
func (e *Engine) Inflight() int64 { return e.inflight.Load() }

// waiter counts outstanding batches; unlike a WaitGroup, adding while
// someone waits is allowed (a request that passed the closing check just
// before shutdown).
type waiter struct {
	mu   sync.Mutex
	n    int
	zero chan struct{}
}

func (w *waiter) add() {
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
}

func (w *waiter) done() {
	w.mu.Lock()
	w.n--
	if w.n == 0 && w.zero != nil {
		close(w.zero)
		w.zero = nil
	}
	w.mu.Unlock()
}

func (w *waiter) wait(ctx context.Context) error {
	w.mu.Lock()
	if w.n == 0 {
		w.mu.Unlock()
		return nil
	}
	if w.zero == nil {
		w.zero = make(chan struct{})
	}
	ch := w.zero
	w.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Hold is a reservation of in-flight bytes. It grows while a request's
// memory grows (a chunked body being read, parse and encode arenas) and is
// released once, when Kafka has answered for every record of it.
type Hold struct {
	e        *Engine
	n        atomic.Int64
	released atomic.Bool
	once     sync.Once
}

// Release returns the bytes to the budget; later calls do nothing.
func (h *Hold) Release() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		h.released.Store(true)
		h.e.inflight.Add(-h.n.Swap(0))
	})
}

// Bytes returns what the hold reserves now.
func (h *Hold) Bytes() int64 {
	if h == nil {
		return 0
	}
	return h.n.Load()
}

// Grow reserves n more bytes, or fails with KindBusy (taking nothing) when
// the budget cannot hold them while other requests hold some of it; a
// request alone in flight may grow past the budget (as Reserve admits it),
// bounded by its own limits (GATEWAY_MAX_REQUEST_BYTES and the like).
func (h *Hold) Grow(n int64) *Error {
	if h == nil || n <= 0 {
		return nil
	}
	e := h.e
	for {
		cur := e.inflight.Load()
		if cur+n > e.cfg.InflightBytes && cur > h.n.Load() {
			return Errorf(KindBusy, "gateway busy: %d bytes in flight, budget %d; retry later", cur, e.cfg.InflightBytes)
		}
		if e.inflight.CompareAndSwap(cur, cur+n) {
			h.n.Add(n)
			if h.released.Load() {
				// Released meanwhile: nothing will return these bytes.
				e.inflight.Add(-h.n.Swap(0))
			}
			return nil
		}
	}
}

// GrowWait is Grow that waits (up to the produce timeout) for budget, for
// streams, where backpressure beats failing records.
func (h *Hold) GrowWait(ctx context.Context, n int64) *Error {
	deadline := time.Now().Add(h.e.cfg.ProduceTimeout)
	for {
		err := h.Grow(n)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// Shrink returns n of the hold's bytes (an estimate that came out high).
func (h *Hold) Shrink(n int64) {
	if h == nil || n <= 0 || h.released.Load() {
		return
	}
	n = min(n, h.n.Load())
	h.n.Add(-n)
	h.e.inflight.Add(-n)
}

// Absorb moves other's reservation into h (items of a stream produced in
// one batch); other is left empty and released.
func (h *Hold) Absorb(other *Hold) {
	if h == nil || other == nil || other == h {
		return
	}
	other.once.Do(func() {
		other.released.Store(true)
		h.n.Add(other.n.Swap(0))
	})
}

// NewHold returns an empty reservation that grows as a request's memory
// does (Grow, GrowWait).
func (e *Engine) NewHold() *Hold { return &Hold{e: e} }

// Reserve takes n bytes of the shared in-flight budget, or fails with
// KindBusy when that would exceed it.
func (e *Engine) Reserve(n int64) (*Hold, *Error) {
	if n < 0 {
		n = 0
	}
	for {
		cur := e.inflight.Load()
		if cur+n > e.cfg.InflightBytes && cur > 0 {
			return nil, Errorf(KindBusy, "gateway busy: %d bytes in flight, budget %d; retry later", cur, e.cfg.InflightBytes)
		}
		if e.inflight.CompareAndSwap(cur, cur+n) {
			h := &Hold{e: e}
			h.n.Store(n)
			return h, nil
		}
	}
}

// Stopping makes new produce calls fail with KindShuttingDown.
func (e *Engine) Stopping() { e.closing.Store(true) }

// Close waits until every record handed to the writer has been answered by
// Kafka (or ctx ends), then closes the writer, which flushes what is left.
func (e *Engine) Close(ctx context.Context) error {
	e.closing.Store(true)
	var err error
	if werr := e.pending.wait(ctx); werr != nil {
		err = fmt.Errorf("waiting for kafka acks: %w", werr)
	}
	if cerr := e.writer.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing kafka writer: %w", cerr))
	}
	return err
}

// Authorized is implemented by API-key principals.
type Authorized interface {
	AllowsTopic(topic string) bool
}

// Check resolves a batch's topic and value schema without producing, so
// streaming APIs can refuse a request before reading its body.
func (e *Engine) Check(ctx context.Context, b *Batch) *Error {
	if e.closing.Load() {
		return Errorf(KindShuttingDown, "gateway is shutting down; retry against another instance")
	}
	if _, err := e.CheckTopic(ctx, b.Topic); err != nil {
		return err
	}
	_, err := e.valueCodec(ctx, b)
	return err
}

// ReserveWait is Reserve that waits (up to the produce timeout) for budget,
// for streams, where backpressure beats failing records.
func (e *Engine) ReserveWait(ctx context.Context, n int64) (*Hold, *Error) {
	deadline := time.Now().Add(e.cfg.ProduceTimeout)
	for {
		h, err := e.Reserve(n)
		if err == nil {
			return h, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// TopicAllowed reports whether the configuration allows topic, so APIs can
// answer 404 before telling an API key it may not use the topic.
func (e *Engine) TopicAllowed(topic string) bool { return e.cfg.Topics.Allowed(topic) }

// TopicError is the request error for a topic producers may not use: 400
// for a name Kafka would not accept (quoting at most 64 bytes of it), 404
// for one the configuration does not allow; nil when it is allowed. APIs
// call it before storing a topic name anywhere.
func (e *Engine) TopicError(topic string) *Error {
	if err := kafka.ValidateTopicName(topic); err != nil {
		return Errorf(KindBadRequest, "%v", err)
	}
	if !e.cfg.Topics.Allowed(topic) {
		return Errorf(KindUnknownTopic, "Topic %s not found.", topic)
	}
	return nil
}

// CheckTopic answers whether a topic may be used and exists, with its
// partition count.
func (e *Engine) CheckTopic(ctx context.Context, topic string) (int, *Error) {
	if err := e.TopicError(topic); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ProduceTimeout)
	defer cancel()
	return e.topics.lookup(ctx, topic, e.cfg.AutoCreate)
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

// tally counts a batch's outcomes so metrics are updated once per batch,
// not once per record.
type tally struct {
	accepted, acceptedBytes int
	dlq, dlqBytes           int
	rejected                int
	reasons                 map[string]int
}

// count records one message's outcome; rerr is its validation error, if any.
func (t *tally) count(s *slot, rerr *Error) {
	switch {
	case s != nil && s.err != nil:
		t.reject(kafkaError(s.err).Kind.reason())
	case s != nil && s.dlq:
		t.dlq++
		t.dlqBytes += s.size
		if rerr != nil {
			t.reason(rerr.Kind.reason())
		}
	case s != nil:
		t.accepted++
		t.acceptedBytes += s.size
	}
}

func (t *tally) reject(reason string) {
	t.rejected++
	t.reason(reason)
}

func (t *tally) reason(r string) {
	if t.reasons == nil {
		t.reasons = map[string]int{}
	}
	t.reasons[r]++
}

func (e *Engine) flush(topic string, t *tally) {
	if t.accepted == 0 && t.dlq == 0 && t.rejected == 0 && len(t.reasons) == 0 {
		return
	}
	m := e.metrics
	topic = m.Topic(topic)
	if t.accepted > 0 {
		m.Records.WithLabelValues(topic, "accepted").Add(float64(t.accepted))
		m.Bytes.WithLabelValues(topic, "accepted").Add(float64(t.acceptedBytes))
	}
	if t.dlq > 0 {
		m.Records.WithLabelValues(topic, "dead_lettered").Add(float64(t.dlq))
		m.Bytes.WithLabelValues(topic, "dead_lettered").Add(float64(t.dlqBytes))
	}
	if t.rejected > 0 {
		m.Records.WithLabelValues(topic, "rejected").Add(float64(t.rejected))
	}
	for r, n := range t.reasons {
		m.RecordErrors.WithLabelValues(topic, r).Add(float64(n))
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
	if e.closing.Load() {
		return nil, Errorf(KindShuttingDown, "gateway is shutting down; retry against another instance")
	}
	if len(b.Records) > e.cfg.MaxRecords {
		return nil, Errorf(KindRequestTooLarge, "request has %d records, more than the limit of %d", len(b.Records), e.cfg.MaxRecords)
	}
	partitions, terr := e.CheckTopic(ctx, b.Topic)
	if terr != nil {
		return nil, terr
	}
	vc, err := e.valueCodec(ctx, b)
	if err != nil {
		return nil, err
	}
	kc, err := e.keyCodec(ctx, b)
	if err != nil {
		return nil, err
	}
	// A schema the producer chose (an id, another subject) must belong to
	// the topic: refused per record, so every API reports it in place.
	schemaErr := e.checkSchemaOwner(ctx, b.Topic, b.Topic+"-value", "schema_id", b.Value, vc)
	if schemaErr == nil && b.KeySchema != nil && kc != nil {
		schemaErr = e.checkSchemaOwner(ctx, b.Topic, b.Topic+"-key", "key_schema_id", *b.KeySchema, kc)
	}
	if schemaErr != nil {
		if schemaErr.Kind != KindSchemaNotOfTopic || b.AllOrNothing {
			return nil, schemaErr
		}
		results := make([]Result, len(b.Records))
		var t tally
		for i := range results {
			results[i] = Result{SchemaID: vc.ID, Err: schemaErr}
			t.reject(schemaErr.Kind.reason())
		}
		e.flush(b.Topic, &t)
		return results, nil
	}
	dlq := e.cfg.Topics.DeadLetters(b.Topic)
	dlqPartitions := 0
	if dlq {
		n, derr := e.ensureDLQ(ctx, b.Topic)
		if derr != nil {
			return nil, derr
		}
		dlqPartitions = n
	}
	e.metrics.BatchRecords.Observe(float64(len(b.Records)))

	now := time.Now()
	win := e.window(now)
	results := make([]Result, len(b.Records))
	tr := &tracker{e: e, topic: b.Topic, hold: b.Hold, async: b.Async, finished: make(chan struct{})}
	size := 0
	for i := range b.Records {
		if b.Records[i].Pre.Codec == nil {
			size += len(b.Records[i].Value)
		}
		size += len(b.Records[i].KeyJSON) + 16
	}
	if b.Hold != nil {
		// The arena, slots and messages are memory too.
		need := int64(size) + int64(len(b.Records))*recordOverhead
		if gerr := b.Hold.Grow(need - b.ArenaPaid); gerr != nil {
			return nil, gerr
		}
	}
	pb := getProduceBufs(len(b.Records), size)
	slots, msgs, arena := pb.slots, pb.msgs, pb.arena
	recycle := true // pb goes back to the pool unless the writer may hold it
	defer func() {
		if recycle {
			putProduceBufs(pb)
		}
	}()
	rejected := 0
	var t tally
	defer func() { e.flush(b.Topic, &t) }()
	for i := range b.Records {
		r := &b.Records[i]
		results[i].SchemaID = vc.ID
		s := &slots[i]
		s.tr, s.index, s.partition = tr, i, -1
		msg, rerr := e.encode(&arena, b, r, vc, kc, partitions, now, &win)
		if rerr == nil {
			if kc != nil {
				results[i].KeySchemaID = kc.ID
			}
			s.partition = r.Partition
			s.size = msgSize(&msg)
			msg.WriterData = s
			msgs = append(msgs, msg)
			continue
		}
		results[i].Err = rerr
		if rerr.Kind.DeadLetterable() && dlq {
			m := e.deadLetter(b.Topic, r, vc.ID, rerr, now)
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
	if rejected > 0 && b.AllOrNothing {
		for i := range results {
			if err := results[i].Err; err != nil && !slots[i].dlq {
				return nil, &Error{Kind: err.Kind, Message: fmt.Sprintf("records[%d]: %s", i, err.Message), Field: err.Field}
			}
		}
	}
	if len(msgs) == 0 {
		return results, nil
	}
	for i := range msgs {
		n := partitions
		if msgs[i].Topic != b.Topic {
			n = dlqPartitions
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
		for i := range slots {
			if slots[i].dlq {
				results[i].DeadLettered = true
			}
		}
		go e.writeAsync(msgs, tr)
		return results, nil
	}

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
	if tr.remaining.Load() != 0 && !refused {
		recycle, b.Settled = false, false
	}
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
	return results, nil
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

func (e *Engine) encode(arena *[]byte, b *Batch, r *Record, vc, kc *avro.Codec, partitions int, now time.Time, win *timeWindow) (kafkago.Message, *Error) {
	var msg kafkago.Message
	if r.Invalid != nil {
		return msg, r.Invalid
	}
	if r.Partition >= 0 && int(r.Partition) >= partitions {
		return msg, &Error{Kind: KindUnknownPartition, Message: fmt.Sprintf("Partition %d not found: topic %s has %d partitions.", r.Partition, b.Topic, partitions), Field: "partition"}
	}
	if !r.Time.IsZero() {
		if err := win.check(r.Time, now); err != nil {
			return msg, err
		}
	}
	var value []byte
	if p := &r.Pre; p.Codec != nil && p.Codec == vc && p.Format == b.Format {
		if p.Err != nil {
			return msg, p.Err
		}
		value = p.Framed
	} else {
		var err *Error
		if value, err = encodeValue(arena, vc, b.Format, r.Value, "value"); err != nil {
			return msg, err
		}
	}
	key, err := e.encodeKey(arena, b, r, kc)
	if err != nil {
		return msg, err
	}
	msg = kafkago.Message{Topic: b.Topic, Key: key, Value: value, Headers: r.Headers, Time: r.Time}
	if msg.Time.IsZero() {
		msg.Time = now
	}
	if n := msgSize(&msg); n > e.cfg.MaxRecordBytes {
		return msg, &Error{Kind: KindRecordTooLarge, Message: fmt.Sprintf("record is %d bytes encoded, more than the limit of %d", n, e.cfg.MaxRecordBytes)}
	}
	return msg, nil
}

// encodeValue appends the framed encoding to the batch's arena (one
// allocation for all records of a batch) and returns the record's slice.
func encodeValue(arena *[]byte, c *avro.Codec, f Format, data []byte, root string) ([]byte, *Error) {
	start := len(*arena)
	out, err := encodeFramed(*arena, c, f, data, root)
	if err != nil {
		*arena = (*arena)[:start]
		return nil, err
	}
	*arena = out
	return out[start:len(out):len(out)], nil
}

func encodeFramed(out []byte, c *avro.Codec, f Format, data []byte, root string) ([]byte, *Error) {
	out = wire.AppendHeader(out, uint32(c.ID))
	if f == FormatAvroBinary {
		rest, err := c.ValidateBinary(data)
		if err != nil {
			return nil, &Error{Kind: KindInvalidRecord, Message: fmt.Sprintf("%s: not valid Avro binary for schema id %d: %v", root, c.ID, err), Field: root}
		}
		if len(rest) > 0 {
			return nil, &Error{Kind: KindInvalidRecord, Message: fmt.Sprintf("%s: %d bytes after the Avro datum of schema id %d", root, len(rest), c.ID), Field: root}
		}
		return append(out, data...), nil
	}
	if data == nil {
		data = []byte("null")
	}
	mode := avro.PlainJSON
	if f == FormatAvroJSON {
		mode = avro.AvroJSON
	}
	out, err := c.BinaryFromJSON(out, data, avro.Options{Mode: mode, Root: root})
	if err != nil {
		return nil, ValueError(err, root)
	}
	return out, nil
}

func (e *Engine) encodeKey(arena *[]byte, b *Batch, r *Record, kc *avro.Codec) ([]byte, *Error) {
	if r.KeyJSON == nil {
		return r.Key, nil
	}
	if kc != nil {
		f := b.KeyFormat
		if f == FormatAvroBinary {
			f = FormatJSON
		}
		return encodeValue(arena, kc, f, r.KeyJSON, "key")
	}
	if b.JSONKeys {
		return []byte(r.KeyJSON), nil
	}
	if k := r.KeyJSON; len(k) >= 2 && k[0] == '"' {
		if inner := k[1 : len(k)-1]; k[len(k)-1] == '"' && bytes.IndexByte(inner, '\\') < 0 && bytes.IndexByte(inner, '"') < 0 && utf8.Valid(inner) {
			return inner, nil // no escapes: the key is the text between the quotes
		}
		var s string
		if json.Unmarshal(k, &s) == nil {
			return []byte(s), nil
		}
	}
	if string(r.KeyJSON) == "null" {
		return nil, nil
	}
	return []byte(r.KeyJSON), nil
}

func (e *Engine) deadLetter(topic string, r *Record, schemaID int, rerr *Error, now time.Time) kafkago.Message {
	key := r.Key
	if r.KeyJSON != nil {
		key = []byte(r.KeyJSON)
	}
	// The record never reached Kafka: no source partition or offset (-1).
	hs := deadletter.Headers(r.Headers, "ingest-gateway", rerr.Message, topic, -1, -1,
		kafkago.Header{Key: "sluice-error-field", Value: []byte(rerr.Field)},
		kafkago.Header{Key: "sluice-schema-id", Value: []byte(strconv.Itoa(schemaID))},
	)
	t := r.Time
	if t.IsZero() || rerr.Kind == KindInvalidTimestamp {
		// A timestamp Kafka may refuse must not sink its dead letter too:
		// the dead letter is stamped now and keeps the original in a header.
		if !t.IsZero() {
			hs = append(hs, kafkago.Header{Key: HeaderOriginalTimestamp, Value: []byte(strconv.FormatInt(t.UnixMilli(), 10))})
		}
		t = now
	}
	return kafkago.Message{Topic: DeadLetterTopic(topic), Key: key, Value: r.Value, Headers: hs, Time: t}
}

// HeaderOriginalTimestamp carries, on a dead letter refused for its
// timestamp, the record's timestamp in epoch milliseconds (the dead letter
// itself is stamped with the gateway's time).
const HeaderOriginalTimestamp = "sluice-original-timestamp"

// DeadLetterTopic names the dead-letter topic of topic.
func DeadLetterTopic(topic string) string { return deadletter.Topic(topic) }

func (e *Engine) ensureDLQ(ctx context.Context, topic string) (int, *Error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ProduceTimeout)
	defer cancel()
	return e.topics.lookup(ctx, DeadLetterTopic(topic), true)
}

func registryError(err error, what string) *Error {
	if registry.IsNotFound(err) {
		return Errorf(KindNoSchema, "%s: %v", what, err)
	}
	var re *registry.Error
	if errors.As(err, &re) && re.Status == 422 {
		return Errorf(KindInvalidSchema, "%s: %s", what, re.Message)
	}
	if errors.As(err, &re) && re.Status == 409 {
		return Errorf(KindInvalidSchema, "%s: schema is incompatible with the subject's earlier versions: %s", what, re.Message)
	}
	if errors.As(err, &re) && re.Status < 500 {
		return Errorf(KindBadRequest, "%s: %v", what, err)
	}
	return Errorf(KindRegistryUnavailable, "%s: schema registry unavailable: %v", what, err)
}

func (e *Engine) resolve(ctx context.Context, subject string, ref SchemaRef) (*avro.Codec, *Error) {
	if ref.Subject != "" {
		subject = ref.Subject
	}
	id := ref.ID
	switch {
	case id > 0:
	case ref.Schema != "":
		key := subject + "\x00" + ref.Schema
		e.inlineMu.Lock()
		cached, ok := e.inline[key]
		e.inlineMu.Unlock()
		if ok {
			id = cached
			break
		}
		if _, err := avro.NewCodec(0, ref.Schema); err != nil {
			return nil, Errorf(KindInvalidSchema, "Invalid schema: %v", err)
		}
		// Look up first: an inline schema is usually registered already,
		// and a lookup needs only the read-only credential the gateway
		// runs with by default; only a new schema needs Register (rw).
		got, err := e.reg.Lookup(ctx, subject, "AVRO", ref.Schema, nil)
		if registry.IsNotFound(err) {
			got, err = e.reg.Register(ctx, subject, "AVRO", ref.Schema, nil)
			if err != nil {
				return nil, registryError(err, "registering schema under "+subject)
			}
		} else if err != nil {
			return nil, registryError(err, "looking up schema under "+subject)
		}
		e.inlineMu.Lock()
		if len(e.inline) > 10000 {
			clear(e.inline)
		}
		e.inline[key] = got
		e.inlineMu.Unlock()
		id = got
	case ref.Version > 0:
		s, err := e.reg.ByVersion(ctx, subject, ref.Version)
		if err != nil {
			return nil, registryError(err, fmt.Sprintf("version %d of subject %s", ref.Version, subject))
		}
		id = s.ID
	default:
		s, err := e.reg.Latest(ctx, subject)
		if err != nil {
			if registry.IsNotFound(err) {
				return nil, Errorf(KindNoSchema, "subject %s has no registered schema", subject)
			}
			return nil, registryError(err, "latest schema of "+subject)
		}
		id = s.ID
	}
	c, err := e.codecs.ByID(ctx, id)
	if err != nil {
		if registry.IsNotFound(err) {
			return nil, Errorf(KindNoSchema, "schema id %d not found", id)
		}
		var re *registry.Error
		if errors.As(err, &re) {
			return nil, registryError(err, fmt.Sprintf("schema id %d", id))
		}
		if errors.Is(err, avro.ErrUnusableSchema) {
			return nil, Errorf(KindInvalidSchema, "schema id %d cannot be used: %v", id, err)
		}
		return nil, Errorf(KindRegistryUnavailable, "schema id %d: schema registry unavailable: %v", id, err)
	}
	return c, nil
}

// checkSchemaOwner refuses a schema the producer chose (an id, or a
// version or latest of another subject) that is not registered under the
// topic's own subject (TopicNameStrategy), unless the topic's policy
// allows any schema (GATEWAY_ANY_SCHEMA_TOPICS). Versions and the latest
// of the topic's own subject, and inline schemas (registered under it),
// belong to it by construction and cost nothing here.
func (e *Engine) checkSchemaOwner(ctx context.Context, topic, subject, field string, ref SchemaRef, c *avro.Codec) *Error {
	if ref.ID <= 0 && (ref.Subject == "" || ref.Subject == subject) {
		return nil
	}
	if MatchTopic(e.cfg.Topics.AnySchema, topic) {
		return nil
	}
	ok, err := e.reg.IDInSubject(ctx, c.ID, subject)
	if err != nil {
		return registryError(err, fmt.Sprintf("subjects of schema id %d", c.ID))
	}
	if !ok {
		return &Error{Kind: KindSchemaNotOfTopic, Field: field, Message: fmt.Sprintf(
			"schema id %d is not a version of subject %s: topic %s takes only schemas registered under its own subject", c.ID, subject, topic)}
	}
	return nil
}

func (e *Engine) valueCodec(ctx context.Context, b *Batch) (*avro.Codec, *Error) {
	return e.resolve(ctx, b.Topic+"-value", b.Value)
}

// keyCodec returns the key schema for JSON keys: an explicit one, or the
// latest of <topic>-key when that subject exists (remembered absent for a
// short while).
func (e *Engine) keyCodec(ctx context.Context, b *Batch) (*avro.Codec, *Error) {
	subject := b.Topic + "-key"
	if b.KeySchema != nil {
		return e.resolve(ctx, subject, *b.KeySchema)
	}
	hasJSONKey := false
	for i := range b.Records {
		if b.Records[i].KeyJSON != nil {
			hasJSONKey = true
			break
		}
	}
	if !hasJSONKey {
		return nil, nil
	}
	e.mu.Lock()
	until, absent := e.noKey[subject]
	e.mu.Unlock()
	if absent && time.Now().Before(until) {
		return nil, nil
	}
	s, err := e.reg.Latest(ctx, subject)
	if err != nil {
		if registry.IsNotFound(err) {
			now := time.Now()
			e.mu.Lock()
			boundedPut(e.noKey, subject, now.Add(30*time.Second), e.cfg.TopicCacheSize, now.After)
			e.mu.Unlock()
			return nil, nil
		}
		return nil, registryError(err, "latest schema of "+subject)
	}
	return e.resolve(ctx, subject, SchemaRef{ID: s.ID})
}
