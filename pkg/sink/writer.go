package sink

import (
	"context"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
)

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int
}

// Record is one Kafka record handed to a Writer.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte // nil for a tombstone
	Headers   []kafkago.Header
	Time      time.Time
	// SchemaID, Schema and Payload are set when the runtime resolves
	// schemas (Options.Schemas) and the value is not a tombstone: the
	// Confluent framing's schema id, its codec and the Avro body.
	SchemaID int
	Schema   *avro.Codec
	Payload  []byte
}

// Message returns the record as a kafka-go message (for dead letters).
func (r *Record) Message() kafkago.Message {
	return kafkago.Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Headers: r.Headers, Time: r.Time}
}

// Writer is a sink's destination. The runtime opens one PartitionWriter
// per assigned partition (again after every replay, park or rebalance).
type Writer interface {
	// Open starts writing a partition whose records will arrive from
	// offset start on (the committed offset; negative when the group has
	// none yet and the first record decides). acks is how the writer
	// reports what became durable; it stays valid until Close returns and
	// is ignored afterwards.
	Open(ctx context.Context, tp TopicPartition, start int64, acks Acks) (PartitionWriter, error)
}

// TopicForgetter is optionally implemented by a Writer that keeps state
// per topic (names, templates): the runtime calls Forget when a topic
// leaves the selection (deleted, no longer matching).
type TopicForgetter interface {
	Forget(topic string)
}

// PartitionWriter writes one partition's records. The runtime calls it
// from one goroutine; Acks may be called from any goroutine.
type PartitionWriter interface {
	// Write takes records in offset order (offsets may have gaps). It may
	// buffer them; durability is reported through Acks. An error is
	// classified (see Poison, Transient, Park, Fatal): a Poison error names
	// the record to dead-letter, records before it in the batch were
	// taken, records after it are handed again in a later Write.
	Write(ctx context.Context, batch []Record) error
	// Tick is called every commit interval (time-based rotation, flush
	// intervals); its error is classified like Write's.
	Tick(ctx context.Context) error
	// Flush makes everything written durable before it returns (as far as
	// the writer can: records waiting for an asynchronous retry may still
	// be acknowledged later; the runtime waits for them within its drain
	// timeout).
	Flush(ctx context.Context) error
	// Close ends the partition, dropping what is not durable (it is
	// written again from the committed offset by whoever consumes the
	// partition next).
	Close(ctx context.Context) error
}

// Acks is how a PartitionWriter reports durability and asynchronous
// failures. Calls are cheap and safe from any goroutine.
type Acks interface {
	// Durable reports that every record written with an offset below
	// offset is durable (a watermark: files completed up to there).
	Durable(offset int64)
	// Ack reports that the record at offset is durable (a per-record
	// status: a bulk item); the runtime tracks contiguity.
	Ack(offset int64)
	// Skip reports that the record at offset is done without being
	// written, on purpose (a tombstone the configuration ignores).
	Skip(offset int64)
	// DeadLetter asks the runtime to dead-letter a record (one the
	// destination refused for good); it counts as done once the dead
	// letter is acknowledged.
	DeadLetter(rec *Record, stage, reason string)
	// Fail reports an asynchronous failure of the partition, classified
	// like a Write error (Transient, Park, Fatal).
	Fail(err error)
}

// Semantics is what a Writer promises about replays.
type Semantics int

// Delivery semantics of a Writer.
const (
	// AtLeastOnce: a replay may write a record again (idempotent
	// destinations such as documents keyed by offset read back as one).
	AtLeastOnce Semantics = iota
	// ExactlyOnce: a replay rewrites the same objects; the destination
	// holds every record exactly once.
	ExactlyOnce
)
