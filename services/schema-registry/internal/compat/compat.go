// Package compat decides whether Avro schemas can read each other's data,
// by Avro's schema resolution rules, and applies Confluent's compatibility
// levels on top.
package compat

import (
	"context"
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

// Checker decides whether reader can read data written with writer. It
// stops with an error wrapping ctx.Err() when ctx is done.
type Checker interface {
	Check(ctx context.Context, reader, writer *Schema) ([]Incompatibility, error)
}

// AvroChecker implements Avro's schema resolution rules (the Java
// SchemaCompatibility checker's semantics), plus decimal precision/scale.
//
// Like Java's ReaderWriterCompatibilityChecker it memoises every (reader,
// writer) pair of types it has examined, and a pair under examination is
// assumed compatible (which ends recursion): a named type used many times
// is compared once per pairing, so the work is linear in the schemas'
// text, not in their expansion. Field, symbol and union-branch lookups
// are indexed. An incompatible pair is reported at the first place it is
// met. As in Java, a result derived while assuming an enclosing pair
// compatible is kept even if that pair then turns out incompatible (the
// enclosing pair is reported then).
type AvroChecker struct{}

// Check returns every incompatibility found, or none.
func (AvroChecker) Check(ctx context.Context, reader, writer *Schema) ([]Incompatibility, error) {
	c := newChecking(ctx)
	c.check(reader, writer, true)
	return c.out, c.err
}

// checkSteps runs a check and also returns the steps it took (tests bound
// the work with it).
func checkSteps(ctx context.Context, reader, writer *Schema) ([]Incompatibility, int, error) {
	c := newChecking(ctx)
	c.check(reader, writer, true)
	return c.out, c.steps, c.err
}

type pairResult uint8

const (
	pairChecking pairResult = iota + 1 // on the current path: assumed compatible
	pairCompatible
	pairIncompatible
)

type pairMemo struct {
	result   pairResult
	reported bool // its incompatibilities are in out
}

// branchKey indexes a reader union's branches by what can read a writer
// type: the kind, plus the short name or an alias for named types.
type branchKey struct {
	kind Kind
	name string
}

type checking struct {
	ctx     context.Context
	memo    map[[2]*Schema]*pairMemo
	fields  map[*Schema]map[string]*Field   // writer record fields by name
	symbols map[*Schema]map[string]struct{} // reader enum symbols
	unions  map[*Schema]map[branchKey][]*Schema
	path    []string // location in the reader, rendered only on failure
	out     []Incompatibility
	steps   int
	err     error
}

func newChecking(ctx context.Context) *checking {
	return &checking{
		ctx:     ctx,
		memo:    map[[2]*Schema]*pairMemo{},
		fields:  map[*Schema]map[string]*Field{},
		symbols: map[*Schema]map[string]struct{}{},
		unions:  map[*Schema]map[branchKey][]*Schema{},
	}
}

// ctxEvery is how many steps pass between looks at the context.
const ctxEvery = 1024

func (c *checking) fail(report bool, typ, sub, format string, args ...any) {
	if !report {
		return
	}
	loc := strings.Join(c.path, "") + sub
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

// promotions lists the reader kinds a writer kind promotes to.
var promotions = map[Kind][]Kind{Int: {Long, Float, Double}, Long: {Float, Double}, Float: {Double}, String: {Bytes}, Bytes: {String}}

func (c *checking) nameMatches(r, w *Schema, report bool) bool {
	if r.ShortName() == w.ShortName() {
		return true
	}
	for _, a := range r.Aliases {
		if a == w.Name {
			return true
		}
	}
	c.fail(report, "NAME_MISMATCH", "/name", "expected: %s", w.Name)
	return false
}

// check reports whether r reads w, recording the reasons when report is
// set. Each pair is examined once; a pair met again answers from memory,
// and an incompatible pair first examined quietly (while trying union
// branches) is walked again once to record its reasons when they are
// wanted.
func (c *checking) check(r, w *Schema, report bool) bool {
	if c.err != nil {
		return true
	}
	c.steps++
	if c.steps%ctxEvery == 1 {
		if err := c.ctx.Err(); err != nil {
			c.err = fmt.Errorf("compatibility check stopped after %d steps: %w", c.steps, err)
			return true
		}
	}
	key := [2]*Schema{r, w}
	if m := c.memo[key]; m != nil {
		if m.result != pairIncompatible {
			return true // compatible, or under examination: assumed compatible
		}
		if report && !m.reported {
			m.reported = true
			c.walk(r, w, true)
		}
		return false
	}
	m := &pairMemo{result: pairChecking}
	c.memo[key] = m
	if c.walk(r, w, report) {
		m.result = pairCompatible
		return true
	}
	m.result, m.reported = pairIncompatible, report
	return false
}

// walk applies the resolution rules to one pair. Without report it stops
// at the first reason.
func (c *checking) walk(r, w *Schema, report bool) bool {
	if w.Kind == Union {
		ok := true
		for i, b := range w.Branches {
			if r.Kind == Union {
				if !c.readerUnionReads(r, b) {
					c.fail(report, "MISSING_UNION_BRANCH", "", "reader union lacking writer type: %s (writer branch %d)", describe(b), i)
					ok = false
				}
			} else if !c.check(r, b, report) {
				ok = false
			}
			if !ok && !report {
				return false
			}
		}
		return ok
	}
	if r.Kind == Union {
		if !c.readerUnionReads(r, w) {
			c.fail(report, "MISSING_UNION_BRANCH", "", "reader union lacking writer type: %s", describe(w))
			return false
		}
		return true
	}
	if r.Kind != w.Kind {
		if !promotable(w.Kind, r.Kind) {
			c.fail(report, "TYPE_MISMATCH", "", "reader type: %s not compatible with writer type: %s", r.Kind, w.Kind)
			return false
		}
		return true
	}
	switch r.Kind {
	case Bytes:
		return c.checkDecimal(r, w, report)
	case Fixed:
		if !c.nameMatches(r, w, report) {
			return false
		}
		ok := true
		if r.Size != w.Size {
			c.fail(report, "FIXED_SIZE_MISMATCH", "/size", "expected: %d, found: %d", w.Size, r.Size)
			if !report {
				return false
			}
			ok = false
		}
		return c.checkDecimal(r, w, report) && ok
	case Enum:
		if !c.nameMatches(r, w, report) {
			return false
		}
		if r.HasEnumDef {
			return true
		}
		return c.checkSymbols(r, w, report)
	case Array:
		return c.nested("/items", r.Items, w.Items, report)
	case Map:
		return c.nested("/values", r.Values, w.Values, report)
	case Record:
		if !c.nameMatches(r, w, report) {
			return false
		}
		return c.checkFields(r, w, report)
	}
	return true
}

func (c *checking) nested(seg string, r, w *Schema, report bool) bool {
	c.path = append(c.path, seg)
	ok := c.check(r, w, report)
	c.path = c.path[:len(c.path)-1]
	return ok
}

func (c *checking) checkFields(r, w *Schema, report bool) bool {
	byName := c.fields[w]
	if byName == nil {
		byName = make(map[string]*Field, len(w.Fields))
		for _, f := range w.Fields {
			if _, dup := byName[f.Name]; !dup {
				byName[f.Name] = f
			}
		}
		c.fields[w] = byName
	}
	ok := true
	for i, rf := range r.Fields {
		wf := byName[rf.Name]
		for _, a := range rf.Aliases {
			if wf != nil {
				break
			}
			wf = byName[a]
		}
		floc := "/fields/" + strconv.Itoa(i)
		if wf == nil {
			if !rf.HasDefault {
				c.fail(report, "READER_FIELD_MISSING_DEFAULT_VALUE", floc, "%s", rf.Name)
				ok = false
			}
		} else if !c.nested(floc+"/type", rf.Type, wf.Type, report) {
			ok = false
		}
		if !ok && !report {
			return false
		}
	}
	return ok
}

func (c *checking) checkSymbols(r, w *Schema, report bool) bool {
	syms := c.symbols[r]
	if syms == nil {
		syms = make(map[string]struct{}, len(r.Symbols))
		for _, s := range r.Symbols {
			syms[s] = struct{}{}
		}
		c.symbols[r] = syms
	}
	var missing []string
	for _, s := range w.Symbols {
		if _, ok := syms[s]; !ok {
			if !report {
				return false
			}
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		c.fail(report, "MISSING_ENUM_SYMBOLS", "/symbols", "[%s]", strings.Join(missing, ", "))
		return false
	}
	return true
}

func (c *checking) checkDecimal(r, w *Schema, report bool) bool {
	if r.Logical == "decimal" && w.Logical == "decimal" && (r.Precision != w.Precision || r.Scale != w.Scale) {
		c.fail(report, "TYPE_MISMATCH", "", "decimal precision/scale differ: reader (%d,%d), writer (%d,%d)", r.Precision, r.Scale, w.Precision, w.Scale)
		return false
	}
	return true
}

// readerUnionReads reports whether some branch of reader union r reads w,
// as Avro's SchemaCompatibility checks it (any branch will do). Only the
// branches that can possibly read w are tried: the same kind (and, for
// named types, the same short name or an alias of w's name) or a kind w
// promotes to.
func (c *checking) readerUnionReads(r, w *Schema) bool {
	for _, b := range c.candidates(r, w) {
		if c.check(b, w, false) {
			return true
		}
	}
	return false
}

func (c *checking) candidates(r, w *Schema) []*Schema {
	if w.Kind == Union { // a union in a union: not valid Avro, try everything
		return r.Branches
	}
	idx := c.unions[r]
	if idx == nil {
		idx = map[branchKey][]*Schema{}
		for _, b := range r.Branches {
			if !isNamed(b.Kind) {
				idx[branchKey{b.Kind, ""}] = append(idx[branchKey{b.Kind, ""}], b)
				continue
			}
			idx[branchKey{b.Kind, b.ShortName()}] = append(idx[branchKey{b.Kind, b.ShortName()}], b)
			for _, a := range b.Aliases {
				k := branchKey{b.Kind, "=" + a}
				idx[k] = append(idx[k], b)
			}
		}
		c.unions[r] = idx
	}
	out := idx[branchKey{Union, ""}]
	if isNamed(w.Kind) {
		out = append(out, idx[branchKey{w.Kind, w.ShortName()}]...)
		return append(out, idx[branchKey{w.Kind, "=" + w.Name}]...)
	}
	out = append(out, idx[branchKey{w.Kind, ""}]...)
	for _, k := range promotions[w.Kind] {
		out = append(out, idx[branchKey{k, ""}]...)
	}
	return out
}

func isNamed(k Kind) bool { return k == Record || k == Enum || k == Fixed }

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
// first) under level and returns the reasons it is incompatible. It
// stops with the checker's error when ctx is done.
func CheckLevel(ctx context.Context, ch Checker, level string, candidate *Schema, existing []*Schema) ([]string, error) {
	if len(existing) == 0 || level == "NONE" {
		return nil, nil
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
			incs, err := ch.Check(ctx, candidate, old)
			if err != nil {
				return nil, err
			}
			for _, inc := range incs {
				msgs = append(msgs, "BACKWARD: new schema cannot read data written by an existing version: "+inc.String())
			}
		}
		if forward {
			incs, err := ch.Check(ctx, old, candidate)
			if err != nil {
				return nil, err
			}
			for _, inc := range incs {
				msgs = append(msgs, "FORWARD: an existing version cannot read data written by the new schema: "+inc.String())
			}
		}
	}
	return msgs, nil
}
