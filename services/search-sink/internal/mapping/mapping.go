// Package mapping generates Elasticsearch/OpenSearch field mappings from an
// Avro schema: records as objects, int/long/float/double as their numeric
// types, timestamp logical types as date, strings as keyword or text.
package mapping

import (
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
)

// StringMode says how Avro strings are mapped.
type StringMode string

// String modes.
const (
	StringKeyword     StringMode = "keyword"      // exact values, aggregations
	StringText        StringMode = "text"         // full text search
	StringTextKeyword StringMode = "text+keyword" // text with a .keyword sub-field
)

// Options tune mapping generation.
type Options struct {
	Strings    StringMode
	Decimal    document.DecimalMode
	OpenSearch bool // maps use flat_object instead of flattened
}

// Properties returns the "properties" object for a record schema (or
// {"value": ...} for non-record schemas, matching document.Builder).
func Properties(root *document.Node, o Options) map[string]any {
	props := map[string]any{}
	if rec := document.TopRecord(root); rec != nil {
		g := gen{o: o, seen: map[*document.Node]int{}}
		for _, f := range rec.Fields {
			if m := g.field(f.Node, 0); m != nil {
				props[f.Name] = m
			}
		}
		return props
	}
	g := gen{o: o, seen: map[*document.Node]int{}}
	if m := g.field(root, 0); m != nil {
		props["value"] = m
	}
	return props
}

type gen struct {
	o    Options
	seen map[*document.Node]int
}

func (g *gen) field(n *document.Node, depth int) map[string]any {
	if depth > 20 {
		return nil
	}
	switch n.Logical {
	case "timestamp-millis", "timestamp-micros", "timestamp-nanos", "local-timestamp-millis", "local-timestamp-micros":
		return map[string]any{"type": "date"}
	case "date":
		return map[string]any{"type": "date", "format": "strict_date"}
	case "time-millis", "time-micros", "uuid":
		return map[string]any{"type": "keyword"}
	case "decimal":
		if g.o.Decimal == document.DecimalNumber {
			return map[string]any{"type": "double"}
		}
		return map[string]any{"type": "keyword"}
	}
	switch n.Type {
	case "boolean":
		return map[string]any{"type": "boolean"}
	case "int":
		return map[string]any{"type": "integer"}
	case "long":
		return map[string]any{"type": "long"}
	case "float":
		return map[string]any{"type": "float"}
	case "double":
		return map[string]any{"type": "double"}
	case "bytes", "fixed":
		return map[string]any{"type": "binary"}
	case "enum":
		return map[string]any{"type": "keyword"}
	case "string":
		switch g.o.Strings {
		case StringText:
			return map[string]any{"type": "text"}
		case StringTextKeyword:
			return map[string]any{"type": "text", "fields": map[string]any{"keyword": map[string]any{"type": "keyword", "ignore_above": 256}}}
		default:
			return map[string]any{"type": "keyword", "ignore_above": 8191}
		}
	case "array":
		return g.field(n.Items, depth+1) // arrays are implicit in Elasticsearch
	case "map":
		if g.o.OpenSearch {
			return map[string]any{"type": "flat_object"}
		}
		return map[string]any{"type": "flattened"}
	case "record":
		if g.seen[n] > 0 { // recursive type: stop and let dynamic mapping handle depth
			return map[string]any{"type": "object", "enabled": false}
		}
		g.seen[n]++
		defer func() { g.seen[n]-- }()
		props := map[string]any{}
		for _, f := range n.Fields {
			if m := g.field(f.Node, depth+1); m != nil {
				props[f.Name] = m
			}
		}
		return map[string]any{"properties": props}
	case "union":
		var nonNull []*document.Node
		for _, b := range n.Branches {
			if b.Type != "null" {
				nonNull = append(nonNull, b)
			}
		}
		if len(nonNull) == 1 {
			return g.field(nonNull[0], depth+1)
		}
		numeric := len(nonNull) > 0
		for _, b := range nonNull {
			switch b.Type {
			case "int", "long", "float", "double":
			default:
				numeric = false
			}
		}
		if numeric {
			return map[string]any{"type": "double"}
		}
		return nil // mixed union: leave it to dynamic mapping
	}
	return nil
}
