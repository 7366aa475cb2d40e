package document

import (
	"encoding/json"
	"math"
	"math/big"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
)

// DecimalMode says how Avro decimals appear in documents.
type DecimalMode int

// Decimal modes.
const (
	DecimalString DecimalMode = iota // "12.30": exact, mapped as keyword
	DecimalNumber                    // 12.30: a JSON number, mapped as double
)

// Normalize rewrites goavro's native value v for schema n in place (maps and
// slices are reused) into plain JSON-friendly values: unions unwrapped,
// timestamps as time.Time in UTC, dates as "2006-01-02", times of day as
// "15:04:05.000", decimals per mode, NaN and infinities as null.
func Normalize(n avro.Type, v any, mode DecimalMode) any {
	return normalize(n, v, mode, 0)
}

const maxDepth = 64

func normalize(n avro.Type, v any, mode DecimalMode, depth int) any {
	if v == nil || depth > maxDepth {
		return v
	}
	if n.IsZero() {
		return normalizeGeneric(v, mode)
	}
	switch n.Kind() {
	case avro.Union:
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return normalizeGeneric(v, mode)
		}
		for k, inner := range m {
			if b, ok := n.BranchByKey(k); ok {
				return normalize(b, inner, mode, depth+1)
			}
			return normalizeGeneric(inner, mode)
		}
	case avro.Record:
		m, ok := v.(map[string]any)
		if !ok {
			return normalizeGeneric(v, mode)
		}
		for i := range n.NumFields() {
			f := n.Field(i)
			if fv, ok := m[f.Name()]; ok {
				m[f.Name()] = normalize(f.Type(), fv, mode, depth+1)
			}
		}
		return m
	case avro.Array:
		a, ok := v.([]any)
		if !ok {
			return normalizeGeneric(v, mode)
		}
		for i := range a {
			a[i] = normalize(n.Items(), a[i], mode, depth+1)
		}
		return a
	case avro.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return normalizeGeneric(v, mode)
		}
		for k, mv := range m {
			m[k] = normalize(n.Items(), mv, mode, depth+1)
		}
		return m
	}
	switch n.Logical() {
	case "date":
		if t, ok := v.(time.Time); ok {
			return t.UTC().Format("2006-01-02")
		}
	case "decimal":
		if r, ok := v.(*big.Rat); ok {
			return decimal(r, n.Scale(), mode)
		}
	}
	return normalizeGeneric(v, mode)
}

func decimal(r *big.Rat, scale int, mode DecimalMode) any {
	s := r.FloatString(scale)
	if mode == DecimalNumber {
		return json.Number(s)
	}
	return s
}

// normalizeGeneric handles values by Go type alone.
func normalizeGeneric(v any, mode DecimalMode) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case time.Duration:
		return timeOfDay(x)
	case *big.Rat:
		return decimal(x, 9, mode)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil
		}
	case map[string]any:
		for k, mv := range x {
			x[k] = normalizeGeneric(mv, mode)
		}
	case []any:
		for i := range x {
			x[i] = normalizeGeneric(x[i], mode)
		}
	}
	return v
}

func timeOfDay(d time.Duration) string {
	t := time.Unix(0, 0).UTC().Add(d)
	if d%time.Millisecond != 0 {
		return t.Format("15:04:05.000000")
	}
	return t.Format("15:04:05.000")
}
