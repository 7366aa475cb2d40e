package avro

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/avro/avrogen"
)

func sharedChainSize(depth int) int64 { return 3<<depth - 1 }

// naive is the oracle: it expands the schema as a tree, re-walking every
// named type at every use and cutting only at types on the current path.
// It shares no code with measure (its own name table and walk).
type naive struct {
	defs   map[string]naiveDef
	path   []string
	steps  int
	budget int
	mutual bool // a cut at a type other than the innermost one being expanded
}

type naiveDef struct {
	def map[string]any
	ns  string // namespace inside the type
}

func naiveMeasure(t testing.TB, text string, refs []string, budget int) (size int64, depth int, mutual, complete bool) {
	t.Helper()
	n := &naive{defs: map[string]naiveDef{}, budget: budget}
	var root any
	for i, s := range append(append([]string(nil), refs...), text) {
		var v any
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			t.Fatalf("oracle: %v", err)
		}
		n.collect(v, "")
		if i == len(refs) {
			root = v
		}
	}
	size, depth = n.expand(root, "")
	return size, depth, n.mutual, n.steps <= n.budget
}

func (n *naive) collect(v any, ns string) {
	switch x := v.(type) {
	case []any:
		for _, b := range x {
			n.collect(b, ns)
		}
	case map[string]any:
		t, isString := x["type"].(string)
		if !isString {
			n.collect(x["type"], ns)
			return
		}
		switch t {
		case "record", "error", "enum", "fixed":
			name := x["name"].(string)
			if s, ok := x["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = s
			}
			full := name
			if !strings.Contains(name, ".") && ns != "" {
				full = ns + "." + name
			}
			inner := ""
			if i := strings.LastIndexByte(full, '.'); i >= 0 {
				inner = full[:i]
			}
			n.defs[full] = naiveDef{x, inner}
			fields, _ := x["fields"].([]any)
			for _, f := range fields {
				n.collect(f.(map[string]any)["type"], inner)
			}
		case "array":
			n.collect(x["items"], ns)
		case "map":
			n.collect(x["values"], ns)
		}
	}
}

func (n *naive) lookup(name, ns string) string {
	if !strings.Contains(name, ".") && ns != "" {
		if _, ok := n.defs[ns+"."+name]; ok {
			return ns + "." + name
		}
	}
	return name
}

func (n *naive) expand(v any, ns string) (int64, int) {
	n.steps++
	if n.steps > n.budget {
		return 1, 0
	}
	switch x := v.(type) {
	case string:
		if _, ok := primitives[x]; ok {
			return 1, 0
		}
		return n.named(n.lookup(x, ns))
	case []any:
		return n.container(x, ns)
	case map[string]any:
		t, isString := x["type"].(string)
		if !isString {
			n.steps--
			return n.expand(x["type"], ns)
		}
		switch t {
		case "record", "error", "enum", "fixed":
			name := x["name"].(string)
			if s, ok := x["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = s
			}
			if !strings.Contains(name, ".") && ns != "" {
				name = ns + "." + name
			}
			return n.named(name)
		case "array":
			return n.container([]any{x["items"]}, ns)
		case "map":
			return n.container([]any{x["values"]}, ns)
		}
		if _, ok := primitives[t]; ok {
			return 1, 0
		}
		return n.named(n.lookup(t, ns))
	}
	panic(fmt.Sprintf("oracle: unexpected %v", v))
}

func (n *naive) container(kids []any, ns string) (int64, int) {
	size, depth := int64(1), 0
	for _, k := range kids {
		s, d := n.expand(k, ns)
		size = satAdd(size, s)
		depth = max(depth, d)
	}
	return size, depth + 1
}

func (n *naive) named(full string) (int64, int) {
	for i, p := range n.path {
		if p == full {
			if i != len(n.path)-1 {
				n.mutual = true
			}
			return 1, 0
		}
	}
	d := n.defs[full]
	if t := d.def["type"]; t != "record" && t != "error" {
		return 1, 0
	}
	n.path = append(n.path, full)
	defer func() { n.path = n.path[:len(n.path)-1] }()
	fields, _ := d.def["fields"].([]any)
	kids := make([]any, len(fields))
	for i, f := range fields {
		kids[i] = f.(map[string]any)["type"]
	}
	n.steps-- // the record is one step, counted by container
	return n.container(kids, d.ns)
}

func TestMeasureSchema(t *testing.T) {
	t.Parallel()
	const addr = `{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"city","type":"string"},{"name":"zip","type":["null","string"]}]}`
	cases := []struct {
		name   string
		schema string
		refs   []string
		types  int64
		depth  int
		mutual bool
		// what the tree-walking oracle finds, when it differs (the
		// measure over-counts some mutual recursion, never under-counts)
		naiveTypes int64
		naiveDepth int
	}{
		{name: "primitive", schema: `"int"`, types: 1},
		{name: "wrapped primitive", schema: `{"type":"long","logicalType":"timestamp-millis"}`, types: 1},
		{name: "wrapped type", schema: `{"type":{"type":"array","items":"int"}}`, types: 2, depth: 1},
		{name: "enum and fixed", schema: `["null",{"type":"enum","name":"E","symbols":["A"]},{"type":"fixed","name":"F","size":2}]`, types: 4, depth: 1},
		{name: "record of primitives", schema: `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}`, types: 3, depth: 1},
		{name: "optional nested record", schema: `{"type":"record","name":"R","fields":[{"name":"o","type":["null",{"type":"record","name":"I","fields":[{"name":"x","type":"int"}]}]}]}`, types: 5, depth: 3},
		{name: "array of map of union", schema: `{"type":"array","items":{"type":"map","values":["null","int"]}}`, types: 5, depth: 3},
		{name: "empty union and record", schema: `[{"type":"record","name":"E","fields":[]}]`, types: 2, depth: 2},
		{name: "shared type counted at each use", schema: `{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"bill","type":` + addr + `},{"name":"ship","type":"Address"},{"name":"more","type":{"type":"array","items":"com.acme.Address"}}]}`, types: 1 + 5 + 5 + 6, depth: 4},
		{name: "reference", schema: `{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"bill","type":"Address"},{"name":"ship","type":"Address"}]}`, refs: []string{addr}, types: 11, depth: 3},
		{name: "self recursion counts 1", schema: `{"type":"record","name":"List","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","List"]}]}`, types: 5, depth: 2},
		{name: "recursion through an array", schema: `{"type":"record","name":"Tree","fields":[{"name":"kids","type":{"type":"array","items":"Tree"}}]}`, types: 3, depth: 2},
		{name: "mutual recursion", schema: `{"type":"record","name":"A","fields":[{"name":"b","type":{"type":"record","name":"B","fields":[{"name":"a","type":"A"}]}}]}`, types: 3, depth: 2, mutual: true},
		// B is used at the root and inside A. A tree walker entering B at
		// the root expands A inside it and cuts at B (B is 3 there); the
		// measure reuses A's expansion from the root (3, including B), so
		// B counts 4 there: an over-count, never an under-count.
		{name: "mutual recursion entered twice", schema: `{"type":"record","name":"R","fields":[{"name":"x","type":{"type":"record","name":"A","fields":[{"name":"b","type":{"type":"record","name":"B","fields":[{"name":"a","type":"A"}]}}]}},{"name":"y","type":"B"}]}`, types: 8, depth: 4, mutual: true, naiveTypes: 7, naiveDepth: 3},
		{name: "namespaces", schema: `{"type":"record","name":"a.R","fields":[{"name":"i","type":{"type":"record","name":"I","fields":[]}},{"name":"j","type":"a.I"},{"name":"k","type":{"type":"record","name":"I","namespace":"b","fields":[]}},{"name":"l","type":"b.I"}]}`, types: 5, depth: 2},
		{name: "issue 13 chain depth 10", schema: avrogen.SharedChain(10, `{"name":"x","type":"int"}`), types: sharedChainSize(10), depth: 11},
		{name: "issue 13 chain depth 22", schema: avrogen.SharedChain(22, `{"name":"x","type":"int"}`), types: sharedChainSize(22), depth: 23},
		{name: "saturates", schema: avrogen.SharedChain(70, `{"name":"x","type":"int"}`), types: math.MaxInt64, depth: 71},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := MeasureSchema(tc.schema, tc.refs...)
			if err != nil {
				t.Fatal(err)
			}
			if st.ExpandedTypes != tc.types || st.Depth != tc.depth || st.Partial {
				t.Fatalf("measured %+v, want %d types, depth %d", st, tc.types, tc.depth)
			}
			if !tc.mutual && st.work > int64(st.TextTypes) {
				t.Fatalf("%d steps for %d types as written: not linear", st.work, st.TextTypes)
			}
			if tc.types > 1_000_000 {
				return
			}
			wantTypes, wantDepth := tc.types, tc.depth
			if tc.naiveTypes != 0 {
				wantTypes, wantDepth = tc.naiveTypes, tc.naiveDepth
			}
			size, depth, mutual, complete := naiveMeasure(t, tc.schema, tc.refs, 1<<20)
			if !complete || size != wantTypes || depth != wantDepth || mutual != tc.mutual {
				t.Fatalf("oracle: %d types, depth %d, mutual %v (complete %v); want %d, %d, %v", size, depth, mutual, complete, wantTypes, wantDepth, tc.mutual)
			}
		})
	}
}

// denseCycle defines n records that each use every other one: a tree
// walker that stops only at types on its path visits (n-1)! paths.
func denseCycle(n int) string {
	var b strings.Builder
	b.WriteString(`[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(`,`)
		}
		fmt.Fprintf(&b, `{"type":"record","name":"C%d","fields":[`, i)
		for j := 0; j < n; j++ {
			if j > 0 {
				b.WriteString(`,`)
			}
			fmt.Fprintf(&b, `{"name":"f%d","type":["null","C%d"]}`, j, j)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]`)
	return b.String()
}

func TestMeasureSchemaMutualRecursionIsBounded(t *testing.T) {
	t.Parallel()
	// Small enough for the oracle: the measure is at least a tree walk.
	small := denseCycle(4)
	st, err := MeasureSchema(small)
	if err != nil {
		t.Fatal(err)
	}
	size, depth, mutual, complete := naiveMeasure(t, small, nil, 1<<20)
	if !complete || !mutual || st.ExpandedTypes < size || st.Depth < depth || st.Partial {
		t.Fatalf("measured %+v; oracle %d types, depth %d, mutual %v, complete %v", st, size, depth, mutual, complete)
	}
	// 12 mutually recursive records: 11! paths. Measuring stops at the
	// limit instead of walking them all.
	start := time.Now()
	_, err = SchemaLimits{MaxExpandedTypes: 100_000, MaxDepth: 64}.Check(denseCycle(12))
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != LimitExpandedTypes || !le.AtLeast || le.Value != 100_000 {
		t.Fatalf("dense cycle of 12: %v", err)
	}
	if want := "schema expands to more than 100000 types (every use of a named type counted), over the limit of 100000"; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	st, err = MeasureSchema(denseCycle(12))
	if err != nil || !st.Partial || st.ExpandedTypes != MaxMeasureWork {
		t.Fatalf("unlimited measure of a dense cycle: %+v, %v", st, err)
	}
	t.Logf("dense cycle: refused and measured in %v", time.Since(start))
}

func TestSchemaLimitsCheck(t *testing.T) {
	t.Parallel()
	limits := SchemaLimits{MaxExpandedTypes: 100_000, MaxDepth: 64, ExpandedTypesSetting: "SCHEMA_REGISTRY_MAX_SCHEMA_TYPES", DepthSetting: "SCHEMA_REGISTRY_MAX_SCHEMA_DEPTH"}
	deep := func(n int) string { // n nested arrays of int: depth n
		return strings.Repeat(`{"type":"array","items":`, n) + `"int"` + strings.Repeat(`}`, n)
	}
	cases := []struct {
		name   string
		limits SchemaLimits
		schema string
		want   string // "" accepted
	}{
		{"issue 13 depth 22", limits, avrogen.SharedChain(22, `{"name":"x","type":"int"}`), "schema expands to 12582911 types (every use of a named type counted), over the limit of 100000 (SCHEMA_REGISTRY_MAX_SCHEMA_TYPES)"},
		{"issue 13 depth 60", limits, avrogen.SharedChain(60, `{"name":"x","type":"int"}`), "schema expands to 3458764513820540927 types (every use of a named type counted), over the limit of 100000 (SCHEMA_REGISTRY_MAX_SCHEMA_TYPES)"},
		{"chain just under the size limit", limits, avrogen.SharedChain(15, `{"name":"x","type":"int"}`), ""}, // 98303 types
		{"chain just over the size limit", limits, avrogen.SharedChain(16, `{"name":"x","type":"int"}`), "schema expands to 196607 types (every use of a named type counted), over the limit of 100000 (SCHEMA_REGISTRY_MAX_SCHEMA_TYPES)"},
		{"depth at the limit", limits, deep(64), ""},
		{"depth over the limit", limits, deep(65), "schema nests 65 levels deep (records, arrays, maps and unions, following named types), over the limit of 64 (SCHEMA_REGISTRY_MAX_SCHEMA_DEPTH)"},
		{"zero limits do not limit", SchemaLimits{}, avrogen.SharedChain(40, `{"name":"x","type":"int"}`), ""},
		{"no setting name", SchemaLimits{MaxDepth: 2}, deep(3), "schema nests 3 levels deep (records, arrays, maps and unions, following named types), over the limit of 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.limits.Check(tc.schema)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var le *LimitError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a *LimitError", err)
			}
			if err.Error() != tc.want {
				t.Fatalf("message\n %q\nwant\n %q", err, tc.want)
			}
		})
	}
}

func TestMeasureSchemaErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, schema, want string }{
		{"not JSON", `{`, "schema is not JSON"},
		{"unknown name", `{"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]}`, `unknown type "Nope"`},
		{"defined twice", `["null",{"type":"enum","name":"E","symbols":[]},{"type":"enum","name":"E","symbols":[]}]`, "type E is defined twice"},
		{"no type", `{"name":"x"}`, `schema object without "type"`},
		{"nameless record", `{"type":"record","fields":[]}`, "record without a name"},
		{"field not an object", `{"type":"record","name":"R","fields":[1]}`, "record R field 0 is not an object"},
		{"field without type", `{"type":"record","name":"R","fields":[{"name":"a"}]}`, "record R field 0: unexpected null"},
		{"number", `12`, "unexpected number 12"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := MeasureSchema(tc.schema)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := MeasureSchema(`"x.R"`, `{`); err == nil || !strings.Contains(err.Error(), "reference 0: schema is not JSON") {
		t.Fatalf("bad reference: %v", err)
	}
}

// FuzzMeasureSchema measures arbitrary texts (the second one defining
// types for the first, as a reference): no panic; the work is linear
// (at most one step per type as written) unless named types recurse
// through each other, and never more than the expansion; and the result
// agrees with the tree-walking oracle: equal without mutual recursion,
// never below it with.
func FuzzMeasureSchema(f *testing.F) {
	for _, s := range []string{`"int"`, avrogen.SharedChain(5, `{"name":"x","type":"int"}`), denseCycle(3),
		`{"type":"record","name":"R","fields":[{"name":"x","type":{"type":"record","name":"A","fields":[{"name":"b","type":{"type":"record","name":"B","fields":[{"name":"a","type":"A"}]}}]}},{"name":"y","type":"B"}]}`,
		`{"type":"record","name":"List","fields":[{"name":"next","type":["null","List"]}]}`,
		`{"type":"record","name":"O","namespace":"n","fields":[{"name":"a","type":"x.Ref"},{"name":"b","type":{"type":"map","values":"x.Ref"}}]}`,
	} {
		f.Add(s, `{"type":"record","name":"Ref","namespace":"x","fields":[{"name":"v","type":["null","int",{"type":"array","items":"string"}]}]}`)
	}
	f.Fuzz(func(t *testing.T, schema, ref string) {
		var refs []string
		if json.Valid([]byte(ref)) {
			refs = []string{ref}
		}
		st, err := MeasureSchema(schema, refs...)
		if err != nil {
			return
		}
		if st.ExpandedTypes < 1 || st.Depth < 0 || st.work < 1 {
			t.Fatalf("impossible stats %+v", st)
		}
		if !st.Partial && st.work > st.ExpandedTypes {
			t.Fatalf("%d steps for an expansion of %d", st.work, st.ExpandedTypes)
		}
		size, depth, mutual, complete := naiveMeasure(t, schema, refs, 100_000)
		if !mutual && st.work > int64(st.TextTypes) {
			t.Fatalf("%d steps for %d types as written without mutual recursion", st.work, st.TextTypes)
		}
		if !complete || st.Partial {
			return
		}
		if mutual {
			if st.ExpandedTypes < size || st.Depth < depth {
				t.Fatalf("measured %+v, below a tree walk (%d types, depth %d)", st, size, depth)
			}
			return
		}
		if st.ExpandedTypes != size || st.Depth != depth {
			t.Fatalf("measured %+v, a tree walk gives %d types, depth %d", st, size, depth)
		}
	})
}
