// Package partition computes the object path a record lands under: the
// partition number, a record field's value, or a time bucket.
package partition

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/services/s3-sink/internal/objkey"
)

// Record is what a Partitioner looks at.
type Record struct {
	Partition int
	Timestamp time.Time // Kafka record timestamp
	Value     any       // decoded Avro (goavro native form); nil for tombstones
}

// Partitioner maps a record to a relative path without leading or trailing
// slashes. It must be a pure function of the record so replays rebuild
// identical objects.
type Partitioner interface {
	Path(r Record) (string, error)
}

// Default is Kafka Connect's default partitioner: partition=<n>.
type Default struct{}

// Path implements Partitioner.
func (Default) Path(r Record) (string, error) { return "partition=" + strconv.Itoa(r.Partition), nil }

// Field partitions by a record field: <field>=<value>, the value escaped
// and, past maxSegment bytes, shortened by objkey's rule.
type Field struct {
	Name       string   // as configured
	path       []string // split on dots for nested records
	maxSegment int
}

// NewField returns a field partitioner; name may use dots for nested
// fields, each an Avro name. The segment is at most maxSegment bytes.
func NewField(name string, maxSegment int) (*Field, error) {
	if name == "" {
		return nil, errors.New("field partitioner: empty field name")
	}
	path := strings.Split(name, ".")
	for _, p := range path {
		if !avroName(p) {
			return nil, fmt.Errorf("field partitioner: %q is not an Avro field name ([A-Za-z_][A-Za-z0-9_]*)", p)
		}
	}
	return &Field{Name: name, path: path, maxSegment: maxSegment}, nil
}

func avroName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// FieldPath is the dotted field path, split.
func (f *Field) FieldPath() []string { return f.path }

// Path implements Partitioner.
func (f *Field) Path(r Record) (string, error) {
	v, err := Lookup(r.Value, f.path)
	if err != nil {
		return "", err
	}
	s, err := scalar(v)
	if err != nil {
		return "", fmt.Errorf("field %s: %w", f.Name, err)
	}
	return objkey.Fit(f.path[len(f.path)-1]+"="+objkey.Escape(s), f.maxSegment), nil
}

// ErrNoField is returned when a record lacks the partitioning field.
var ErrNoField = errors.New("record has no such field")

// Lookup walks nested records (maps) along path. goavro represents a
// non-null union value as a single-entry map keyed by the branch type;
// Lookup unwraps those.
func Lookup(v any, path []string) (any, error) {
	for i, name := range path {
		v = unwrapUnion(v)
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: %s is not a record", ErrNoField, strings.Join(path[:i], "."))
		}
		if v, ok = m[name]; !ok {
			return nil, fmt.Errorf("%w: %s", ErrNoField, strings.Join(path[:i+1], "."))
		}
	}
	return unwrapUnion(v), nil
}

// unwrapUnion unwraps goavro's single-entry union maps when the key is a
// primitive or logical type name, or a namespaced type name (a record
// field's name never contains a dot).
func unwrapUnion(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, inner := range m {
			switch k {
			case "string", "int", "long", "float", "double", "boolean", "bytes", "null",
				"long.timestamp-millis", "long.timestamp-micros", "int.date":
				return inner
			}
			if strings.Contains(k, ".") {
				return inner
			}
		}
	}
	return v
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "null", nil
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	default:
		return "", fmt.Errorf("value of type %T cannot name a path", v)
	}
}

// Time partitions by a time bucket rendered with a path format.
type Time struct {
	format []token
	loc    *time.Location
	field  []string // empty: use the Kafka record timestamp
}

type token struct {
	lit  string
	verb string // YYYY MM dd HH mm, or "" for a literal
}

// Formats accepted by name.
const (
	Hourly = "year=YYYY/month=MM/day=dd/hour=HH"
	Daily  = "year=YYYY/month=MM/day=dd"
)

// ParseFormat splits a path format into literals and the verbs YYYY (year),
// MM (month), dd (day), HH (hour, 24h) and mm (minute). "hourly" and
// "daily" name the usual layouts.
func ParseFormat(format string) ([]token, error) {
	switch format {
	case "hourly":
		format = Hourly
	case "daily":
		format = Daily
	}
	if format == "" {
		return nil, errors.New("path format is empty")
	}
	// The rendered path uses the format's bytes plus digits and '-', so
	// checking the format checks every path it renders (lengths aside:
	// see CheckLimits).
	if err := objkey.ValidLiteral(format, len(format)); err != nil {
		return nil, fmt.Errorf("path format %q: %w", format, err)
	}
	var out []token
	var lit strings.Builder
	verbs := 0
	for i := 0; i < len(format); {
		matched := ""
		for _, v := range []string{"YYYY", "MM", "dd", "HH", "mm"} {
			if strings.HasPrefix(format[i:], v) {
				matched = v
				break
			}
		}
		if matched == "" {
			lit.WriteByte(format[i])
			i++
			continue
		}
		if lit.Len() > 0 {
			out = append(out, token{lit: lit.String()})
			lit.Reset()
		}
		out = append(out, token{verb: matched})
		verbs++
		i += len(matched)
	}
	if lit.Len() > 0 {
		out = append(out, token{lit: lit.String()})
	}
	if verbs == 0 {
		return nil, fmt.Errorf("path format %q has none of YYYY MM dd HH mm", format)
	}
	for _, t := range out {
		if t.verb == "" && strings.Contains(t.lit, "..") {
			return nil, fmt.Errorf("path format %q: literal %q is not allowed", format, t.lit)
		}
	}
	return out, nil
}

// NewTime returns a time partitioner. field empty means the Kafka record
// timestamp; otherwise the named (dotted) record field.
func NewTime(format, zone, field string) (*Time, error) {
	toks, err := ParseFormat(format)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", zone, err)
	}
	t := &Time{format: toks, loc: loc}
	if field != "" {
		t.field = strings.Split(field, ".")
	}
	return t, nil
}

// CheckLimits reports whether the longest path the format renders (years
// of a 64-bit millisecond timestamp have up to 10 characters) keeps every
// segment within maxSegment and the whole path within maxPath bytes.
func (t *Time) CheckLimits(maxSegment, maxPath int) error {
	for _, ts := range []time.Time{time.UnixMilli(math.MinInt64), time.UnixMilli(math.MaxInt64)} {
		p := t.Render(ts)
		if err := objkey.ValidLiteral(p, maxSegment); err != nil {
			return fmt.Errorf("rendered path %q: %w", p, err)
		}
		if len(p) > maxPath {
			return fmt.Errorf("rendered path %q has %d bytes, more than %d", p, len(p), maxPath)
		}
	}
	return nil
}

// FieldPath is the timestamp field path, split (nil: the Kafka timestamp).
func (t *Time) FieldPath() []string { return t.field }

// Path implements Partitioner.
func (t *Time) Path(r Record) (string, error) {
	ts, err := t.When(r)
	if err != nil {
		return "", err
	}
	return t.Render(ts), nil
}

// When returns the time the record is filed under.
func (t *Time) When(r Record) (time.Time, error) {
	if len(t.field) == 0 {
		return r.Timestamp, nil
	}
	return FieldTime(r.Value, t.field)
}

// Render formats ts in the partitioner's zone.
func (t *Time) Render(ts time.Time) string {
	ts = ts.In(t.loc)
	var b strings.Builder
	for _, tok := range t.format {
		switch tok.verb {
		case "":
			b.WriteString(tok.lit)
		case "YYYY":
			fmt.Fprintf(&b, "%04d", ts.Year())
		case "MM":
			fmt.Fprintf(&b, "%02d", int(ts.Month()))
		case "dd":
			fmt.Fprintf(&b, "%02d", ts.Day())
		case "HH":
			fmt.Fprintf(&b, "%02d", ts.Hour())
		case "mm":
			fmt.Fprintf(&b, "%02d", ts.Minute())
		}
	}
	return b.String()
}

// FieldTime reads a time from a record field: time.Time (Avro timestamp
// logical types), a long/int of epoch milliseconds, or an RFC 3339 string.
func FieldTime(v any, path []string) (time.Time, error) {
	f, err := Lookup(v, path)
	if err != nil {
		return time.Time{}, err
	}
	name := strings.Join(path, ".")
	switch x := f.(type) {
	case time.Time:
		return x, nil
	case int64:
		return time.UnixMilli(x), nil
	case int32:
		return time.UnixMilli(int64(x)), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return time.Time{}, fmt.Errorf("field %s: %v is not a time", name, x)
		}
		return time.UnixMilli(int64(x)), nil
	case string:
		ts, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, fmt.Errorf("field %s: %w", name, err)
		}
		return ts, nil
	default:
		return time.Time{}, fmt.Errorf("field %s: %T is not a time", name, f)
	}
}
