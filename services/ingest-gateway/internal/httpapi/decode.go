package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
)

// batchRequest is a native batch; records stay raw JSON so their values
// go to the schema-directed encoder untouched (and to a dead-letter topic
// byte for byte).
type batchRequest struct {
	SchemaID      int
	SchemaVersion int
	Format        string
	Async         bool
	Records       []avro.Valid
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

// parseBatch parses POST /v1/topics/{topic}/records bodies strictly:
// unknown fields are errors, so a typo does not silently produce nulls.
func parseBatch(body []byte, maxRecords int) (*batchRequest, *gateway.Error) {
	req := &batchRequest{}
	err := avro.ScanObject(body, func(k string, raw avro.Valid) error {
		switch k {
		case "records":
			req.Records = req.Records[:0]
			return avro.ScanArray(raw, func(_ int, rec avro.Valid) error {
				if len(req.Records) >= maxRecords {
					return errTooMany
				}
				req.Records = append(req.Records, rec)
				return nil
			})
		case "schema_id":
			i, err := rawInt(raw, k)
			req.SchemaID = int(i)
			return err
		case "schema_version":
			i, err := rawInt(raw, k)
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
			return fmt.Errorf("unknown field %q", k)
		}
		return nil
	})
	if errors.Is(err, errTooMany) {
		return nil, gateway.Errorf(gateway.KindRequestTooLarge, "request has more than the limit of %d records", maxRecords)
	}
	if err != nil {
		return nil, gateway.Errorf(gateway.KindBadRequest, "malformed JSON request: %v", err)
	}
	if len(req.Records) == 0 {
		return nil, gateway.Errorf(gateway.KindBadRequest, "request has no records")
	}
	return req, nil
}

var errTooMany = errors.New("too many records")

type structuralError struct{ msg string }

func (e *structuralError) Error() string { return e.msg }

// recordFromRaw converts one raw record object. structural errors (not an
// object, unknown field) are request errors in a batch; the others name
// the record's field.
// prefix is only rendered for errors: formatting it per record was a
// visible cost.
func recordFromRaw[T []byte | avro.Valid](raw T, prefixFn func() string) (rec gateway.Record, rerr *gateway.Error, structural bool) {
	prefix := func() string {
		if prefixFn == nil {
			return ""
		}
		return prefixFn()
	}
	rec.Partition = -1
	bad := func(field, format string, args ...any) *gateway.Error {
		return &gateway.Error{Kind: gateway.KindInvalidRecord, Message: prefix() + field + ": " + fmt.Sprintf(format, args...), Field: field}
	}
	err := avro.ScanObject(raw, func(k string, x avro.Valid) error {
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
					rerr = bad("timestamp", "want RFC 3339 or epoch milliseconds, got %q", s)
					return rerr
				}
				rec.Time = ts
				return nil
			}
			ms, err := rawInt(x, "timestamp")
			if err != nil {
				rerr = bad("timestamp", "want RFC 3339 or epoch milliseconds")
				return rerr
			}
			rec.Time = time.UnixMilli(ms)
		case "partition":
			if null {
				return nil
			}
			p, err := rawInt(x, "partition")
			if err != nil || p < 0 || p > 1<<30 {
				rerr = bad("partition", "must be a non-negative integer")
				return rerr
			}
			rec.Partition = int32(p)
		case "headers":
			if null {
				return nil
			}
			v, _ := avro.DecodeJSON(x)
			hm, ok := v.(map[string]any)
			if !ok {
				rerr = bad("headers", "want an object of strings")
				return rerr
			}
			keys := make([]string, 0, len(hm))
			for hk := range hm {
				keys = append(keys, hk)
			}
			sort.Strings(keys)
			for _, hk := range keys {
				s, ok := hm[hk].(string)
				if !ok {
					rerr = bad("headers", "header %q: want a string", hk)
					return rerr
				}
				rec.Headers = append(rec.Headers, kafkago.Header{Key: hk, Value: []byte(s)})
			}
		default:
			return &structuralError{fmt.Sprintf("%sunknown field %q", prefix(), k)}
		}
		return nil
	})
	if rerr != nil {
		return rec, rerr, false
	}
	if err != nil {
		var se *structuralError
		if errors.As(err, &se) {
			return rec, gateway.Errorf(gateway.KindBadRequest, "%s", se.msg), true
		}
		return rec, gateway.Errorf(gateway.KindBadRequest, "%swant a record object: %v", prefix(), err), true
	}
	return rec, nil, false
}
