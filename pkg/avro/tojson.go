package avro

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the JSON text of a goavro native value (as returned by
// NativeFromBinary, or by NativeFromJSON) to dst, record fields in schema
// order. In PlainJSON mode unions are unwrapped, timestamps are RFC 3339
// strings in UTC, dates "2006-01-02", decimals strings, bytes base64; in
// AvroJSON mode the output is the Avro specification's JSON encoding.
// size is the byte size of the record native was decoded from (of the
// JSON text it was converted from): the walk is bounded by the codec's
// Limits for a record of that size, counting a step per value and per 16
// bytes written, and fails with a *BudgetError past them.
func (c *Codec) AppendJSON(dst []byte, native any, mode Mode, size int) ([]byte, error) {
	return appendJSON(dst, c.root, native, mode, &pathBuf{bud: c.limits.NewBudget(size), charged: len(dst)})
}

// JSONFromBinary decodes one Avro binary datum (without framing) and
// returns its JSON text; trailing bytes are an error. Decoding and
// rendering are each bounded by the codec's Limits for len(payload).
func (c *Codec) JSONFromBinary(dst, payload []byte, mode Mode) ([]byte, error) {
	native, rest, err := c.NativeFromBinary(payload)
	if err != nil {
		return dst, fmt.Errorf("decoding avro binary: %w", err)
	}
	if len(rest) != 0 {
		return dst, fmt.Errorf("decoding avro binary: %d trailing bytes", len(rest))
	}
	return c.AppendJSON(dst, native, mode, len(payload))
}

func appendJSON(dst []byte, n *node, v any, mode Mode, p *pathBuf) ([]byte, error) {
	// One step per value, plus the output so far beyond what was charged.
	if err := p.bud.Step(1); err != nil {
		return dst, p.budget(err)
	}
	if err := p.bud.Depth(len(p.segs)); err != nil {
		return dst, p.budget(err)
	}
	if len(dst)-p.charged >= outputPerStep {
		if err := p.bud.Output(len(dst) - p.charged); err != nil {
			return dst, p.budget(err)
		}
		p.charged = len(dst) - (len(dst)-p.charged)%outputPerStep
	}
	bad := func() ([]byte, error) {
		return dst, p.errorf("native value %T does not fit %s", v, n.describe())
	}
	switch n.kind {
	case kNull:
		if v != nil {
			return bad()
		}
		return append(dst, "null"...), nil
	case kBoolean:
		b, ok := v.(bool)
		if !ok {
			return bad()
		}
		return strconv.AppendBool(dst, b), nil
	case kInt, kLong:
		return appendInteger(dst, n, v, mode, p)
	case kFloat, kDouble:
		var f float64
		switch x := v.(type) {
		case float32:
			f = float64(x)
		case float64:
			f = x
		default:
			return bad()
		}
		switch {
		case math.IsNaN(f):
			return append(dst, `"NaN"`...), nil
		case math.IsInf(f, 1):
			return append(dst, `"Infinity"`...), nil
		case math.IsInf(f, -1):
			return append(dst, `"-Infinity"`...), nil
		}
		bits := 64
		if n.kind == kFloat {
			bits = 32
		}
		return strconv.AppendFloat(dst, f, 'g', -1, bits), nil
	case kBytes, kFixed:
		if n.logical == lDecimal {
			r, ok := v.(*big.Rat)
			if !ok {
				return bad()
			}
			if mode == AvroJSON {
				return appendCodePoints(dst, decimalBytes(n, r)), nil
			}
			return appendString(dst, r.FloatString(n.scale)), nil
		}
		b, ok := v.([]byte)
		if !ok {
			return bad()
		}
		if mode == AvroJSON {
			return appendCodePoints(dst, b), nil
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, b)
		return append(dst, '"'), nil
	case kString, kEnum:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		return appendString(dst, s), nil
	case kArray:
		a, ok := v.([]any)
		if !ok {
			return bad()
		}
		dst = append(dst, '[')
		for i, item := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			p.index(i)
			var err error
			dst, err = appendJSON(dst, n.items, item, mode, p)
			p.pop()
			if err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case kMap:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			p.key(k)
			var err error
			dst, err = appendJSON(dst, n.items, m[k], mode, p)
			p.pop()
			if err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case kRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		dst = append(dst, '{')
		for i, f := range n.fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, f.name)
			dst = append(dst, ':')
			p.field(f.name)
			var err error
			dst, err = appendJSON(dst, f.typ, m[f.name], mode, p)
			p.pop()
			if err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case kUnion:
		if v == nil {
			return append(dst, "null"...), nil
		}
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return bad()
		}
		for k, inner := range m {
			b := n.branchByName(k)
			if b == nil {
				return dst, p.errorf("union has no branch %q", k)
			}
			if mode == AvroJSON {
				dst = append(dst, '{')
				dst = appendString(dst, b.jsonKey)
				dst = append(dst, ':')
			}
			var err error
			dst, err = appendJSON(dst, b, inner, mode, p)
			if err != nil {
				return dst, err
			}
			if mode == AvroJSON {
				dst = append(dst, '}')
			}
		}
		return dst, nil
	}
	return bad()
}

func appendInteger(dst []byte, n *node, v any, mode Mode, p *pathBuf) ([]byte, error) {
	var i int64
	switch x := v.(type) {
	case int32:
		i = int64(x)
	case int64:
		i = x
	case int:
		i = int64(x)
	case time.Time:
		switch n.logical {
		case lTimestampMillis:
			i = x.UnixMilli()
		case lTimestampMicros:
			i = x.UnixMicro()
		case lDate:
			i = int64(math.Floor(float64(x.Unix()) / 86400))
		default:
			return dst, p.errorf("native value time.Time does not fit %s", n.describe())
		}
	case time.Duration:
		switch n.logical {
		case lTimeMillis:
			i = int64(x / time.Millisecond)
		case lTimeMicros:
			i = int64(x / time.Microsecond)
		default:
			return dst, p.errorf("native value time.Duration does not fit %s", n.describe())
		}
	default:
		return dst, p.errorf("native value %T does not fit %s", v, n.describe())
	}
	if mode == AvroJSON {
		return strconv.AppendInt(dst, i, 10), nil
	}
	switch n.logical {
	case lTimestampMillis:
		return appendTime(dst, time.UnixMilli(i).UTC(), "2006-01-02T15:04:05.000Z07:00"), nil
	case lTimestampMicros:
		return appendTime(dst, time.UnixMicro(i).UTC(), "2006-01-02T15:04:05.000000Z07:00"), nil
	case lLocalTimestampMillis:
		return appendTime(dst, time.UnixMilli(i).UTC(), "2006-01-02T15:04:05.000"), nil
	case lLocalTimestampMicros:
		return appendTime(dst, time.UnixMicro(i).UTC(), "2006-01-02T15:04:05.000000"), nil
	case lDate:
		return appendTime(dst, time.Unix(i*86400, 0).UTC(), time.DateOnly), nil
	case lTimeMillis:
		return appendTime(dst, time.Unix(0, 0).UTC().Add(time.Duration(i)*time.Millisecond), "15:04:05.000"), nil
	case lTimeMicros:
		return appendTime(dst, time.Unix(0, 0).UTC().Add(time.Duration(i)*time.Microsecond), "15:04:05.000000"), nil
	}
	return strconv.AppendInt(dst, i, 10), nil
}

func appendTime(dst []byte, t time.Time, layout string) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, layout)
	return append(dst, '"')
}

// decimalBytes is the two's-complement unscaled value, sized for fixed.
func decimalBytes(n *node, r *big.Rat) []byte {
	unscaled := new(big.Int).Mul(r.Num(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n.scale)), nil))
	unscaled.Quo(unscaled, r.Denom())
	size := (unscaled.BitLen() + 8) / 8
	if n.kind == kFixed && n.size > size {
		size = n.size
	}
	out := make([]byte, size)
	if unscaled.Sign() >= 0 {
		unscaled.FillBytes(out)
		return out
	}
	// Two's complement of a negative number: 2^(8*size) + x.
	tc := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), uint(size*8)), unscaled)
	tc.FillBytes(out)
	return out
}

func appendCodePoints(dst, b []byte) []byte {
	dst = append(dst, '"')
	for _, c := range b {
		dst = appendRune(dst, rune(c))
	}
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

func appendRune(dst []byte, r rune) []byte {
	switch {
	case r == '"' || r == '\\':
		return append(dst, '\\', byte(r))
	case r == '\n':
		return append(dst, '\\', 'n')
	case r == '\r':
		return append(dst, '\\', 'r')
	case r == '\t':
		return append(dst, '\\', 't')
	case r < 0x20 || r == 0x7f:
		return append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
	case r == 0x2028 || r == 0x2029:
		return append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
	}
	return utf8.AppendRune(dst, r)
}

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				dst = append(dst, c)
			} else {
				dst = appendRune(dst, rune(c))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		dst = appendRune(dst, r)
		i += size
	}
	return append(dst, '"')
}
