package avro

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/pkg/registry"
)

// ReferenceSource resolves schema references (Confluent's "references":
// a named type, defined by a version of another subject). The registry
// client implements it; a SchemaSource without it cannot use schemas that
// have references.
type ReferenceSource interface {
	ByVersion(ctx context.Context, subject string, version int) (*registry.Schema, error)
	Latest(ctx context.Context, subject string) (*registry.Schema, error)
}

// maxReferenceDepth bounds chains of references (a references b
// references c ...).
const maxReferenceDepth = 32

// Inline returns s's schema text with every referenced named type defined
// where it is first used, and later uses left as names: one self-contained
// schema, as goavro, Avro container files and Elasticsearch mappings need.
// A type that several references bring in is defined once. A schema
// without references is returned as it is.
//
// The work is linear in the size of the schemas involved: each subject
// version is fetched and decoded once however many references lead to it
// (a diamond of references is not walked as a tree), and each definition
// is placed and walked once. A reference cycle is an error.
func Inline(ctx context.Context, src ReferenceSource, s *registry.Schema) (string, error) {
	if len(s.References) == 0 {
		return s.Schema, nil
	}
	r := refResolver{src: src, defs: map[string]any{}, state: map[string]uint8{}}
	if err := r.collect(ctx, s, 0); err != nil {
		return "", err
	}
	doc, err := decodeSchemaJSON(s.Schema)
	if err != nil {
		return "", err
	}
	w := inliner{defs: r.defs, defined: map[string]bool{}}
	out, err := json.Marshal(w.walk(doc, ""))
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// refResolver gathers the definitions a schema's references bring in,
// transitively.
type refResolver struct {
	src ReferenceSource
	// defs holds every named type the references define, by full name,
	// each on its own: a type nested in another is replaced there by its
	// name (a schema may use a type nested in a referenced one, as
	// Confluent allows), so the walk can define it at its first use,
	// wherever that is.
	defs map[string]any
	// state of each subject version: resolving (on the current chain, so
	// meeting it again is a cycle) or resolved.
	state map[string]uint8
}

const (
	refResolving uint8 = iota + 1
	refResolved
)

func (r *refResolver) collect(ctx context.Context, s *registry.Schema, depth int) error {
	if depth >= maxReferenceDepth {
		return fmt.Errorf("schema references nested more than %d deep", maxReferenceDepth)
	}
	for _, ref := range s.References {
		key := ref.Subject + "\x00latest"
		if ref.Version > 0 {
			key = ref.Subject + "\x00" + strconv.Itoa(ref.Version)
		}
		switch r.state[key] {
		case refResolving:
			return fmt.Errorf("reference %s (subject %s version %d) is part of a reference cycle", ref.Name, ref.Subject, ref.Version)
		case refResolved:
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("resolving reference %s: %w", ref.Name, err)
		}
		r.state[key] = refResolving
		var rs *registry.Schema
		var err error
		if ref.Version > 0 {
			rs, err = r.src.ByVersion(ctx, ref.Subject, ref.Version)
		} else {
			rs, err = r.src.Latest(ctx, ref.Subject)
		}
		if err != nil {
			return fmt.Errorf("reference %s (subject %s version %d): %w", ref.Name, ref.Subject, ref.Version, err)
		}
		if t := rs.SchemaType(); t != "AVRO" {
			return fmt.Errorf("reference %s (subject %s) is %s, not AVRO", ref.Name, ref.Subject, t)
		}
		if err := r.collect(ctx, rs, depth+1); err != nil {
			return err
		}
		def, err := decodeSchemaJSON(rs.Schema)
		if err != nil {
			return fmt.Errorf("reference %s (subject %s): %w", ref.Name, ref.Subject, err)
		}
		r.flatten(qualify(def, ref.Name), "", true)
		r.state[key] = refResolved
	}
	return nil
}

// flatten records the named types defined in v (at a type position, in
// namespace ns) in r.defs, with full names, and returns v with each of
// them replaced by its name. A nested type of the null namespace stays
// where it is: a name cannot refer to the null namespace from inside a
// namespace, so it is only defined in place (its namespace made explicit).
func (r *refResolver) flatten(v any, ns string, top bool) any {
	switch x := v.(type) {
	case []any: // union
		for i := range x {
			x[i] = r.flatten(x[i], ns, false)
		}
		return x
	case map[string]any:
		t, _ := x["type"].(string)
		switch t {
		case "record", "error", "enum", "fixed":
			name, _ := x["name"].(string)
			space := ns
			if s, ok := x["namespace"].(string); ok {
				space = s
			}
			full := fullName(name, space)
			x["name"] = full
			delete(x, "namespace")
			nullNS := !strings.Contains(full, ".")
			if nullNS {
				x["namespace"] = "" // wherever it lands
			}
			if t == "record" || t == "error" {
				fields, _ := x["fields"].([]any)
				for _, f := range fields {
					if fm, ok := f.(map[string]any); ok {
						fm["type"] = r.flatten(fm["type"], namespaceOf(full), false)
					}
				}
			}
			if nullNS && !top {
				return x
			}
			if _, dup := r.defs[full]; !dup {
				r.defs[full] = x
			}
			return full
		case "array":
			x["items"] = r.flatten(x["items"], ns, false)
			return x
		case "map":
			x["values"] = r.flatten(x["values"], ns, false)
			return x
		}
		if _, nested := x["type"].(string); !nested && x["type"] != nil {
			x["type"] = r.flatten(x["type"], ns, top)
		}
		return x
	}
	return v
}

func decodeSchemaJSON(text string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber() // defaults keep their exact digits
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	return v, nil
}

// qualify names a referenced definition by its full name, so it keeps its
// identity wherever it is inlined (an unqualified name would take the
// namespace of the place it lands in).
func qualify(def any, full string) any {
	m, ok := def.(map[string]any)
	if !ok || !strings.Contains(full, ".") {
		return def
	}
	if _, named := m["name"]; named {
		m["name"] = full
		delete(m, "namespace")
	}
	return m
}

type inliner struct {
	defs    map[string]any  // referenced types not yet placed
	defined map[string]bool // named types defined so far, in document order
}

// walk visits v at a type position (never defaults, docs or names) with
// enclosing namespace ns.
func (w *inliner) walk(v any, ns string) any {
	switch x := v.(type) {
	case string:
		if _, primitive := primitives[x]; primitive {
			return x
		}
		full := fullName(x, ns)
		if w.defined[full] {
			return x
		}
		if def, ok := w.defs[full]; ok {
			delete(w.defs, full)
			return w.walk(def, ns)
		}
		if def, ok := w.defs[x]; ok { // referenced by a full name that looked relative
			delete(w.defs, x)
			return w.walk(def, ns)
		}
		return x
	case []any: // union
		for i := range x {
			x[i] = w.walk(x[i], ns)
		}
		return x
	case map[string]any:
		t, _ := x["type"].(string)
		switch t {
		case "record", "error", "enum", "fixed":
			name, _ := x["name"].(string)
			space := ns
			if s, ok := x["namespace"].(string); ok {
				space = s
			}
			full := fullName(name, space)
			if w.defined[full] {
				return full // brought in by two references: define once
			}
			w.defined[full] = true
			delete(w.defs, full)
			if t == "record" || t == "error" {
				fields, _ := x["fields"].([]any)
				for _, f := range fields {
					if fm, ok := f.(map[string]any); ok {
						fm["type"] = w.walk(fm["type"], namespaceOf(full))
					}
				}
			}
			return x
		case "array":
			x["items"] = w.walk(x["items"], ns)
			return x
		case "map":
			x["values"] = w.walk(x["values"], ns)
			return x
		}
		if _, nested := x["type"].(string); !nested && x["type"] != nil {
			x["type"] = w.walk(x["type"], ns) // {"type": {...}} or {"type": [...]}
		}
		return x
	}
	return v
}

// errNoReferenceSource is returned for a schema with references when the
// SchemaSource cannot resolve them.
var errNoReferenceSource = errors.New("schema has references but the schema source cannot resolve them")
