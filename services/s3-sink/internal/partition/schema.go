package partition

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrNotInSchema is returned by CheckSchema when no record of the schema
// can carry a usable value at the field path: a configuration problem
// (the partitioning or timestamp field is not in this schema), unlike a
// value missing from one record.
var ErrNotInSchema = errors.New("field not usable in schema")

// ScalarKinds are the Avro types the field partitioner can name a path
// with (enums decode to strings, fixed to bytes).
func ScalarKinds(kind string) bool {
	switch kind {
	case "record", "error", "array", "map":
		return false
	}
	return true
}

// TimeKinds are the Avro types FieldTime reads a time from.
func TimeKinds(kind string) bool {
	switch kind {
	case "long", "int", "double", "string":
		return true
	}
	return false
}

// CheckSchema reports (ErrNotInSchema) whether the schema has no record
// type along path with a field whose type, or one of whose union branches,
// is accepted by leaf. Field lookups see through unions and named-type
// references. One pass indexes named types, then each path step looks at
// the candidate types only: linear in the schema's size per step.
func CheckSchema(schema string, path []string, leaf func(kind string) bool) error {
	var root any
	if err := json.Unmarshal([]byte(schema), &root); err != nil {
		return fmt.Errorf("schema is not JSON: %w", err)
	}
	ix := schemaIndex{names: map[string]typeAt{}}
	ix.collect(root, "")
	cands := []typeAt{{root, ""}}
	name := strings.Join(path, ".")
	for i, field := range path {
		var next []typeAt
		seen := map[string]bool{}
		for _, c := range cands {
			for _, r := range ix.expand(c) {
				m, ok := r.def.(map[string]any)
				if !ok || (m["type"] != "record" && m["type"] != "error") {
					continue
				}
				full := fullName(str(m["name"]), m, r.ns)
				if seen[full] {
					continue
				}
				seen[full] = true
				fields, _ := m["fields"].([]any)
				for _, f := range fields {
					fm, _ := f.(map[string]any)
					if str(fm["name"]) == field {
						next = append(next, typeAt{fm["type"], nsOf(full)})
					}
				}
			}
		}
		if len(next) == 0 {
			return fmt.Errorf("%w: %s: no record type in the schema has a field %s", ErrNotInSchema, name, strings.Join(path[:i+1], "."))
		}
		cands = next
	}
	for _, c := range cands {
		for _, r := range ix.expand(c) {
			if leaf(kindOf(r.def)) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: %s has no branch of a usable type", ErrNotInSchema, name)
}

// typeAt is a schema element with the namespace it appears in.
type typeAt struct {
	def any
	ns  string
}

type schemaIndex struct{ names map[string]typeAt }

func str(v any) string { s, _ := v.(string); return s }

// fullName applies Avro's namespace rules to a named type's name.
func fullName(name string, m map[string]any, ns string) string {
	if strings.Contains(name, ".") {
		return name
	}
	if s, ok := m["namespace"].(string); ok {
		ns = s
	}
	if ns == "" {
		return name
	}
	return ns + "." + name
}

func nsOf(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i]
	}
	return ""
}

// collect indexes every named type definition by full name.
func (ix *schemaIndex) collect(v any, ns string) {
	switch t := v.(type) {
	case []any:
		for _, b := range t {
			ix.collect(b, ns)
		}
	case map[string]any:
		switch typ := t["type"].(type) {
		case string:
			switch typ {
			case "record", "error", "enum", "fixed":
				full := fullName(str(t["name"]), t, ns)
				if _, dup := ix.names[full]; !dup {
					ix.names[full] = typeAt{t, nsOf(full)}
				}
				if typ == "record" || typ == "error" {
					fields, _ := t["fields"].([]any)
					for _, f := range fields {
						if fm, ok := f.(map[string]any); ok {
							ix.collect(fm["type"], nsOf(full))
						}
					}
				}
			case "array":
				ix.collect(t["items"], ns)
			case "map":
				ix.collect(t["values"], ns)
			}
		default:
			ix.collect(typ, ns) // {"type": {...}} or {"type": [...]}
		}
	}
}

// expand resolves named references, {"type": X} wrappers and unions to
// the concrete types a value at c can have.
func (ix *schemaIndex) expand(c typeAt) []typeAt {
	var out []typeAt
	var walk func(c typeAt, depth int)
	walk = func(c typeAt, depth int) {
		if depth > 8 { // wrappers, unions and references nest no deeper in a valid schema
			return
		}
		switch t := c.def.(type) {
		case string:
			if primitiveNames[t] {
				out = append(out, c)
				return
			}
			if d, ok := ix.names[fullRef(t, c.ns)]; ok {
				walk(d, depth+1)
			} else if d, ok := ix.names[t]; ok {
				walk(d, depth+1)
			}
		case []any:
			for _, b := range t {
				walk(typeAt{b, c.ns}, depth+1)
			}
		case map[string]any:
			if inner, ok := t["type"].(string); ok {
				switch inner {
				case "record", "error", "enum", "fixed", "array", "map":
					out = append(out, c)
				default:
					walk(typeAt{inner, c.ns}, depth+1) // primitive with attributes, or a reference
				}
				return
			}
			walk(typeAt{t["type"], c.ns}, depth+1)
		}
	}
	walk(c, 0)
	return out
}

var primitiveNames = map[string]bool{"null": true, "boolean": true, "int": true, "long": true, "float": true, "double": true, "bytes": true, "string": true}

func fullRef(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

// kindOf names a concrete type: a primitive name or record, enum, array,
// map, fixed.
func kindOf(def any) string {
	switch t := def.(type) {
	case string:
		return t
	case map[string]any:
		return str(t["type"])
	}
	return ""
}
