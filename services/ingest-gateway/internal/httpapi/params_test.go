package httpapi

import (
	"net/url"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
)

func TestParseProduceQuery(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		query  string
		stream bool
		want   produceQuery
		err    string // substring; "" = no error
	}{
		{name: "empty batch", query: ""},
		{name: "empty stream", query: "", stream: true},
		{name: "stream all", query: "schema_id=7&schema_version=3&format=avro_json", stream: true, want: produceQuery{SchemaID: 7, SchemaVersion: 3, Format: gateway.FormatAvroJSON}},
		{name: "stream latest as -1", query: "schema_version=-1", stream: true},
		{name: "batch async", query: "async=true", want: produceQuery{Async: true}},
		{name: "batch async false", query: "async=false"},
		{name: "unknown parameters are left alone", query: "trace=1&x=y"},
		{name: "schema_id word", query: "schema_id=seven", stream: true, err: `query parameter schema_id: want a positive integer schema id, got "seven"`},
		{name: "schema_id empty", query: "schema_id=", stream: true, err: `got ""`},
		{name: "schema_id zero", query: "schema_id=0", stream: true, err: "schema_id"},
		{name: "schema_id negative", query: "schema_id=-1", stream: true, err: "schema_id"},
		{name: "schema_id past int32", query: "schema_id=2147483648", stream: true, err: "schema_id"},
		{name: "schema_id float", query: "schema_id=1.5", stream: true, err: "schema_id"},
		{name: "schema_id twice", query: "schema_id=1&schema_id=1", stream: true, err: "query parameter schema_id: given 2 times"},
		{name: "schema_version zero", query: "schema_version=0", stream: true, err: "schema_version: want a positive version or -1 (latest)"},
		{name: "schema_version -2", query: "schema_version=-2", stream: true, err: "schema_version"},
		{name: "format unknown", query: "format=protobuf", stream: true, err: `query parameter format: unknown format "protobuf"`},
		{name: "async on a stream", query: "async=true", stream: true, err: "query parameter async: not supported for NDJSON streams"},
		{name: "async word", query: "async=1", err: `query parameter async: want true or false, got "1"`},
		{name: "schema_id on a batch", query: "schema_id=7", err: `query parameter schema_id: read only for NDJSON streams; put "schema_id" in the JSON request body`},
		{name: "format on a batch", query: "format=json", err: "query parameter format: read only for NDJSON streams"},
		{name: "long value quoted short", query: "schema_id=" + strings.Repeat("9", 500), stream: true, err: `"...`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, _ := url.ParseQuery(c.query)
			got, err := parseProduceQuery(q, c.stream)
			if c.err != "" {
				if err == nil || err.Kind != gateway.KindBadRequest || !strings.Contains(err.Message, c.err) {
					t.Fatalf("err = %v, want 400 containing %q", err, c.err)
				}
				if len(err.Message) > 200 {
					t.Fatalf("message of %d bytes echoes the value", len(err.Message))
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got.SchemaID != c.want.SchemaID || got.SchemaVersion != c.want.SchemaVersion || got.Format != c.want.Format || got.Async != c.want.Async {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// FuzzParseProduceQuery: any query string either parses into values that
// round-trip from their parameters, or is refused naming a parameter;
// never a silent default for a parameter that was given.
func FuzzParseProduceQuery(f *testing.F) {
	for _, s := range []string{"", "schema_id=7", "schema_id=abc", "schema_version=-1", "format=avro_json", "async=true", "schema_id=1&schema_id=2", "schema_id=%00", "format=json&async=false"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, stream bool) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		got, perr := parseProduceQuery(q, stream)
		if perr != nil {
			if perr.Kind != gateway.KindBadRequest || !strings.HasPrefix(perr.Message, "query parameter ") || len(perr.Message) > 400 {
				t.Fatalf("refusal %v", perr)
			}
			return
		}
		for _, p := range nativeParams {
			vs, given := q[p.name]
			if !given {
				continue
			}
			if len(vs) != 1 || (stream && !p.stream) || (!stream && !p.batch) {
				t.Fatalf("%s=%q accepted (stream=%v)", p.name, vs, stream)
			}
			v := vs[0]
			switch p.name {
			case "schema_id":
				if id, err := parseSchemaID(v); err != nil || id != got.SchemaID || id <= 0 {
					t.Fatalf("schema_id %q -> %d", v, got.SchemaID)
				}
			case "schema_version":
				if got.SchemaVersion < 0 || (v != "-1" && got.SchemaVersion == 0) {
					t.Fatalf("schema_version %q -> %d", v, got.SchemaVersion)
				}
			case "async":
				if got.Async != (v == "true") || (v != "true" && v != "false") {
					t.Fatalf("async %q -> %v", v, got.Async)
				}
			case "format":
				if _, err := parseFormat(v); err != nil {
					t.Fatalf("format %q accepted", v)
				}
			}
		}
	})
}
