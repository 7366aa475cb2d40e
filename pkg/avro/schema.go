package avro

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// kind is the package's short name for Kind.
type kind = Kind

const (
	kNull    = Null
	kBoolean = Boolean
	kInt     = Int
	kLong    = Long
	kFloat   = Float
	kDouble  = Double
	kBytes   = Bytes
	kString  = String
	kRecord  = Record
	kEnum    = Enum
	kArray   = Array
	kMap     = Map
	kFixed   = Fixed
	kUnion   = Union
)

// logical is an Avro logical type the converters understand.
type logical uint8

const (
	lNone logical = iota
	lTimestampMillis
	lTimestampMicros
	lLocalTimestampMillis
	lLocalTimestampMicros
	lDate
	lTimeMillis
	lTimeMicros
	lDecimal
	lUUID
)

var logicalNames = map[string]logical{
	"timestamp-millis":       lTimestampMillis,
	"timestamp-micros":       lTimestampMicros,
	"local-timestamp-millis": lLocalTimestampMillis,
	"local-timestamp-micros": lLocalTimestampMicros,
	"date":                   lDate,
	"time-millis":            lTimeMillis,
	"time-micros":            lTimeMicros,
	"decimal":                lDecimal,
	"uuid":                   lUUID,
}

// node is one type of a parsed schema. Named types are shared by pointer,
// so recursive schemas form cycles.
type node struct {
	kind    kind
	logical logical
	logName string // logicalType as written, for messages

	name    string   // full name of record, enum, fixed
	aliases []string // of a named type, as full names

	hasEnumDefault bool // an enum with a "default" symbol

	fields     []*field
	fieldIndex map[string]int

	symbols     []string
	symbolIndex map[string]int

	items    *node   // array items, map values
	branches []*node // union members
	// byKey finds a union's branch by goavro's union key, the Avro JSON
	// key or the kind name (the first branch wins); sole is the only
	// non-null branch, if there is exactly one.
	byKey map[string]*node
	sole  *node

	size             int // fixed
	precision, scale int // decimal

	// unionKey is the key goavro uses for this type inside a union
	// ("long.timestamp-millis", "com.acme.Order", "array", ...).
	unionKey string
	// jsonKey is the key the Avro JSON encoding uses ("long", "com.acme.Order").
	jsonKey string

	// complete is set once a record's fields are all parsed; allDefaults
	// is then the weight of a record value made only of field defaults
	// (see defaultWeight), computed once.
	complete    bool
	allDefaults int64

	// minSize is a lower bound on the encoded size of a value (see
	// setMinSize).
	minSize int
}

type field struct {
	name       string
	aliases    []string
	typ        *node
	hasDefault bool
	def        any // default converted to goavro native form
	// defSteps is what walking def, expanded into a tree, costs in
	// budget steps (see defaultWeight): def shares the defaults of nested
	// fields by reference, so it can stand for a tree far larger than the
	// schema text.
	defSteps int64
	fieldDefault
}

// describe names the type for error messages.
func (n *node) describe() string {
	switch {
	case n.logical == lDecimal:
		return fmt.Sprintf("decimal(%d,%d)", n.precision, n.scale)
	case n.logical != lNone:
		return n.logName
	}
	switch n.kind {
	case kRecord, kEnum, kFixed:
		return n.kind.String() + " " + n.name
	case kArray:
		return "array"
	case kMap:
		return "map"
	case kUnion:
		keys := make([]string, len(n.branches))
		for i, b := range n.branches {
			keys[i] = b.describe()
		}
		return "one of [" + strings.Join(keys, ", ") + "]"
	}
	return n.kind.String()
}

type parser struct {
	named map[string]*node
	// model is set when parsing for the schema model only (ParseSchema):
	// defaults are noted, not converted, so a schema goavro would refuse
	// for a bad default still has a model (the registry's checker needs
	// one for every stored version).
	model bool
	depth int
}

// maxParseDepth bounds the parser's recursion on hostile text (a schema
// nested this deep in its text is far past every SchemaLimits default).
const maxParseDepth = 256

// parseSchema parses schema JSON into a node tree, resolving named types.
func parseSchema(text string) (*node, error) {
	p := &parser{named: map[string]*node{}}
	return p.parseText(text)
}

func (p *parser) parseText(text string) (*node, error) {
	raw, err := decodeSchemaJSON(text)
	if err != nil {
		return nil, err
	}
	n, err := p.parse(raw, "")
	if err != nil {
		return nil, err
	}
	setMinSize(n, map[*node]bool{})
	return n, nil
}

// maxMinSize caps size bounds (a fixed of 2^30 bytes in every field of a
// wide record would overflow).
const maxMinSize = 1 << 40

// setMinSize fills minSize for n and every node under it, each once: the
// fewest bytes a value can take. A record met again while its fields are
// being summed (a recursive type) counts 0 there, which keeps every result
// a lower bound. Block counts are checked against it, so that a count the
// data cannot hold is reported as such rather than as over budget.
func setMinSize(n *node, state map[*node]bool) int {
	if n == nil {
		return 0
	}
	if done, seen := state[n]; seen {
		if done {
			return n.minSize
		}
		return 0
	}
	state[n] = false
	m := 0
	switch n.kind {
	case kBoolean, kInt, kLong, kBytes, kString, kEnum, kUnion, kArray, kMap:
		m = 1
	case kFloat:
		m = 4
	case kDouble:
		m = 8
	case kFixed:
		m = n.size
	case kRecord:
		for _, f := range n.fields {
			m = min(m+setMinSize(f.typ, state), maxMinSize)
		}
	}
	setMinSize(n.items, state)
	for _, b := range n.branches {
		setMinSize(b, state)
	}
	n.minSize = m
	state[n] = true
	return m
}

var primitives = map[string]kind{
	"null": kNull, "boolean": kBoolean, "int": kInt, "long": kLong, "float": kFloat,
	"double": kDouble, "bytes": kBytes, "string": kString,
}

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func namespaceOf(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i]
	}
	return ""
}

func (p *parser) parse(raw any, ns string) (*node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxParseDepth {
		return nil, errors.New("schema nests too deeply")
	}
	switch v := raw.(type) {
	case string:
		if k, ok := primitives[v]; ok {
			return primitiveNode(k, lNone, ""), nil
		}
		if n, ok := p.named[fullName(v, ns)]; ok {
			return n, nil
		}
		if n, ok := p.named[v]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("unknown type %q", v)
	case []any:
		u := &node{kind: kUnion}
		seen := map[string]bool{}
		for i, b := range v {
			bn, err := p.parse(b, ns)
			if err != nil {
				return nil, fmt.Errorf("union branch %d: %w", i, err)
			}
			if bn.kind == kUnion {
				return nil, fmt.Errorf("union branch %d: unions may not contain unions", i)
			}
			if seen[bn.unionKey] {
				return nil, fmt.Errorf("union branch %d: duplicate type %s", i, bn.unionKey)
			}
			seen[bn.unionKey] = true
			u.branches = append(u.branches, bn)
		}
		if len(u.branches) == 0 {
			return nil, fmt.Errorf("empty union")
		}
		indexBranches(u)
		u.unionKey, u.jsonKey = "union", "union"
		return u, nil
	case map[string]any:
		return p.parseObject(v, ns)
	default:
		return nil, fmt.Errorf("unexpected schema element %T", raw)
	}
}

// indexBranches fills a union's byKey and sole, once, so that walking a
// union value costs the same whatever the union's width.
func indexBranches(u *node) {
	u.byKey = make(map[string]*node, 2*len(u.branches))
	nonNull := 0
	for _, b := range u.branches {
		for _, k := range [3]string{b.unionKey, b.jsonKey, b.kind.String()} {
			if _, dup := u.byKey[k]; !dup {
				u.byKey[k] = b
			}
		}
		if b.kind != kNull {
			nonNull++
			u.sole = b
		}
	}
	if nonNull != 1 {
		u.sole = nil
	}
}

func primitiveNode(k kind, l logical, logName string) *node {
	n := &node{kind: k, logical: l, logName: logName, unionKey: k.String(), jsonKey: k.String()}
	switch l {
	case lTimestampMillis, lTimestampMicros, lDate, lTimeMillis, lTimeMicros:
		n.unionKey = k.String() + "." + logName
	case lDecimal:
		n.unionKey = "bytes.decimal"
	}
	return n
}

func (p *parser) parseObject(m map[string]any, ns string) (*node, error) {
	t, ok := m["type"]
	if !ok {
		return nil, fmt.Errorf("schema object without \"type\"")
	}
	ts, isString := t.(string)
	if !isString {
		// {"type": {...}} or {"type": [...]}: a wrapped type.
		return p.parse(t, ns)
	}
	logName, _ := m["logicalType"].(string)
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
		if _, dup := p.named[full]; dup {
			return nil, fmt.Errorf("type %q is defined twice", full)
		}
		n := &node{name: full, unionKey: full, jsonKey: full}
		p.named[full] = n // before the fields: records may be recursive
		inner := namespaceOf(full)
		for _, a := range stringList(m["aliases"]) {
			n.aliases = append(n.aliases, fullName(a, inner))
		}
		switch ts {
		case "record", "error":
			n.kind = kRecord
			fs, _ := m["fields"].([]any)
			n.fieldIndex = make(map[string]int, len(fs))
			for i, f := range fs {
				fm, ok := f.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("record %s field %d is not an object", full, i)
				}
				fname, _ := fm["name"].(string)
				if fname == "" {
					return nil, fmt.Errorf("record %s field %d has no name", full, i)
				}
				ft, err := p.parse(fm["type"], inner)
				if err != nil {
					return nil, fmt.Errorf("record %s field %s: %w", full, fname, err)
				}
				fl := &field{name: fname, aliases: stringList(fm["aliases"]), typ: ft}
				if d, ok := fm["default"]; ok {
					if err := p.setDefault(fl, d); err != nil {
						return nil, fmt.Errorf("record %s field %s: invalid default: %w", full, fname, err)
					}
				}
				if _, dup := n.fieldIndex[fname]; dup {
					return nil, fmt.Errorf("record %s: duplicate field %s", full, fname)
				}
				n.fieldIndex[fname] = len(n.fields)
				n.fields = append(n.fields, fl)
			}
			n.complete = true
		case "enum":
			n.kind = kEnum
			syms, _ := m["symbols"].([]any)
			n.symbolIndex = make(map[string]int, len(syms))
			for _, s := range syms {
				str, _ := s.(string)
				if _, dup := n.symbolIndex[str]; dup {
					return nil, fmt.Errorf("enum %s has duplicate symbol %q", full, str)
				}
				n.symbolIndex[str] = len(n.symbols)
				n.symbols = append(n.symbols, str)
			}
			_, n.hasEnumDefault = m["default"]
		case "fixed":
			n.kind = kFixed
			size, err := intProp(m, "size")
			if err != nil {
				return nil, fmt.Errorf("fixed %s: %w", full, err)
			}
			n.size = size
			if logName == "decimal" {
				if err := setDecimal(n, m); err != nil {
					return nil, fmt.Errorf("fixed %s: %w", full, err)
				}
			}
		}
		return n, nil
	case "array":
		items, err := p.parse(m["items"], ns)
		if err != nil {
			return nil, fmt.Errorf("array items: %w", err)
		}
		return &node{kind: kArray, items: items, unionKey: "array", jsonKey: "array"}, nil
	case "map":
		vals, err := p.parse(m["values"], ns)
		if err != nil {
			return nil, fmt.Errorf("map values: %w", err)
		}
		return &node{kind: kMap, items: vals, unionKey: "map", jsonKey: "map"}, nil
	}
	k, ok := primitives[ts]
	if !ok {
		// A named type reference written as {"type":"Name"}.
		return p.parse(ts, ns)
	}
	l := logicalNames[logName]
	// A logical type on the wrong primitive is ignored, as the spec says.
	switch l {
	case lTimestampMillis, lTimestampMicros, lLocalTimestampMillis, lLocalTimestampMicros, lTimeMicros:
		if k != kLong {
			l = lNone
		}
	case lDate, lTimeMillis:
		if k != kInt {
			l = lNone
		}
	case lDecimal:
		if k != kBytes {
			l = lNone
		}
	case lUUID:
		if k != kString {
			l = lNone
		}
	}
	n := primitiveNode(k, l, logName)
	if l == lDecimal {
		if err := setDecimal(n, m); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// setDefault notes that fl has the default d (Avro JSON, as written) and,
// unless the parser builds the model only, converts it to goavro's native
// form and weighs it.
func (p *parser) setDefault(fl *field, d any) error {
	fl.hasDefault = true
	if p.model {
		return nil
	}
	// A union's default belongs to its first branch.
	ft, dt := fl.typ, fl.typ
	if ft.kind == kUnion {
		dt = ft.branches[0]
	}
	// Weighed before fromJSON, which fills the nested defaults into d by
	// reference.
	fl.defSteps = defaultWeight(dt, d)
	native, err := fromJSON(dt, d, Options{Mode: AvroJSON}, &pathBuf{})
	if err != nil {
		return err
	}
	if ft.kind == kUnion {
		native = wrapUnion(dt, native)
		fl.defSteps = satAdd(fl.defSteps, 1)
	}
	fl.def = native
	return nil
}

func setDecimal(n *node, m map[string]any) error {
	n.logical, n.logName = lDecimal, "decimal"
	p, err := intProp(m, "precision")
	if err != nil {
		return fmt.Errorf("decimal: %w", err)
	}
	s := 0
	if _, ok := m["scale"]; ok {
		if s, err = intProp(m, "scale"); err != nil {
			return fmt.Errorf("decimal: %w", err)
		}
	}
	if p <= 0 || s < 0 || s > p {
		return fmt.Errorf("decimal: invalid precision %d / scale %d", p, s)
	}
	n.precision, n.scale = p, s
	return nil
}

func intProp(m map[string]any, key string) (int, error) {
	switch v := m[key].(type) {
	case json.Number:
		i, err := v.Int64()
		if err != nil || i < 0 || i > 1<<30 {
			return 0, fmt.Errorf("%s %q is not a valid size", key, v)
		}
		return int(i), nil
	case float64:
		return int(v), nil
	}
	return 0, fmt.Errorf("missing %s", key)
}

// wrapUnion wraps a native value in goavro's union form for branch b.
func wrapUnion(b *node, v any) any {
	if b.kind == kNull {
		return nil
	}
	return map[string]any{b.unionKey: v}
}

// defaultWeight is what a budgeted walk of the default v (Avro JSON, as
// written in the schema) of type n costs once expanded: one step per
// value, one per 16 bytes of strings, and for every record field the
// default leaves out, that field's own default weight. It reads v once
// and each record's fields at most once (allDefaults is memoised), so it
// is linear in the schema even when the expanded tree is exponential.
func defaultWeight(n *node, v any) int64 {
	w := int64(1)
	switch n.kind {
	case kString, kBytes, kFixed, kEnum:
		if s, ok := v.(string); ok {
			w = satAdd(w, int64(len(s)/outputPerStep))
		}
	case kArray:
		a, _ := v.([]any)
		for _, item := range a {
			w = satAdd(w, defaultWeight(n.items, item))
		}
	case kMap:
		m, _ := v.(map[string]any)
		for k, item := range m {
			w = satAdd(w, satAdd(1+int64(len(k)/outputPerStep), defaultWeight(n.items, item)))
		}
	case kRecord:
		m, _ := v.(map[string]any)
		w = recordDefaults(n)
		for k, item := range m {
			i, ok := n.fieldIndex[k]
			if !ok {
				continue
			}
			f := n.fields[i]
			w = satAdd(w-f.defSteps, defaultWeight(f.typ, item))
		}
	case kUnion:
		if m, ok := v.(map[string]any); ok && len(m) == 1 {
			for k, inner := range m {
				if b := n.branchByName(k); b != nil {
					w = satAdd(w, defaultWeight(b, inner))
				}
			}
		} else {
			w++ // null
		}
	}
	return w
}

// recordDefaults is the weight of a value of record n made only of its
// fields' defaults (fields without one count 0: such a default is refused
// anyway).
func recordDefaults(n *node) int64 {
	if n.complete && n.allDefaults > 0 {
		return n.allDefaults
	}
	w := int64(1)
	for _, f := range n.fields {
		w = satAdd(w, f.defSteps)
	}
	if n.complete {
		n.allDefaults = w
	}
	return w
}

// checkDefaults refuses a schema whose field defaults, expanded, weigh
// more than max in total: goavro expands and encodes each of them when it
// compiles the schema (T0 {a: T1 = {}, b: T1 = {}}, T1 {...}: 2^depth work
// for a schema of a few hundred bytes). It visits each named type once.
func checkDefaults(root *node, max int64) error {
	seen := map[*node]bool{}
	total := int64(0)
	var walk func(n *node)
	walk = func(n *node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		for _, f := range n.fields {
			total = satAdd(total, f.defSteps)
			walk(f.typ)
		}
		walk(n.items)
		for _, b := range n.branches {
			walk(b)
		}
	}
	walk(root)
	if total > max {
		return fmt.Errorf("field defaults expand to %d steps, more than the %d a record the schema's size may take: %w", total, max, ErrBudget)
	}
	return nil
}

// stringList reads a JSON array of strings (aliases), skipping anything
// else.
func stringList(v any) []string {
	a, _ := v.([]any)
	if len(a) == 0 {
		return nil
	}
	out := make([]string, 0, len(a))
	for _, x := range a {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
