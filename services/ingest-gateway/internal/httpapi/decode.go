package httpapi

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
)

// decodedRequest is a native batch parsed in a single pass: record values
// stay decoded, so they are not parsed again before Avro encoding.
type decodedRequest struct {
	SchemaID      int
	SchemaVersion int
	Format        string
	Async         bool
	Records       []any
}

func jsonInt(v any, what string) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s: want an integer, got %T", what, v)
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: want an integer, got %s", what, n)
	}
	return i, nil
}

// parseBatch parses POST /v1/topics/{topic}/records bodies strictly:
// unknown fields are errors, so a typo does not silently produce nulls.
func parseBatch(body []byte, maxRecords int) (*decodedRequest, *gateway.Error) {
	v, err := avro.DecodeJSON(body)
	if err != nil {
		return nil, gateway.Errorf(gateway.KindBadRequest, "malformed JSON request: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, gateway.Errorf(gateway.KindBadRequest, "malformed JSON request: want an object with \"records\"")
	}
	req := &decodedRequest{}
	for k, x := range m {
		var err error
		switch k {
		case "records":
			a, ok := x.([]any)
			if !ok {
				return nil, gateway.Errorf(gateway.KindBadRequest, "records: want an array")
			}
			req.Records = a
		case "schema_id":
			var i int64
			i, err = jsonInt(x, k)
			req.SchemaID = int(i)
		case "schema_version":
			var i int64
			i, err = jsonInt(x, k)
			req.SchemaVersion = int(i)
		case "format":
			s, ok := x.(string)
			if !ok {
				err = fmt.Errorf("format: want a string")
			}
			req.Format = s
		case "async":
			b, ok := x.(bool)
			if !ok {
				err = fmt.Errorf("async: want true or false")
			}
			req.Async = b
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		if err != nil {
			return nil, gateway.Errorf(gateway.KindBadRequest, "malformed JSON request: %v", err)
		}
	}
	if len(req.Records) == 0 {
		return nil, gateway.Errorf(gateway.KindBadRequest, "request has no records")
	}
	if len(req.Records) > maxRecords {
		return nil, gateway.Errorf(gateway.KindRequestTooLarge, "request has %d records, more than the limit of %d", len(req.Records), maxRecords)
	}
	return req, nil
}

// recordFromDecoded converts one decoded record object. structural errors
// (not an object, unknown field) are request errors in a batch; the others
// name the record's field.
func recordFromDecoded(v any, prefix string) (rec gateway.Record, rerr *gateway.Error, structural bool) {
	rec.Partition = -1
	m, ok := v.(map[string]any)
	if !ok {
		return rec, gateway.Errorf(gateway.KindBadRequest, "%swant a record object, got %T", prefix, v), true
	}
	bad := func(field, format string, args ...any) *gateway.Error {
		return &gateway.Error{Kind: gateway.KindInvalidRecord, Message: prefix + field + ": " + fmt.Sprintf(format, args...), Field: field}
	}
	for k, x := range m {
		switch k {
		case "value":
			rec.Decoded, rec.HasDecoded = x, true
		case "key":
			switch kv := x.(type) {
			case nil:
			case string:
				rec.KeyJSON, _ = json.Marshal(kv)
			default:
				b, err := json.Marshal(kv)
				if err != nil {
					return rec, bad("key", "%v", err), false
				}
				rec.KeyJSON = b
			}
		case "timestamp":
			switch t := x.(type) {
			case nil:
			case string:
				ts, err := time.Parse(time.RFC3339Nano, t)
				if err != nil {
					return rec, bad("timestamp", "want RFC 3339 or epoch milliseconds, got %q", t), false
				}
				rec.Time = ts
			default:
				ms, err := jsonInt(t, "timestamp")
				if err != nil {
					return rec, bad("timestamp", "want RFC 3339 or epoch milliseconds"), false
				}
				rec.Time = time.UnixMilli(ms)
			}
		case "partition":
			if x == nil {
				continue
			}
			p, err := jsonInt(x, "partition")
			if err != nil || p < 0 || p > 1<<30 {
				return rec, bad("partition", "must be a non-negative integer"), false
			}
			rec.Partition = int32(p)
		case "headers":
			if x == nil {
				continue
			}
			hm, ok := x.(map[string]any)
			if !ok {
				return rec, bad("headers", "want an object of strings"), false
			}
			keys := make([]string, 0, len(hm))
			for hk := range hm {
				keys = append(keys, hk)
			}
			sort.Strings(keys)
			for _, hk := range keys {
				s, ok := hm[hk].(string)
				if !ok {
					return rec, bad("headers", "header %q: want a string", hk), false
				}
				rec.Headers = append(rec.Headers, kafkago.Header{Key: hk, Value: []byte(s)})
			}
		default:
			return rec, gateway.Errorf(gateway.KindBadRequest, "%sunknown field %q", prefix, k), true
		}
	}
	if !rec.HasDecoded {
		rec.HasDecoded = true // absent value is null
	}
	return rec, nil, false
}
