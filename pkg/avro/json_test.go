package avro

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
)

const orderSchema = `{
  "type": "record", "name": "Order", "namespace": "com.acme",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "qty", "type": "int"},
    {"name": "total", "type": "long"},
    {"name": "ratio", "type": "float", "default": 0.5},
    {"name": "ok", "type": "boolean", "default": true},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "tsu", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}], "default": null},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}, "default": 0},
    {"name": "tod", "type": {"type": "int", "logicalType": "time-millis"}, "default": 0},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}, "default": "\u0000"},
    {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}, "default": "00000000-0000-0000-0000-000000000000"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]}, "default": "NEW"},
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
        {"name": "sku", "type": "string"},
        {"name": "price", "type": "double"},
        {"name": "note", "type": ["null", "string"], "default": null}
    ]}}, "default": []},
    {"name": "attrs", "type": {"type": "map", "values": "long"}, "default": {}},
    {"name": "choice", "type": ["null", "long", "string", "Item"], "default": null},
    {"name": "hash", "type": {"type": "fixed", "name": "MD5", "size": 4}, "default": "\u0000\u0000\u0000\u0000"},
    {"name": "blob", "type": "bytes", "default": ""},
    {"name": "next", "type": ["null", "Order"], "default": null}
  ]
}`

func mustCodec(t testing.TB, schema string) *Codec {
	t.Helper()
	c, err := NewCodec(1, schema)
	if err != nil {
		t.Fatalf("NewCodec: %v", err)
	}
	return c
}

func TestPlainJSONRoundTrip(t *testing.T) {
	t.Parallel()
	c := mustCodec(t, orderSchema)
	in := `{"id":"o-1","qty":3,"total":9007199254740993,"ratio":0.25,"ok":false,
	  "ts":"2024-05-01T12:30:00.123Z","tsu":"2024-05-01T12:30:00.123456Z","day":"2024-05-01","tod":"13:14:15.500",
	  "price":"1234.50","uid":"6f1c8a7e-3b2d-4c5e-9f00-112233445566","status":"PAID",
	  "items":[{"sku":"a","price":1.5},{"sku":"b","price":2,"note":"gift"}],
	  "attrs":{"x":1,"y":-2},"choice":{"sku":"c","price":3,"note":null},"hash":"AQIDBA==","blob":"aGk=",
	  "next":{"id":"o-2","qty":1,"total":1,"ts":1714566600123}}`
	bin, err := c.BinaryFromJSON(nil, []byte(in), Options{Root: "value"})
	if err != nil {
		t.Fatalf("BinaryFromJSON: %v", err)
	}
	out, err := c.JSONFromBinary(nil, bin, PlainJSON)
	if err != nil {
		t.Fatalf("JSONFromBinary: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	want := map[string]any{
		"id": "o-1", "qty": 3.0, "total": 9007199254740992.0, "ratio": 0.25, "ok": false,
		"ts": "2024-05-01T12:30:00.123Z", "tsu": "2024-05-01T12:30:00.123456Z", "day": "2024-05-01", "tod": "13:14:15.500",
		"price": "1234.50", "uid": "6f1c8a7e-3b2d-4c5e-9f00-112233445566", "status": "PAID",
		"items": []any{
			map[string]any{"sku": "a", "price": 1.5, "note": nil},
			map[string]any{"sku": "b", "price": 2.0, "note": "gift"},
		},
		"attrs":  map[string]any{"x": 1.0, "y": -2.0},
		"choice": map[string]any{"sku": "c", "price": 3.0, "note": nil},
		"hash":   "AQIDBA==", "blob": "aGk=",
	}
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if !bytes.Contains(out, []byte(`"total":9007199254740993`)) {
		t.Errorf("long lost precision: %s", out)
	}
	next, _ := got["next"].(map[string]any)
	if next["ts"] != "2024-05-01T12:30:00.123Z" || next["status"] != "NEW" || next["ratio"] != 0.5 {
		t.Errorf("nested record with defaults = %v", next)
	}
	// The plain output converts back to the same datum (map entries may
	// encode in another order, so compare canonical renderings).
	bin2, err := c.BinaryFromJSON(nil, out, Options{})
	if err != nil || !sameDatum(t, c, bin, bin2) {
		t.Fatalf("re-encoding plain output: %v", err)
	}
	// And the Avro JSON output too, in AvroJSON mode.
	aj, err := c.JSONFromBinary(nil, bin, AvroJSON)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(aj, []byte(`"choice":{"com.acme.Item":{"sku":"c","price":3,"note":null}}`)) {
		t.Errorf("avro json union not wrapped: %s", aj)
	}
	bin3, err := c.BinaryFromJSON(nil, aj, Options{Mode: AvroJSON})
	if err != nil || !sameDatum(t, c, bin, bin3) {
		t.Fatalf("re-encoding avro json output: %v\n%s", err, aj)
	}
}

// sameDatum compares two encodings by their Avro JSON rendering, which
// sorts map keys.
func sameDatum(t testing.TB, c *Codec, a, b []byte) bool {
	t.Helper()
	ja, err := c.JSONFromBinary(nil, a, AvroJSON)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := c.JSONFromBinary(nil, b, AvroJSON)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

func TestGoavroNativeAgrees(t *testing.T) {
	t.Parallel()
	c := mustCodec(t, orderSchema)
	bin, err := c.BinaryFromJSON(nil, []byte(`{"id":"x","qty":1,"total":2,"ts":"2024-01-02T03:04:05.006Z","price":"-7.25","choice":42}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	native, _, err := c.NativeFromBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	m := native.(map[string]any)
	if ts := m["ts"].(time.Time); !ts.Equal(time.Date(2024, 1, 2, 3, 4, 5, 6e6, time.UTC)) {
		t.Errorf("ts = %v", ts)
	}
	if p := m["price"].(*big.Rat); p.Cmp(big.NewRat(-725, 100)) != 0 {
		t.Errorf("price = %v", p)
	}
	if ch := m["choice"].(map[string]any); ch["long"] != int64(42) {
		t.Errorf("choice = %v", ch)
	}
}

func TestFieldErrors(t *testing.T) {
	t.Parallel()
	c := mustCodec(t, orderSchema)
	base := `"id":"o","qty":1,"total":1,"ts":0`
	cases := []struct {
		name, json string
		mode       Mode
		want       string
	}{
		{"wrong type nested", `{` + base + `,"items":[{"sku":"a","price":1},{"sku":"b","price":1},{"sku":"c","price":1},{"sku":"d","price":"abc"}]}`, PlainJSON,
			`value.items[3].price: expected double, got string "abc"`},
		{"missing required", `{"id":"o","qty":1,"ts":0}`, PlainJSON, `value.total: missing required field (type long)`},
		{"unknown field", `{` + base + `,"colour":"red"}`, PlainJSON, `value.colour: unknown field (record com.acme.Order has no field "colour")`},
		{"int overflow", `{"id":"o","qty":3000000000,"total":1,"ts":0}`, PlainJSON, `value.qty: expected int, got number 3000000000 (not a 32-bit integer)`},
		{"fraction for long", `{"id":"o","qty":1,"total":1.5,"ts":0}`, PlainJSON, `value.total: expected long, got number 1.5 (not a 64-bit integer)`},
		{"bad timestamp", `{"id":"o","qty":1,"total":1,"ts":"yesterday"}`, PlainJSON, `value.ts: expected timestamp-millis (RFC 3339 string or number), got string "yesterday"`},
		{"bad date", `{` + base + `,"day":"01/05/2024"}`, PlainJSON, `value.day: expected date ("2006-01-02" or days since 1970-01-01), got string "01/05/2024"`},
		{"bad decimal scale", `{` + base + `,"price":"1.234"}`, PlainJSON, `value.price: expected decimal(9,2), got string "1.234": more than 2 digits after the point`},
		{"bad decimal text", `{` + base + `,"price":"abc"}`, PlainJSON, `value.price: expected decimal(9,2), got string "abc": not a decimal number`},
		{"bad uuid", `{` + base + `,"uid":"nope"}`, PlainJSON, `value.uid: expected uuid, got string "nope"`},
		{"bad enum", `{` + base + `,"status":"LOST"}`, PlainJSON, `value.status: "LOST" is not a symbol of enum com.acme.Status (one of NEW, PAID, SHIPPED)`},
		{"bad union", `{` + base + `,"choice":true}`, PlainJSON, `value.choice: no union branch matches: expected one of [null, long, string, record com.acme.Item], got boolean true`},
		{"union single candidate", `{` + base + `,"tsu":"soon"}`, PlainJSON, `value.tsu: expected timestamp-micros (RFC 3339 string or number), got string "soon"`},
		{"union record nested", `{` + base + `,"choice":{"sku":"c"}}`, PlainJSON, `value.choice.price: missing required field (type double)`},
		{"map value", `{` + base + `,"attrs":{"k":"v"}}`, PlainJSON, `value.attrs["k"]: expected long, got string "v"`},
		{"fixed size", `{` + base + `,"hash":"AQI="}`, PlainJSON, `value.hash: expected 4 bytes for fixed com.acme.MD5, got 2`},
		{"bad base64", `{` + base + `,"blob":"***"}`, PlainJSON, `value.blob: expected bytes as base64, got string "***"`},
		{"not an object", `[1]`, PlainJSON, `value: expected record com.acme.Order, got array`},
		{"malformed", `{"id":`, PlainJSON, `value: malformed JSON: unexpected end of JSON input`},
		{"trailing", `{` + base + `} {}`, PlainJSON, `value: malformed JSON: offset 36: unexpected data after the JSON value`},
		{"avro union unwrapped", `{` + base + `,"choice":42}`, AvroJSON, `value.choice: expected a union value wrapped as {"<type>": value} with type one of [null, long, string, com.acme.Item], or null; got number 42`},
		{"avro union unknown branch", `{` + base + `,"choice":{"int":42}}`, AvroJSON, `value.choice: union has no branch "int" (want one of [null, long, string, com.acme.Item])`},
		{"avro bytes codepoint", `{` + base + `,"blob":"\u0100"}`, AvroJSON, `value.blob: expected bytes as a string of code points 0-255, got string "Ā"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.BinaryFromJSON(nil, []byte(tc.json), Options{Mode: tc.mode, Root: "value"})
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want *FieldError", err, err)
			}
			if fe.Error() != tc.want {
				t.Fatalf("err =\n  %s\nwant\n  %s", fe.Error(), tc.want)
			}
		})
	}
}

func TestUnionInference(t *testing.T) {
	t.Parallel()
	c := mustCodec(t, `["null","int","double","string",{"type":"array","items":"string"},{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}]`)
	cases := []struct {
		in, avroJSON string
	}{
		{`null`, `null`},
		{`7`, `{"int":7}`},
		{`7.5`, `{"double":7.5}`},
		{`5000000000`, `{"double":5e+09}`},
		{`"s"`, `{"string":"s"}`},
		{`["a"]`, `{"array":["a"]}`},
		{`{"x":1}`, `{"P":{"x":1}}`},
		{`{"string":"wrapped"}`, `{"string":"wrapped"}`},
	}
	for _, tc := range cases {
		bin, err := c.BinaryFromJSON(nil, []byte(tc.in), Options{})
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		out, err := c.JSONFromBinary(nil, bin, AvroJSON)
		if err != nil || string(out) != tc.avroJSON {
			t.Fatalf("%s: avro json = %s, %v; want %s", tc.in, out, err, tc.avroJSON)
		}
	}
}

func TestSchemaErrors(t *testing.T) {
	t.Parallel()
	for _, s := range []string{`{`, `"nope"`, `["int","int"]`, `{"type":"record","fields":[]}`, `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}`} {
		if _, err := NewCodec(0, s); err == nil {
			t.Errorf("schema %s accepted", s)
		} else if !strings.Contains(err.Error(), "schema") {
			t.Errorf("schema %s: error %q does not say what failed", s, err)
		}
	}
}

// BenchmarkBinaryFromJSON measures the JSON -> Avro hot path on a typical record.
func BenchmarkBinaryFromJSON(b *testing.B) {
	c := mustCodec(b, orderSchema)
	in := []byte(`{"id":"o-1","qty":3,"total":900719925474,"ts":"2024-05-01T12:30:00.123Z","price":"1234.50","status":"PAID",
	  "items":[{"sku":"a","price":1.5},{"sku":"b","price":2,"note":"gift"}],"attrs":{"x":1,"y":-2},"choice":"s","blob":"aGk="}`)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		var err error
		if dst, err = c.BinaryFromJSON(dst[:0], in, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// pageViewSchema is the gateway benchmark's ~200-byte record.
const pageViewSchema = `{"type":"record","name":"PageView","namespace":"bench","fields":[
 {"name":"id","type":{"type":"string","logicalType":"uuid"}},
 {"name":"user","type":"string"},
 {"name":"event","type":{"type":"enum","name":"Event","symbols":["VIEW","CLICK","BUY"]}},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"url","type":"string"},
 {"name":"referrer","type":["null","string"],"default":null},
 {"name":"duration_ms","type":"int"},
 {"name":"amount","type":"double"},
 {"name":"tags","type":{"type":"map","values":"string"}}
]}`

func BenchmarkBinaryFromJSONPageView(b *testing.B) {
	c := mustCodec(b, pageViewSchema)
	in := []byte(`{"id":"6f1c8a7e-3b2d-4c5e-9f00-000000012345","user":"user-00012345","event":"CLICK","ts":"2024-05-01T12:00:00.345Z",` +
		`"url":"https://shop.example.com/catalog/category-2345/product-012345?utm=newsletter","referrer":"https://search.example.org/?q=item12345",` +
		`"duration_ms":2345,"amount":345.25,"tags":{"region":"eu-west-1","ab":"variant-b"}}`)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		var err error
		if dst, err = c.BinaryFromJSON(dst[:0], in, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkBinaryFromJSONBatch encodes 1000 distinct records laid out as
// in a request body into one arena, as the gateway does per request.
func BenchmarkBinaryFromJSONBatch(b *testing.B) {
	c := mustCodec(b, pageViewSchema)
	var body []byte
	var spans [][2]int
	for i := range 1000 {
		start := len(body)
		body = fmt.Appendf(body, `{"id":"6f1c8a7e-3b2d-4c5e-9f00-%012d","user":"user-%08d","event":"CLICK","ts":"2024-05-01T12:00:00.%03dZ",`+
			`"url":"https://shop.example.com/catalog/category-%04d/product-%06d?utm=newsletter","referrer":"https://search.example.org/?q=item%d",`+
			`"duration_ms":%d,"amount":%d.25,"tags":{"region":"eu-west-1","ab":"variant-b"}}`, i, i, i%1000, i%5000, i, i, i%10000, i%500)
		spans = append(spans, [2]int{start, len(body)})
	}
	b.SetBytes(int64(len(body)))
	arena := make([]byte, 0, len(body))
	for b.Loop() {
		arena = arena[:0]
		for _, sp := range spans {
			var err error
			if arena, err = c.BinaryFromJSON(arena, body[sp[0]:sp[1]], Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(spans))/b.Elapsed().Seconds(), "records/s")
}
