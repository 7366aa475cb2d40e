package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
)

// batchRequest is a native batch. Record values stay raw JSON so they go
// to the schema-directed encoder untouched (and to a dead-letter topic
// byte for byte).
type batchRequest struct {
	SchemaID      int
	SchemaVersion int
	Format        string
	Async         bool
	Records       []gateway.Record
	Errs          []*gateway.Error // per record: its envelope error, or nil
	table         *recordTable     // pooled backing of Records and Errs
}

// release recycles the record table; Records must not be used after.
func (r *batchRequest) release() {
	if r.table != nil {
		r.table.recs, r.table.errs = r.Records, r.Errs
		putTable(r.table)
		r.table = nil
	}
}

func rawInt(raw []byte, what string) (int64, error) {
	i, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: want an integer, got %.40s", what, raw)
	}
	return i, nil
}

func rawString(raw []byte) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	v, err := avro.DecodeJSON(raw)
	if err != nil {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

var errNoRecords = errors.New("records: want an array")

// parseBatch parses POST /v1/topics/{topic}/records bodies strictly
// (unknown fields are errors, so a typo does not silently produce nulls),
// in one validating pass over the body: records are converted as they are
// met. A malformed body or record envelope fails the whole request; a bad
// timestamp, partition or header is that record's error.
func parseBatch(body []byte, maxRecords int, spec *speculation) (*batchRequest, *gateway.Error) {
	t := getTable()
	req := &batchRequest{table: t, Records: t.recs, Errs: t.errs}
	c := avro.NewCursor(body)
	var recErr *gateway.Error // a record that is not a record object
	err := c.Object(func(k string) error {
		if spec != nil && k != "records" {
			spec = nil // schema or format chosen in the body: encode later
		}
		if k == "records" {
			req.Records, req.Errs = req.Records[:0], req.Errs[:0]
			return c.Array(func(i int) error {
				if len(req.Records) >= maxRecords {
					return errTooMany
				}
				rec, rerr, serr := recordAt(c, spec, func() string { return fmt.Sprintf("records[%d].", i) })
				if serr != nil {
					recErr = serr
					return serr
				}
				req.Records = append(req.Records, rec)
				req.Errs = append(req.Errs, rerr)
				return nil
			})
		}
		raw, err := c.Value()
		if err != nil {
			return err
		}
		switch k {
		case "schema_id":
			i, err := rawInt(raw, k)
			if err == nil && (i < 0 || i > math.MaxInt32) {
				return fmt.Errorf("schema_id: want a positive integer schema id, got %d", i)
			}
			req.SchemaID = int(i)
			return err
		case "schema_version":
			i, err := rawInt(raw, k)
			if err == nil && (i < -1 || i > math.MaxInt32) {
				return fmt.Errorf("schema_version: want a positive version or -1 (latest), got %d", i)
			}
			req.SchemaVersion = int(i)
			return err
		case "format":
			s, ok := rawString(raw)
			if !ok {
				return fmt.Errorf("format: want a string")
			}
			req.Format = s
		case "async":
			switch string(raw) {
			case "true":
				req.Async = true
			case "false":
			default:
				return fmt.Errorf("async: want true or false")
			}
		default:
			return fmt.Errorf("unknown field %s", quoteParam(k))
		}
		return nil
	})
	if err == nil {
		err = c.End()
	}
	if req.SchemaVersion == -1 {
		req.SchemaVersion = 0 // the latest, as when omitted
	}
	if err != nil || len(req.Records) == 0 {
		req.release()
	}
	switch {
	case errors.Is(err, errTooMany):
		return nil, gateway.Errorf(gateway.KindRequestTooLarge, "request has more than the limit of %d records", maxRecords)
	case recErr != nil:
		return nil, gateway.Errorf(gateway.KindBadRequest, "malformed JSON request: %s", recErr.Message)
	case err != nil:
		return nil, gateway.Errorf(gateway.KindBadRequest, "malformed JSON request: %v", err)
	case len(req.Records) == 0:
		return nil, gateway.Errorf(gateway.KindBadRequest, "request has no records")
	}
	return req, nil
}

var errTooMany = errors.New("too many records")

// recordFromRaw converts one raw record object (an NDJSON line).
// structural errors (not an object, unknown field) are request errors in
// a batch; the others name the record's field. prefix is only rendered
// for errors: formatting it per record was a visible cost.
func recordFromRaw[T []byte | avro.Valid](raw T, prefixFn func() string) (rec gateway.Record, rerr *gateway.Error, structural bool) {
	rec.Partition = -1
	err := avro.ScanObject(raw, func(k string, x avro.Valid) error {
		if e := recordField(&rec, k, x, prefixFn); e != nil {
			if e.Kind == gateway.KindInvalidRecord {
				rerr = e
			}
			return e
		}
		return nil
	})
	if rerr != nil {
		return rec, rerr, false
	}
	if err != nil {
		var ge *gateway.Error
		if errors.As(err, &ge) {
			return rec, ge, true
		}
		return rec, gateway.Errorf(gateway.KindBadRequest, "%swant a record object: %v", prefixOf(prefixFn), err), true
	}
	return rec, nil, false
}

// recordAt converts the record object at c. rerr is a record error (bad
// timestamp, ...); serr a structural one that fails the request (not an
// object, unknown field, malformed JSON).
func recordAt(c *avro.Cursor, spec *speculation, prefixFn func() string) (rec gateway.Record, rerr, serr *gateway.Error) {
	rec.Partition = -1
	err := c.Object(func(k string) error {
		if k == "value" && spec != nil {
			return spec.encode(c, &rec)
		}
		x, err := c.Value()
		if err != nil {
			return err
		}
		if e := recordField(&rec, k, x, prefixFn); e != nil {
			if e.Kind != gateway.KindInvalidRecord {
				return e
			}
			if rerr == nil {
				rerr = e
			}
		}
		return nil
	})
	if err != nil {
		var ge *gateway.Error
		if errors.As(err, &ge) {
			return rec, nil, ge
		}
		return rec, nil, gateway.Errorf(gateway.KindBadRequest, "%swant a record object: %v", prefixOf(prefixFn), err)
	}
	return rec, rerr, nil
}

func prefixOf(fn func() string) string {
	if fn == nil {
		return ""
	}
	return fn()
}

// recordField applies one member of a record object. It returns a
// KindInvalidRecord error for a bad value of a known field and a
// KindBadRequest error for an unknown field.
func recordField(rec *gateway.Record, k string, x avro.Valid, prefixFn func() string) *gateway.Error {
	bad := func(field, format string, args ...any) *gateway.Error {
		return &gateway.Error{Kind: gateway.KindInvalidRecord, Message: prefixOf(prefixFn) + field + ": " + fmt.Sprintf(format, args...), Field: field}
	}
	null := string(x) == "null"
	switch k {
	case "value":
		if !null {
			rec.Value = x
		}
	case "key":
		if !null {
			rec.KeyJSON = json.RawMessage(x)
		}
	case "timestamp":
		if null {
			return nil
		}
		if s, ok := rawString(x); ok {
			ts, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return bad("timestamp", "want RFC 3339 or epoch milliseconds, got %s", quoteParam(s))
			}
			rec.Time = ts
			return nil
		}
		ms, err := rawInt(x, "timestamp")
		if err != nil {
			return bad("timestamp", "want RFC 3339 or epoch milliseconds")
		}
		rec.Time = time.UnixMilli(ms)
	case "partition":
		if null {
			return nil
		}
		p, err := rawInt(x, "partition")
		if err != nil || p < 0 || p > 1<<30 {
			return bad("partition", "must be a non-negative integer")
		}
		rec.Partition = int32(p)
	case "headers":
		if null {
			return nil
		}
		v, _ := avro.DecodeJSON(x)
		hm, ok := v.(map[string]any)
		if !ok {
			return bad("headers", "want an object of strings")
		}
		keys := make([]string, 0, len(hm))
		for hk := range hm {
			keys = append(keys, hk)
		}
		sort.Strings(keys)
		rec.Headers = rec.Headers[:0]
		for _, hk := range keys {
			s, ok := hm[hk].(string)
			if !ok {
				return bad("headers", "header %s: want a string", quoteParam(hk))
			}
			rec.Headers = append(rec.Headers, kafkago.Header{Key: hk, Value: []byte(s)})
		}
	default:
		return gateway.Errorf(gateway.KindBadRequest, "%sunknown field %s", prefixOf(prefixFn), quoteParam(k))
	}
	return nil
}

// speculation encodes record values while the envelope is parsed, with
// the topic's latest value schema in the content type's format: the
// common request (no schema_id, schema_version or format in the body)
// then reads each value once. The engine uses an encoding only if the
// batch resolves to the same codec and format, so a guess that turns out
// wrong costs time, never correctness.
type speculation struct {
	codec  *avro.Codec
	format gateway.Format
	opts   avro.Options
	arena  []byte // pooled; framed encodings of the request's values
}

func (sp *speculation) encode(c *avro.Cursor, rec *gateway.Record) error {
	start := len(sp.arena)
	framed := wire.AppendHeader(sp.arena, uint32(sp.codec.ID))
	out, raw, verr, serr := sp.codec.EncodeAt(framed, c, sp.opts)
	if serr != nil {
		return serr
	}
	rec.Pre = gateway.Prepared{Codec: sp.codec, Format: sp.format}
	if string(raw) == "null" {
		// Absent value: the record's Value stays nil, as without
		// speculation, and the engine encodes JSON null itself.
		rec.Pre = gateway.Prepared{}
		sp.arena = out[:start]
		return nil
	}
	rec.Value = raw
	if verr != nil {
		rec.Pre.Err = gateway.ValueError(verr, "value")
		sp.arena = out[:start]
		return nil
	}
	sp.arena = out
	rec.Pre.Framed = out[start:len(out):len(out)]
	return nil
}
