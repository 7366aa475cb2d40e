// Package schemagen builds random valid Avro schemas, driven by bytes (a
// fuzzer's input), for fuzzing the registry's schema paths: shared named
// types used many times, chains of types each using the next twice (issue
// 13's shape), deep unions and nesting, recursive and mutually recursive
// records, and references between subjects.
package schemagen

import (
	"fmt"
	"strconv"
	"strings"
)

// Reference is a Confluent schema reference.
type Reference struct {
	Name    string
	Subject string
	Version int
}

// Subject is one schema to register, at version 1 of its subject.
type Subject struct {
	Name       string
	Schema     string
	References []Reference // direct references only
}

// Set is schemas in registration order: libraries first (each may
// reference earlier ones), the main schema last. Evolved is the main
// schema with fields added (with defaults) and primitives promoted: a
// second version that BACKWARD-reads the first.
type Set struct {
	Subjects []Subject
	Evolved  string
}

// Main is the last subject.
func (s Set) Main() Subject { return s.Subjects[len(s.Subjects)-1] }

// RefTexts returns the schemas a subject's references bring in,
// transitively, dependencies first (as the registry resolves them).
func (s Set) RefTexts(sub Subject) []string {
	bySubject := map[string]Subject{}
	for _, x := range s.Subjects {
		bySubject[x.Name] = x
	}
	seen := map[string]bool{}
	var out []string
	var walk func(refs []Reference)
	walk = func(refs []Reference) {
		for _, r := range refs {
			if seen[r.Subject] {
				continue
			}
			seen[r.Subject] = true
			dep := bySubject[r.Subject]
			walk(dep.References)
			out = append(out, dep.Schema)
		}
	}
	walk(sub.References)
	return out
}

// source hands out the input's bytes; past the end it answers zeros.
type source struct {
	data []byte
	i    int
}

func (s *source) next() int {
	if s.i >= len(s.data) {
		return 0
	}
	b := s.data[s.i]
	s.i++
	return int(b)
}

func (s *source) intn(n int) int { return s.next() % n }

// named is a named type that can be used by name.
type named struct {
	full     string
	building bool   // a record whose fields are being written: used only inside a union or an array
	owner    string // subject defining it ("" for the schema being built)
}

type generator struct {
	src     *source
	seq     int
	budget  int // types still allowed in this schema
	named   []*named
	used    map[string]bool   // subjects referenced by the schema being built
	tops    map[string]string // subject -> the name of its top-level record
	subject string
	// evolve rewrites the schema as its next version: fields added with
	// defaults, int/float promoted.
	evolve bool
}

// Generate builds a Set from data. The same data gives the same Set.
func Generate(data []byte) Set {
	g := &generator{src: &source{data: data}, tops: map[string]string{}}
	var set Set
	libs := g.src.intn(4)
	for k := 0; k < libs; k++ {
		g.subject = "lib" + strconv.Itoa(k)
		g.used = map[string]bool{}
		g.budget = 40
		ns := "lib" + strconv.Itoa(k)
		first := len(g.named)
		text := g.record(ns, 0)
		g.tops[g.subject] = g.named[first].full
		set.Subjects = append(set.Subjects, Subject{Name: g.subject, Schema: text, References: g.references()})
		for _, n := range g.named {
			if n.owner == "" {
				n.owner = g.subject
			}
		}
	}
	g.subject = "main-value"
	g.used = map[string]bool{}
	g.budget = 120
	mark := g.src.i
	seq := g.seq
	nNamed := len(g.named)
	main := g.record("app", 0)
	set.Subjects = append(set.Subjects, Subject{Name: g.subject, Schema: main, References: g.references()})
	// The same choices again, evolving: the same names, so the new
	// version reads the old one.
	g.src.i, g.seq, g.named, g.evolve = mark, seq, g.named[:nNamed], true
	g.budget = 120
	set.Evolved = g.record("app", 0)
	return set
}

// references lists the subjects the schema used a type of, in order; a
// reference is named after the subject's top-level type, as Confluent's
// are (the types nested in it come with it).
func (g *generator) references() []Reference {
	var out []Reference
	for k := 0; ; k++ {
		sub := "lib" + strconv.Itoa(k)
		top, ok := g.tops[sub]
		if !ok {
			return out
		}
		if g.used[sub] {
			out = append(out, Reference{Name: top, Subject: sub, Version: 1})
		}
	}
}

func (g *generator) name(ns string) string {
	g.seq++
	return ns + ".N" + strconv.Itoa(g.seq)
}

var primitives = []string{`"null"`, `"boolean"`, `"int"`, `"long"`, `"float"`, `"double"`, `"bytes"`, `"string"`}

var logicals = []string{
	`{"type":"long","logicalType":"timestamp-millis"}`,
	`{"type":"int","logicalType":"date"}`,
	`{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}`,
	`{"type":"string","logicalType":"uuid"}`,
}

// kindOf is what a union may hold only once: the primitive type
// (logical types count as theirs), "array", "map", or the name.
func kindOf(t string) string {
	if strings.HasPrefix(t, `"`) {
		u, _ := strconv.Unquote(t)
		return u
	}
	for _, k := range []string{"array", "map", "long", "int", "bytes", "string"} {
		if strings.HasPrefix(t, `{"type":"`+k+`"`) {
			return k
		}
	}
	i := strings.Index(t, `"name":"`)
	rest := t[i+8:]
	return rest[:strings.IndexByte(rest, '"')]
}

// typ returns a type for a position nested depth deep; inUnion forbids a
// union (unions do not nest).
func (g *generator) typ(ns string, depth int, inUnion bool) string {
	g.budget--
	if g.budget <= 0 || depth > 80 {
		return primitives[g.src.intn(len(primitives))]
	}
	switch c := g.src.intn(16); {
	case c < 4:
		if inUnion { // not promoted: a union may hold int and long already
			return primitives[g.src.intn(len(primitives))]
		}
		return g.primitive()
	case c == 4:
		return logicals[g.src.intn(len(logicals))]
	case c == 5:
		return fmt.Sprintf(`{"type":"enum","name":%q,"symbols":["A","B","C"]}`, g.def(ns))
	case c == 6:
		return fmt.Sprintf(`{"type":"fixed","name":%q,"size":%d}`, g.def(ns), 1+g.src.intn(16))
	case c == 7:
		return g.record(ns, depth+1)
	case c == 8:
		return `{"type":"array","items":` + g.typ(ns, depth+1, false) + `}`
	case c == 9:
		return `{"type":"map","values":` + g.typ(ns, depth+1, false) + `}`
	case c == 10 && !inUnion:
		return g.union(ns, depth+1)
	case c == 11:
		return g.chain(ns, depth+1)
	case c == 12:
		return g.deep(ns, inUnion)
	default:
		// A named type used again: shared types, and recursion when the
		// record is still being written (then inside a union or array).
		if t := g.reuse(inUnion); t != "" {
			return t
		}
		return `"string"`
	}
}

func (g *generator) primitive() string {
	p := primitives[g.src.intn(len(primitives))]
	if g.evolve && (p == `"int"` || p == `"float"`) {
		return map[string]string{`"int"`: `"long"`, `"float"`: `"double"`}[p]
	}
	return p
}

func (g *generator) def(ns string) string {
	full := g.name(ns)
	g.named = append(g.named, &named{full: full})
	return full
}

// reuse picks a named type already defined (or being defined).
func (g *generator) reuse(inUnion bool) string {
	if len(g.named) == 0 {
		return ""
	}
	n := g.named[g.src.intn(len(g.named))]
	if n.owner != "" {
		g.used[n.owner] = true
	}
	if n.building {
		if inUnion {
			return strconv.Quote(n.full)
		}
		// recursion where a value can end: an array of it
		return `{"type":"array","items":` + strconv.Quote(n.full) + `}`
	}
	return strconv.Quote(n.full)
}

func (g *generator) record(ns string, depth int) string {
	full := g.def(ns)
	n := g.named[len(g.named)-1]
	n.building = true
	var fields []string
	nf := g.src.intn(5)
	for i := 0; i < nf; i++ {
		fields = append(fields, fmt.Sprintf(`{"name":"f%d","type":%s}`, i, g.typ(ns, depth, false)))
	}
	if g.evolve && g.seq%2 == 0 { // no input consumed: the choices stay aligned
		fields = append(fields, `{"name":"added","type":["null","string"],"default":null}`)
	}
	n.building = false
	return fmt.Sprintf(`{"type":"record","name":%q,"fields":[%s]}`, full, strings.Join(fields, ","))
}

func (g *generator) union(ns string, depth int) string {
	seen := map[string]bool{}
	var branches []string
	for i, n := 0, 1+g.src.intn(6); i < n; i++ {
		defined := len(g.named)
		t := g.typ(ns, depth, true)
		k := kindOf(t)
		if seen[k] {
			g.named = g.named[:defined] // the branch is dropped with the types it defined
			continue
		}
		seen[k] = true
		branches = append(branches, t)
	}
	return "[" + strings.Join(branches, ",") + "]"
}

// chain is issue 13's shape: records each using the next one twice.
func (g *generator) chain(ns string, depth int) string {
	n := 1 + g.src.intn(24)
	names := make([]string, n)
	for i := range names {
		names[i] = g.def(ns)
	}
	inner := `{"type":"record","name":` + strconv.Quote(names[n-1]) + `,"fields":[{"name":"x","type":"int"}]}`
	for i := n - 2; i >= 0; i-- {
		inner = fmt.Sprintf(`{"type":"record","name":%q,"fields":[{"name":"a","type":%s},{"name":"b","type":%q}]}`, names[i], inner, names[i+1])
	}
	return inner
}

// deep nests arrays, maps and optional records many levels deep.
func (g *generator) deep(ns string, inUnion bool) string {
	n := 1 + g.src.intn(40)
	t := g.primitive()
	for i := 0; i < n; i++ {
		switch g.src.intn(3) {
		case 0:
			t = `{"type":"array","items":` + t + `}`
		case 1:
			t = `{"type":"map","values":` + t + `}`
		default:
			t = fmt.Sprintf(`["null",{"type":"record","name":%q,"fields":[{"name":"v","type":%s}]}]`, g.def(ns), t)
		}
	}
	if inUnion && strings.HasPrefix(t, "[") { // unions do not nest
		t = `{"type":"array","items":` + t + `}`
	}
	return t
}
