package avro

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Canonical returns the schema registry's canonical form of an Avro schema: JSON
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
	n, err := canonicalize(v, "", 0)
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

func canonicalize(v any, ns string, depth int) (any, error) {
	if depth > maxParseDepth {
		return nil, errors.New("schema nests too deeply")
	}
	switch t := v.(type) {
	case string:
		if _, ok := primitives[t]; ok {
			return t, nil
		}
		return fullName(t, ns), nil
	case []any:
		out := make([]any, len(t))
		for i, b := range t {
			n, err := canonicalize(b, ns, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		return canonicalObject(t, ns, depth)
	default:
		return nil, fmt.Errorf("unexpected JSON value %v where a schema was expected", v)
	}
}

func canonicalObject(m map[string]any, ns string, depth int) (any, error) {
	typ, ok := m["type"]
	if !ok {
		return nil, errors.New(`schema object has no "type"`)
	}
	ts, isString := typ.(string)
	if !isString {
		// {"type": {...}} or {"type": [...]}: a wrapped schema.
		if len(m) == 1 {
			return canonicalize(typ, ns, depth+1)
		}
		n, err := canonicalize(typ, ns, depth+1)
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
				n, err := canonicalize(ft, inner, depth+1)
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
		n, err := canonicalize(items, ns, depth+1)
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
		n, err := canonicalize(values, ns, depth+1)
		if err != nil {
			return nil, err
		}
		out["values"] = n
		return out, nil
	default:
		if len(m) == 1 {
			return canonicalize(ts, ns, depth+1)
		}
		if _, ok := primitives[ts]; !ok {
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
