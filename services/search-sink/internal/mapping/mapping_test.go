package mapping

import (
	"encoding/json"
	"testing"

	"github.com/sluicehq/sluice/services/search-sink/internal/document"
)

func TestPropertiesFromAvro(t *testing.T) {
	t.Parallel()
	schema := `{"type":"record","name":"E","fields":[
	 {"name":"i","type":"int"},{"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"d","type":"double"},
	 {"name":"b","type":"boolean"},{"name":"s","type":["null","string"]},{"name":"raw","type":"bytes"},
	 {"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},{"name":"day","type":{"type":"int","logicalType":"date"}},
	 {"name":"tod","type":{"type":"int","logicalType":"time-millis"}},{"name":"u","type":{"type":"string","logicalType":"uuid"}},
	 {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}},
	 {"name":"e","type":{"type":"enum","name":"K","symbols":["A"]}},
	 {"name":"arr","type":{"type":"array","items":"long"}},
	 {"name":"m","type":{"type":"map","values":"string"}},
	 {"name":"num","type":["int","double"]},{"name":"mixed","type":["long","string"]},
	 {"name":"rec","type":{"type":"record","name":"R","fields":[{"name":"x","type":"string"},{"name":"self","type":["null","R"]}]}}
	]}`
	n, err := document.ParseSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	got := Properties(n, Options{Strings: StringKeyword})
	want := `{"arr":{"type":"long"},"b":{"type":"boolean"},"d":{"type":"double"},"day":{"format":"strict_date","type":"date"},` +
		`"dec":{"type":"keyword"},"e":{"type":"keyword"},"f":{"type":"float"},"i":{"type":"integer"},"l":{"type":"long"},` +
		`"m":{"type":"flattened"},"num":{"type":"double"},"raw":{"type":"binary"},` +
		`"rec":{"properties":{"self":{"enabled":false,"type":"object"},"x":{"ignore_above":8191,"type":"keyword"}}},` +
		`"s":{"ignore_above":8191,"type":"keyword"},"tod":{"type":"keyword"},"ts":{"type":"date"},"u":{"type":"keyword"}}`
	b, _ := json.Marshal(got)
	if string(b) != want {
		t.Fatalf("properties =\n%s\nwant\n%s", b, want)
	}
	text := Properties(n, Options{Strings: StringTextKeyword, Decimal: document.DecimalNumber, OpenSearch: true})
	if b, _ := json.Marshal(text["s"]); string(b) != `{"fields":{"keyword":{"ignore_above":256,"type":"keyword"}},"type":"text"}` {
		t.Fatalf("text+keyword string = %s", b)
	}
	if text["dec"].(map[string]any)["type"] != "double" || text["m"].(map[string]any)["type"] != "flat_object" {
		t.Fatalf("number decimals / opensearch maps: %v %v", text["dec"], text["m"])
	}
	nullable, _ := document.ParseSchema(`["null",` + schema + `]`)
	if b2, _ := json.Marshal(Properties(nullable, Options{Strings: StringKeyword})); string(b2) != want {
		t.Fatalf("[null, record] properties = %s", b2)
	}
	prim, _ := document.ParseSchema(`"string"`)
	if p := Properties(prim, Options{Strings: StringText}); p["value"].(map[string]any)["type"] != "text" {
		t.Fatalf("non-record schema = %v", p)
	}
}
