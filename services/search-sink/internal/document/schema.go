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

	// Computed once by ParseSchema, so that walking values costs the same
	// per value whatever the schema: the only non-null branch of a union
	// (nil if several), its branches by goavro name and type name, and a
	// lower bound on the encoded size of a value.
	sole     *Node
	byName   map[string]*Node
	minBytes int
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
// referenced (and recursion is allowed: references share the named Node),
// so the graph is linear in the schema text even when the trees its values
// form are not; everything here visits each node once.
func ParseSchema(schema string) (*Node, error) {
	var raw any
	if err := json.Unmarshal([]byte(schema), &raw); err != nil {
		return nil, fmt.Errorf("parsing avro schema: %w", err)
	}
	p := parser{named: map[string]*Node{}}
	n, err := p.parse(raw, "")
	if err != nil {
		return nil, err
	}
	setMinBytes(n, map[*Node]bool{})
	return n, nil
}

// maxMinBytes caps the size bounds (a fixed of 2^30 bytes in every field
// of a wide record would overflow).
const maxMinBytes = 1 << 40

// setMinBytes fills minBytes for n and every node under it, each once; a
// record met again while its fields are being summed (a recursive type)
// counts 0 there, which keeps every result a lower bound.
func setMinBytes(n *Node, state map[*Node]bool) int {
	if n == nil {
		return 0
	}
	if done, seen := state[n]; seen {
		if done {
			return n.minBytes
		}
		return 0
	}
	state[n] = false
	m := 0
	switch n.Type {
	case "boolean", "int", "long", "bytes", "string", "enum", "union":
		m = 1
	case "float":
		m = 4
	case "double":
		m = 8
	case "fixed":
		m = max(n.Size, 0)
	case "array", "map":
		m = 1 // an empty one is a 0 count
	case "record":
		for _, f := range n.Fields {
			m = min(m+setMinBytes(f.Node, state), maxMinBytes)
		}
	}
	setMinBytes(n.Items, state)
	setMinBytes(n.Values, state)
	for _, b := range n.Branches {
		setMinBytes(b, state)
	}
	n.minBytes = m
	state[n] = true
	return m
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
		u := &Node{Type: "union", byName: map[string]*Node{}}
		nonNull := 0
		for _, b := range v {
			bn, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			u.Branches = append(u.Branches, bn)
			// The first branch whose goavro name or type is the key wins.
			for _, k := range [2]string{bn.UnionName(), bn.Type} {
				if _, dup := u.byName[k]; !dup {
					u.byName[k] = bn
				}
			}
			if bn.Type != "null" {
				nonNull++
				u.sole = bn
			}
		}
		if nonNull != 1 {
			u.sole = nil
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
