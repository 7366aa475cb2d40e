// Package avrogen generates random valid Avro schemas, and values of them,
// from fuzz input: named types shared by many fields (issue 13's T0 {a: T1,
// b: T1}, T1 {a: T2, b: T2}, ... among them), deep unions, recursive types
// (optional and required self-references), arrays and maps of all of
// these, and field defaults. Fuzz targets of every Avro walker use it.
package avrogen

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Source hands out fuzz bytes as small numbers; once they run out it
// returns zeros, so every input yields a schema.
type Source struct {
	b []byte
	i int
}

// NewSource reads b.
func NewSource(b []byte) *Source { return &Source{b: b} }

// Intn returns a number in [0, n).
func (s *Source) Intn(n int) int {
	if n <= 1 {
		return 0
	}
	if s.i >= len(s.b) {
		return 0
	}
	v := int(s.b[s.i])
	s.i++
	if n > 256 && s.i < len(s.b) {
		v = v<<8 | int(s.b[s.i])
		s.i++
	}
	return v % n
}

// Kind is an Avro type.
type Kind string

// The kinds generated.
const (
	Null    Kind = "null"
	Boolean Kind = "boolean"
	Int     Kind = "int"
	Long    Kind = "long"
	Float   Kind = "float"
	Double  Kind = "double"
	Bytes   Kind = "bytes"
	String  Kind = "string"
	Record  Kind = "record"
	Enum    Kind = "enum"
	Fixed   Kind = "fixed"
	Array   Kind = "array"
	Map     Kind = "map"
	Union   Kind = "union"
)

// Type is a node of a generated schema; named types are shared by pointer,
// so recursive schemas are cyclic.
type Type struct {
	Kind     Kind
	Name     string  // record, enum, fixed
	Fields   []Field // record
	Symbols  []string
	Size     int     // fixed
	Items    *Type   // array items, map values
	Branches []*Type // union

	complete bool // a record whose fields are all generated
}

// Field is a record field; Default is JSON text or "".
type Field struct {
	Name    string
	Type    *Type
	Default string
}

// Options bound what is generated.
type Options struct {
	MaxNamed  int // named types
	MaxFields int // fields per record
	MaxDepth  int // nesting of type definitions
	MaxNodes  int // types in the schema text
}

// DefaultOptions are small enough for fast fuzzing and large enough for
// 2^depth trees.
var DefaultOptions = Options{MaxNamed: 40, MaxFields: 5, MaxDepth: 12, MaxNodes: 300}

type gen struct {
	src   *Source
	o     Options
	named []*Type
	nodes int
}

// Schema generates a schema and returns its root and JSON text.
func Schema(src *Source, o Options) (*Type, string) {
	g := &gen{src: src, o: o}
	var root *Type
	switch src.Intn(8) {
	case 0:
		root = g.chain()
	case 1:
		root = g.typ(0, nil)
	default:
		root = g.record(0)
	}
	return root, Render(root)
}

// chain is issue 13's shape with a random leaf and depth.
func (g *gen) chain() *Type {
	depth := 1 + g.src.Intn(30)
	leaf := g.record(g.o.MaxDepth) // a leaf record with primitive fields
	t := leaf
	for i := depth; i > 0; i-- {
		r := &Type{Kind: Record, Name: "C" + strconv.Itoa(len(g.named)), complete: true}
		g.named = append(g.named, r)
		r.Fields = []Field{{Name: "a", Type: t}, {Name: "b", Type: t}}
		t = r
	}
	return t
}

func (g *gen) newName(prefix string) string { return prefix + strconv.Itoa(len(g.named)) }

// record generates a record; fields at depth >= MaxDepth are primitives
// or references to existing types.
func (g *gen) record(depth int) *Type {
	r := &Type{Kind: Record, Name: g.newName("R")}
	g.named = append(g.named, r)
	n := g.src.Intn(g.o.MaxFields + 1)
	for i := 0; i < n; i++ {
		ft := g.typ(depth+1, r)
		f := Field{Name: "f" + strconv.Itoa(i), Type: ft}
		f.Default = g.defaultFor(ft)
		r.Fields = append(r.Fields, f)
	}
	r.complete = true
	return r
}

// defaultFor sometimes gives a field a default: null for unions whose
// first branch is null, {} for records whose fields all have defaults
// (which expands into all of them: goavro's exponential compile), a
// literal for primitives.
func (g *gen) defaultFor(t *Type) string {
	if g.src.Intn(3) != 0 {
		return ""
	}
	switch t.Kind {
	case Union:
		if t.Branches[0].Kind == Null {
			return "null"
		}
	case Record:
		if !t.complete {
			return ""
		}
		for _, f := range t.Fields {
			if f.Default == "" {
				return ""
			}
		}
		return "{}"
	case Int, Long:
		return "0"
	case Float, Double:
		return "0.5"
	case Boolean:
		return "true"
	case String, Bytes:
		return `"x"`
	case Array:
		return "[]"
	case Map:
		return "{}"
	case Null:
		return "null"
	}
	return ""
}

var primitives = []Kind{Null, Boolean, Int, Long, Float, Double, Bytes, String}

// typ generates a field type; self is the record being generated (for
// recursive references), or nil.
func (g *gen) typ(depth int, self *Type) *Type {
	g.nodes++
	choice := g.src.Intn(12)
	if (depth >= g.o.MaxDepth || g.nodes >= g.o.MaxNodes) && choice >= 6 {
		choice = 0
	}
	switch choice {
	case 0, 1, 2:
		return &Type{Kind: primitives[g.src.Intn(len(primitives))]}
	case 3, 4: // an existing named type, shared
		if len(g.named) > 0 {
			return g.named[g.src.Intn(len(g.named))]
		}
		return &Type{Kind: Long}
	case 5: // recursion
		if self != nil {
			if g.src.Intn(4) == 0 {
				return self // required: no finite value
			}
			return &Type{Kind: Union, Branches: []*Type{{Kind: Null}, self}}
		}
		return &Type{Kind: String}
	case 6:
		if len(g.named) < g.o.MaxNamed {
			return g.record(depth)
		}
	case 7:
		if len(g.named) < g.o.MaxNamed {
			e := &Type{Kind: Enum, Name: g.newName("E")}
			for i := 0; i <= g.src.Intn(4); i++ {
				e.Symbols = append(e.Symbols, "S"+strconv.Itoa(i))
			}
			g.named = append(g.named, e)
			return e
		}
	case 8:
		if len(g.named) < g.o.MaxNamed {
			f := &Type{Kind: Fixed, Name: g.newName("F"), Size: 1 + g.src.Intn(4)} // goavro refuses size 0
			g.named = append(g.named, f)
			return f
		}
	case 9:
		return &Type{Kind: Array, Items: g.typ(depth+1, self)}
	case 10:
		return &Type{Kind: Map, Items: g.typ(depth+1, self)}
	case 11:
		return g.union(depth, self)
	}
	return &Type{Kind: Int}
}

// union generates a union of distinct non-union branches.
func (g *gen) union(depth int, self *Type) *Type {
	u := &Type{Kind: Union}
	seen := map[string]bool{}
	n := 1 + g.src.Intn(4)
	for i := 0; i < n; i++ {
		b := g.typ(depth+1, self)
		if b.Kind == Union {
			continue
		}
		k := unionKey(b)
		if seen[k] {
			continue
		}
		seen[k] = true
		u.Branches = append(u.Branches, b)
	}
	if len(u.Branches) == 0 {
		u.Branches = []*Type{{Kind: Null}}
	}
	return u
}

func unionKey(t *Type) string {
	switch t.Kind {
	case Record, Enum, Fixed:
		return t.Name
	}
	return string(t.Kind)
}

// Render writes the schema JSON: each named type is defined where it is
// first met (depth first, fields in order) and referenced by name after.
func Render(t *Type) string {
	var b strings.Builder
	render(&b, t, map[*Type]bool{})
	return b.String()
}

func render(b *strings.Builder, t *Type, defined map[*Type]bool) {
	switch t.Kind {
	case Record, Enum, Fixed:
		if defined[t] {
			b.WriteString(strconv.Quote(t.Name))
			return
		}
		defined[t] = true
		fmt.Fprintf(b, `{"type":%q,"name":%q`, t.Kind, t.Name)
		switch t.Kind {
		case Record:
			b.WriteString(`,"fields":[`)
			for i, f := range t.Fields {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(b, `{"name":%q,"type":`, f.Name)
				render(b, f.Type, defined)
				if f.Default != "" {
					b.WriteString(`,"default":` + f.Default)
				}
				b.WriteByte('}')
			}
			b.WriteByte(']')
		case Enum:
			syms, _ := json.Marshal(t.Symbols)
			b.WriteString(`,"symbols":` + string(syms))
		case Fixed:
			fmt.Fprintf(b, `,"size":%d`, t.Size)
		}
		b.WriteByte('}')
	case Array:
		b.WriteString(`{"type":"array","items":`)
		render(b, t.Items, defined)
		b.WriteByte('}')
	case Map:
		b.WriteString(`{"type":"map","values":`)
		render(b, t.Items, defined)
		b.WriteByte('}')
	case Union:
		b.WriteByte('[')
		for i, br := range t.Branches {
			if i > 0 {
				b.WriteByte(',')
			}
			render(b, br, defined)
		}
		b.WriteByte(']')
	default:
		b.WriteString(strconv.Quote(string(t.Kind)))
	}
}

// ErrNoValue means a type has no value within the bounds given (a required
// self-reference has none at all, issue 13's chain a very large one).
var ErrNoValue = errors.New("avrogen: no value within the bounds")

// Value generates a goavro native value of t, nesting at most depth, with
// at most a few items per array or map and at most maxValues values.
func Value(src *Source, t *Type, depth, maxValues int) (any, error) {
	left := maxValues
	return value(src, t, depth, &left)
}

func value(src *Source, t *Type, depth int, left *int) (any, error) {
	if depth < 0 || *left <= 0 {
		return nil, ErrNoValue
	}
	*left--
	switch t.Kind {
	case Null:
		return nil, nil
	case Boolean:
		return src.Intn(2) == 1, nil
	case Int:
		return int32(src.Intn(1<<16) - 1<<15), nil
	case Long:
		return int64(src.Intn(1<<16)-1<<15) << uint(src.Intn(40)), nil
	case Float:
		return float32(src.Intn(1000)) / 8, nil
	case Double:
		return float64(src.Intn(1000)) / 16, nil
	case Bytes:
		return []byte(strings.Repeat("\x01", src.Intn(5))), nil
	case String:
		return strings.Repeat("é", src.Intn(5)), nil
	case Enum:
		return t.Symbols[src.Intn(len(t.Symbols))], nil
	case Fixed:
		return make([]byte, t.Size), nil
	case Array:
		n := src.Intn(4)
		out := make([]any, 0, n)
		for i := 0; i < n; i++ {
			v, err := value(src, t.Items, depth-1, left)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case Map:
		n := src.Intn(4)
		out := make(map[string]any, n)
		for i := 0; i < n; i++ {
			v, err := value(src, t.Items, depth-1, left)
			if err != nil {
				return nil, err
			}
			out["k"+strconv.Itoa(i)] = v
		}
		return out, nil
	case Record:
		out := make(map[string]any, len(t.Fields))
		for _, f := range t.Fields {
			v, err := value(src, f.Type, depth-1, left)
			if err != nil {
				return nil, err
			}
			out[f.Name] = v
		}
		return out, nil
	case Union:
		// Try the chosen branch first, then the others (a recursive
		// branch may have no value this deep).
		start := src.Intn(len(t.Branches))
		for i := range t.Branches {
			b := t.Branches[(start+i)%len(t.Branches)]
			v, err := value(src, b, depth-1, left) // failed tries use up the budget too: the work stays bounded
			if err != nil {
				continue
			}
			if b.Kind == Null {
				return nil, nil
			}
			return map[string]any{unionKey(b): v}, nil
		}
		return nil, ErrNoValue
	}
	return nil, fmt.Errorf("avrogen: unknown kind %s", t.Kind)
}

// SharedChain is issue 13's schema: named records T0..T<depth>, each
// holding the next one twice (field "a" defines it, field "b" names it),
// the innermost holding leaf (record fields as JSON, "" for none: then a
// record of the schema is 0 bytes). Its text grows linearly with depth;
// fully expanded it is a tree of 2^(depth+1)-1 records (T_k: 3*2^(depth-k)-1
// types with a one-field leaf).
func SharedChain(depth int, leaf string) string {
	var b strings.Builder
	b.WriteString(`{"type":"record","name":"T0","fields":[`)
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, `{"name":"a","type":{"type":"record","name":"T%d","fields":[`, i)
	}
	b.WriteString(leaf)
	for i := depth; i >= 1; i-- {
		fmt.Fprintf(&b, `]}},{"name":"b","type":"T%d"}`, i)
	}
	b.WriteString(`]}`)
	return b.String()
}
