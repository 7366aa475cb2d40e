package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
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
