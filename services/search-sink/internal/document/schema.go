package document

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Node is a parsed Avro schema node, just enough to walk goavro's native
// values and to generate mappings.
type Node struct {
	Type     string // record, enum, array, map, fixed, union, or a primitive name
	Name     string // full name of named types
	Logical  string // logicalType, if any
	Scale    int    // decimal scale
	Fields   []Field
	Items    *Node    // array
	Values   *Node    // map
	Branches []*Node  // union
	Symbols  []string // enum
	Size     int      // fixed
}

// Field is one field of a record.
type Field struct {
	Name string
	Node *Node
}

// UnionName is the key goavro uses for this branch in a native union map.
func (n *Node) UnionName() string {
	switch n.Type {
	case "record", "enum", "fixed":
		return n.Name
	}
	if n.Logical != "" && n.Type != "array" && n.Type != "map" {
		return n.Type + "." + n.Logical
	}
	return n.Type
}

// ParseSchema parses Avro schema JSON into a Node tree. Named types may be
// referenced (and recursion is allowed: references share the named Node).
func ParseSchema(schema string) (*Node, error) {
	var raw any
	if err := json.Unmarshal([]byte(schema), &raw); err != nil {
		return nil, fmt.Errorf("parsing avro schema: %w", err)
	}
	p := parser{named: map[string]*Node{}}
	return p.parse(raw, "")
}

type parser struct{ named map[string]*Node }

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func (p *parser) parse(raw any, ns string) (*Node, error) {
	switch v := raw.(type) {
	case string:
		switch v {
		case "null", "boolean", "int", "long", "float", "double", "bytes", "string":
			return &Node{Type: v}, nil
		}
		if n, ok := p.named[fullName(v, ns)]; ok {
			return n, nil
		}
		if n, ok := p.named[v]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("unknown avro type %q", v)
	case []any:
		u := &Node{Type: "union"}
		for _, b := range v {
			bn, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			u.Branches = append(u.Branches, bn)
		}
		return u, nil
	case map[string]any:
		t, _ := v["type"].(string)
		logical, _ := v["logicalType"].(string)
		switch t {
		case "record", "error", "enum", "fixed":
			name, _ := v["name"].(string)
			if s, ok := v["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = s
			}
			fn := fullName(name, ns)
			if i := strings.LastIndex(fn, "."); i >= 0 {
				ns = fn[:i]
			}
			n := &Node{Type: t, Name: fn, Logical: logical}
			if t == "error" {
				n.Type = "record"
			}
			if sc, ok := v["scale"].(float64); ok {
				n.Scale = int(sc)
			}
			if sz, ok := v["size"].(float64); ok {
				n.Size = int(sz)
			}
			if syms, ok := v["symbols"].([]any); ok {
				for _, sy := range syms {
					s, _ := sy.(string)
					n.Symbols = append(n.Symbols, s)
				}
			}
			p.named[fn] = n
			if n.Type == "record" {
				fields, _ := v["fields"].([]any)
				for _, f := range fields {
					fm, ok := f.(map[string]any)
					if !ok {
						return nil, fmt.Errorf("record %s: field is not an object", fn)
					}
					fname, _ := fm["name"].(string)
					fnode, err := p.parse(fm["type"], ns)
					if err != nil {
						return nil, fmt.Errorf("record %s field %s: %w", fn, fname, err)
					}
					n.Fields = append(n.Fields, Field{Name: fname, Node: fnode})
				}
			}
			return n, nil
		case "array":
			items, err := p.parse(v["items"], ns)
			if err != nil {
				return nil, err
			}
			return &Node{Type: "array", Items: items}, nil
		case "map":
			vals, err := p.parse(v["values"], ns)
			if err != nil {
				return nil, err
			}
			return &Node{Type: "map", Values: vals}, nil
		case "":
			// {"type": {...}} nests a full schema
			return p.parse(v["type"], ns)
		default:
			n, err := p.parse(t, ns)
			if err != nil {
				return nil, err
			}
			if logical == "" {
				return n, nil
			}
			c := *n
			c.Logical = logical
			if sc, ok := v["scale"].(float64); ok {
				c.Scale = int(sc)
			}
			return &c, nil
		}
	}
	return nil, fmt.Errorf("unexpected avro schema element %T", raw)
}
