package avro

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Mode selects how JSON represents Avro values.
type Mode uint8

const (
	// PlainJSON is ordinary JSON: union branches are inferred from the
	// value, bytes and fixed are base64 strings, timestamps may be RFC 3339
	// strings or numbers, dates "2006-01-02", decimals strings or numbers.
	PlainJSON Mode = iota
	// AvroJSON is the Avro specification's JSON encoding: non-null union
	// values are wrapped as {"type": value}, bytes and fixed are strings
	// whose code points 0-255 are the bytes. Logical types are also accepted
	// in their plain forms where that is unambiguous.
	AvroJSON
)

// String names the mode ("json" or "avro-json").
func (m Mode) String() string {
	if m == AvroJSON {
		return "avro-json"
	}
	return "json"
}

// Options tune a conversion.
type Options struct {
	Mode Mode
	// Root prefixes every error path, e.g. "value" or "key".
	Root string
	// Size is the byte size of the JSON text a decoded value came from,
	// for NativeFromJSON and BinaryFromJSONValue: their walk is bounded by
	// the codec's Limits for a record of that size (0 leaves only
	// AVRO_DECODE_BASE_STEPS). BinaryFromJSON and EncodeAt know the size
	// and ignore it.
	Size int
}

// NativeFromJSON converts a decoded JSON value (from encoding/json, ideally
// with UseNumber so longs keep their precision) into goavro's native form
// for this schema. Errors are *FieldError naming the offending field. The
// walk is bounded by the codec's Limits for a text of o.Size bytes: a step
// per value visited (union branches tried count each time), per 16 bytes
// of strings, and what each field default filled in weighs expanded
// (goavro walks the defaults as trees).
func (c *Codec) NativeFromJSON(v any, o Options) (any, error) {
	return fromJSON(c.root, v, o, &pathBuf{root: o.Root, bud: c.limits.NewBudget(o.Size)})
}

// BinaryFromJSONValue encodes an already decoded JSON value (DecodeJSON)
// through NativeFromJSON and goavro. The value may be reused in place.
func (c *Codec) BinaryFromJSONValue(dst []byte, v any, o Options) ([]byte, error) {
	native, err := c.NativeFromJSON(v, o)
	if err != nil {
		return dst, err
	}
	out, err := c.Codec.BinaryFromNative(dst, native)
	if err != nil {
		return dst, &FieldError{Path: o.Root, Reason: err.Error()}
	}
	return out, nil
}

func fromJSON(n *node, v any, o Options, p *pathBuf) (any, error) {
	if err := p.bud.Depth(p.depth); err != nil {
		return nil, p.budget(err)
	}
	if err := p.bud.Step(1); err != nil {
		return nil, p.budget(err)
	}
	if s, ok := v.(string); ok {
		if err := p.bud.Output(len(s)); err != nil {
			return nil, p.budget(err)
		}
	}
	p.depth++
	defer func() { p.depth-- }()
	switch n.kind {
	case kNull:
		if v == nil {
			return nil, nil
		}
	case kBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case kInt:
		return intFromJSON(n, v, p)
	case kLong:
		return longFromJSON(n, v, p)
	case kFloat, kDouble:
		f, ok := floatFromJSON(v)
		if !ok {
			break
		}
		if n.kind == kFloat {
			if !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
				return nil, p.errorf("%s is out of range for float", describeJSON(v))
			}
			return float32(f), nil
		}
		return f, nil
	case kBytes:
		if n.logical == lDecimal {
			return decimalFromJSON(n, v, o, p)
		}
		if s, ok := v.(string); ok {
			return bytesFromString(n, s, o, p)
		}
	case kString:
		s, ok := v.(string)
		if !ok {
			break
		}
		if n.logical == lUUID && !isUUID(s) {
			return nil, p.errorf("expected uuid, got %s", describeJSON(v))
		}
		return s, nil
	case kEnum:
		s, ok := v.(string)
		if !ok {
			break
		}
		if _, ok := n.symbolIndex[s]; !ok {
			return nil, p.errorf("%q is not a symbol of enum %s (one of %s)", s, n.name, strings.Join(n.symbols, ", "))
		}
		return s, nil
	case kFixed:
		if n.logical == lDecimal {
			return decimalFromJSON(n, v, o, p)
		}
		if s, ok := v.(string); ok {
			b, err := bytesFromString(n, s, o, p)
			if err != nil {
				return nil, err
			}
			if len(b) != n.size {
				return nil, p.errorf("expected %d bytes for fixed %s, got %d", n.size, n.name, len(b))
			}
			return b, nil
		}
	case kArray:
		a, ok := v.([]any)
		if !ok {
			break
		}
		out := a
		if p.trial > 0 {
			out = make([]any, len(a))
		}
		for i, item := range a {
			p.index(i)
			x, err := fromJSON(n.items, item, o, p)
			p.pop()
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case kMap:
		m, ok := v.(map[string]any)
		if !ok {
			break
		}
		out := m
		if p.trial > 0 {
			out = make(map[string]any, len(m))
		}
		for k, item := range m {
			p.key(k)
			x, err := fromJSON(n.items, item, o, p)
			p.pop()
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case kRecord:
		m, ok := v.(map[string]any)
		if !ok {
			break
		}
		return recordFromJSON(n, m, o, p)
	case kUnion:
		if o.Mode == AvroJSON {
			return unionFromAvroJSON(n, v, o, p)
		}
		return unionFromPlainJSON(n, v, o, p)
	}
	return nil, p.mismatch(n, v)
}

func recordFromJSON(n *node, m map[string]any, o Options, p *pathBuf) (any, error) {
	out := m
	if p.trial > 0 {
		out = make(map[string]any, len(n.fields))
	}
	matched, defaults := 0, 0
	for _, f := range n.fields {
		v, ok := m[f.name]
		if !ok {
			if f.hasDefault {
				defaults++
				continue
			}
			p.field(f.name)
			err := p.errorf("missing required field (type %s)", f.typ.describe())
			p.pop()
			return nil, err
		}
		matched++
		p.field(f.name)
		x, err := fromJSON(f.typ, v, o, p)
		p.pop()
		if err != nil {
			return nil, err
		}
		out[f.name] = x
	}
	if matched < len(m) {
		var unknown []string
		for k := range m {
			if _, ok := n.fieldIndex[k]; !ok {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		p.field(unknown[0])
		err := p.errorf("unknown field (record %s has no field %q)", n.name, unknown[0])
		p.pop()
		return nil, err
	}
	if defaults > 0 {
		for _, f := range n.fields {
			if _, ok := m[f.name]; !ok && f.hasDefault {
				if err := p.bud.Step(f.defSteps); err != nil {
					return nil, p.budget(err)
				}
				out[f.name] = f.def
			}
		}
	}
	return out, nil
}

// unionFromAvroJSON reads null or {"branch": value}.
func unionFromAvroJSON(n *node, v any, o Options, p *pathBuf) (any, error) {
	if v == nil {
		for _, b := range n.branches {
			if b.kind == kNull {
				return nil, nil
			}
		}
		return nil, p.errorf("expected %s, got null (the union has no null branch)", n.describe())
	}
	m, ok := v.(map[string]any)
	if ok && len(m) == 1 {
		for k, inner := range m {
			if b := n.branchByName(k); b != nil {
				x, err := fromJSON(b, inner, o, p)
				if err != nil {
					return nil, err
				}
				return wrapUnion(b, x), nil
			}
			return nil, p.errorf("union has no branch %q (want one of %s)", k, n.branchKeys())
		}
	}
	return nil, p.errorf("expected a union value wrapped as {\"<type>\": value} with type one of %s, or null; got %s", n.branchKeys(), describeJSON(v))
}

// branchByName finds a union branch by its Avro JSON name, goavro name or
// short (namespace-less) name.
func (n *node) branchByName(k string) *node {
	for _, b := range n.branches {
		if b.jsonKey == k || b.unionKey == k {
			return b
		}
	}
	for _, b := range n.branches {
		if b.name != "" && (b.name[strings.LastIndexByte(b.name, '.')+1:] == k) {
			return b
		}
	}
	return nil
}

func (n *node) branchKeys() string {
	keys := make([]string, len(n.branches))
	for i, b := range n.branches {
		keys[i] = b.jsonKey
	}
	return "[" + strings.Join(keys, ", ") + "]"
}

// unionFromPlainJSON infers the branch: the first branch, in schema order,
// that accepts the value wins. A value wrapped Avro-style is accepted too
// when no branch takes it as it is.
func unionFromPlainJSON(n *node, v any, o Options, p *pathBuf) (any, error) {
	var firstErr error
	candidates := 0
	for _, b := range n.branches {
		if jsonKindFits(b, v) {
			candidates++
		}
	}
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k := range m {
			if n.branchByName(k) != nil {
				candidates++ // the Avro-style wrapped form is tried too
			}
		}
	}
	if candidates > 1 {
		// A failed try must not leave the value half converted.
		p.trial++
		defer func() { p.trial-- }()
	}
	compatible := 0
	for _, b := range n.branches {
		if !jsonKindFits(b, v) {
			continue
		}
		compatible++
		x, err := fromJSON(b, v, o, p)
		if err == nil {
			return wrapUnion(b, x), nil
		}
		if overBudget(err) {
			return nil, err
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, inner := range m {
			if b := n.branchByName(k); b != nil {
				x, err := fromJSON(b, inner, o, p)
				if err != nil {
					return nil, err
				}
				return wrapUnion(b, x), nil
			}
		}
	}
	if compatible == 1 {
		// Only one branch could have matched: its error is the precise one.
		return nil, firstErr
	}
	return nil, p.errorf("no union branch matches: expected %s, got %s", n.describe(), describeJSON(v))
}

// jsonKindFits reports whether the JSON kind of v could be a value of b.
func jsonKindFits(b *node, v any) bool {
	switch v.(type) {
	case nil:
		return b.kind == kNull
	case bool:
		return b.kind == kBoolean
	case json.Number, float64, int, int64, int32:
		switch b.kind {
		case kInt, kLong, kFloat, kDouble:
			return true
		case kBytes, kFixed:
			return b.logical == lDecimal
		}
		return false
	case string:
		switch b.kind {
		case kString, kEnum, kBytes, kFixed:
			return true
		case kInt, kLong:
			return b.logical != lNone
		case kFloat, kDouble:
			return true // "NaN", "Infinity"
		}
		return false
	case map[string]any:
		return b.kind == kRecord || b.kind == kMap
	case []any:
		return b.kind == kArray
	}
	return false
}

// integerFromJSON returns an integral JSON number as int64.
func integerFromJSON(v any) (int64, bool, bool) { // value, isNumber, ok
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, true, true
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
			return 0, true, false
		}
		return int64(f), true, true
	case float64:
		if x != math.Trunc(x) || math.Abs(x) >= 1<<63 {
			return 0, true, false
		}
		return int64(x), true, true
	case int:
		return int64(x), true, true
	case int64:
		return x, true, true
	case int32:
		return int64(x), true, true
	}
	return 0, false, false
}

func intFromJSON(n *node, v any, p *pathBuf) (any, error) {
	if s, ok := v.(string); ok && n.logical != lNone {
		switch n.logical {
		case lDate:
			t, err := time.Parse(time.DateOnly, s)
			if err != nil {
				return nil, p.errorf("expected date (\"2006-01-02\" or days since 1970-01-01), got %s", describeJSON(v))
			}
			days := t.Unix() / 86400
			if days < math.MinInt32 || days > math.MaxInt32 {
				return nil, p.errorf("date %s is out of range", s)
			}
			return int32(days), nil
		case lTimeMillis:
			d, ok := parseTimeOfDay(s)
			if !ok {
				return nil, p.errorf("expected time-millis (\"15:04:05.000\" or milliseconds after midnight), got %s", describeJSON(v))
			}
			return int32(d / time.Millisecond), nil
		}
	}
	i, isNum, ok := integerFromJSON(v)
	if !isNum {
		return nil, p.mismatch(n, v)
	}
	if !ok || i < math.MinInt32 || i > math.MaxInt32 {
		return nil, p.errorf("expected %s, got %s (not a 32-bit integer)", n.describe(), describeJSON(v))
	}
	return int32(i), nil
}

func longFromJSON(n *node, v any, p *pathBuf) (any, error) {
	if s, ok := v.(string); ok && n.logical != lNone {
		switch n.logical {
		case lTimestampMillis, lTimestampMicros:
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, p.errorf("expected %s (RFC 3339 string or number), got %s", n.logName, describeJSON(v))
			}
			if n.logical == lTimestampMillis {
				return t.UnixMilli(), nil
			}
			return t.UnixMicro(), nil
		case lLocalTimestampMillis, lLocalTimestampMicros:
			t, err := time.Parse("2006-01-02T15:04:05.999999999", s)
			if err != nil {
				if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
					return nil, p.errorf("expected %s (\"2006-01-02T15:04:05.000\" or number), got %s", n.logName, describeJSON(v))
				}
				t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
			}
			if n.logical == lLocalTimestampMillis {
				return t.UnixMilli(), nil
			}
			return t.UnixMicro(), nil
		case lTimeMicros:
			d, ok := parseTimeOfDay(s)
			if !ok {
				return nil, p.errorf("expected time-micros (\"15:04:05.000000\" or microseconds after midnight), got %s", describeJSON(v))
			}
			return int64(d / time.Microsecond), nil
		}
	}
	i, isNum, ok := integerFromJSON(v)
	if !isNum {
		return nil, p.mismatch(n, v)
	}
	if !ok {
		return nil, p.errorf("expected %s, got %s (not a 64-bit integer)", n.describe(), describeJSON(v))
	}
	return i, nil
}

func parseTimeOfDay(s string) (time.Duration, bool) {
	t, err := time.Parse("15:04:05.999999999", s)
	if err != nil {
		return 0, false
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute +
		time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond()), true
}

func floatFromJSON(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case string:
		switch x {
		case "NaN":
			return math.NaN(), true
		case "Infinity", "+Infinity":
			return math.Inf(1), true
		case "-Infinity":
			return math.Inf(-1), true
		}
	}
	return 0, false
}

func bytesFromString(n *node, s string, o Options, p *pathBuf) ([]byte, error) {
	if o.Mode == AvroJSON {
		b := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 255 || r == utf8.RuneError {
				return nil, p.errorf("expected %s as a string of code points 0-255, got %s", n.describe(), describeJSON(s))
			}
			b = append(b, byte(r))
		}
		return b, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			return nil, p.errorf("expected %s as base64, got %s", n.describe(), describeJSON(s))
		}
	}
	return b, nil
}

// decimalFromJSON accepts a decimal string or number ("12.34") in both
// modes, and Avro JSON's raw two's-complement bytes string in AvroJSON mode.
func decimalFromJSON(n *node, v any, o Options, p *pathBuf) (any, error) {
	var text string
	switch x := v.(type) {
	case json.Number:
		text = string(x)
	case float64:
		text = strconv.FormatFloat(x, 'f', -1, 64)
	case int:
		text = strconv.Itoa(x)
	case int64:
		text = strconv.FormatInt(x, 10)
	case string:
		if o.Mode == AvroJSON {
			raw, err := bytesFromString(n, x, o, p)
			if err != nil {
				return nil, err
			}
			if n.kind == kFixed && len(raw) != n.size {
				return nil, p.errorf("expected %d bytes for %s, got %d", n.size, n.describe(), len(raw))
			}
			i := new(big.Int)
			setSigned(i, raw)
			if digits := len(new(big.Int).Abs(i).String()); i.Sign() != 0 && digits > n.precision {
				return nil, p.errorf("expected %s, got %d digits", n.describe(), digits)
			}
			return new(big.Rat).SetFrac(i, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n.scale)), nil)), nil
		}
		text = x
	default:
		return nil, p.mismatch(n, v)
	}
	r, reason := parseDecimal(text, n.precision, n.scale)
	if reason != "" {
		return nil, p.errorf("expected %s, got %s: %s", n.describe(), describeJSON(v), reason)
	}
	if n.kind == kFixed {
		// The unscaled value must fit the fixed size in two's complement.
		unscaled := new(big.Int).Mul(r.Num(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n.scale)), nil))
		unscaled.Quo(unscaled, r.Denom())
		if (unscaled.BitLen()+8)/8 > n.size {
			return nil, p.errorf("decimal %s does not fit %d bytes", text, n.size)
		}
	}
	return r, nil
}

// parseDecimal checks a plain decimal literal against precision and scale.
func parseDecimal(s string, precision, scale int) (*big.Rat, string) {
	t := s
	if t != "" && (t[0] == '-' || t[0] == '+') {
		t = t[1:]
	}
	intPart, frac, hasDot := strings.Cut(t, ".")
	if intPart == "" && frac == "" || !allDigits(intPart) || !allDigits(frac) || (hasDot && frac == "" && intPart == "") {
		return nil, "not a decimal number"
	}
	if len(frac) > scale {
		trimmed := strings.TrimRight(frac, "0")
		if len(trimmed) > scale {
			return nil, fmt.Sprintf("more than %d digits after the point", scale)
		}
	}
	digits := strings.TrimLeft(intPart, "0")
	if len(digits) > precision-scale {
		return nil, fmt.Sprintf("more than %d digits before the point", precision-scale)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, "not a decimal number"
	}
	return r, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// setSigned sets i from big-endian two's-complement bytes.
func setSigned(i *big.Int, b []byte) {
	i.SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		i.Sub(i, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
}

func isUUID[T string | []byte](s T) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	for i := 0; i < 36; i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		if !hexDigit[s[i]] {
			return false
		}
	}
	return true
}

var hexDigit = [256]bool{
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'a': true, 'b': true, 'c': true, 'd': true, 'e': true, 'f': true, 'A': true, 'B': true, 'C': true, 'D': true, 'E': true, 'F': true,
}
