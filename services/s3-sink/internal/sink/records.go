package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/pkg/registry"
	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/services/s3-sink/internal/partition"
)

// handle processes one record whose schema the runtime resolved.
func (w *worker) handle(ctx context.Context, m *psink.Record) error {
	if m.Value == nil {
		if w.s.cfg.Tombstones == "write" {
			return w.writeTombstone(ctx, m)
		}
		if err := w.tombstone(m); err != nil {
			return err
		}
		w.next = m.Offset + 1
		return nil
	}
	native, reason, err := w.decode(ctx, m)
	if err != nil {
		return err
	}
	if reason != "" {
		return psink.Poison(m.Offset, StageDeadLetter, reason)
	}
	rec := partition.Record{Partition: m.Partition, Timestamp: m.Time, Value: native}
	path, err := w.s.o.Partitioner.Path(rec)
	if err != nil {
		return psink.Poison(m.Offset, StageDeadLetter, "partitioning: "+err.Error())
	}
	ts := m.Time
	if w.s.timeField != nil {
		if ts, err = partition.FieldTime(native, w.s.timeField); err != nil {
			return psink.Poison(m.Offset, StageDeadLetter, "timestamp field: "+err.Error())
		}
	}
	return w.write(ctx, m, path, m.SchemaID, ts, m.Payload)
}

// tombstoneID is the pseudo schema id of tombstone files (S3_SINK_TOMBSTONES=write).
const tombstoneID = -1

// TombstoneSchema is the schema of tombstone files: which key was deleted
// where and when.
const TombstoneSchema = `{"type":"record","name":"Tombstone","namespace":"sluice.s3sink","fields":[` +
	`{"name":"key","type":["null","bytes"]},{"name":"partition","type":"int"},{"name":"offset","type":"long"},` +
	`{"name":"timestamp","type":{"type":"long","logicalType":"timestamp-millis"}}]}`

// decode validates the record's payload against its schema (decoding it
// when the partitioner or the timestamp reads fields), or returns a
// reason it belongs in the DLQ.
func (w *worker) decode(ctx context.Context, m *psink.Record) (native any, reason string, err error) {
	codec, id, body := m.Schema, m.SchemaID, m.Payload
	if !w.s.needValue {
		// Nothing looks inside the record: validate without decoding
		// (within the decode budget, AVRO_DECODE_*).
		rest, err := codec.ValidateBinary(body)
		if err != nil {
			w.s.o.Metrics.budget.Observe(w.label, err)
			return nil, fmt.Sprintf("avro: schema id %d: %v", id, err), nil
		}
		if len(rest) != 0 {
			return nil, fmt.Sprintf("avro: schema id %d: %d trailing bytes after the record", id, len(rest)), nil
		}
		return nil, "", nil
	}
	if perr := w.s.fieldsUsable(codec); perr != nil {
		reason, err := w.s.schemaProblem(ctx, w.topic, id, "partitioning: ", fmt.Errorf("schema id %d: %w", id, perr))
		return nil, reason, err
	}
	// pkg/avro's NativeFromBinary walks the record within the decode
	// budget before goavro builds it.
	v, rest, derr := codec.NativeFromBinary(body)
	if derr != nil {
		w.s.o.Metrics.budget.Observe(w.label, derr)
		return nil, fmt.Sprintf("avro: schema id %d: %v", id, derr), nil
	}
	if len(rest) != 0 {
		return nil, fmt.Sprintf("avro: schema id %d: %d trailing bytes after the record", id, len(rest)), nil
	}
	return v, "", nil
}

// schemaProblem decides what a schema that cannot be used means. If it is
// the topic's current schema (the latest version of <topic>-value), the
// sink's configuration does not fit the topic: the topic parks until an
// operator fixes it. Any other schema id is the producer's choice for
// this record alone (the gateway accepts any registered id), so the
// record goes to the DLQ with prefix+problem as the reason and the topic
// keeps flowing.
func (s *Sink) schemaProblem(ctx context.Context, topic string, id int, prefix string, problem error) (string, error) {
	key := topic + "/" + strconv.Itoa(id)
	s.valMu.RLock()
	r, ok := s.foreign[key]
	s.valMu.RUnlock()
	if ok {
		return r, nil
	}
	current, err := s.isCurrentSchema(ctx, topic, id)
	if err != nil {
		return "", err
	}
	if current {
		return "", psink.Park(ReasonSchema, fmt.Errorf("schema id %d is the latest of subject %s-value: %w", id, topic, problem), nil)
	}
	reason := prefix + problem.Error()
	s.valMu.Lock()
	if len(s.foreign) >= maxForeignSchemas {
		clear(s.foreign)
	}
	s.foreign[key] = reason
	s.valMu.Unlock()
	return reason, nil
}

// isCurrentSchema reports whether id is the latest schema of the topic's
// value subject. Without a subject source nothing is current. Registry
// outages are retried (bounded; then the topic parks).
func (s *Sink) isCurrentSchema(ctx context.Context, topic string, id int) (bool, error) {
	if s.o.Subjects == nil {
		return false, nil
	}
	subject := topic + "-value"
	var latest *registry.Schema
	pol := backoff.Policy{Base: 100 * time.Millisecond, Max: s.cfg.RetryMaxDelay, Attempts: s.cfg.RetryAttempts}
	err := pol.Retry(ctx, func(ctx context.Context) error {
		l, err := s.o.Subjects.Latest(ctx, subject)
		if err != nil && psink.PermanentSchemaError(err) {
			return backoff.Permanent(err)
		}
		latest = l
		return err
	}, func(err error, d time.Duration) {
		s.log.Warn("looking up the latest schema failed; retrying", "subject", subject, "err", err, "after", d)
	})
	switch {
	case err == nil:
		return latest.ID == id, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	case errors.Is(err, backoff.ErrExhausted):
		return false, psink.Park(ReasonRegistry, fmt.Errorf("looking up the latest schema of %s: %w", subject, err), nil)
	}
	return false, nil // 4xx (no such subject, not allowed): no schema is its current one
}

// writeTombstone records a null-valued record in the partition's tombstone
// file, under <prefix>/<topic>/_tombstones/partition=<n>/.
func (w *worker) writeTombstone(ctx context.Context, m *psink.Record) error {
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
	return w.write(ctx, m, "_tombstones/partition="+strconv.Itoa(m.Partition), tombstoneID, m.Time, bin)
}

func (w *worker) tombstone(m *psink.Record) error {
	switch w.s.cfg.Tombstones {
	case "ignore":
		w.s.o.Metrics.tombstones.WithLabelValues(w.label, "ignored").Inc()
		w.acks.Skip(m.Offset)
		return nil
	case "dlq":
		w.s.o.Metrics.tombstones.WithLabelValues(w.label, "dlq").Inc()
		return psink.Poison(m.Offset, StageDeadLetter, "tombstone: record value is null")
	default:
		w.s.o.Metrics.tombstones.WithLabelValues(w.label, "failed").Inc()
		return psink.Fatal(fmt.Errorf("tombstone at offset %d and S3_SINK_TOMBSTONES=fail", m.Offset))
	}
}
