package avro

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// SchemaStats is the shape of a schema as a walker that expands it as a
// tree sees it: the work an Elasticsearch mapping, a field list or a
// naive validator does is proportional to ExpandedTypes, and their
// recursion to Depth.
type SchemaStats struct {
	// ExpandedTypes counts the schema's types (each primitive, enum,
	// fixed, record, array, map and union counts 1) with every use of a
	// named type counted with that type's whole expansion, as if it were
	// written out in full at each use. A reference to a named type that is
	// already being expanded on the current path (recursion) counts 1.
	// Saturates at math.MaxInt64.
	ExpandedTypes int64
	// Depth is the deepest nesting of records, arrays, maps and unions in
	// each other, following named types: a record of primitives is 1, a
	// record with an optional record field is 3 (record, union, record).
	// A recursive reference cut as above counts 0.
	Depth int
	// NamedTypes is the number of named types (records, enums, fixed)
	// defined by the schema and its references.
	NamedTypes int
	// TextTypes is the number of types as written (named types counted
	// where they are defined; uses by name count 1).
	TextTypes int
	// Partial is set when the work budget ran out before the expansion
	// was complete: ExpandedTypes and Depth are then lower bounds (the
	// expansion is at least ExpandedTypes). Only mutually recursive named
	// types (a cycle through two or more of them) can make the work exceed
	// TextTypes; see MeasureSchema.
	Partial bool

	work int64 // steps taken, for tests of the linear bound
}

// MaxMeasureWork bounds the steps MeasureSchema takes. Each step adds at
// least 1 to ExpandedTypes, so a schema measured Partial expands to more
// than this.
const MaxMeasureWork = 1 << 24

// MeasureSchema measures an Avro schema text. refs are the texts of
// schemas that define named types the schema uses (Confluent references,
// dependencies first); their types count where the schema uses them.
//
// The time taken is linear in the size of the texts: each named type's
// expansion is computed once and reused at every further use, unless it
// is part of a cycle through two or more named types whose expansion
// depends on where it is entered (A uses B, B uses A, and both are
// used elsewhere): those are expanded afresh at each use, exactly as a
// tree walker would, and the work is bounded by the expansion itself
// (capped at MaxMeasureWork, then Partial is set). Memoised results never
// under-count: ExpandedTypes is never below what a walker that stops at
// types already on its path would visit.
//
// An error means the text is not a schema this function can follow (not
// JSON, a type without "type", an unknown or twice-defined name); a
// schema it accepts may still be invalid Avro (defaults, symbols, sizes
// are not checked).
func MeasureSchema(text string, refs ...string) (SchemaStats, error) {
	return measure(text, refs, MaxMeasureWork)
}

// Limit names a dimension SchemaLimits bounds.
type Limit string

// The limits SchemaLimits checks.
const (
	LimitExpandedTypes Limit = "expanded_types"
	LimitSchemaDepth   Limit = "depth"
)

// SchemaLimits bounds the expanded size and depth of schemas. A zero
// maximum does not limit that dimension. The Setting names appear in
// error messages so that an operator knows which knob to turn (e.g.
// "SCHEMA_REGISTRY_MAX_SCHEMA_TYPES").
type SchemaLimits struct {
	MaxExpandedTypes     int64
	MaxDepth             int
	ExpandedTypesSetting string
	DepthSetting         string
}

// Default schema limits. A large real schema has a few thousand fields
// and nests a few dozen levels (every optional record adds two: the
// union and the record); 100,000 expanded types leaves room for shared
// types used many times, and is far below what makes a walker use
// seconds or gigabytes (millions). Elasticsearch's own mapping limits
// (1000 fields, depth 20) are stricter; sinks that build mappings apply
// those separately.
const (
	DefaultMaxExpandedTypes = 100_000
	DefaultMaxSchemaDepth   = 64
)

// DefaultSchemaLimits returns the default limits, without setting names.
func DefaultSchemaLimits() SchemaLimits {
	return SchemaLimits{MaxExpandedTypes: DefaultMaxExpandedTypes, MaxDepth: DefaultMaxSchemaDepth}
}

// LimitError says a schema exceeds one of SchemaLimits.
type LimitError struct {
	Limit   Limit
	Max     int64  // the configured limit
	Value   int64  // the schema's value
	AtLeast bool   // measuring stopped once over the limit: the value is larger than Value
	Setting string // the setting that configures Max, if known
}

// Error renders e.g. "schema expands to 8388606 types (every use of a
// named type counted), over the limit of 100000 (SCHEMA_REGISTRY_MAX_SCHEMA_TYPES)".
func (e *LimitError) Error() string {
	var b strings.Builder
	switch e.Limit {
	case LimitExpandedTypes:
		if e.AtLeast {
			fmt.Fprintf(&b, "schema expands to more than %d types", e.Value)
		} else {
			fmt.Fprintf(&b, "schema expands to %d types", e.Value)
		}
		b.WriteString(" (every use of a named type counted)")
	default:
		fmt.Fprintf(&b, "schema nests %d levels deep (records, arrays, maps and unions, following named types)", e.Value)
	}
	fmt.Fprintf(&b, ", over the limit of %d", e.Max)
	if e.Setting != "" {
		fmt.Fprintf(&b, " (%s)", e.Setting)
	}
	return b.String()
}

// Check measures text (with refs, as MeasureSchema) and returns a
// *LimitError if it exceeds l. The work is bounded by l.MaxExpandedTypes
// even for schemas whose expansion has to be walked (see MeasureSchema).
// Other errors are those of MeasureSchema.
func (l SchemaLimits) Check(text string, refs ...string) (SchemaStats, error) {
	budget := int64(MaxMeasureWork)
	if l.MaxExpandedTypes > 0 {
		budget = l.MaxExpandedTypes // each step adds at least 1 type
	}
	st, err := measure(text, refs, budget)
	if err != nil {
		return st, err
	}
	switch {
	case l.MaxExpandedTypes > 0 && st.ExpandedTypes > l.MaxExpandedTypes:
		return st, &LimitError{Limit: LimitExpandedTypes, Max: l.MaxExpandedTypes, Value: st.ExpandedTypes, Setting: l.ExpandedTypesSetting}
	case l.MaxExpandedTypes > 0 && st.Partial:
		return st, &LimitError{Limit: LimitExpandedTypes, Max: l.MaxExpandedTypes, Value: l.MaxExpandedTypes, AtLeast: true, Setting: l.ExpandedTypesSetting}
	case l.MaxDepth > 0 && st.Depth > l.MaxDepth:
		return st, &LimitError{Limit: LimitSchemaDepth, Max: int64(l.MaxDepth), Value: int64(st.Depth), Setting: l.DepthSetting}
	}
	return st, nil
}

// mkind is the shape of a type node for measuring.
type mkind uint8

const (
	mLeaf      mkind = iota // primitive, enum, fixed
	mContainer              // record, array, map, union: its kids are nested
	mRef                    // a named type, where defined or used by name
)

// mnode is one type as written in a schema text.
type mnode struct {
	kind mkind
	kids []*mnode
	ref  *mnamed // mRef once resolved

	name, ns string // mRef before resolution: the name as written and its namespace
}

// mnamed is a named type and its measurement state.
type mnamed struct {
	body *mnode // the record (container) or the enum/fixed (leaf)

	pos   int // position on the expansion path while being expanded, -1 otherwise
	done  bool
	size  int64
	depth int
}

type mbuilder struct {
	named map[string]*mnamed
	refs  []*mnode // to resolve once every text is read
	nodes int
}

func measure(text string, refs []string, budget int64) (SchemaStats, error) {
	b := &mbuilder{named: map[string]*mnamed{}}
	for i, r := range refs {
		doc, err := decodeSchemaJSON(r)
		if err != nil {
			return SchemaStats{}, fmt.Errorf("reference %d: %w", i, err)
		}
		if _, err := b.build(doc, ""); err != nil {
			return SchemaStats{}, fmt.Errorf("reference %d: %w", i, err)
		}
	}
	doc, err := decodeSchemaJSON(text)
	if err != nil {
		return SchemaStats{}, err
	}
	root, err := b.build(doc, "")
	if err != nil {
		return SchemaStats{}, err
	}
	for _, n := range b.refs {
		if n.ref != nil {
			continue
		}
		t, ok := b.named[fullName(n.name, n.ns)]
		if !ok {
			t, ok = b.named[n.name]
		}
		if !ok {
			return SchemaStats{}, fmt.Errorf("unknown type %q", n.name)
		}
		n.ref = t
	}
	m := measurer{budget: budget}
	size, depth, _ := m.visit(root)
	st := SchemaStats{ExpandedTypes: size, Depth: depth, NamedTypes: len(b.named), TextTypes: b.nodes, Partial: m.exhausted, work: m.work}
	if m.exhausted {
		st.ExpandedTypes = m.work - 1 // every step counted at least one type
	}
	return st, nil
}

// build turns decoded schema JSON into nodes, defining named types; ns
// is the enclosing namespace.
func (b *mbuilder) build(v any, ns string) (*mnode, error) {
	b.nodes++
	switch x := v.(type) {
	case string:
		if _, ok := primitives[x]; ok {
			return &mnode{kind: mLeaf}, nil
		}
		n := &mnode{kind: mRef, name: x, ns: ns}
		b.refs = append(b.refs, n)
		return n, nil
	case []any:
		n := &mnode{kind: mContainer, kids: make([]*mnode, 0, len(x))}
		for _, br := range x {
			k, err := b.build(br, ns)
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, k)
		}
		return n, nil
	case map[string]any:
		return b.buildObject(x, ns)
	}
	return nil, fmt.Errorf("unexpected %s where a schema was expected", describeJSON(v))
}

func (b *mbuilder) buildObject(m map[string]any, ns string) (*mnode, error) {
	t, ok := m["type"]
	if !ok {
		return nil, errors.New(`schema object without "type"`)
	}
	ts, isString := t.(string)
	if !isString {
		b.nodes-- // {"type": {...}} wraps one type
		return b.build(t, ns)
	}
	switch ts {
	case "record", "error", "enum", "fixed":
		name, _ := m["name"].(string)
		if name == "" {
			return nil, fmt.Errorf("%s without a name", ts)
		}
		if sub, ok := m["namespace"].(string); ok && !strings.Contains(name, ".") {
			ns = sub
		}
		full := fullName(name, ns)
		if _, dup := b.named[full]; dup {
			return nil, fmt.Errorf("type %s is defined twice", full)
		}
		t := &mnamed{pos: -1, body: &mnode{kind: mLeaf}}
		b.named[full] = t // before the fields: records may be recursive
		if ts == "record" || ts == "error" {
			fields, _ := m["fields"].([]any)
			t.body = &mnode{kind: mContainer, kids: make([]*mnode, 0, len(fields))}
			inner := namespaceOf(full)
			for i, f := range fields {
				fm, ok := f.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("record %s field %d is not an object", full, i)
				}
				k, err := b.build(fm["type"], inner)
				if err != nil {
					return nil, fmt.Errorf("record %s field %d: %w", full, i, err)
				}
				t.body.kids = append(t.body.kids, k)
			}
		}
		return &mnode{kind: mRef, ref: t}, nil
	case "array", "map":
		key := "items"
		if ts == "map" {
			key = "values"
		}
		k, err := b.build(m[key], ns)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", ts, key, err)
		}
		return &mnode{kind: mContainer, kids: []*mnode{k}}, nil
	}
	if _, ok := primitives[ts]; ok {
		return &mnode{kind: mLeaf}, nil
	}
	// {"type": "Name"}: a named type used by name.
	n := &mnode{kind: mRef, name: ts, ns: ns}
	b.refs = append(b.refs, n)
	return n, nil
}

// noCut is the "lowest cut position" of an expansion that cut nothing.
const noCut = math.MaxInt

// measurer expands a schema as a tree walker would, memoising every named
// type whose expansion does not depend on the path it was entered from.
type measurer struct {
	work, budget int64
	exhausted    bool
	path         int // named types being expanded
}

// visit returns the expanded size and depth of n and the lowest path
// position of a named type whose recursive use was cut inside n (noCut if
// none). A named type whose expansion cut only itself or types entered
// after it is independent of the path: its result is memoised. Otherwise
// (a cycle through an ancestor) it is recomputed at each use, so the
// result is the same as a tree walker's.
func (m *measurer) visit(n *mnode) (size int64, depth, low int) {
	if n.kind == mRef && !n.ref.done && n.ref.pos < 0 {
		return m.expand(n.ref)
	}
	m.work++
	if m.work > m.budget {
		m.exhausted = true
		return 1, 0, noCut
	}
	switch n.kind {
	case mLeaf:
		return 1, 0, noCut
	case mRef:
		if n.ref.done {
			return n.ref.size, n.ref.depth, noCut
		}
		return 1, 0, n.ref.pos // recursion: cut
	}
	size, low = 1, noCut
	for _, k := range n.kids {
		s, d, l := m.visit(k)
		if m.exhausted {
			return size, depth, low
		}
		size = satAdd(size, s)
		depth = max(depth, d)
		low = min(low, l)
	}
	return size, depth + 1, low
}

func (m *measurer) expand(t *mnamed) (size int64, depth, low int) {
	t.pos = m.path
	m.path++
	size, depth, low = m.visit(t.body)
	m.path--
	pos := t.pos
	t.pos = -1
	if low >= pos {
		if !m.exhausted {
			t.done, t.size, t.depth = true, size, depth
		}
		low = noCut
	}
	return size, depth, low
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
