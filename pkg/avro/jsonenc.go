package avro

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/sluicehq/sluice/pkg/avro/internal/jsonscan"
)

// BinaryFromJSON appends the Avro binary encoding of the JSON document data
// to dst in one pass over the text, directed by the schema: no
// intermediate maps. It accepts exactly what NativeFromJSON followed by
// goavro's BinaryFromNative accepts and produces the same datum (checked
// by FuzzBinaryFromJSON against that path). Errors are *FieldError; when a
// datum has several problems the first in input order is reported.
//
// The work is bounded by the codec's Limits for a record of len(data)
// bytes: a step per value visited (union branches tried count each time),
// per 16 bytes of text read again (a failed union branch, a look-ahead)
// and per field default filled in (plus 16 bytes of it). Past them the
// error is a *FieldError at the root for which errors.Is(err, ErrBudget).
func (c *Codec) BinaryFromJSON(dst, data []byte, o Options) ([]byte, error) {
	e := encoder{Scanner: jsonscan.Scanner{B: data}, mode: o.Mode, p: pathBuf{root: o.Root}, bud: c.limits.budget(len(data))}
	start := len(dst)
	e.WS()
	out, err := e.enc(c.root, dst, 0)
	if errors.Is(err, errDuplicateKey) {
		// Repeated object keys (last wins): take the generic path.
		v, derr := DecodeJSON(data)
		if derr != nil {
			return dst[:start], &FieldError{Path: o.Root, Reason: "malformed JSON: " + derr.Error()}
		}
		o.Size = len(data)
		return c.BinaryFromJSONValue(dst[:start], v, o)
	}
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) && o.Root == "" {
			fe.Path = strings.TrimPrefix(fe.Path, ".")
		}
		return dst[:start], err
	}
	e.WS()
	if e.I < len(e.B) {
		return dst[:start], &FieldError{Path: o.Root, Reason: "malformed JSON: " + e.Errorf("unexpected data after the JSON value").Error()}
	}
	return out, nil
}

type encoder struct {
	jsonscan.Scanner
	mode Mode
	p    pathBuf
	bud  Budget
	// base is the JSON depth the value starts at (EncodeAt: inside an
	// envelope); Avro depth is counted from it.
	base int
}

// back moves the cursor back to i. The text in between will be read
// again, which is the only way the encoder reads a byte twice, so it is
// charged to the budget.
func (e *encoder) back(i int) error {
	err := e.bud.Output(e.I - i)
	e.I = i
	if err != nil {
		return e.p.budget(err)
	}
	return nil
}

// overBudget reports whether err ends the walk: nothing else is tried.
func overBudget(err error) bool { return errors.Is(err, ErrBudget) }

var errSyntaxMarker = errors.New("syntax")

// syntax wraps a JSON syntax error as a FieldError at the root, as
// BinaryFromJSON on malformed text always did.
func (e *encoder) syntax(err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return err
	}
	return &FieldError{Path: e.p.root, Reason: "malformed JSON: " + err.Error(), syntax: true}
}

// at prefixes a field error's path with seg (".name", "[3]", `["k"]`)
// while the error unwinds: paths cost nothing on the happy path. Syntax
// errors keep the root path.
func (e *encoder) at(err error, seg string) error {
	var fe *FieldError
	if errors.As(err, &fe) && !fe.syntax {
		root := e.p.root
		fe.Path = root + seg + fe.Path[len(root):]
	}
	return err
}

// fieldErr reports a problem of the field name of the current record.
func (e *encoder) fieldErr(name, format string, args ...any) error {
	return &FieldError{Path: e.p.root + "." + name, Reason: fmt.Sprintf(format, args...)}
}

// peek parses the value at the cursor generically without consuming it,
// for error messages.
func (e *encoder) peek() (any, error) {
	save := e.I
	v, err := e.Value(0)
	if berr := e.back(save); berr != nil {
		return nil, berr
	}
	return v, err
}

// mismatch reports "expected <type>, got <value>" for the value at the
// cursor (or the syntax error, if it is not valid JSON).
func (e *encoder) mismatch(n *node) error {
	v, err := e.peek()
	if err != nil {
		return e.syntax(err)
	}
	return e.p.mismatch(n, v)
}

// skip consumes one JSON value, validating it without building it.
func (e *encoder) skip(depth int) error { return e.SkipValue(depth) }

// rawString returns a string's content without allocating when it has no
// escapes and is valid UTF-8; otherwise a decoded copy.
func (e *encoder) rawString() ([]byte, error) {
	if e.I >= len(e.B) || e.B[e.I] != '"' {
		return nil, errSyntaxMarker
	}
	start := e.I + 1
	n, ascii := jsonscan.StringSpan(e.B[start:])
	if j := start + n; j < len(e.B) && e.B[j] == '"' {
		s := e.B[start:j]
		e.I = j + 1
		if !ascii && !utf8.Valid(s) {
			return jsonscan.FixUTF8(s), nil
		}
		return s, nil
	}
	s, err := e.Str()
	return []byte(s), err
}

// verbatimKey consumes the string at the cursor if it is exactly
// "name" (no escapes): record keys usually are, and comparing them in place
// beats scanning them.
func (e *encoder) verbatimKey(name string) bool {
	end := e.I + 1 + len(name)
	if end < len(e.B) && e.B[end] == '"' && string(e.B[e.I+1:end]) == name {
		e.I = end + 1
		return true
	}
	return false
}

func appendLong(dst []byte, v int64) []byte {
	return binary.AppendUvarint(dst, uint64((v<<1)^(v>>63)))
}

func (e *encoder) enc(n *node, dst []byte, depth int) ([]byte, error) {
	if err := e.bud.Depth(depth - e.base); err != nil {
		return dst, e.p.budget(err)
	}
	if err := e.bud.Step(1); err != nil {
		return dst, e.p.budget(err)
	}
	if depth > jsonscan.MaxDepth {
		return dst, e.syntax(e.Errorf("exceeded max depth"))
	}
	if e.I >= len(e.B) {
		return dst, e.syntax(jsonscan.ErrEOF)
	}
	c := e.B[e.I]
	switch n.kind {
	case kNull:
		if c == 'n' {
			return dst, e.lit("null")
		}
	case kBoolean:
		switch c {
		case 't':
			return append(dst, 1), e.lit("true")
		case 'f':
			return append(dst, 0), e.lit("false")
		}
	case kInt, kLong, kFloat, kDouble:
		return e.number(n, dst)
	case kString:
		if c != '"' {
			break
		}
		save := e.I
		s, err := e.rawString()
		if err != nil {
			return dst, e.syntax(err)
		}
		if n.logical == lUUID && !isUUID(s) {
			e.I = save
			v, _ := e.peek()
			return dst, e.p.errorf("expected uuid, got %s", describeJSON(v))
		}
		dst = appendLong(dst, int64(len(s)))
		return append(dst, s...), nil
	case kEnum:
		if c != '"' {
			break
		}
		s, err := e.rawString()
		if err != nil {
			return dst, e.syntax(err)
		}
		idx, ok := n.symbolIndex[string(s)]
		if !ok {
			return dst, e.p.errorf("%q is not a symbol of enum %s (one of %s)", s, n.name, strings.Join(n.symbols, ", "))
		}
		return appendLong(dst, int64(idx)), nil
	case kBytes, kFixed:
		if n.logical == lDecimal {
			return e.decimal(n, dst)
		}
		if c != '"' {
			break
		}
		s, err := e.Str()
		if err != nil {
			return dst, e.syntax(err)
		}
		b, ferr := bytesFromString(n, s, Options{Mode: e.mode}, &e.p)
		if ferr != nil {
			return dst, ferr
		}
		if n.kind == kFixed {
			if len(b) != n.size {
				return dst, e.p.errorf("expected %d bytes for fixed %s, got %d", n.size, n.name, len(b))
			}
			return append(dst, b...), nil
		}
		dst = appendLong(dst, int64(len(b)))
		return append(dst, b...), nil
	case kArray:
		if c == '[' {
			return e.array(n, dst, depth)
		}
	case kMap:
		if c == '{' {
			return e.mapValue(n, dst, depth)
		}
	case kRecord:
		if c == '{' {
			return e.record(n, dst, depth)
		}
	case kUnion:
		if e.mode == AvroJSON {
			return e.unionWrapped(n, dst, depth)
		}
		return e.unionPlain(n, dst, depth)
	}
	return dst, e.mismatch(n)
}

func (e *encoder) lit(word string) error {
	if err := e.Literal(word); err != nil {
		return e.syntax(err)
	}
	return nil
}

// number handles int, long, float and double, including their logical
// types given as strings.
func (e *encoder) number(n *node, dst []byte) ([]byte, error) {
	c := e.B[e.I]
	if c == '"' {
		if n.logical == lNone && n.kind != kFloat && n.kind != kDouble {
			return dst, e.mismatch(n)
		}
		save := e.I
		if n.logical == lTimestampMillis || n.logical == lTimestampMicros {
			raw, err := e.rawString()
			if err != nil {
				return dst, e.syntax(err)
			}
			if t, ok := jsonscan.RFC3339(raw); ok {
				if n.logical == lTimestampMillis {
					return appendLong(dst, t.UnixMilli()), nil
				}
				return appendLong(dst, t.UnixMicro()), nil
			}
			e.I = save
		}
		s, err := e.Str()
		if err != nil {
			return dst, e.syntax(err)
		}
		var v any
		var ferr error
		switch n.kind {
		case kInt:
			v, ferr = intFromJSON(n, s, &e.p)
		case kLong:
			v, ferr = longFromJSON(n, s, &e.p)
		default:
			f, ok := floatFromJSON(s)
			if !ok {
				e.I = save
				return dst, e.mismatch(n)
			}
			return appendFloat(n, dst, f), nil
		}
		if ferr != nil {
			return dst, ferr
		}
		switch x := v.(type) {
		case int32:
			return appendLong(dst, int64(x)), nil
		case int64:
			return appendLong(dst, x), nil
		}
		return dst, e.p.errorf("internal: unexpected %T", v)
	}
	if c != '-' && (c < '0' || c > '9') {
		return dst, e.mismatch(n)
	}
	save := e.I
	if err := e.skipNumber(); err != nil {
		return dst, e.syntax(err)
	}
	raw := e.B[save:e.I]
	if n.kind == kInt || n.kind == kLong {
		// Fast path: plain integers (no fraction or exponent) need no
		// string conversion.
		if i, ok := plainInt(raw); ok && (n.kind == kLong || (i >= math.MinInt32 && i <= math.MaxInt32)) {
			return appendLong(dst, i), nil
		}
	}
	if n.kind == kFloat || n.kind == kDouble {
		// raw is only borrowed: strconv copies the text into any error.
		if f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(raw), len(raw)), 64); err == nil &&
			(n.kind == kDouble || math.Abs(f) <= math.MaxFloat32) {
			return appendFloat(n, dst, f), nil
		}
	}
	num := json.Number(raw)
	switch n.kind {
	case kInt, kLong:
		i, _, ok := integerFromJSON(num)
		if n.kind == kInt && ok && (i < math.MinInt32 || i > math.MaxInt32) {
			ok = false
		}
		if !ok {
			e.I = save
			bits := "64"
			if n.kind == kInt {
				bits = "32"
			}
			return dst, e.p.errorf("expected %s, got %s (not a %s-bit integer)", n.describe(), describeJSON(num), bits)
		}
		return appendLong(dst, i), nil
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil {
		var ne *strconv.NumError
		if !errors.As(err, &ne) || ne.Err != strconv.ErrRange {
			return dst, e.p.mismatch(n, num)
		}
		// encoding/json would reject an out-of-range number too.
		return dst, e.p.mismatch(n, num)
	}
	if n.kind == kFloat && !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
		return dst, e.p.errorf("%s is out of range for float", describeJSON(num))
	}
	return appendFloat(n, dst, f), nil
}

// skipNumber consumes a JSON number, validating it, without boxing it.
func (e *encoder) skipNumber() error {
	_, err := e.Scanner.NumberSpan()
	return err
}

// plainInt parses an optionally negative run of at most 18 digits.
func plainInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

func appendFloat(n *node, dst []byte, f float64) []byte {
	if n.kind == kFloat {
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(f)))
	}
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// decimal encodes a decimal from a string or number (or, in AvroJSON
// mode, the raw two's-complement bytes string), as goavro does: the
// unscaled value in minimal two's complement (bytes) or sign-extended to
// the fixed size.
func (e *encoder) decimal(n *node, dst []byte) ([]byte, error) {
	v, err := e.peek()
	if err != nil {
		return dst, e.syntax(err)
	}
	if err := e.skip(0); err != nil {
		return dst, e.syntax(err)
	}
	native, ferr := decimalFromJSON(n, v, Options{Mode: e.mode}, &e.p)
	if ferr != nil {
		return dst, ferr
	}
	r := native.(*big.Rat)
	unscaled := new(big.Int).Mul(r.Num(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n.scale)), nil))
	unscaled.Quo(unscaled, r.Denom())
	if n.kind == kFixed {
		return append(dst, fixedTwos(unscaled, n.size)...), nil
	}
	b := minimalTwos(unscaled)
	dst = appendLong(dst, int64(len(b)))
	return append(dst, b...), nil
}

func minimalTwos(x *big.Int) []byte {
	switch x.Sign() {
	case 0:
		return []byte{0}
	case 1:
		b := x.Bytes()
		if b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	size := x.BitLen()/8 + 1
	b := new(big.Int).Add(x, new(big.Int).Lsh(big.NewInt(1), uint(size*8))).Bytes()
	if len(b) >= 2 && b[0] == 0xff && b[1]&0x80 != 0 {
		b = b[1:]
	}
	return b
}

func fixedTwos(x *big.Int, size int) []byte {
	out := make([]byte, size)
	if x.Sign() >= 0 {
		x.FillBytes(out)
		return out
	}
	new(big.Int).Add(x, new(big.Int).Lsh(big.NewInt(1), uint(size*8))).FillBytes(out)
	return out
}

// array writes one block: the count (patched in once known), the items, 0.
func (e *encoder) array(n *node, dst []byte, depth int) ([]byte, error) {
	e.I++ // [
	countAt := len(dst)
	dst = append(dst, 0)
	count := 0
	e.WS()
	if e.I < len(e.B) && e.B[e.I] == ']' {
		e.I++
		return dst, nil // the placeholder 0 is the empty array
	}
	for {
		e.WS()
		var err error
		dst, err = e.enc(n.items, dst, depth+1)
		if err != nil {
			return dst, e.at(err, "["+strconv.Itoa(count)+"]")
		}
		count++
		e.WS()
		if e.I >= len(e.B) {
			return dst, e.syntax(jsonscan.ErrEOF)
		}
		switch e.B[e.I] {
		case ',':
			e.I++
			continue
		case ']':
			e.I++
			return append(patchCount(dst, countAt, count), 0), nil
		}
		return dst, e.syntax(e.Errorf("invalid character %q after array element", e.B[e.I]))
	}
}

// patchCount replaces the one-byte placeholder at at with the zigzag
// varint of count, moving what follows when it needs more bytes.
func patchCount(dst []byte, at, count int) []byte {
	var tmp [binary.MaxVarintLen64]byte
	enc := appendLong(tmp[:0], int64(count))
	if len(enc) == 1 {
		dst[at] = enc[0]
		return dst
	}
	extra := len(enc) - 1
	dst = append(dst, make([]byte, extra)...)
	copy(dst[at+len(enc):], dst[at+1:len(dst)-extra])
	copy(dst[at:], enc)
	return dst
}

func (e *encoder) mapValue(n *node, dst []byte, depth int) ([]byte, error) {
	e.I++ // {
	countAt := len(dst)
	dst = append(dst, 0)
	count := 0
	e.WS()
	if e.I < len(e.B) && e.B[e.I] == '}' {
		e.I++
		return dst, nil
	}
	// Duplicate keys: the last wins, as with encoding/json. Rare, so
	// handled by re-encoding through the generic path.
	var seenBuf [16][]byte
	seen := seenBuf[:0]
	var seenMap map[string]struct{}
	for {
		e.WS()
		if e.I >= len(e.B) {
			return dst, e.syntax(jsonscan.ErrEOF)
		}
		if e.B[e.I] != '"' {
			return dst, e.syntax(e.Errorf("invalid character %q looking for beginning of object key string", e.B[e.I]))
		}
		k, err := e.rawString()
		if err != nil {
			return dst, e.syntax(err)
		}
		if seenMap != nil {
			if _, dup := seenMap[string(k)]; dup {
				return dst, errDuplicateKey
			}
			seenMap[string(k)] = struct{}{}
		} else {
			for _, s := range seen {
				if string(s) == string(k) {
					return dst, errDuplicateKey
				}
			}
			seen = append(seen, k)
			if len(seen) > 32 {
				seenMap = make(map[string]struct{}, 64)
				for _, s := range seen {
					seenMap[string(s)] = struct{}{}
				}
			}
		}
		e.WS()
		if e.I >= len(e.B) || e.B[e.I] != ':' {
			return dst, e.syntax(e.colonErr())
		}
		e.I++
		e.WS()
		dst = appendLong(dst, int64(len(k)))
		dst = append(dst, k...)
		valStart := e.I
		dst, err = e.enc(n.items, dst, depth+1)
		if err != nil {
			return dst, e.at(e.unlessRepeated(string(k), valStart, err, depth), "["+strconv.Quote(string(k))+"]")
		}
		count++
		e.WS()
		if e.I >= len(e.B) {
			return dst, e.syntax(jsonscan.ErrEOF)
		}
		switch e.B[e.I] {
		case ',':
			e.I++
			continue
		case '}':
			e.I++
			return append(patchCount(dst, countAt, count), 0), nil
		}
		return dst, e.syntax(e.Errorf("invalid character %q after object key:value pair", e.B[e.I]))
	}
}

func (e *encoder) colonErr() error {
	if e.I >= len(e.B) {
		return jsonscan.ErrEOF
	}
	return e.Errorf("invalid character %q after object key", e.B[e.I])
}

// unlessRepeated returns err, or errDuplicateKey when key appears again
// later in the same object: then the failed value is overridden (last key
// wins) and the generic path decides.
func (e *encoder) unlessRepeated(key string, valStart int, err error, depth int) error {
	if errors.Is(err, errDuplicateKey) || overBudget(err) {
		return err
	}
	if berr := e.back(valStart); berr != nil {
		return berr
	}
	if e.skip(depth+1) != nil {
		return err
	}
	for {
		e.WS()
		if e.I >= len(e.B) || e.B[e.I] != ',' {
			return err
		}
		e.I++
		e.WS()
		k, kerr := e.rawString()
		if kerr != nil {
			return err
		}
		if string(k) == key {
			return errDuplicateKey
		}
		e.WS()
		if e.I >= len(e.B) || e.B[e.I] != ':' {
			return err
		}
		e.I++
		e.WS()
		if e.skip(depth+1) != nil {
			return err
		}
	}
}

// errDuplicateKey sends an object with a repeated key down the generic
// path, which keeps the last value as encoding/json does.
var errDuplicateKey = errors.New("duplicate key")

// record encodes fields straight into dst while the keys come in schema
// order (the usual case); from the first key out of order on, the
// remaining fields are encoded separately and appended in schema order
// (recordRest). Each byte of the object is read once either way.
func (e *encoder) record(n *node, dst []byte, depth int) ([]byte, error) {
	e.I++ // {
	next := 0
	e.WS()
	if e.I < len(e.B) && e.B[e.I] == '}' {
		e.I++
		return e.defaultsFrom(n, dst, next)
	}
	for {
		e.WS()
		if e.I >= len(e.B) {
			return dst, e.syntax(jsonscan.ErrEOF)
		}
		if e.B[e.I] != '"' {
			return dst, e.syntax(e.Errorf("invalid character %q looking for beginning of object key string", e.B[e.I]))
		}
		// Fast path: the key is the expected field's name, verbatim.
		var k []byte
		if next < len(n.fields) && e.verbatimKey(n.fields[next].name) {
			k = e.B[e.I-1-len(n.fields[next].name) : e.I-1]
		} else {
			var err error
			if k, err = e.rawString(); err != nil {
				return dst, e.syntax(err)
			}
			if next >= len(n.fields) || string(k) != n.fields[next].name {
				return e.recordRest(n, dst, depth, next, k)
			}
		}
		e.WS()
		if e.I >= len(e.B) || e.B[e.I] != ':' {
			return dst, e.syntax(e.colonErr())
		}
		e.I++
		e.WS()
		f := n.fields[next]
		valStart := e.I
		var err error
		dst, err = e.enc(f.typ, dst, depth+1)
		if err != nil {
			return dst, e.at(e.unlessRepeated(string(k), valStart, err, depth), "."+f.name)
		}
		next++
		e.WS()
		if e.I >= len(e.B) {
			return dst, e.syntax(jsonscan.ErrEOF)
		}
		switch e.B[e.I] {
		case ',':
			e.I++
			continue
		case '}':
			e.I++
			return e.defaultsFrom(n, dst, next)
		}
		return dst, e.syntax(e.Errorf("invalid character %q after object key:value pair", e.B[e.I]))
	}
}

// appendDefault appends field f's default, charging the budget for it.
func (e *encoder) appendDefault(dst []byte, f *field) ([]byte, error) {
	if !f.hasDefault {
		return dst, e.fieldErr(f.name, "missing required field (type %s)", f.typ.describe())
	}
	b, err := f.defaultBinary()
	if err != nil {
		return dst, e.fieldErr(f.name, "cannot encode the schema default: %v", err)
	}
	if err := e.bud.Step(1); err != nil {
		return dst, e.p.budget(err)
	}
	if err := e.bud.Output(len(b)); err != nil {
		return dst, e.p.budget(err)
	}
	return append(dst, b...), nil
}

// defaultsFrom appends the defaults of fields[from:], which were absent.
func (e *encoder) defaultsFrom(n *node, dst []byte, from int) ([]byte, error) {
	for _, f := range n.fields[from:] {
		var err error
		if dst, err = e.appendDefault(dst, f); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// recordRest encodes the rest of a record object whose key k (read, the
// cursor after it) is not fields[next]: fields[:next] are already in dst,
// in order; the others may come in any order and are collected, then
// appended in schema order. A key of fields[:next] seen again takes the
// generic path (errDuplicateKey), where the last value wins.
func (e *encoder) recordRest(n *node, dst []byte, depth, next int, k []byte) ([]byte, error) {
	vals := make([][]byte, len(n.fields))
	have := make([]bool, len(n.fields))
	var unknown []string
	for {
		e.WS()
		if e.I >= len(e.B) || e.B[e.I] != ':' {
			return dst, e.syntax(e.colonErr())
		}
		e.I++
		e.WS()
		idx, known := n.fieldIndex[string(k)]
		switch {
		case !known:
			unknown = append(unknown, string(k))
			if err := e.skip(depth + 1); err != nil {
				return dst, e.syntax(err)
			}
		case idx < next:
			return dst, errDuplicateKey
		default:
			f := n.fields[idx]
			valStart := e.I
			var err error
			vals[idx], err = e.enc(f.typ, vals[idx][:0], depth+1)
			if err != nil {
				return dst, e.at(e.unlessRepeated(string(k), valStart, err, depth), "."+f.name)
			}
			have[idx] = true
		}
		e.WS()
		if e.I >= len(e.B) {
			return dst, e.syntax(jsonscan.ErrEOF)
		}
		if e.B[e.I] == '}' {
			e.I++
			break
		}
		if e.B[e.I] != ',' {
			return dst, e.syntax(e.Errorf("invalid character %q after object key:value pair", e.B[e.I]))
		}
		e.I++
		e.WS()
		if e.I >= len(e.B) {
			return dst, e.syntax(jsonscan.ErrEOF)
		}
		if e.B[e.I] != '"' {
			return dst, e.syntax(e.Errorf("invalid character %q looking for beginning of object key string", e.B[e.I]))
		}
		var err error
		if k, err = e.rawString(); err != nil {
			return dst, e.syntax(err)
		}
	}
	for i := next; i < len(n.fields); i++ {
		if f := n.fields[i]; !have[i] && !f.hasDefault {
			return dst, e.fieldErr(f.name, "missing required field (type %s)", f.typ.describe())
		}
	}
	if len(unknown) > 0 {
		first := unknown[0]
		for _, u := range unknown[1:] {
			if u < first {
				first = u
			}
		}
		return dst, e.fieldErr(first, "unknown field (record %s has no field %q)", n.name, first)
	}
	for i := next; i < len(n.fields); i++ {
		if have[i] {
			dst = append(dst, vals[i]...)
			continue
		}
		var err error
		if dst, err = e.appendDefault(dst, n.fields[i]); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// unionWrapped reads null or {"branch": value}.
func (e *encoder) unionWrapped(n *node, dst []byte, depth int) ([]byte, error) {
	c := e.B[e.I]
	if c == 'n' {
		for i, b := range n.branches {
			if b.kind == kNull {
				return appendLong(dst, int64(i)), e.lit("null")
			}
		}
		return dst, e.p.errorf("expected %s, got null (the union has no null branch)", n.describe())
	}
	if c == '{' {
		save := e.I
		if out, ok, err := e.tryWrapped(n, dst, depth); ok || err != nil {
			return out, err
		}
		if err := e.back(save); err != nil {
			return dst, err
		}
	}
	v, err := e.peek()
	if err != nil {
		return dst, e.syntax(err)
	}
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k := range m {
			return dst, e.p.errorf("union has no branch %q (want one of %s)", k, n.branchKeys())
		}
	}
	return dst, e.p.errorf("expected a union value wrapped as {\"<type>\": value} with type one of %s, or null; got %s", n.branchKeys(), describeJSON(v))
}

// tryWrapped encodes {"branch": value}; ok is false (and nothing consumed
// that matters) when the object is not a one-key wrapper of a branch.
func (e *encoder) tryWrapped(n *node, dst []byte, depth int) ([]byte, bool, error) {
	e.I++ // {
	e.WS()
	if e.I >= len(e.B) || e.B[e.I] != '"' {
		return dst, false, nil
	}
	k, err := e.rawString()
	if err != nil {
		return dst, false, nil
	}
	b := n.branchByName(string(k))
	if b == nil {
		return dst, false, nil
	}
	e.WS()
	if e.I >= len(e.B) || e.B[e.I] != ':' {
		return dst, false, nil
	}
	e.I++
	e.WS()
	// A second key makes it not a wrapper: look ahead before encoding.
	save := e.I
	if err := e.skip(depth + 1); err != nil {
		return dst, false, nil
	}
	e.WS()
	if e.I >= len(e.B) || e.B[e.I] != '}' {
		return dst, false, nil
	}
	end := e.I + 1
	if err := e.back(save); err != nil {
		return dst, true, err
	}
	idx := n.branchIndex(b)
	out := appendLong(dst, int64(idx))
	out, err = e.enc(b, out, depth+1)
	if err != nil {
		return dst, true, err
	}
	e.I = end
	return out, true, nil
}

func (n *node) branchIndex(b *node) int {
	for i, x := range n.branches {
		if x == b {
			return i
		}
	}
	return -1
}

// fitsFirstByte is jsonKindFits from the first byte of the JSON value.
func fitsFirstByte(b *node, c byte) bool {
	switch {
	case c == 'n':
		return b.kind == kNull
	case c == 't' || c == 'f':
		return b.kind == kBoolean
	case c == '-' || (c >= '0' && c <= '9'):
		switch b.kind {
		case kInt, kLong, kFloat, kDouble:
			return true
		case kBytes, kFixed:
			return b.logical == lDecimal
		}
	case c == '"':
		switch b.kind {
		case kString, kEnum, kBytes, kFixed, kFloat, kDouble:
			return true
		case kInt, kLong:
			return b.logical != lNone
		}
	case c == '{':
		return b.kind == kRecord || b.kind == kMap
	case c == '[':
		return b.kind == kArray
	}
	return false
}

// unionPlain infers the branch: the first, in schema order, that accepts
// the value; then the Avro-style wrapped form.
func (e *encoder) unionPlain(n *node, dst []byte, depth int) ([]byte, error) {
	c := e.B[e.I]
	save, start := e.I, len(dst)
	var firstErr error
	compatible := 0
	for i, b := range n.branches {
		if !fitsFirstByte(b, c) {
			continue
		}
		compatible++
		out := appendLong(dst, int64(i))
		out, err := e.enc(b, out, depth+1)
		if err == nil {
			return out, nil
		}
		if errors.Is(err, errDuplicateKey) || overBudget(err) {
			return dst[:start], err
		}
		if firstErr == nil {
			firstErr = err
		}
		dst = dst[:start]
		if err := e.back(save); err != nil {
			return dst, err
		}
	}
	if c == '{' {
		out, ok, err := e.tryWrapped(n, dst, depth)
		if ok || err != nil {
			return out, err
		}
		if err := e.back(save); err != nil {
			return dst, err
		}
	}
	if compatible == 1 {
		return dst, firstErr
	}
	v, err := e.peek()
	if err != nil {
		return dst, e.syntax(err)
	}
	return dst, e.p.errorf("no union branch matches: expected %s, got %s", n.describe(), describeJSON(v))
}

// defaultBinary is the field's default, Avro-encoded, computed once.
func (f *field) defaultBinary() ([]byte, error) {
	f.defOnce.Do(func() {
		f.defBin, f.defErr = encodeNative(f.typ, f.def)
	})
	return f.defBin, f.defErr
}

// encodeNative encodes a goavro-native default through the schema.
func encodeNative(n *node, v any) ([]byte, error) {
	js, err := appendJSON(nil, n, v, AvroJSON, &pathBuf{})
	if err != nil {
		return nil, err
	}
	e := encoder{Scanner: jsonscan.Scanner{B: js}, mode: AvroJSON, bud: unlimited()}
	return e.enc(n, nil, 0)
}

// Lazily encoded defaults live on the field.
type fieldDefault struct {
	defOnce sync.Once
	defBin  []byte
	defErr  error
}
