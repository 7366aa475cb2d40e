package document

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pkg/avro"
)

// docWriter writes normalised values as JSON within a decode budget: the
// values were counted when pkg/avro decoded them, the field names taken
// from the schema are counted here (a name of 4,000 bytes in each of
// 65,536 records of 0 bytes would make a 256 MB document). A nil
// *docWriter has no budget.
type docWriter struct {
	bud *avro.Budget
	err error // the budget error; writing stopped there
}

// charge counts n bytes of names; false when over budget.
func (w *docWriter) charge(n int) bool {
	if w == nil {
		return true
	}
	if w.err == nil {
		w.err = w.bud.Output(n)
	}
	return w.err == nil
}

// appendValue appends v (a normalised value) as JSON without a budget.
func appendValue(dst []byte, n avro.Type, v any, depth int) []byte {
	return (*docWriter)(nil).value(dst, n, v, depth)
}

// appendRecord appends a record without a budget (see docWriter.record).
func appendRecord(dst []byte, n avro.Type, m map[string]any, depth int, skip []string) []byte {
	return (*docWriter)(nil).record(dst, n, m, depth, skip)
}

// value appends v (a normalised value) as JSON. Records are written
// in schema field order (deterministic bytes without sorting); other maps
// with sorted keys.
func (w *docWriter) value(dst []byte, n avro.Type, v any, depth int) []byte {
	if depth > maxDepth {
		return append(dst, "null"...)
	}
	if !n.IsZero() && n.Kind() == avro.Union {
		// [null, T] is written as T; unions of several non-null branches
		// are written generically (records and maps with sorted keys),
		// which is lossless whichever branch the value took.
		n = n.SoleBranch()
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return appendString(dst, x)
	case bool:
		return strconv.AppendBool(dst, x)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case int32:
		return strconv.AppendInt(dst, int64(x), 10)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case float64:
		return appendFloat(dst, x, 64)
	case float32:
		return appendFloat(dst, float64(x), 32)
	case json.Number:
		return append(dst, x...)
	case time.Time:
		dst = append(dst, '"')
		dst = x.UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	case []byte:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, x)
		return append(dst, '"')
	case []any:
		var items avro.Type
		if !n.IsZero() && n.Kind() == avro.Array {
			items = n.Items()
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = w.value(dst, items, e, depth+1)
		}
		return append(dst, ']')
	case map[string]any:
		if !n.IsZero() && n.Kind() == avro.Record {
			return w.record(dst, n, x, depth, nil)
		}
		var vals avro.Type
		if !n.IsZero() && n.Kind() == avro.Map {
			vals = n.Items()
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = w.value(dst, vals, x[k], depth+1)
		}
		return append(dst, '}')
	}
	// Anything else (should not happen after Normalize): let encoding/json decide.
	b, err := json.Marshal(v)
	if err != nil {
		return append(dst, "null"...)
	}
	return append(dst, b...)
}

// record writes the record's fields in schema order, skipping the
// names in skip (the document's own @timestamp and metadata fields), and
// leaves the object open when skip is non-nil so the caller can add more.
func (w *docWriter) record(dst []byte, n avro.Type, m map[string]any, depth int, skip []string) []byte {
	dst = append(dst, '{')
	first := true
	for i := range n.NumFields() {
		f := n.Field(i)
		v, ok := m[f.Name()]
		if !ok || slices.Contains(skip, f.Name()) {
			continue
		}
		if !w.charge(len(f.Name())) {
			return dst
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if skip != nil { // the document's top level
			dst = appendString(dst, FieldName(f.Name()))
		} else {
			dst = appendString(dst, f.Name())
		}
		dst = append(dst, ':')
		dst = w.value(dst, f.Type(), v, depth+1)
	}
	if skip != nil {
		return dst
	}
	return append(dst, '}')
}

func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	// Same formatting as encoding/json.
	abs := math.Abs(f)
	fmtByte := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		fmtByte = 'e'
	}
	dst = strconv.AppendFloat(dst, f, fmtByte, -1, bits)
	if fmtByte == 'e' {
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string (HTML-safe escaping not needed).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
