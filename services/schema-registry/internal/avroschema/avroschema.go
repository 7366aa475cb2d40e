// Package avroschema validates Avro schemas (with goavro) and computes the
// canonical form that decides schema identity in the registry.
package avroschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/pkg/avro"
)

// primitives are Avro's primitive type names.
var primitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true, "float": true,
	"double": true, "bytes": true, "string": true,
}

// IsPrimitive reports whether name is an Avro primitive type.
func IsPrimitive(name string) bool { return primitives[name] }

// Validate parses schema with goavro, with the referenced schemas (in
// dependency order) defining named types it may use. The error carries the
// parser's reason.
func Validate(schema string, refs []string) error {
	if strings.TrimSpace(schema) == "" {
		return errors.New("empty schema")
	}
	spec := schema
	if len(refs) > 0 {
		// goavro has no API for externally defined names: parse one record
		// whose fields carry the referenced schemas first, then the schema
		// itself, so the names are defined in order. The wrapper has no
		// namespace, the same as a top-level schema.
		var b strings.Builder
		b.WriteString(`{"type":"record","name":"sluice_reference_wrapper_","fields":[`)
		for i, r := range refs {
			fmt.Fprintf(&b, `{"name":"r%d","type":%s},`, i, r)
		}
		fmt.Fprintf(&b, `{"name":"main","type":%s}]}`, schema)
		spec = b.String()
	}
	// goavro expands every field default when it compiles: exponential
	// for nested shared types, and lookups (read-only callers) reach here
	// without the schema limits.
	if err := avro.CheckDefaults(spec); err != nil {
		return err
	}
	return newCodec(spec)
}

// newCodec runs goavro's parser, turning its panics (it has some on
// hostile recursive defaults) into errors: a schema must never take the
// registry down.
func newCodec(spec string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("schema cannot be parsed (parser failure: %v)", p)
		}
	}()
	if _, cerr := goavro.NewCodec(spec); cerr != nil {
		return trimGoavro(cerr)
	}
	return nil
}

func trimGoavro(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "cannot create Codec: ")
	return errors.New(msg)
}

// Canonical returns the registry's canonical form of an Avro schema: JSON
// with object keys sorted, no insignificant whitespace, every name a full
// name (namespace attributes folded in), and `{"type":"int"}` written as
// "int". Unlike Avro's Parsing Canonical Form it keeps defaults, docs,
// aliases, order, logical types and custom properties, because two schemas
// that differ in those are different schemas to a registry. Field order
// is kept: it is significant in Avro.
func Canonical(schema string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(schema))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("schema is not JSON: %w", err)
	}
	if dec.More() {
		return "", errors.New("schema is not JSON: trailing data after the schema")
	}
	n, err := normalize(v, "", 0)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(n); err != nil {
		return "", fmt.Errorf("encoding canonical form: %w", err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// maxDepth bounds recursion on hostile input.
const maxDepth = 256

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

func normalize(v any, ns string, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("schema nests too deeply")
	}
	switch t := v.(type) {
	case string:
		if primitives[t] {
			return t, nil
		}
		return fullName(t, ns), nil
	case []any:
		out := make([]any, len(t))
		for i, b := range t {
			n, err := normalize(b, ns, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		return normalizeObject(t, ns, depth)
	default:
		return nil, fmt.Errorf("unexpected JSON value %v where a schema was expected", v)
	}
}

func normalizeObject(m map[string]any, ns string, depth int) (any, error) {
	typ, ok := m["type"]
	if !ok {
		return nil, errors.New(`schema object has no "type"`)
	}
	ts, isString := typ.(string)
	if !isString {
		// {"type": {...}} or {"type": [...]}: a wrapped schema.
		if len(m) == 1 {
			return normalize(typ, ns, depth+1)
		}
		n, err := normalize(typ, ns, depth+1)
		if err != nil {
			return nil, err
		}
		out := copyMap(m)
		out["type"] = n
		return out, nil
	}
	out := copyMap(m)
	switch ts {
	case "record", "error", "enum", "fixed":
		name, _ := m["name"].(string)
		if name == "" {
			return nil, fmt.Errorf("%s schema has no name", ts)
		}
		typeNS := ns
		if nsv, ok := m["namespace"].(string); ok {
			typeNS = nsv
		}
		full := fullName(name, typeNS)
		delete(out, "namespace")
		out["name"] = full
		inner := namespaceOf(full)
		if al, ok := m["aliases"].([]any); ok {
			out["aliases"] = qualifyAliases(al, inner)
		}
		if ts == "record" || ts == "error" {
			fields, ok := m["fields"].([]any)
			if !ok {
				return nil, fmt.Errorf("record %s has no fields array", full)
			}
			nf := make([]any, len(fields))
			for i, f := range fields {
				fm, ok := f.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("record %s field %d is not an object", full, i)
				}
				fo := copyMap(fm)
				ft, ok := fm["type"]
				if !ok {
					return nil, fmt.Errorf("record %s field %d has no type", full, i)
				}
				n, err := normalize(ft, inner, depth+1)
				if err != nil {
					return nil, err
				}
				fo["type"] = n
				nf[i] = fo
			}
			out["fields"] = nf
		}
		return out, nil
	case "array":
		items, ok := m["items"]
		if !ok {
			return nil, errors.New(`array schema has no "items"`)
		}
		n, err := normalize(items, ns, depth+1)
		if err != nil {
			return nil, err
		}
		out["items"] = n
		return out, nil
	case "map":
		values, ok := m["values"]
		if !ok {
			return nil, errors.New(`map schema has no "values"`)
		}
		n, err := normalize(values, ns, depth+1)
		if err != nil {
			return nil, err
		}
		out["values"] = n
		return out, nil
	default:
		if len(m) == 1 {
			return normalize(ts, ns, depth+1)
		}
		if !primitives[ts] {
			out["type"] = fullName(ts, ns)
		}
		return out, nil
	}
}

func qualifyAliases(al []any, ns string) []any {
	out := make([]any, len(al))
	for i, a := range al {
		if s, ok := a.(string); ok {
			out[i] = fullName(s, ns)
		} else {
			out[i] = a
		}
	}
	return out
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Reference is a named type defined under another subject.
type Reference struct {
	Name    string
	Subject string
	Version int
}

// IdentityKey is the string two registrations compare equal on: the
// canonical schema plus its references, sorted by name.
func IdentityKey(schemaType, canonical string, refs []Reference) string {
	if schemaType == "" {
		schemaType = "AVRO"
	}
	if len(refs) == 0 {
		return schemaType + "|" + canonical
	}
	r := append([]Reference(nil), refs...)
	sort.Slice(r, func(i, j int) bool { return r[i].Name < r[j].Name })
	var b strings.Builder
	b.WriteString(schemaType)
	b.WriteByte('|')
	b.WriteString(canonical)
	for _, x := range r {
		b.WriteString("|" + x.Name + "=" + x.Subject + "/" + strconv.Itoa(x.Version))
	}
	return b.String()
}
