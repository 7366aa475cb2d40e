// Package compat decides whether Avro schemas can read each other's data,
// by Avro's schema resolution rules, and applies Confluent's compatibility
// levels on top.
package compat

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/pkg/avro"
)

// Schema is a parsed schema as the checker sees it: pkg/avro's model.
type Schema = avro.Type

// Parse parses schema after the referenced schemas (in dependency order),
// whose named types it may use, into pkg/avro's schema model.
func Parse(schema string, refs []string) (Schema, error) {
	s, err := avro.ParseSchema(schema, refs...)
	if err != nil {
		return Schema{}, err
	}
	return s.Root(), nil
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
	Check(ctx context.Context, reader, writer Schema) ([]Incompatibility, error)
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
func (AvroChecker) Check(ctx context.Context, reader, writer Schema) ([]Incompatibility, error) {
	c := newChecking(ctx)
	c.check(reader, writer, true)
	return c.out, c.err
}

// checkSteps runs a check and also returns the steps it took (tests bound
// the work with it).
func checkSteps(ctx context.Context, reader, writer Schema) ([]Incompatibility, int, error) {
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
	kind avro.Kind
	name string
}

type checking struct {
	ctx    context.Context
	memo   map[[2]Schema]*pairMemo
	unions map[Schema]map[branchKey][]Schema
	path   []string // location in the reader, rendered only on failure
	out    []Incompatibility
	steps  int
	err    error
}

func newChecking(ctx context.Context) *checking {
	return &checking{
		ctx:    ctx,
		memo:   map[[2]Schema]*pairMemo{},
		unions: map[Schema]map[branchKey][]Schema{},
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

func promotable(w, r avro.Kind) bool {
	switch w {
	case avro.Int:
		return r == avro.Long || r == avro.Float || r == avro.Double
	case avro.Long:
		return r == avro.Float || r == avro.Double
	case avro.Float:
		return r == avro.Double
	case avro.String:
		return r == avro.Bytes
	case avro.Bytes:
		return r == avro.String
	}
	return false
}

// promotions lists the reader kinds a writer kind promotes to.
var promotions = map[avro.Kind][]avro.Kind{avro.Int: {avro.Long, avro.Float, avro.Double}, avro.Long: {avro.Float, avro.Double}, avro.Float: {avro.Double}, avro.String: {avro.Bytes}, avro.Bytes: {avro.String}}

func (c *checking) nameMatches(r, w Schema, report bool) bool {
	if r.ShortName() == w.ShortName() {
		return true
	}
	for _, a := range r.Aliases() {
		if a == w.Name() {
			return true
		}
	}
	c.fail(report, "NAME_MISMATCH", "/name", "expected: %s", w.Name())
	return false
}

// check reports whether r reads w, recording the reasons when report is
// set. Each pair is examined once; a pair met again answers from memory,
// and an incompatible pair first examined quietly (while trying union
// branches) is walked again once to record its reasons when they are
// wanted.
func (c *checking) check(r, w Schema, report bool) bool {
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
	key := [2]Schema{r, w}
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
func (c *checking) walk(r, w Schema, report bool) bool {
	if w.Kind() == avro.Union {
		ok := true
		for i := range w.NumBranches() {
			b := w.Branch(i)
			if r.Kind() == avro.Union {
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
	if r.Kind() == avro.Union {
		if !c.readerUnionReads(r, w) {
			c.fail(report, "MISSING_UNION_BRANCH", "", "reader union lacking writer type: %s", describe(w))
			return false
		}
		return true
	}
	if r.Kind() != w.Kind() {
		if !promotable(w.Kind(), r.Kind()) {
			c.fail(report, "TYPE_MISMATCH", "", "reader type: %s not compatible with writer type: %s", r.Kind(), w.Kind())
			return false
		}
		return true
	}
	switch r.Kind() {
	case avro.Bytes:
		return c.checkDecimal(r, w, report)
	case avro.Fixed:
		if !c.nameMatches(r, w, report) {
			return false
		}
		ok := true
		if r.Size() != w.Size() {
			c.fail(report, "FIXED_SIZE_MISMATCH", "/size", "expected: %d, found: %d", w.Size(), r.Size())
			if !report {
				return false
			}
			ok = false
		}
		return c.checkDecimal(r, w, report) && ok
	case avro.Enum:
		if !c.nameMatches(r, w, report) {
			return false
		}
		if r.HasEnumDefault() {
			return true
		}
		return c.checkSymbols(r, w, report)
	case avro.Array:
		return c.nested("/items", r.Items(), w.Items(), report)
	case avro.Map:
		return c.nested("/values", r.Items(), w.Items(), report)
	case avro.Record:
		if !c.nameMatches(r, w, report) {
			return false
		}
		return c.checkFields(r, w, report)
	}
	return true
}

func (c *checking) nested(seg string, r, w Schema, report bool) bool {
	c.path = append(c.path, seg)
	ok := c.check(r, w, report)
	c.path = c.path[:len(c.path)-1]
	return ok
}

func (c *checking) checkFields(r, w Schema, report bool) bool {
	ok := true
	for i := range r.NumFields() {
		rf := r.Field(i)
		wf, found := w.FieldByName(rf.Name())
		for _, a := range rf.Aliases() {
			if found {
				break
			}
			wf, found = w.FieldByName(a)
		}
		floc := "/fields/" + strconv.Itoa(i)
		if !found {
			if !rf.HasDefault() {
				c.fail(report, "READER_FIELD_MISSING_DEFAULT_VALUE", floc, "%s", rf.Name())
				ok = false
			}
		} else if !c.nested(floc+"/type", rf.Type(), wf.Type(), report) {
			ok = false
		}
		if !ok && !report {
			return false
		}
	}
	return ok
}

func (c *checking) checkSymbols(r, w Schema, report bool) bool {
	var missing []string
	for _, s := range w.Symbols() {
		if _, ok := r.SymbolIndex(s); !ok {
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

func (c *checking) checkDecimal(r, w Schema, report bool) bool {
	if r.Logical() == "decimal" && w.Logical() == "decimal" && (r.Precision() != w.Precision() || r.Scale() != w.Scale()) {
		c.fail(report, "TYPE_MISMATCH", "", "decimal precision/scale differ: reader (%d,%d), writer (%d,%d)", r.Precision(), r.Scale(), w.Precision(), w.Scale())
		return false
	}
	return true
}

// readerUnionReads reports whether some branch of reader union r reads w,
// as Avro's SchemaCompatibility checks it (any branch will do). Only the
// branches that can possibly read w are tried: the same kind (and, for
// named types, the same short name or an alias of w's name) or a kind w
// promotes to.
func (c *checking) readerUnionReads(r, w Schema) bool {
	for _, b := range c.candidates(r, w) {
		if c.check(b, w, false) {
			return true
		}
	}
	return false
}

func (c *checking) candidates(r, w Schema) []Schema {
	if w.Kind() == avro.Union { // a union in a union: not valid Avro, try everything
		out := make([]Schema, r.NumBranches())
		for i := range out {
			out[i] = r.Branch(i)
		}
		return out
	}
	idx := c.unions[r]
	if idx == nil {
		idx = map[branchKey][]Schema{}
		for i := range r.NumBranches() {
			b := r.Branch(i)
			if !isNamed(b.Kind()) {
				idx[branchKey{b.Kind(), ""}] = append(idx[branchKey{b.Kind(), ""}], b)
				continue
			}
			idx[branchKey{b.Kind(), b.ShortName()}] = append(idx[branchKey{b.Kind(), b.ShortName()}], b)
			for _, a := range b.Aliases() {
				k := branchKey{b.Kind(), "=" + a}
				idx[k] = append(idx[k], b)
			}
		}
		c.unions[r] = idx
	}
	out := idx[branchKey{avro.Union, ""}]
	if isNamed(w.Kind()) {
		out = append(out, idx[branchKey{w.Kind(), w.ShortName()}]...)
		return append(out, idx[branchKey{w.Kind(), "=" + w.Name()}]...)
	}
	out = append(out, idx[branchKey{w.Kind(), ""}]...)
	for _, k := range promotions[w.Kind()] {
		out = append(out, idx[branchKey{k, ""}]...)
	}
	return out
}

func isNamed(k avro.Kind) bool { return k.Named() }

func describe(s Schema) string {
	if isNamed(s.Kind()) {
		return s.Kind().String() + " " + s.Name()
	}
	return s.Kind().String()
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
func CheckLevel(ctx context.Context, ch Checker, level string, candidate Schema, existing []Schema) ([]string, error) {
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
