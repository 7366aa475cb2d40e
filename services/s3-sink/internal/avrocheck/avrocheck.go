// Package avrocheck validates Avro binary data against a schema without
// building Go values: one pass over the bytes, no allocation. The sink
// uses it to reject corrupt records before copying their bytes verbatim
// into OCF blocks, which is several times cheaper than decoding them.
package avrocheck

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

type kind uint8

const (
	kNull kind = iota
	kBoolean
	kInt
	kLong
	kFloat
	kDouble
	kBytes
	kString
	kRecord
	kEnum
	kArray
	kMap
	kFixed
	kUnion
)

type node struct {
	kind   kind
	name   string  // full name of named types
	fields []*node // record fields, union branches
	items  *node   // array items, map values
	size   int     // fixed size, enum symbol count
}

// Validator checks data written with one schema.
type Validator struct{ root *node }

// New parses a schema (JSON, as the registry stores it).
func New(schema string) (*Validator, error) {
	var v any
	if err := json.Unmarshal([]byte(schema), &v); err != nil {
		return nil, fmt.Errorf("avrocheck: schema is not JSON: %w", err)
	}
	p := &parser{names: map[string]*node{}}
	root, err := p.parse(v, "")
	if err != nil {
		return nil, err
	}
	return &Validator{root: root}, nil
}

type parser struct{ names map[string]*node }

var primitives = map[string]kind{
	"null": kNull, "boolean": kBoolean, "int": kInt, "long": kLong, "float": kFloat,
	"double": kDouble, "bytes": kBytes, "string": kString,
}

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func (p *parser) parse(v any, ns string) (*node, error) {
	switch t := v.(type) {
	case string:
		if k, ok := primitives[t]; ok {
			return &node{kind: k}, nil
		}
		if n, ok := p.names[fullName(t, ns)]; ok {
			return n, nil
		}
		if n, ok := p.names[t]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("avrocheck: unknown type %q", t)
	case []any:
		n := &node{kind: kUnion}
		for _, b := range t {
			c, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			n.fields = append(n.fields, c)
		}
		if len(n.fields) == 0 {
			return nil, errors.New("avrocheck: empty union")
		}
		return n, nil
	case map[string]any:
		typ, _ := t["type"].(string)
		if typ == "" {
			if inner, ok := t["type"]; ok {
				return p.parse(inner, ns) // {"type": {...}} or {"type": [...]}
			}
			return nil, errors.New("avrocheck: type object without type")
		}
		if k, ok := primitives[typ]; ok {
			return &node{kind: k}, nil // logical types keep their underlying encoding
		}
		named := func(k kind) (*node, string, error) {
			name, _ := t["name"].(string)
			if name == "" {
				return nil, "", fmt.Errorf("avrocheck: %s without a name", typ)
			}
			if s, ok := t["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = s
			}
			full := fullName(name, ns)
			if i := strings.LastIndex(full, "."); i >= 0 {
				ns = full[:i]
			} else {
				ns = ""
			}
			n := &node{kind: k, name: full}
			p.names[full] = n
			return n, ns, nil
		}
		switch typ {
		case "record", "error":
			n, ns, err := named(kRecord)
			if err != nil {
				return nil, err
			}
			fields, _ := t["fields"].([]any)
			for _, f := range fields {
				fm, ok := f.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("avrocheck: record %s: field is not an object", n.name)
				}
				c, err := p.parse(fm["type"], ns)
				if err != nil {
					return nil, fmt.Errorf("avrocheck: record %s field %v: %w", n.name, fm["name"], err)
				}
				n.fields = append(n.fields, c)
			}
			return n, nil
		case "enum":
			n, _, err := named(kEnum)
			if err != nil {
				return nil, err
			}
			syms, _ := t["symbols"].([]any)
			n.size = len(syms)
			return n, nil
		case "fixed":
			n, _, err := named(kFixed)
			if err != nil {
				return nil, err
			}
			size, ok := t["size"].(float64)
			if !ok || size < 0 || size != math.Trunc(size) {
				return nil, fmt.Errorf("avrocheck: fixed %s: bad size", n.name)
			}
			n.size = int(size)
			return n, nil
		case "array":
			items, err := p.parse(t["items"], ns)
			if err != nil {
				return nil, err
			}
			return &node{kind: kArray, items: items}, nil
		case "map":
			values, err := p.parse(t["values"], ns)
			if err != nil {
				return nil, err
			}
			return &node{kind: kMap, items: values}, nil
		default:
			if n, ok := p.names[fullName(typ, ns)]; ok {
				return n, nil
			}
			if n, ok := p.names[typ]; ok {
				return n, nil
			}
			return nil, fmt.Errorf("avrocheck: unknown type %q", typ)
		}
	default:
		return nil, fmt.Errorf("avrocheck: unexpected schema element %T", v)
	}
}

// Error explains why data is invalid.
type Error struct {
	Offset int
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("avro data invalid at byte %d: %s", e.Offset, e.Msg)
}

// maxDepth bounds recursion for recursive schemas fed hostile data.
const maxDepth = 256

// Validate reports whether b is exactly one datum of the schema.
func (v *Validator) Validate(b []byte) error {
	n, err := check(v.root, b, 0, 0)
	if err != nil {
		return err
	}
	if n != len(b) {
		return &Error{Offset: n, Msg: fmt.Sprintf("%d trailing bytes after the datum", len(b)-n)}
	}
	return nil
}

func varint(b []byte, off, maxLen int) (int64, int, error) {
	var u uint64
	var shift uint
	for i := 0; i < maxLen; i++ {
		if off+i >= len(b) {
			return 0, 0, &Error{Offset: off, Msg: "truncated varint"}
		}
		c := b[off+i]
		u |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1), off + i + 1, nil
		}
		shift += 7
	}
	return 0, 0, &Error{Offset: off, Msg: "varint too long"}
}

func check(n *node, b []byte, off, depth int) (int, error) {
	if depth > maxDepth {
		return 0, &Error{Offset: off, Msg: "nesting too deep"}
	}
	switch n.kind {
	case kNull:
		return off, nil
	case kBoolean:
		if off >= len(b) {
			return 0, &Error{Offset: off, Msg: "truncated boolean"}
		}
		if b[off] > 1 {
			return 0, &Error{Offset: off, Msg: "boolean is not 0 or 1"}
		}
		return off + 1, nil
	case kInt:
		v, next, err := varint(b, off, binary.MaxVarintLen32)
		if err != nil {
			return 0, err
		}
		if v < math.MinInt32 || v > math.MaxInt32 {
			return 0, &Error{Offset: off, Msg: "int out of range"}
		}
		return next, nil
	case kLong:
		_, next, err := varint(b, off, binary.MaxVarintLen64)
		return next, err
	case kFloat:
		if off+4 > len(b) {
			return 0, &Error{Offset: off, Msg: "truncated float"}
		}
		return off + 4, nil
	case kDouble:
		if off+8 > len(b) {
			return 0, &Error{Offset: off, Msg: "truncated double"}
		}
		return off + 8, nil
	case kBytes, kString:
		l, next, err := varint(b, off, binary.MaxVarintLen64)
		if err != nil {
			return 0, err
		}
		if l < 0 || l > int64(len(b)-next) {
			return 0, &Error{Offset: off, Msg: fmt.Sprintf("length %d exceeds the remaining %d bytes", l, len(b)-next)}
		}
		return next + int(l), nil
	case kFixed:
		if off+n.size > len(b) {
			return 0, &Error{Offset: off, Msg: "truncated fixed"}
		}
		return off + n.size, nil
	case kEnum:
		v, next, err := varint(b, off, binary.MaxVarintLen32)
		if err != nil {
			return 0, err
		}
		if v < 0 || v >= int64(n.size) {
			return 0, &Error{Offset: off, Msg: fmt.Sprintf("enum index %d out of range", v)}
		}
		return next, nil
	case kUnion:
		v, next, err := varint(b, off, binary.MaxVarintLen64)
		if err != nil {
			return 0, err
		}
		if v < 0 || v >= int64(len(n.fields)) {
			return 0, &Error{Offset: off, Msg: fmt.Sprintf("union index %d out of range", v)}
		}
		return check(n.fields[v], b, next, depth+1)
	case kRecord:
		var err error
		for _, f := range n.fields {
			if off, err = check(f, b, off, depth+1); err != nil {
				return 0, err
			}
		}
		return off, nil
	case kArray, kMap:
		var keys map[string]struct{} // duplicate map keys are invalid (goavro rejects them)
		for {
			count, next, err := varint(b, off, binary.MaxVarintLen64)
			if err != nil {
				return 0, err
			}
			off = next
			if count == 0 {
				return off, nil
			}
			if count < 0 {
				if count == math.MinInt64 {
					return 0, &Error{Offset: off, Msg: "bad block count"}
				}
				count = -count
				if _, off, err = varint(b, off, binary.MaxVarintLen64); err != nil { // block byte size
					return 0, err
				}
			}
			// Every item takes at least one byte unless it is null-like;
			// bound the count by what is left to stop hostile counts.
			zw := n.kind == kArray && zeroWidth(n.items, 0)
			if count > int64(len(b)-off) && !zw {
				return 0, &Error{Offset: off, Msg: fmt.Sprintf("block count %d exceeds the remaining bytes", count)}
			}
			if count > 1<<20 && zw {
				return 0, &Error{Offset: off, Msg: fmt.Sprintf("block count %d too large", count)}
			}
			for i := int64(0); i < count; i++ {
				if n.kind == kMap {
					start := off
					if off, err = check(stringNode, b, off, depth+1); err != nil {
						return 0, err
					}
					_, ks, _ := varint(b, start, binary.MaxVarintLen64)
					if keys == nil {
						keys = map[string]struct{}{}
					}
					k := string(b[ks:off])
					if _, dup := keys[k]; dup {
						return 0, &Error{Offset: start, Msg: fmt.Sprintf("duplicate map key %q", k)}
					}
					keys[k] = struct{}{}
				}
				if off, err = check(n.items, b, off, depth+1); err != nil {
					return 0, err
				}
			}
		}
	}
	return 0, &Error{Offset: off, Msg: "unknown schema node"}
}

var stringNode = &node{kind: kString}

func zeroWidth(n *node, depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch n.kind {
	case kNull:
		return true
	case kFixed:
		return n.size == 0
	case kRecord:
		for _, f := range n.fields {
			if !zeroWidth(f, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}
