package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/wire"
)

// ValueError converts an encoder error for the value at root into the
// record's error.
func ValueError(err error, root string) *Error {
	var fe *avro.FieldError
	if errors.As(err, &fe) {
		return &Error{Kind: KindInvalidRecord, Message: fe.Error(), Field: fe.Path}
	}
	return &Error{Kind: KindInvalidRecord, Message: err.Error(), Field: root}
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
