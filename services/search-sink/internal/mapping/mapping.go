// Package mapping generates Elasticsearch/OpenSearch field mappings from an
// Avro schema: records as objects, int/long/float/double as their numeric
// types, timestamp logical types as date, strings as keyword or text.
//
// The mapping is linear in the schema and bounded: a schema of shared
// named types (T0 {a: T1, b: T1}, T1 {a: T2, b: T2}, ...) describes a tree
// of 2^depth objects in a few hundred bytes, and a recursive type an
// infinite one. Named types are measured once; past Limits.TotalFields
// mapped fields or Limits.Depth object levels (Elasticsearch's own
// index.mapping.total_fields.limit and index.mapping.depth.limit defaults)
// the remaining subtree is mapped as {"type":"object","enabled":false}: kept
// in _source, not indexed.
package mapping

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/service"
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

// Limits bound the mapping generated from a schema.
type Limits struct {
	TotalFields int `env:"SEARCH_SINK_MAPPING_TOTAL_FIELDS_LIMIT" default:"1000" help:"fields (objects, leaves and multi-fields, as Elasticsearch counts them, including @timestamp and the Kafka metadata) an index template maps from a schema; past it the remaining subtrees are mapped as disabled objects (kept in _source, not indexed). Keep it at most the indices' index.mapping.total_fields.limit (1000 by default)"`
	Depth       int `env:"SEARCH_SINK_MAPPING_DEPTH_LIMIT" default:"20" help:"object levels an index template maps from a schema (the root is 1); a record at this level is mapped as a disabled object. Keep it at most index.mapping.depth.limit (20 by default)"`
}

// Default limits: Elasticsearch's own defaults for new indices.
const (
	DefaultTotalFields = 1000
	DefaultDepth       = 20
)

// Validate checks the limits, naming the variable of a bad one.
func (l *Limits) Validate() error {
	if l.TotalFields < 1 {
		return service.Invalid("SEARCH_SINK_MAPPING_TOTAL_FIELDS_LIMIT", "must be positive")
	}
	if l.Depth < 2 {
		return service.Invalid("SEARCH_SINK_MAPPING_DEPTH_LIMIT", "must be at least 2")
	}
	return nil
}

// Options tune mapping generation.
type Options struct {
	Strings    StringMode
	Decimal    document.DecimalMode
	OpenSearch bool // maps use flat_object instead of flattened
	Limits     Limits
	// Reserved is the number of fields the template maps besides the
	// schema's (@timestamp, the Kafka metadata object and its fields):
	// they count against Limits.TotalFields.
	Reserved int
}

// The limits a Truncation names (the limit label of the metric).
const (
	LimitFields = "total_fields"
	LimitDepth  = "depth"
)

// Truncation is a subtree mapped as a disabled object (or, when not even
// that fitted, left out) because of a limit.
type Truncation struct {
	Path  string // dotted field path, e.g. "a.b.c"
	Limit string // LimitFields or LimitDepth
}

// Stats describe a generated mapping.
type Stats struct {
	// Fields is the number of fields mapped from the schema, as
	// Elasticsearch counts them (objects, leaves and multi-fields).
	Fields int
	// Truncated lists the subtrees the limits cut, in schema order.
	Truncated []Truncation
}

var disabled = map[string]any{"type": "object", "enabled": false}

// Properties returns the "properties" object for a record schema (or
// {"value": ...} for non-record schemas, matching document.Builder), and
// what the limits cut from it. Its work is linear in the schema (each
// named type is measured once) plus the fields it maps.
func Properties(root avro.Type, o Options) (map[string]any, Stats) {
	props, st, _ := properties(root, o)
	return props, st
}

// properties is Properties, also returning the work done (calls of field
// and count).
func properties(root avro.Type, o Options) (map[string]any, Stats, int) {
	l := o.Limits
	if l.TotalFields <= 0 {
		l.TotalFields = DefaultTotalFields
	}
	if l.Depth <= 0 {
		l.Depth = DefaultDepth
	}
	g := &gen{o: o, max: l.TotalFields - o.Reserved, maxDepth: l.Depth, seen: map[avro.Type]bool{}, counts: map[avro.Type]int{}, counting: map[avro.Type]bool{}, mapped: map[avro.Type][]avro.Field{}}
	var props map[string]any
	if rec := document.TopRecord(root); !rec.IsZero() {
		g.seen[rec] = true
		props = g.fields(g.mappable(rec), 1, "", g.max)
	} else {
		props = map[string]any{}
		if m := g.field(root, 1, "value", g.max); m != nil {
			props["value"] = m
		}
	}
	return props, Stats{Fields: g.used, Truncated: g.cut}, g.steps
}

type gen struct {
	o        Options
	max      int // fields the schema may take
	maxDepth int
	used     int
	cut      []Truncation
	steps    int                // calls of field and count: the work done, for tests
	seen     map[avro.Type]bool // records being expanded: a recursive type stops there
	counts   map[avro.Type]int  // fields a node takes fully expanded (memo)
	counting map[avro.Type]bool
	mapped   map[avro.Type][]avro.Field // a record's fields that map to something (memo)
}

// mappable returns the fields of record n that map to something (not
// null, not a mixed union): visiting only those, every record expanded
// costs what it adds to the mapping, whatever else the schema holds.
func (g *gen) mappable(n avro.Type) []avro.Field {
	if fs, ok := g.mapped[n]; ok {
		return fs
	}
	var fs []avro.Field
	for i := range n.NumFields() {
		if f := n.Field(i); g.count(f.Type()) > 0 {
			fs = append(fs, f)
		}
	}
	g.mapped[n] = fs
	return fs
}

// fields maps the fields of an object at level (the root is 1) within
// avail fields. Each field leaves room for its later siblings, one field
// each as far as avail allows, so that a large early field cannot starve
// them (it is cut instead).
func (g *gen) fields(fs []avro.Field, level int, prefix string, avail int) map[string]any {
	props := map[string]any{}
	start := g.used
	for i, f := range fs {
		left := avail - (g.used - start)
		fieldAvail := left - max(0, min(len(fs)-i-1, left-1))
		name := f.Name()
		if level == 1 {
			name = document.FieldName(name) // as the documents write it
		}
		if m := g.field(f.Type(), level, prefix+name, fieldAvail); m != nil {
			props[name] = m
		}
	}
	return props
}

// leaf maps a field that takes c fields, or cuts it.
func (g *gen) leaf(m map[string]any, c, avail int, path string) map[string]any {
	if c <= avail {
		g.used += c
		return m
	}
	return g.truncate(path, LimitFields, avail)
}

// truncate maps the subtree at path as a disabled object when one field
// still fits, and leaves it out otherwise (dynamic mapping then decides,
// and Elasticsearch refuses documents that would exceed its own limit).
func (g *gen) truncate(path, limit string, avail int) map[string]any {
	g.cut = append(g.cut, Truncation{Path: path, Limit: limit})
	if avail < 1 {
		return nil
	}
	g.used++
	return disabled
}

// leafOf returns the mapping of a value of n that is not an object, and
// how many fields it takes; ok is false for records, arrays and unions.
func (g *gen) leafOf(n avro.Type) (m map[string]any, fields int, ok bool) {
	switch n.Logical() {
	case "timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros":
		return map[string]any{"type": "date"}, 1, true
	case "date":
		return map[string]any{"type": "date", "format": "strict_date"}, 1, true
	case "time-millis", "time-micros", "uuid":
		return map[string]any{"type": "keyword"}, 1, true
	case "decimal":
		if g.o.Decimal == document.DecimalNumber {
			return map[string]any{"type": "double"}, 1, true
		}
		return map[string]any{"type": "keyword"}, 1, true
	}
	switch n.Kind() {
	case avro.Boolean:
		return map[string]any{"type": "boolean"}, 1, true
	case avro.Int:
		return map[string]any{"type": "integer"}, 1, true
	case avro.Long:
		return map[string]any{"type": "long"}, 1, true
	case avro.Float:
		return map[string]any{"type": "float"}, 1, true
	case avro.Double:
		return map[string]any{"type": "double"}, 1, true
	case avro.Bytes, avro.Fixed:
		return map[string]any{"type": "binary"}, 1, true
	case avro.Enum:
		return map[string]any{"type": "keyword"}, 1, true
	case avro.String:
		switch g.o.Strings {
		case StringText:
			return map[string]any{"type": "text"}, 1, true
		case StringTextKeyword:
			return map[string]any{"type": "text", "fields": map[string]any{"keyword": map[string]any{"type": "keyword", "ignore_above": 256}}}, 2, true
		default:
			return map[string]any{"type": "keyword", "ignore_above": 8191}, 1, true
		}
	case avro.Map:
		if g.o.OpenSearch {
			return map[string]any{"type": "flat_object"}, 1, true
		}
		return map[string]any{"type": "flattened"}, 1, true
	case avro.Record, avro.Array, avro.Union:
		return nil, 0, false
	}
	return nil, 0, true // null, or unknown: not mapped
}

// field maps a value of n in an object at level, within avail fields.
func (g *gen) field(n avro.Type, level int, path string, avail int) map[string]any {
	g.steps++
	if m, c, ok := g.leafOf(n); ok {
		if m == nil {
			return nil
		}
		return g.leaf(m, c, avail, path)
	}
	switch n.Kind() {
	case avro.Array:
		return g.field(n.Items(), level, path, avail) // arrays are implicit in Elasticsearch
	case avro.Union:
		if b := n.SoleBranch(); !b.IsZero() {
			return g.field(b, level, path, avail)
		}
		if numericUnion(n) {
			return g.leaf(map[string]any{"type": "double"}, 1, avail, path)
		}
		return nil // mixed union: leave it to dynamic mapping
	}
	// A record.
	if g.seen[n] { // recursive type: stop, keep it in _source
		return g.leaf(disabled, 1, avail, path)
	}
	if level+1 >= g.maxDepth {
		return g.truncate(path, LimitDepth, avail)
	}
	// Expanded when all of it fits, or when each of its fields can at
	// least be cut to a disabled object (they decide in turn); otherwise
	// cut here.
	fs := g.mappable(n)
	if g.count(n) > avail && avail < 1+len(fs) {
		return g.truncate(path, LimitFields, avail)
	}
	g.seen[n] = true
	g.used++ // the object itself
	props := g.fields(fs, level+1, path+".", avail-1)
	delete(g.seen, n)
	return map[string]any{"properties": props}
}

func numericUnion(n avro.Type) bool {
	numeric := false
	for i := range n.NumBranches() {
		switch n.Branch(i).Kind() {
		case avro.Null:
		case avro.Int, avro.Long, avro.Float, avro.Double:
			numeric = true
		default:
			return false
		}
	}
	return numeric
}

// count is the number of fields n maps to fully expanded, ignoring the
// depth limit, computed once per node and saturating past the field
// limit. A record met again while it is being counted (a recursive type)
// counts 1, as it is then mapped as a disabled object. Through such
// cycles a count may depend on where it was first taken; field's checks
// of what is still available keep the total within the limit regardless.
func (g *gen) count(n avro.Type) int {
	g.steps++
	if c, ok := g.counts[n]; ok {
		return c
	}
	c := 0
	if _, fields, ok := g.leafOf(n); ok {
		c = fields
	} else {
		switch n.Kind() {
		case avro.Array:
			c = g.count(n.Items())
		case avro.Union:
			if b := n.SoleBranch(); !b.IsZero() {
				c = g.count(b)
			} else if numericUnion(n) {
				c = 1
			}
		case avro.Record:
			if g.counting[n] {
				return 1
			}
			g.counting[n] = true
			c = 1
			for i := range n.NumFields() {
				if c += g.count(n.Field(i).Type()); c > g.max {
					c = g.max + 1
					break
				}
			}
			delete(g.counting, n)
		}
	}
	g.counts[n] = c
	return c
}

// Metrics count what the limits cut from templates.
type Metrics struct{ truncated *prometheus.CounterVec }

// NewMetrics registers sluice_searchsink_mapping_truncated_total on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{truncated: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_searchsink_mapping_truncated_total",
		Help: "Subtrees of a topic's schema mapped as disabled objects (kept in _source, not indexed) because of SEARCH_SINK_MAPPING_TOTAL_FIELDS_LIMIT or SEARCH_SINK_MAPPING_DEPTH_LIMIT, counted each time the topic's template is generated, by topic and limit (total_fields, depth).",
	}, []string{"topic", "limit"})}
	reg.MustRegister(m.truncated)
	return m
}

// Observe counts the truncations of a topic's mapping.
func (m *Metrics) Observe(topic string, s Stats) {
	for _, t := range s.Truncated {
		m.truncated.WithLabelValues(topic, t.Limit).Inc()
	}
}

// Paths lists the first n truncated paths, for a log line.
func (s Stats) Paths(n int) string {
	var b strings.Builder
	for i, t := range s.Truncated {
		if i == n {
			b.WriteString(", ...")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.Path + " (" + t.Limit + ")")
	}
	return b.String()
}
