package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/services/s3-sink/internal/partition"
)

// handle processes one record.
func (w *worker) handle(ctx, gctx context.Context, m kafkago.Message) error {
	w.ps.mu.Lock()
	w.ps.highWater = m.HighWaterMark
	w.ps.read = m.Offset + 1
	w.ps.mu.Unlock()
	if m.Value == nil {
		if w.s.cfg.Tombstones == "write" {
			return w.writeTombstone(ctx, gctx, m)
		}
		if err := w.tombstone(ctx, m); err != nil {
			return err
		}
		w.next = m.Offset + 1
		return nil
	}
	native, id, payload, reason, err := w.decode(ctx, m)
	if err != nil {
		return err
	}
	if reason != "" {
		return w.skipToDLQ(ctx, m, reason)
	}
	rec := partition.Record{Partition: m.Partition, Timestamp: m.Time, Value: native}
	path, err := w.s.o.Partitioner.Path(rec)
	if err != nil {
		return w.skipToDLQ(ctx, m, "partitioning: "+err.Error())
	}
	ts := m.Time
	if w.s.timeField != nil {
		if ts, err = partition.FieldTime(native, w.s.timeField); err != nil {
			return w.skipToDLQ(ctx, m, "timestamp field: "+err.Error())
		}
	}
	return w.write(ctx, gctx, m, path, id, ts, payload)
}

// skipToDLQ dead-letters m and moves past it.
func (w *worker) skipToDLQ(ctx context.Context, m kafkago.Message, reason string) error {
	if err := w.deadLetter(ctx, m, reason); err != nil {
		return err
	}
	w.next = m.Offset + 1
	return nil
}

// tombstoneID is the pseudo schema id of tombstone files (S3_SINK_TOMBSTONES=write).
const tombstoneID = -1

// TombstoneSchema is the schema of tombstone files: which key was deleted
// where and when.
const TombstoneSchema = `{"type":"record","name":"Tombstone","namespace":"sluice.s3sink","fields":[` +
	`{"name":"key","type":["null","bytes"]},{"name":"partition","type":"int"},{"name":"offset","type":"long"},` +
	`{"name":"timestamp","type":{"type":"long","logicalType":"timestamp-millis"}}]}`

// decode returns the record's native value, schema id and payload, or a
// reason it belongs in the DLQ. A registry outage is retried in place
// (bounded; then the topic parks), not dead-lettered: the record is fine,
// the lookup is not.
func (w *worker) decode(ctx context.Context, m kafkago.Message) (native any, id int, payload []byte, reason string, err error) {
	sid, body, ferr := wire.Decode(m.Value)
	if ferr != nil {
		return nil, 0, nil, "framing: " + ferr.Error(), nil
	}
	id = int(sid)
	codec, reason, err := w.codec(ctx, id, m.Offset)
	if err != nil || reason != "" {
		return nil, id, nil, reason, err
	}
	if !w.s.needValue {
		// Nothing looks inside the record: validate without decoding
		// (within the decode budget, AVRO_DECODE_*).
		rest, err := codec.ValidateBinary(body)
		if err != nil {
			w.s.o.Metrics.budget.Observe(w.s.o.Metrics.TopicLabel(w.topic), err)
			return nil, id, nil, fmt.Sprintf("avro: schema id %d: %v", id, err), nil
		}
		if len(rest) != 0 {
			return nil, id, nil, fmt.Sprintf("avro: schema id %d: %d trailing bytes after the record", id, len(rest)), nil
		}
		return nil, id, body, "", nil
	}
	if perr := w.s.fieldsUsable(codec); perr != nil {
		reason, err := w.schemaProblem(ctx, id, "partitioning: ", fmt.Errorf("schema id %d: %w", id, perr))
		return nil, id, nil, reason, err
	}
	// pkg/avro's NativeFromBinary walks the record within the decode
	// budget before goavro builds it.
	v, rest, derr := codec.NativeFromBinary(body)
	if derr != nil {
		w.s.o.Metrics.budget.Observe(w.s.o.Metrics.TopicLabel(w.topic), derr)
		return nil, id, nil, fmt.Sprintf("avro: schema id %d: %v", id, derr), nil
	}
	if len(rest) != 0 {
		return nil, id, nil, fmt.Sprintf("avro: schema id %d: %d trailing bytes after the record", id, len(rest)), nil
	}
	return v, id, body, "", nil
}

// codec looks a schema id up. Outages are retried in place with the quick
// policy (then the topic parks); an id the registry does not know waits
// out S3_SINK_UNKNOWN_SCHEMA_GRACE (without counting as attempts), then
// the record is dead-lettered; an unusable schema is a schemaProblem.
func (w *worker) codec(ctx context.Context, id int, offset int64) (*avro.Codec, string, error) {
	attempt, young := 0, 0
	for {
		codec, err := w.s.o.Codecs.ByID(ctx, id)
		if err == nil {
			return codec, "", nil
		}
		var d time.Duration
		switch {
		case Permanent(err) && !w.s.unknownYoung(id, err):
			if errors.Is(err, avro.ErrUnusableSchema) {
				reason, perr := w.schemaProblem(ctx, id, "schema: ", err)
				return nil, reason, perr
			}
			return nil, "schema: " + err.Error(), nil
		case Permanent(err):
			// A young unknown id: a registry replica may be catching up.
			d = min(w.s.pol.retry.Delay(young), time.Second)
			young++
		default:
			attempt++
			if attempt >= w.inPlaceAttempts() {
				return nil, "", parkNow(ReasonRegistry, fmt.Errorf("looking up schema id %d: %d attempts failed: %w", id, attempt, err))
			}
			d = w.s.pol.retry.Delay(attempt - 1)
			w.s.o.Metrics.retries.WithLabelValues(w.label).Inc()
		}
		w.log.Warn("schema lookup failed; retrying", "schema_id", id, "offset", offset, "err", err, "after", d)
		if !backoff.Sleep(w.wait, d) {
			return nil, "", errStopped
		}
	}
}

// schemaProblem decides what a schema that cannot be used means. If it is
// the topic's current schema (the latest version of <topic>-value), the
// sink's configuration does not fit the topic: the topic parks until an
// operator fixes it. Any other schema id is the producer's choice for
// this record alone (the gateway accepts any registered id), so the
// record goes to the DLQ with prefix+problem as the reason and the topic
// keeps flowing.
func (w *worker) schemaProblem(ctx context.Context, id int, prefix string, problem error) (string, error) {
	if r, ok := w.foreign[id]; ok {
		return r, nil
	}
	current, err := w.isCurrentSchema(ctx, id)
	if err != nil {
		return "", err
	}
	if current {
		return "", parkNow(ReasonSchema, fmt.Errorf("schema id %d is the latest of subject %s-value: %w", id, w.topic, problem))
	}
	reason := prefix + problem.Error()
	if len(w.foreign) >= maxForeignSchemas {
		clear(w.foreign)
	}
	w.foreign[id] = reason
	return reason, nil
}

// isCurrentSchema reports whether id is the latest schema of the topic's
// value subject. Without a subject source nothing is current.
func (w *worker) isCurrentSchema(ctx context.Context, id int) (bool, error) {
	if w.s.o.Subjects == nil {
		return false, nil
	}
	subject := w.topic + "-value"
	var latest *registry.Schema
	err := w.retryInPlace(ReasonRegistry, "looking up the latest schema of "+subject, func() error {
		s, err := w.s.o.Subjects.Latest(ctx, subject)
		if err != nil && Permanent(err) {
			return backoff.Permanent(err)
		}
		latest = s
		return err
	})
	var pe *parkError
	switch {
	case err == nil:
		return latest.ID == id, nil
	case errors.As(err, &pe), errors.Is(err, errStopped):
		return false, err
	}
	return false, nil // 4xx (no such subject, not allowed): no schema is its current one
}

// writeTombstone records a null-valued record in the partition's tombstone
// file, under <prefix>/<topic>/_tombstones/partition=<n>/.
func (w *worker) writeTombstone(ctx, gctx context.Context, m kafkago.Message) error {
	var key any
	if m.Key != nil {
		key = goavro.Union("bytes", m.Key)
	}
	bin, err := w.s.tombstoneCodec.BinaryFromNative(nil, map[string]any{
		"key": key, "partition": int32(m.Partition), "offset": m.Offset, "timestamp": m.Time,
	})
	if err != nil {
		return fmt.Errorf("encoding tombstone at offset %d: %w", m.Offset, err)
	}
	w.s.o.Metrics.tombstones.WithLabelValues(w.label, "written").Inc()
	return w.write(ctx, gctx, m, "_tombstones/partition="+strconv.Itoa(m.Partition), tombstoneID, m.Time, bin)
}

func (w *worker) tombstone(ctx context.Context, m kafkago.Message) error {
	switch w.s.cfg.Tombstones {
	case "ignore":
		w.s.o.Metrics.tombstones.WithLabelValues(w.label, "ignored").Inc()
		return nil
	case "dlq":
		w.s.o.Metrics.tombstones.WithLabelValues(w.label, "dlq").Inc()
		return w.deadLetter(ctx, m, "tombstone: record value is null")
	default:
		w.s.o.Metrics.tombstones.WithLabelValues(w.label, "failed").Inc()
		return &fatalError{fmt.Errorf("tombstone at offset %d and S3_SINK_TOMBSTONES=fail", m.Offset)}
	}
}
