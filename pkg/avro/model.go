package avro

import (
	"fmt"
	"strings"
)

// Kind is the kind of an Avro type.
type Kind uint8

// The Avro kinds ("error" schemas are records).
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
	Fixed
	Union
)

var kindNames = [...]string{"null", "boolean", "int", "long", "float", "double", "bytes", "string", "record", "enum", "array", "map", "fixed", "union"}

// String is the Avro type name ("record", "long", ...).
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Named reports whether types of kind k have names (record, enum, fixed).
func (k Kind) Named() bool { return k == Record || k == Enum || k == Fixed }

// Schema is a parsed Avro schema: the package's one model of a schema,
// shared by the codecs, the registry's compatibility checker, the search
// sink's mappings and the S3 sink's field checks.
//
// Named types are parsed once and shared by every use (recursive types
// form cycles), so the model is linear in the schema text even when the
// trees its values form are not. A walker that follows every use of a
// named type is not: it should memoise by Type (Types are comparable and
// the same named type is always the same Type), or bound its work with
// SchemaLimits first.
type Schema struct {
	root  *node
	named map[string]*node
}

// ParseSchema parses an Avro schema text after refs, the texts of the
// schemas that define named types it uses (Confluent references,
// dependencies first). Field defaults are noted (Field.HasDefault) but
// not checked against their types: NewCodec does that. Names are full
// names (namespaces applied) and aliases of named types full names too.
//
// It refuses what no Avro parser accepts: text that is not JSON, a type
// without "type", unknown or twice-defined names, duplicate fields, enum
// symbols or union branches, unions in unions, invalid fixed sizes or
// decimal precision/scale, and text nested deeper than 256 levels. The
// time taken is linear in the texts; call SchemaLimits.Check first to
// bound what walkers that expand named types will do.
func ParseSchema(text string, refs ...string) (*Schema, error) {
	p := &parser{named: map[string]*node{}, model: true}
	for i, r := range refs {
		if _, err := p.parseText(r); err != nil {
			return nil, fmt.Errorf("reference %d: %w", i, err)
		}
	}
	root, err := p.parseText(text)
	if err != nil {
		return nil, err
	}
	return &Schema{root: root, named: p.named}, nil
}

// Root is the schema's top-level type.
func (s *Schema) Root() Type { return Type{s.root} }

// Named returns the named type with full name name, defined by the
// schema or its references.
func (s *Schema) Named(name string) (Type, bool) {
	n, ok := s.named[name]
	return Type{n}, ok
}

// Root is the codec's schema as a model.
func (c *Codec) Root() Type { return Type{c.root} }

// Type is a read-only view of one type of a parsed schema. The zero Type
// is no type (IsZero). Types are comparable: two uses of one named type
// are the same Type, which is what walkers memoise on.
type Type struct{ n *node }

// IsZero reports whether t is no type (the Items of a record, ...).
func (t Type) IsZero() bool { return t.n == nil }

// Kind is the type's kind.
func (t Type) Kind() Kind { return t.n.kind }

// Name is the full name of a named type ("" for others).
func (t Type) Name() string { return t.n.name }

// ShortName is the name without its namespace.
func (t Type) ShortName() string {
	if i := strings.LastIndexByte(t.n.name, '.'); i >= 0 {
		return t.n.name[i+1:]
	}
	return t.n.name
}

// Aliases are a named type's aliases, as full names. The slice is shared:
// do not modify it.
func (t Type) Aliases() []string { return t.n.aliases }

// Logical is the logical type ("timestamp-millis", "decimal", "uuid",
// ...) when it is one this package knows on the primitive it annotates,
// else "" (the specification says to ignore the others).
func (t Type) Logical() string {
	if t.n.logical == lNone {
		return ""
	}
	return t.n.logName
}

// Precision and Scale are a decimal's (0 for other types).
func (t Type) Precision() int { return t.n.precision }

// Scale is a decimal's scale (0 for other types).
func (t Type) Scale() int { return t.n.scale }

// Size is a fixed type's size in bytes.
func (t Type) Size() int { return t.n.size }

// NumFields is the number of a record's fields.
func (t Type) NumFields() int { return len(t.n.fields) }

// Field is a record's i-th field.
func (t Type) Field(i int) Field { return Field{t.n.fields[i]} }

// FieldByName returns a record's field called name.
func (t Type) FieldByName(name string) (Field, bool) {
	i, ok := t.n.fieldIndex[name]
	if !ok {
		return Field{}, false
	}
	return Field{t.n.fields[i]}, true
}

// Symbols are an enum's symbols in order. The slice is shared: do not
// modify it.
func (t Type) Symbols() []string { return t.n.symbols }

// HasEnumDefault reports whether an enum has a default symbol (readers
// then accept symbols they do not know).
func (t Type) HasEnumDefault() bool { return t.n.hasEnumDefault }

// Items is an array's item type or a map's value type.
func (t Type) Items() Type { return Type{t.n.items} }

// NumBranches is the number of a union's branches.
func (t Type) NumBranches() int { return len(t.n.branches) }

// Branch is a union's i-th branch.
func (t Type) Branch(i int) Type { return Type{t.n.branches[i]} }

// BranchByKey finds a union's branch by the key of goavro's native form
// (UnionKey), the Avro JSON encoding's key, or the kind name; the first
// branch that has it wins. It takes constant time.
func (t Type) BranchByKey(k string) (Type, bool) {
	b, ok := t.n.byKey[k]
	return Type{b}, ok
}

// SoleBranch is a union's only non-null branch (["null", T] is T), or
// the zero Type when it has several or none, or t is not a union.
func (t Type) SoleBranch() Type { return Type{t.n.sole} }

// UnionKey is the key goavro's native form uses for a value of this type
// inside a union: "long.timestamp-millis", "com.acme.Order", "array".
func (t Type) UnionKey() string { return t.n.unionKey }

// MinSize is a lower bound on the bytes a value of the type takes in
// Avro binary.
func (t Type) MinSize() int { return t.n.minSize }

// String describes the type for messages: "record com.acme.Order",
// "decimal(9,2)", "one of [null, string]".
func (t Type) String() string {
	if t.n == nil {
		return "<none>"
	}
	return t.n.describe()
}

// Field is a read-only view of one record field.
type Field struct{ f *field }

// Name is the field's name.
func (f Field) Name() string { return f.f.name }

// Aliases are the field's aliases. The slice is shared: do not modify it.
func (f Field) Aliases() []string { return f.f.aliases }

// Type is the field's type.
func (f Field) Type() Type { return Type{f.f.typ} }

// HasDefault reports whether the field has a default value.
func (f Field) HasDefault() bool { return f.f.hasDefault }

// SymbolIndex returns the position of symbol s in an enum.
func (t Type) SymbolIndex(s string) (int, bool) {
	i, ok := t.n.symbolIndex[s]
	return i, ok
}
