package document

import (
	"fmt"

	"github.com/sluicehq/sluice/pkg/avro"
)

// ParseSchema parses schema text into pkg/avro's schema model, which
// documents and mappings walk (named types are shared, so walkers that
// memoise on avro.Type stay linear in the schema).
func ParseSchema(schema string) (avro.Type, error) {
	s, err := avro.ParseSchema(schema)
	if err != nil {
		return avro.Type{}, fmt.Errorf("parsing avro schema: %w", err)
	}
	return s.Root(), nil
}

// TopRecord returns the record schema a document is made of: the schema
// itself, or the only non-null branch of a top-level union; the zero
// Type if neither is a record.
func TopRecord(n avro.Type) avro.Type {
	if n.Kind() == avro.Union {
		n = n.SoleBranch()
	}
	if !n.IsZero() && n.Kind() == avro.Record {
		return n
	}
	return avro.Type{}
}
