// Package compat decides whether Avro schemas can read each other's data,
// by Avro's schema resolution rules, and applies Confluent's compatibility
// levels on top.
package compat

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/services/schema-registry/internal/avroschema"
)

// Kind is an Avro type.
type Kind int

// Avro kinds.
const (
	Null Kind = iota
	Boolean
	Int
	Long
	Float
	Double
	Bytes
	String
	Record
	Enum
	Array
	Map
	Union
	Fixed
)

var kindNames = []string{"null", "boolean", "int", "long", "float", "double", "bytes", "string", "record", "enum", "array", "map", "union", "fixed"}

// String is the Avro type name.
func (k Kind) String() string { return kindNames[k] }

// Schema is a parsed Avro schema, the model the checker works on.
type Schema struct {
	Kind       Kind
	Name       string // full name of named types
	Aliases    []string
	Fields     []*Field
	Symbols    []string
	HasEnumDef bool
	Size       int
	Items      *Schema
	Values     *Schema
	Branches   []*Schema
	Logical    string
	Precision  int
	Scale      int
}

// Field is a record field.
type Field struct {
	Name       string
	Aliases    []string
	Type       *Schema
	HasDefault bool
}

// ShortName is the name without its namespace.
func (s *Schema) ShortName() string {
	if i := strings.LastIndexByte(s.Name, '.'); i >= 0 {
		return s.Name[i+1:]
	}
	return s.Name
}

// Parse parses schema after the referenced schemas (in dependency order),
// whose named types it may use.
func Parse(schema string, refs []string) (*Schema, error) {
	p := &parser{names: map[string]*Schema{}}
	for i, r := range refs {
		if _, err := p.parseText(r); err != nil {
			return nil, fmt.Errorf("reference %d: %w", i, err)
		}
	}
	return p.parseText(schema)
}

type parser struct {
	names map[string]*Schema
	depth int
}

func (p *parser) parseText(text string) (*Schema, error) {
	canon, err := avroschema.Canonical(text)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(canon))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return p.parse(v)
}

var primitiveKinds = map[string]Kind{"null": Null, "boolean": Boolean, "int": Int, "long": Long, "float": Float, "double": Double, "bytes": Bytes, "string": String}

func (p *parser) parse(v any) (*Schema, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 256 {
		return nil, errors.New("schema nests too deeply")
	}
	switch t := v.(type) {
	case string:
		if k, ok := primitiveKinds[t]; ok {
			return &Schema{Kind: k}, nil
		}
		s, ok := p.names[t]
		if !ok {
			return nil, fmt.Errorf("unknown type name %q", t)
		}
		return s, nil
	case []any:
		u := &Schema{Kind: Union}
		for _, b := range t {
			s, err := p.parse(b)
			if err != nil {
				return nil, err
			}
			u.Branches = append(u.Branches, s)
		}
		return u, nil
	case map[string]any:
		return p.parseObject(t)
	default:
		return nil, fmt.Errorf("unexpected JSON %v where a schema was expected", v)
	}
}

func strs(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, x := range a {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func num(v any) int {
	if n, ok := v.(json.Number); ok {
		i, _ := strconv.Atoi(n.String())
		return i
	}
	return 0
}

func (p *parser) parseObject(m map[string]any) (*Schema, error) {
	ts, _ := m["type"].(string)
	logical, _ := m["logicalType"].(string)
	switch ts {
	case "record", "error", "enum", "fixed":
		name, _ := m["name"].(string)
		if _, dup := p.names[name]; dup {
			return nil, fmt.Errorf("type %q is defined twice", name)
		}
		s := &Schema{Name: name, Aliases: strs(m["aliases"]), Logical: logical}
		p.names[name] = s // before the fields: records may be recursive
		switch ts {
		case "enum":
			s.Kind = Enum
			s.Symbols = strs(m["symbols"])
			seen := map[string]bool{}
			for _, sym := range s.Symbols {
				if seen[sym] {
					return nil, fmt.Errorf("enum %s has duplicate symbol %q", name, sym)
				}
				seen[sym] = true
			}
			_, s.HasEnumDef = m["default"]
		case "fixed":
			s.Kind = Fixed
			s.Size = num(m["size"])
			s.Precision, s.Scale = num(m["precision"]), num(m["scale"])
		default:
			s.Kind = Record
			fields, _ := m["fields"].([]any)
			seen := map[string]bool{}
			for _, f := range fields {
				fm, _ := f.(map[string]any)
				fname, _ := fm["name"].(string)
				if seen[fname] {
					return nil, fmt.Errorf("record %s has duplicate field %q", name, fname)
				}
				seen[fname] = true
				ft, err := p.parse(fm["type"])
				if err != nil {
					return nil, fmt.Errorf("field %s.%s: %w", name, fname, err)
				}
				_, hasDef := fm["default"]
				s.Fields = append(s.Fields, &Field{Name: fname, Aliases: strs(fm["aliases"]), Type: ft, HasDefault: hasDef})
			}
		}
		return s, nil
	case "array":
		it, err := p.parse(m["items"])
		if err != nil {
			return nil, err
		}
		return &Schema{Kind: Array, Items: it}, nil
	case "map":
		vs, err := p.parse(m["values"])
		if err != nil {
			return nil, err
		}
		return &Schema{Kind: Map, Values: vs}, nil
	default:
		k, ok := primitiveKinds[ts]
		if !ok {
			if s, ok := p.names[ts]; ok {
				return s, nil
			}
			return nil, fmt.Errorf("unknown type %q", ts)
		}
		return &Schema{Kind: k, Logical: logical, Precision: num(m["precision"]), Scale: num(m["scale"])}, nil
	}
}

// Incompatibility is one reason a reader cannot read a writer's data.
type Incompatibility struct {
	Type     string // Avro's SchemaIncompatibilityType name
	Location string // JSON-pointer-like path in the reader schema
	Message  string
}

// String formats the reason as Confluent's verbose messages do.
func (i Incompatibility) String() string {
	return fmt.Sprintf("{errorType:'%s', description:'%s', location:'%s'}", i.Type, i.Message, i.Location)
}

// Checker decides whether reader can read data written with writer.
type Checker interface {
	Check(reader, writer *Schema) []Incompatibility
}

// AvroChecker implements Avro's schema resolution rules (the Java
// SchemaCompatibility checker's semantics), plus decimal precision/scale.
type AvroChecker struct{}

// Check returns every incompatibility found, or none.
func (AvroChecker) Check(reader, writer *Schema) []Incompatibility {
	c := &checking{seen: map[[2]*Schema]bool{}}
	c.check(reader, writer, "")
	return c.out
}

type checking struct {
	seen map[[2]*Schema]bool
	out  []Incompatibility
}

func (c *checking) fail(typ, loc, format string, args ...any) {
	if loc == "" {
		loc = "/"
	}
	c.out = append(c.out, Incompatibility{Type: typ, Location: loc, Message: fmt.Sprintf(format, args...)})
}

func promotable(w, r Kind) bool {
	switch w {
	case Int:
		return r == Long || r == Float || r == Double
	case Long:
		return r == Float || r == Double
	case Float:
		return r == Double
	case String:
		return r == Bytes
	case Bytes:
		return r == String
	}
	return false
}

func (c *checking) nameMatches(r, w *Schema, loc string) bool {
	if r.ShortName() == w.ShortName() {
		return true
	}
	for _, a := range r.Aliases {
		if a == w.Name {
			return true
		}
	}
	c.fail("NAME_MISMATCH", loc+"/name", "expected: %s", w.Name)
	return false
}

// compatible reports, without recording reasons, whether r reads w. It
// shares the pairs in progress, so recursive types terminate.
func (c *checking) compatible(r, w *Schema) bool {
	sub := &checking{seen: c.seen}
	sub.check(r, w, "")
	return len(sub.out) == 0
}

func (c *checking) check(r, w *Schema, loc string) {
	key := [2]*Schema{r, w}
	if c.seen[key] {
		return // recursive types: a pair being checked is assumed compatible
	}
	c.seen[key] = true
	defer delete(c.seen, key)
	if w.Kind == Union {
		for i, b := range w.Branches {
			if r.Kind == Union {
				if !c.readerUnionReads(r, b) {
					c.fail("MISSING_UNION_BRANCH", loc, "reader union lacking writer type: %s (writer branch %d)", describe(b), i)
				}
				continue
			}
			c.check(r, b, loc)
		}
		return
	}
	if r.Kind == Union {
		if !c.readerUnionReads(r, w) {
			c.fail("MISSING_UNION_BRANCH", loc, "reader union lacking writer type: %s", describe(w))
		}
		return
	}
	if r.Kind != w.Kind {
		if !promotable(w.Kind, r.Kind) {
			c.fail("TYPE_MISMATCH", loc, "reader type: %s not compatible with writer type: %s", r.Kind, w.Kind)
		}
		return
	}
	switch r.Kind {
	case Bytes:
		c.checkDecimal(r, w, loc)
	case Fixed:
		if !c.nameMatches(r, w, loc) {
			return
		}
		if r.Size != w.Size {
			c.fail("FIXED_SIZE_MISMATCH", loc+"/size", "expected: %d, found: %d", w.Size, r.Size)
		}
		c.checkDecimal(r, w, loc)
	case Enum:
		if !c.nameMatches(r, w, loc) {
			return
		}
		if r.HasEnumDef {
			return
		}
		var missing []string
		for _, s := range w.Symbols {
			found := false
			for _, x := range r.Symbols {
				if x == s {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			c.fail("MISSING_ENUM_SYMBOLS", loc+"/symbols", "[%s]", strings.Join(missing, ", "))
		}
	case Array:
		c.check(r.Items, w.Items, loc+"/items")
	case Map:
		c.check(r.Values, w.Values, loc+"/values")
	case Record:
		if !c.nameMatches(r, w, loc) {
			return
		}
		for i, rf := range r.Fields {
			wf := lookupField(w, rf)
			floc := loc + "/fields/" + strconv.Itoa(i)
			if wf == nil {
				if !rf.HasDefault {
					c.fail("READER_FIELD_MISSING_DEFAULT_VALUE", floc, "%s", rf.Name)
				}
				continue
			}
			c.check(rf.Type, wf.Type, floc+"/type")
		}
	}
}

func (c *checking) checkDecimal(r, w *Schema, loc string) {
	if r.Logical == "decimal" && w.Logical == "decimal" && (r.Precision != w.Precision || r.Scale != w.Scale) {
		c.fail("TYPE_MISMATCH", loc, "decimal precision/scale differ: reader (%d,%d), writer (%d,%d)", r.Precision, r.Scale, w.Precision, w.Scale)
	}
}

// readerUnionReads reports whether some branch of reader union r reads w,
// as Avro's SchemaCompatibility checks it (any branch will do).
func (c *checking) readerUnionReads(r, w *Schema) bool {
	for _, b := range r.Branches {
		if c.compatible(b, w) {
			return true
		}
	}
	return false
}

func isNamed(k Kind) bool { return k == Record || k == Enum || k == Fixed }

func lookupField(w *Schema, rf *Field) *Field {
	for _, wf := range w.Fields {
		if wf.Name == rf.Name {
			return wf
		}
	}
	for _, a := range rf.Aliases {
		for _, wf := range w.Fields {
			if wf.Name == a {
				return wf
			}
		}
	}
	return nil
}

func describe(s *Schema) string {
	if isNamed(s.Kind) {
		return s.Kind.String() + " " + s.Name
	}
	return s.Kind.String()
}

// Levels are Confluent's compatibility levels.
var Levels = []string{"NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"}

// ValidLevel reports whether level is one of Levels.
func ValidLevel(level string) bool {
	for _, l := range Levels {
		if l == level {
			return true
		}
	}
	return false
}

// CheckLevel checks candidate against the existing versions (oldest
// first) under level and returns the reasons it is incompatible.
func CheckLevel(ch Checker, level string, candidate *Schema, existing []*Schema) []string {
	if len(existing) == 0 || level == "NONE" {
		return nil
	}
	against := existing[len(existing)-1:]
	if strings.HasSuffix(level, "_TRANSITIVE") {
		against = existing
	}
	backward := strings.HasPrefix(level, "BACKWARD") || strings.HasPrefix(level, "FULL")
	forward := strings.HasPrefix(level, "FORWARD") || strings.HasPrefix(level, "FULL")
	var msgs []string
	for i := len(against) - 1; i >= 0; i-- {
		old := against[i]
		if backward {
			for _, inc := range ch.Check(candidate, old) {
				msgs = append(msgs, "BACKWARD: new schema cannot read data written by an existing version: "+inc.String())
			}
		}
		if forward {
			for _, inc := range ch.Check(old, candidate) {
				msgs = append(msgs, "FORWARD: an existing version cannot read data written by the new schema: "+inc.String())
			}
		}
	}
	return msgs
}
