package document

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/wire"
)

// IDMode selects how document ids are derived.
type IDMode string

// ID modes.
const (
	IDOffset IDMode = "offset" // <topic>+<partition>+<offset>
	IDKey    IDMode = "key"    // the record key, external version = offset
)

// Codec is a compiled schema with the schema text it came from. Its
// NativeFromBinary (pkg/avro's) and the transcoder are bounded by the
// codec's Limits (AVRO_DECODE_*, AVRO_MAX_DEPTH).
type Codec struct {
	ID     int
	Schema string
	*avro.Codec
}

// CodecSource resolves schema ids to compiled codecs; run.go adapts
// pkg/avro.Codecs to it.
type CodecSource interface {
	Codec(ctx context.Context, id int) (*Codec, error)
}

// Options configure a Builder.
type Options struct {
	Namer       *Namer
	IDMode      IDMode
	Decimal     DecimalMode
	MetaField   string // "_kafka" by default; empty disables
	TimestampAt string // document field for the record timestamp, "@timestamp"
	// Fields decodes through goavro's native values so Doc.Fields is set
	// (the anomaly rules need them); without it records are transcoded
	// straight from Avro binary to JSON, which is faster.
	Fields bool
	// Budget counts records refused for exceeding the decode budget (nil:
	// not counted).
	Budget *avro.BudgetCounter
	// TopicLabel bounds the topic label of Budget's series (nil: the
	// topic as it is).
	TopicLabel func(topic string) string
}

// Builder decodes records into documents. Safe for concurrent use.
type Builder struct {
	codecs CodecSource
	opt    Options
}

// NewBuilder returns a Builder over codecs.
func NewBuilder(codecs CodecSource, opt Options) *Builder {
	if opt.TimestampAt == "" {
		opt.TimestampAt = "@timestamp"
	}
	return &Builder{codecs: codecs, opt: opt}
}

// Action is the bulk operation for a document.
type Action string

// Bulk actions.
const (
	ActionIndex  Action = "index"
	ActionCreate Action = "create"
	ActionDelete Action = "delete"
)

// Doc is one record ready for the bulk API.
type Doc struct {
	Index    string
	ID       string
	Action   Action
	Version  int64 // external version (key mode), or -1
	Body     []byte
	Fields   map[string]any // normalised record fields (for rules); nil for non-records
	Time     time.Time
	SchemaID int
}

// PermanentError marks a record that can never be decoded (bad framing,
// unknown schema id, corrupt payload): it goes to the DLQ.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// Build decodes m into a document. Errors are *PermanentError when retrying
// cannot help; others (registry unreachable) are transient.
func (b *Builder) Build(ctx context.Context, m *kafkago.Message) (*Doc, error) {
	d := &Doc{Time: m.Time, Version: -1}
	d.Index = b.opt.Namer.Name(m.Topic, m.Time)
	d.ID = kafka.PartitionKey(m.Topic, m.Partition, m.Offset)
	d.Action = ActionIndex
	if b.opt.Namer.Mode() == ModeDataStream {
		d.Action = ActionCreate
	}
	if b.opt.IDMode == IDKey && len(m.Key) > 0 {
		d.ID = KeyID(m.Key)
		d.Version = m.Offset
	}
	if m.Value == nil {
		if b.opt.IDMode == IDKey && len(m.Key) > 0 {
			d.Action = ActionDelete // tombstone: delete the key's document
			return d, nil
		}
		return nil, nil // tombstone without a key: nothing to index
	}
	id, payload, err := wire.Decode(m.Value)
	if err != nil {
		return nil, &PermanentError{fmt.Errorf("decoding confluent framing: %w", err)}
	}
	d.SchemaID = int(id)
	codec, err := b.codecs.Codec(ctx, int(id))
	if err != nil {
		if registry.IsNotFound(err) {
			return nil, &PermanentError{fmt.Errorf("schema id %d: %w", id, err)}
		}
		// Only answers about the schema itself are permanent; auth failures,
		// throttling and outages are the registry's problem, not the record's:
		// the partition waits for them.
		var re *registry.Error
		if errors.As(err, &re) && re.Status == 422 {
			return nil, &PermanentError{fmt.Errorf("schema id %d: %w", id, err)}
		}
		if ctx.Err() == nil && isCompileError(err) {
			return nil, &PermanentError{fmt.Errorf("schema id %d: %w", id, err)}
		}
		return nil, fmt.Errorf("looking up schema id %d: %w", id, err)
	}
	node := codec.Root()
	buf := make([]byte, 0, len(payload)*2+160)
	skip := []string{b.opt.TimestampAt}
	if b.opt.MetaField != "" {
		skip = append(skip, b.opt.MetaField)
	}
	if b.opt.Fields {
		native, rest, err := codec.NativeFromBinary(payload)
		if err != nil {
			b.opt.Budget.Observe(b.topicLabel(m.Topic), err)
			return nil, &PermanentError{fmt.Errorf("decoding avro (schema id %d): %w", id, err)}
		}
		if len(rest) != 0 {
			return nil, &PermanentError{fmt.Errorf("decoding avro (schema id %d): %d trailing bytes", id, len(rest))}
		}
		v := Normalize(node, native, b.opt.Decimal)
		w := &docWriter{bud: codec.Limits().NewBudget(len(payload))}
		if fields, ok := v.(map[string]any); ok && !TopRecord(node).IsZero() {
			d.Fields = fields
			buf = w.record(buf, TopRecord(node), fields, 0, skip)
		} else {
			buf = append(buf, `{"value":`...)
			buf = w.value(buf, node, v, 0)
		}
		if w.err != nil {
			b.opt.Budget.Observe(m.Topic, w.err)
			return nil, &PermanentError{fmt.Errorf("decoding avro (schema id %d): %w", id, w.err)}
		}
	} else {
		t := transcoder{b: payload, mode: b.opt.Decimal, bud: codec.Limits().NewBudget(len(payload))}
		top := node
		if rec := TopRecord(node); !rec.IsZero() && node.Kind() == avro.Union {
			// ["null", Record] at the top: the record is the document.
			var i int64
			if i, err = t.long(); err == nil {
				if i < 0 || i >= int64(node.NumBranches()) {
					err = fmt.Errorf("avro: union index %d out of range", i)
				} else {
					top = node.Branch(int(i))
				}
			}
		}
		switch {
		case err != nil:
		case top.Kind() == avro.Record:
			buf, err = t.record(buf, top, false, 0, skip)
		default:
			buf = append(buf, `{"value":`...)
			buf, err = t.value(buf, top, false, 0)
		}
		if err != nil {
			b.opt.Budget.Observe(b.topicLabel(m.Topic), err)
			return nil, &PermanentError{fmt.Errorf("decoding avro (schema id %d): %w", id, err)}
		}
		if len(t.b) != 0 {
			return nil, &PermanentError{fmt.Errorf("decoding avro (schema id %d): %d trailing bytes", id, len(t.b))}
		}
	}
	if buf[len(buf)-1] != '{' {
		buf = append(buf, ',')
	}
	// @timestamp and _kafka come last and win over record fields of the
	// same name, which are left out.
	buf = appendString(buf, b.opt.TimestampAt)
	buf = append(buf, ':')
	buf = appendValue(buf, avro.Type{}, m.Time, 0)
	if b.opt.MetaField != "" {
		buf = append(buf, ',')
		buf = appendString(buf, b.opt.MetaField)
		buf = append(buf, `:{"topic":`...)
		buf = appendString(buf, m.Topic)
		buf = append(buf, `,"partition":`...)
		buf = strconv.AppendInt(buf, int64(m.Partition), 10)
		buf = append(buf, `,"offset":`...)
		buf = strconv.AppendInt(buf, m.Offset, 10)
		if len(m.Key) > 0 {
			buf = append(buf, `,"key":`...)
			buf = appendString(buf, KeyString(m.Key))
		}
		buf = append(buf, '}')
	}
	d.Body = append(buf, '}')
	return d, nil
}

func isCompileError(err error) bool {
	return errors.Is(err, avro.ErrUnusableSchema) ||
		err != nil && (strings.Contains(err.Error(), "compiling schema") || strings.Contains(err.Error(), "not AVRO"))
}

// KeyString renders a key for metadata: UTF-8 as is, anything else base64.
func KeyString(k []byte) string {
	if utf8.Valid(k) {
		return string(k)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// KeyID renders a key as a document id: Elasticsearch ids are at most 512
// bytes, so longer (or binary) keys are hashed.
func KeyID(k []byte) string {
	s := KeyString(k)
	if len(s) <= 512 {
		return s
	}
	h := sha256.Sum256(k)
	return "sha256:" + hex.EncodeToString(h[:])
}

func (b *Builder) topicLabel(topic string) string {
	if b.opt.TopicLabel == nil {
		return topic
	}
	return b.opt.TopicLabel(topic)
}

// metadataFields are Elasticsearch's metadata fields, which no document
// may carry at its top level (each such document is refused with a
// document_parsing_exception) and no mapping may define.
var metadataFields = map[string]bool{
	"_id": true, "_index": true, "_source": true, "_routing": true, "_field_names": true, "_ignored": true,
	"_seq_no": true, "_primary_term": true, "_version": true, "_doc_count": true, "_tier": true,
	"_data_stream_timestamp": true, "_nested_path": true, "_feature": true, "_type": true, "_ignored_source": true,
	"_size": true, "_meta": true, "_timestamp": true, "_parent": true, "_all": true,
}

// FieldName is the document field (and mapping property) a top-level
// record field is written as: its own name, except for Elasticsearch's
// metadata fields (_id, _source, ...), which are written with "@" in
// front ("_id" becomes "@_id"): no Avro field name can contain "@", so the
// new name never meets another field, and the value is kept and mapped
// instead of every record of the topic being refused.
func FieldName(name string) string {
	if metadataFields[name] {
		return "@" + name
	}
	return name
}
