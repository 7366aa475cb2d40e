package partition

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/pkg/avro"
)

// ErrNotInSchema is returned by CheckSchema when no record of the schema
// can carry a usable value at the field path: a configuration problem
// (the partitioning or timestamp field is not in this schema), unlike a
// value missing from one record.
var ErrNotInSchema = errors.New("field not usable in schema")

// ScalarKinds are the Avro types the field partitioner can name a path
// with (enums decode to strings, fixed to bytes).
func ScalarKinds(k avro.Kind) bool {
	switch k {
	case avro.Record, avro.Array, avro.Map, avro.Union:
		return false
	}
	return true
}

// TimeKinds are the Avro types FieldTime reads a time from.
func TimeKinds(k avro.Kind) bool {
	switch k {
	case avro.Long, avro.Int, avro.Double, avro.String:
		return true
	}
	return false
}

// CheckSchema parses schema text (pkg/avro's model) and checks it as
// CheckType does.
func CheckSchema(schema string, path []string, leaf func(avro.Kind) bool) error {
	s, err := avro.ParseSchema(schema)
	if err != nil {
		return fmt.Errorf("parsing schema: %w", err)
	}
	return CheckType(s.Root(), path, leaf)
}

// CheckType reports (ErrNotInSchema) whether root has no record type
// along path with a field whose type, or one of whose union branches, is
// accepted by leaf. Field lookups see through unions; each path step
// looks at the candidate types only, each record once: linear in the
// schema's size per step.
func CheckType(root avro.Type, path []string, leaf func(avro.Kind) bool) error {
	cands := concrete(nil, root)
	name := strings.Join(path, ".")
	for i, field := range path {
		var next []avro.Type
		seen := map[avro.Type]bool{}
		for _, c := range cands {
			if c.Kind() != avro.Record || seen[c] {
				continue
			}
			seen[c] = true
			if f, ok := c.FieldByName(field); ok {
				next = concrete(next, f.Type())
			}
		}
		if len(next) == 0 {
			return fmt.Errorf("%w: %s: no record type in the schema has a field %s", ErrNotInSchema, name, strings.Join(path[:i+1], "."))
		}
		cands = next
	}
	for _, c := range cands {
		if leaf(c.Kind()) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s has no branch of a usable type", ErrNotInSchema, name)
}

// concrete appends t, or a union's branches (unions hold no unions), to
// out: the types a value at t can have.
func concrete(out []avro.Type, t avro.Type) []avro.Type {
	if t.Kind() != avro.Union {
		return append(out, t)
	}
	for i := range t.NumBranches() {
		out = append(out, t.Branch(i))
	}
	return out
}
