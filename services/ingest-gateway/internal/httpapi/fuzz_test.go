package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
)

// FuzzParseBatch: any body either parses into records whose conversion
// yields a record or an error with a message (naming the field for record
// errors), or is refused as a bad request; never a panic.
func FuzzParseBatch(f *testing.F) {
	for _, s := range []string{
		`{"records":[{"key":"k","value":{"a":1},"headers":{"h":"v"},"timestamp":"2024-01-01T00:00:00Z","partition":2}]}`,
		`{"records":[{"value":null,"timestamp":1700000000000}],"schema_id":3,"format":"avro_json","async":true}`,
		`{"records":[]}`, `{"records":[{"valeu":1}]}`, `{"records":[{"partition":-1}]}`, `[]`, `{`, `{"records":[{"timestamp":"soon"}]}`,
		`{"records":[{"key":{"a":[1,2]},"headers":{"h":1}}]}`, `{"records":[1]}`,
		`{"records":[{"value":{"a":1,"b":"x"}},{"value":{"a":"no"}},{"value":{"b":null,"a":2}},{"value":{"a":1,"a":2}}]}`,
	} {
		f.Add([]byte(s))
	}
	fuzzCodec, err := avro.NewCodec(7, `{"type":"record","name":"A","fields":[{"name":"a","type":"long","default":0},{"name":"b","type":["null","string"],"default":null}]}`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, gerr := parseBatch(body, 100, nil)
		if gerr != nil {
			if gerr.Message == "" {
				t.Fatal("error without message")
			}
			return
		}
		if len(req.Records) == 0 || len(req.Records) > 100 {
			t.Fatalf("accepted %d records", len(req.Records))
		}
		if len(req.Errs) != len(req.Records) {
			t.Fatalf("%d records, %d error slots", len(req.Records), len(req.Errs))
		}
		for i, rec := range req.Records {
			if rerr := req.Errs[i]; rerr != nil {
				if rerr.Message == "" || rerr.Field == "" {
					t.Fatalf("record error without message or field: %+v", rerr)
				}
				continue
			}
			if rec.Value != nil && !json.Valid(rec.Value) {
				t.Fatalf("value %q is not JSON", rec.Value)
			}
			if rec.KeyJSON != nil && !json.Valid(rec.KeyJSON) {
				t.Fatalf("key %q is not JSON", rec.KeyJSON)
			}
		}
		// The single-pass parse agrees with validating the whole body.
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		// Encoding values while parsing changes nothing but speed: same
		// records, and each prepared value is what Produce would encode.
		spec := &speculation{codec: fuzzCodec, format: gateway.FormatJSON, opts: avro.Options{Mode: avro.PlainJSON, Root: "value"}}
		sreq, sgerr := parseBatch(body, 100, spec)
		if sgerr != nil || len(sreq.Records) != len(req.Records) {
			t.Fatalf("with speculation: %v, %d records (without: %d)", sgerr, len(sreq.Records), len(req.Records))
		}
		for i, rec := range sreq.Records {
			if !bytes.Equal(rec.Value, req.Records[i].Value) {
				t.Fatalf("record %d value %q, without speculation %q", i, rec.Value, req.Records[i].Value)
			}
			p := rec.Pre
			if p.Codec == nil {
				if rec.Value != nil && req.Errs[i] == nil {
					t.Fatalf("record %d value %q not prepared", i, rec.Value)
				}
				continue
			}
			want, werr := fuzzCodec.BinaryFromJSON(wire.AppendHeader(nil, uint32(fuzzCodec.ID)), rec.Value, spec.opts)
			switch {
			case werr != nil && (p.Err == nil || p.Err.Message != gateway.ValueError(werr, "value").Message):
				t.Fatalf("record %d: prepared error %v, want %v", i, p.Err, werr)
			case werr == nil && (p.Err != nil || !bytes.Equal(p.Framed, want)):
				t.Fatalf("record %d: prepared %x / %v, want %x", i, p.Framed, p.Err, want)
			}
		}
	})
}

// FuzzParseLine covers NDJSON lines.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{`{"value":{"a":1}}`, `{"key":1,"value":"x"} {}`, `{"headers":{"a":"b"},"value":[1]}`, ``, `nul`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, err := parseLine(line, 1)
		if err != nil {
			if err.Message == "" {
				t.Fatal("error without message")
			}
			return
		}
		if rec.KeyJSON != nil && !json.Valid(rec.KeyJSON) {
			t.Fatalf("key %q is not JSON", rec.KeyJSON)
		}
	})
}

// FuzzV3Record covers Confluent v3 record bodies.
func FuzzV3Record(f *testing.F) {
	for _, s := range []string{
		`{"partition_id":1,"headers":[{"name":"h","value":"dg=="}],"key":{"type":"BINARY","data":"a2V5"},"value":{"type":"AVRO","data":{"a":1},"schema_id":3},"timestamp":"2024-01-01T00:00:00Z"}`,
		`{"key":{"type":"STRING","data":"k"},"value":{"type":"JSON","data":null}}`,
		`{"value":{"type":"BINARY","data":"AAEC"}}`, `{"value":{"type":"PROTOBUF","data":{}}}`, `{"key":{"type":"STRING","data":5}}`,
	} {
		f.Add([]byte(s))
	}
	s := &Server{}
	f.Fuzz(func(t *testing.T, body []byte) {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var vr V3Record
		if dec.Decode(&vr) != nil {
			return
		}
		_, rec, err := s.v3Record("t", &vr)
		if err != nil {
			if err.Message == "" {
				t.Fatal("error without message")
			}
			return
		}
		if rec.KeyJSON != nil && !json.Valid(rec.KeyJSON) {
			t.Fatalf("key %q is not JSON", rec.KeyJSON)
		}
	})
}

func TestBatchStatus(t *testing.T) {
	t.Parallel()
	ok := gateway.Result{}
	bad := gateway.Result{Err: &gateway.Error{Kind: gateway.KindInvalidRecord}}
	down := gateway.Result{Err: &gateway.Error{Kind: gateway.KindUnavailable}}
	dlq := gateway.Result{Err: &gateway.Error{Kind: gateway.KindInvalidRecord}, DeadLettered: true}
	cases := []struct {
		name    string
		results []gateway.Result
		async   bool
		status  int
		retry   bool
	}{
		{"all ok", []gateway.Result{ok, ok}, false, 200, false},
		{"dead-lettered counts as done", []gateway.Result{ok, dlq}, false, 200, false},
		{"async", []gateway.Result{ok}, true, 202, false},
		{"partial", []gateway.Result{ok, bad}, false, 207, false},
		{"partial kafka", []gateway.Result{ok, down}, false, 207, true},
		{"all invalid", []gateway.Result{bad, bad}, false, 422, false},
		{"all down", []gateway.Result{down, bad}, false, 503, true},
	}
	for _, tc := range cases {
		status, retry := batchStatus(tc.results, tc.async)
		if status != tc.status || (retry != nil) != tc.retry {
			t.Errorf("%s: %d retry=%v", tc.name, status, retry != nil)
		}
	}
}

// FuzzAppendResult: the hand-rolled result JSON equals encoding/json's.
func FuzzAppendResult(f *testing.F) {
	f.Add("orders.dlq", int32(1), int64(5), "2024-01-01T00:00:00Z", 3, false, true, 42201, "value.x: expected <int> & \"y\"", "value.x")
	f.Add("", int32(0), int64(0), "", 0, true, false, 0, "", "")
	f.Fuzz(func(t *testing.T, topic string, p int32, o int64, ts string, id int, queued, dlq bool, code int, msg, field string) {
		r := NativeResult{Topic: topic, Timestamp: ts, SchemaID: id, Queued: queued, DeadLettered: dlq, ErrorCode: code, Message: msg, Field: field}
		if p%2 == 0 {
			r.Partition, r.Offset = &p, &o
		}
		want, _ := json.Marshal(r)
		var a, b any
		if json.Unmarshal(appendResult(nil, r), &a) != nil || json.Unmarshal(want, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("appendResult %s, encoding/json %s", appendResult(nil, r), want)
		}
	})
}

// FuzzAppendProduced: the fast path for records in Kafka writes exactly
// what the general path writes.
func FuzzAppendProduced(f *testing.F) {
	f.Add(int32(1), int64(5), int64(1700000000123), 7)
	f.Add(int32(0), int64(0), int64(-1), 0)
	f.Fuzz(func(t *testing.T, p int32, o, ms int64, id int) {
		r := gateway.Result{Partition: p, Offset: o, Time: time.UnixMilli(ms), SchemaID: id}
		got := appendProduced(nil, &r)
		want := appendResult(nil, nativeResult("t", r, false))
		if !bytes.Equal(got, want) {
			t.Fatalf("appendProduced %s, appendResult %s", got, want)
		}
	})
}
