package mapping

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrogen"
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
	got, st := Properties(n, Options{Strings: StringKeyword})
	if len(st.Truncated) != 0 || st.Fields != 19 {
		t.Fatalf("stats %+v, want 19 fields and nothing truncated", st)
	}
	want := `{"arr":{"type":"long"},"b":{"type":"boolean"},"d":{"type":"double"},"day":{"format":"strict_date","type":"date"},` +
		`"dec":{"type":"keyword"},"e":{"type":"keyword"},"f":{"type":"float"},"i":{"type":"integer"},"l":{"type":"long"},` +
		`"m":{"type":"flattened"},"num":{"type":"double"},"raw":{"type":"binary"},` +
		`"rec":{"properties":{"self":{"enabled":false,"type":"object"},"x":{"ignore_above":8191,"type":"keyword"}}},` +
		`"s":{"ignore_above":8191,"type":"keyword"},"tod":{"type":"keyword"},"ts":{"type":"date"},"u":{"type":"keyword"}}`
	b, _ := json.Marshal(got)
	if string(b) != want {
		t.Fatalf("properties =\n%s\nwant\n%s", b, want)
	}
	text, _ := Properties(n, Options{Strings: StringTextKeyword, Decimal: document.DecimalNumber, OpenSearch: true})
	if b, _ := json.Marshal(text["s"]); string(b) != `{"fields":{"keyword":{"ignore_above":256,"type":"keyword"}},"type":"text"}` {
		t.Fatalf("text+keyword string = %s", b)
	}
	if text["dec"].(map[string]any)["type"] != "double" || text["m"].(map[string]any)["type"] != "flat_object" {
		t.Fatalf("number decimals / opensearch maps: %v %v", text["dec"], text["m"])
	}
	nullable, _ := document.ParseSchema(`["null",` + schema + `]`)
	np, _ := Properties(nullable, Options{Strings: StringKeyword})
	if b2, _ := json.Marshal(np); string(b2) != want {
		t.Fatalf("[null, record] properties = %s", b2)
	}
	prim, _ := document.ParseSchema(`"string"`)
	if p, _ := Properties(prim, Options{Strings: StringText}); p["value"].(map[string]any)["type"] != "text" {
		t.Fatalf("non-record schema = %v", p)
	}
}

// objectDepth is the object nesting of a properties map as Elasticsearch
// measures it (the root is 1).
func objectDepth(props map[string]any) int {
	d := 1
	for _, v := range props {
		m, _ := v.(map[string]any)
		if inner, ok := m["properties"].(map[string]any); ok {
			d = max(d, 1+objectDepth(inner))
		} else if m["type"] == "object" {
			d = max(d, 2)
		}
	}
	return d
}

// countFields counts mapped fields as Elasticsearch does.
func countFields(props map[string]any) int {
	n := 0
	for _, v := range props {
		m, _ := v.(map[string]any)
		n++
		if inner, ok := m["properties"].(map[string]any); ok {
			n += countFields(inner)
		}
		if sub, ok := m["fields"].(map[string]any); ok {
			n += len(sub)
		}
	}
	return n
}

// The mapping of a schema of shared types, deep or recursive, is built in
// work linear in the schema and stays within the field and depth limits;
// what does not fit is mapped as disabled objects and reported.
func TestPropertiesBounded(t *testing.T) {
	t.Parallel()
	wide := `{"type":"record","name":"W","fields":[`
	for i := range 30 {
		if i > 0 {
			wide += ","
		}
		wide += fmt.Sprintf(`{"name":"r%d","type":{"type":"record","name":"R%d","fields":[`, i, i)
		for j := range 50 {
			if j > 0 {
				wide += ","
			}
			wide += fmt.Sprintf(`{"name":"f%d","type":"long"}`, j)
		}
		wide += `]}}`
	}
	wide += `]}`
	chain := `"long"`
	for i := 40; i >= 1; i-- {
		chain = fmt.Sprintf(`{"type":"record","name":"C%d","fields":[{"name":"x","type":"int"},{"name":"c","type":%s}]}`, i, chain)
	}
	manyLeaves := `{"type":"record","name":"M","fields":[`
	for i := range 1500 {
		if i > 0 {
			manyLeaves += ","
		}
		manyLeaves += fmt.Sprintf(`{"name":"f%04d","type":"long"}`, i)
	}
	manyLeaves += `]}`
	cases := map[string]struct {
		schema    string
		limits    Limits
		reserved  int
		wantLimit string // a truncation expected for this limit
		wantPaths []string
	}{
		"shared types, depth 22": {schema: avrogen.SharedChain(22, `{"name":"x","type":"long"}`), reserved: 6, wantLimit: LimitFields,
			wantPaths: []string{strings.Repeat("a.", 18) + "a", "b"}},
		"shared types, depth 30":               {schema: avrogen.SharedChain(30, `{"name":"x","type":"long"}`), reserved: 6, wantLimit: LimitDepth},
		"shared types, empty leaves, depth 60": {schema: avrogen.SharedChain(60, ""), wantLimit: LimitFields},
		"shared types under the limits":        {schema: avrogen.SharedChain(5, `{"name":"x","type":"long"}`)},
		"wide records past the field limit": {schema: wide, limits: Limits{TotalFields: 500, Depth: 20}, reserved: 6, wantLimit: LimitFields,
			wantPaths: []string{"r9", "r10"}},
		"a chain of records past the depth limit": {schema: chain, wantLimit: LimitDepth,
			wantPaths: []string{strings.Repeat("c.", 18) + "c"}},
		"more top-level fields than the limit": {schema: manyLeaves, wantLimit: LimitFields, reserved: 6},
		"recursive type":                       {schema: `{"type":"record","name":"N","fields":[{"name":"v","type":"long"},{"name":"l","type":["null","N"]},{"name":"r","type":{"type":"array","items":"N"}}]}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n, err := document.ParseSchema(tc.schema)
			if err != nil {
				t.Fatal(err)
			}
			o := Options{Strings: StringKeyword, Limits: tc.limits, Reserved: tc.reserved}
			props, st, steps := properties(n, o)
			total, depth := tc.limits.TotalFields, tc.limits.Depth
			if total == 0 {
				total, depth = DefaultTotalFields, DefaultDepth
			}
			// Linear: a few steps per schema node and per field mapped,
			// far from the 2^depth objects the schemas describe.
			if max := 4*(nodes(n, map[avro.Type]bool{})+total) + 10; steps > max {
				t.Fatalf("%d steps, want at most %d", steps, max)
			}
			if got := countFields(props); got != st.Fields || got > total-tc.reserved {
				t.Fatalf("%d fields mapped (stats say %d), limit %d - %d reserved", got, st.Fields, total, tc.reserved)
			}
			if d := objectDepth(props); d > depth {
				t.Fatalf("object depth %d, limit %d", d, depth)
			}
			if tc.wantLimit == "" {
				if len(st.Truncated) != 0 {
					t.Fatalf("truncated %v, want nothing", st.Truncated)
				}
				return
			}
			limits := map[string]bool{}
			paths := map[string]bool{}
			for _, tr := range st.Truncated {
				limits[tr.Limit], paths[tr.Path] = true, true
			}
			if !limits[tc.wantLimit] {
				t.Fatalf("truncations %v, want one for %s", st.Truncated, tc.wantLimit)
			}
			for _, p := range tc.wantPaths {
				if !paths[p] {
					t.Fatalf("truncations %v, want one at %s", st.Truncated, p)
				}
			}
		})
	}
}

// A subtree cut by a limit is mapped as a disabled object: kept in
// _source, not indexed.
func TestTruncatedSubtreeDisabled(t *testing.T) {
	t.Parallel()
	n, err := document.ParseSchema(avrogen.SharedChain(22, ""))
	if err != nil {
		t.Fatal(err)
	}
	props, st := Properties(n, Options{Strings: StringKeyword, Reserved: 6})
	b, _ := json.Marshal(props["b"])
	if string(b) != `{"enabled":false,"type":"object"}` {
		t.Fatalf("b = %s, want a disabled object", b)
	}
	if st.Paths(1) != strings.Repeat("a.", 18)+"a (depth), ..." {
		t.Fatalf("paths %q", st.Paths(1))
	}
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	m.Observe("orders", st)
	want := map[string]float64{}
	for _, tr := range st.Truncated {
		want[tr.Limit]++
	}
	for _, l := range []string{LimitFields, LimitDepth} {
		if got := testutil.ToFloat64(m.truncated.WithLabelValues("orders", l)); got != want[l] || got == 0 {
			t.Fatalf("metric for %s = %v, want %v (and some)", l, got, want[l])
		}
	}
}

// nodes counts the distinct nodes of a schema graph.
func nodes(n avro.Type, seen map[avro.Type]bool) int {
	if n.IsZero() || seen[n] {
		return 0
	}
	seen[n] = true
	c := 1
	switch n.Kind() {
	case avro.Array, avro.Map:
		c += nodes(n.Items(), seen)
	case avro.Record:
		for i := range n.NumFields() {
			c += nodes(n.Field(i).Type(), seen)
		}
	case avro.Union:
		for i := range n.NumBranches() {
			c += nodes(n.Branch(i), seen)
		}
	}
	return c
}

// FuzzPropertiesGenerated: over avrogen's schemas (shared named types,
// issue 13's chains, deep unions, recursive types) and random limits, the
// mapping stays within the field and depth limits, its stats match it,
// and its work is linear in the schema's nodes plus the fields mapped.
func FuzzPropertiesGenerated(f *testing.F) {
	f.Add([]byte{0, 29}, uint16(1000), uint8(20), uint8(6))
	f.Add([]byte{2, 5, 5, 5, 11, 3}, uint16(10), uint8(3), uint8(0))
	f.Add([]byte{3, 3, 6, 2, 6, 1, 9, 11, 6, 6, 6, 6}, uint16(50), uint8(5), uint8(1))
	f.Fuzz(func(t *testing.T, seed []byte, total uint16, depth, reserved uint8) {
		_, text := avrogen.Schema(avrogen.NewSource(seed), avrogen.DefaultOptions)
		n, err := document.ParseSchema(text)
		if err != nil {
			t.Fatalf("generated schema refused: %v\n%s", err, text)
		}
		l := Limits{TotalFields: 1 + int(total)%2000, Depth: 2 + int(depth)%30}
		res := int(reserved) % 8
		for _, sm := range []StringMode{StringKeyword, StringTextKeyword} {
			props, st, steps := properties(n, Options{Strings: sm, Limits: l, Reserved: res})
			if got := countFields(props); got != st.Fields || got > max(0, l.TotalFields-res) {
				t.Fatalf("%d fields mapped (stats %d), limit %d - %d\n%s", got, st.Fields, l.TotalFields, res, text)
			}
			if d := objectDepth(props); d > l.Depth {
				t.Fatalf("object depth %d, limit %d\n%s", d, l.Depth, text)
			}
			if max := 4*(nodes(n, map[avro.Type]bool{})+l.TotalFields) + 10; steps > max {
				t.Fatalf("%d steps, more than %d\n%s", steps, max, text)
			}
		}
	})
}
