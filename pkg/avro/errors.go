package avro

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// FieldError says which field of a datum did not fit the schema and why.
// Path starts with the root passed in Options (e.g. "value") and uses
// ".name" for record fields, "[3]" for array items and `["k"]` for map
// entries: value.items[3].price.
type FieldError struct {
	Path   string
	Reason string

	syntax bool  // malformed JSON or over budget: the path is the root, not a field
	err    error // the cause, for errors.Is (a *BudgetError)
}

// Unwrap returns the cause, if any: errors.Is(err, ErrBudget) holds for a
// value over the codec's Limits.
func (e *FieldError) Unwrap() error { return e.err }

// Error renders "path: reason".
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

type segKind uint8

const (
	segField segKind = iota
	segIndex
	segKey
)

type seg struct {
	kind segKind
	name string
	idx  int
}

// pathBuf is the current position while walking a datum; it is rendered
// only when an error is reported, so the happy path does not allocate.
type pathBuf struct {
	root string
	segs []seg
	// trial > 0 while union branches are being tried: the input must then
	// stay untouched, otherwise conversion reuses the decoded JSON maps and
	// slices in place.
	trial int
	// bud meters the walk (nil: unlimited, for schema defaults); charged
	// is the output length already charged to it.
	bud     *Budget
	charged int
	depth   int // of the value being converted (fromJSON)
}

// budget reports err (a *BudgetError) for the whole value, at the root:
// the limits are the record's, and the path could be as deep as them.
func (p *pathBuf) budget(err error) *FieldError {
	return &FieldError{Path: p.root, Reason: err.Error(), syntax: true, err: err}
}

func (p *pathBuf) field(name string) { p.segs = append(p.segs, seg{kind: segField, name: name}) }
func (p *pathBuf) index(i int)       { p.segs = append(p.segs, seg{kind: segIndex, idx: i}) }
func (p *pathBuf) key(k string)      { p.segs = append(p.segs, seg{kind: segKey, name: k}) }
func (p *pathBuf) pop()              { p.segs = p.segs[:len(p.segs)-1] }

func (p *pathBuf) String() string {
	var b strings.Builder
	b.WriteString(p.root)
	for _, s := range p.segs {
		switch s.kind {
		case segField:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.name)
		case segIndex:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
		case segKey:
			b.WriteByte('[')
			b.WriteString(strconv.Quote(s.name))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func (p *pathBuf) errorf(format string, args ...any) *FieldError {
	return &FieldError{Path: p.String(), Reason: fmt.Sprintf(format, args...)}
}

// mismatch reports "expected <type>, got <json value>".
func (p *pathBuf) mismatch(n *node, v any) *FieldError {
	return p.errorf("expected %s, got %s", n.describe(), describeJSON(v))
}

// describeJSON renders a JSON value briefly for error messages.
func describeJSON(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return "string " + strconv.Quote(x)
	case json.Number:
		s := string(x)
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return "number " + s
	case float64:
		return "number " + strconv.FormatFloat(x, 'g', -1, 64)
	case int, int32, int64:
		return fmt.Sprintf("number %d", x)
	case map[string]any:
		return "object"
	case []any:
		return "array"
	default:
		return fmt.Sprintf("%T", v)
	}
}
