package document

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/pkg/avro"
)

// Transcoding writes Avro binary straight to the JSON document, without
// goavro's native maps: the indexing path when no rule needs the fields.
// Its output is byte-for-byte what Normalize + appendValue produce from
// goavro's decoding (TestTranscodeMatchesGoavro and FuzzTranscode check).
//
// It is bounded like every decoder of pkg/avro (the codec's Limits): a
// step per value and per 16 bytes of names taken from the schema (field
// names, enum symbols); everything else it writes is at most a few times
// the input bytes it reads, and it reads each once.

var errShort = errors.New("avro: unexpected end of data")

type transcoder struct {
	b    []byte // remaining input
	mode DecimalMode
	tmp  []byte
	bud  *avro.Budget
}

func (t *transcoder) long() (int64, error) {
	v, n := binary.Varint(t.b)
	if n <= 0 {
		if n == 0 {
			return 0, errShort
		}
		return 0, errors.New("avro: varint overflows a long")
	}
	t.b = t.b[n:]
	return v, nil
}

func (t *transcoder) int() (int32, error) {
	v, err := t.long()
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Errorf("avro: int %d out of range", v)
	}
	return int32(v), nil
}

func (t *transcoder) bytes() ([]byte, error) {
	n, err := t.long()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("avro: negative length %d", n)
	}
	if n > int64(len(t.b)) {
		return nil, errShort
	}
	v := t.b[:n]
	t.b = t.b[n:]
	return v, nil
}

func (t *transcoder) fixed(size int) ([]byte, error) {
	if size < 0 || size > len(t.b) {
		return nil, errShort
	}
	v := t.b[:size]
	t.b = t.b[size:]
	return v, nil
}

// blockCount reads an array or map block header; a negative count is
// followed by the block's byte size.
func (t *transcoder) blockCount(minItem int) (int64, error) {
	c, err := t.long()
	if err != nil {
		return 0, err
	}
	if c < 0 {
		if c == math.MinInt64 {
			return 0, errors.New("avro: bad block count")
		}
		c = -c
		if _, err := t.long(); err != nil {
			return 0, err
		}
	}
	// Bound the work a hostile count can cause: items that take bytes
	// cannot outnumber them, items that take none are bounded by the
	// budget.
	if minItem > 0 && c > int64(len(t.b)/minItem)+1 || c > 1<<24 {
		return 0, fmt.Errorf("avro: block count %d exceeds the data", c)
	}
	if err := t.bud.Need(c); err != nil {
		return 0, err
	}
	return c, nil
}

// value transcodes one value of n. generic writes records with sorted keys
// (inside unions of several non-null branches, as appendValue does).
func (t *transcoder) value(dst []byte, n avro.Type, generic bool, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errors.New("avro: value nested too deeply")
	}
	if err := t.bud.Depth(depth); err != nil {
		return nil, err
	}
	if err := t.bud.Step(1); err != nil {
		return nil, err
	}
	switch n.Kind() {
	case avro.Null:
		return append(dst, "null"...), nil
	case avro.Boolean:
		if len(t.b) == 0 {
			return nil, errShort
		}
		c := t.b[0]
		t.b = t.b[1:]
		if c > 1 {
			return nil, fmt.Errorf("avro: bad boolean byte %d", c)
		}
		return strconv.AppendBool(dst, c == 1), nil
	case avro.Int:
		v, err := t.int()
		if err != nil {
			return nil, err
		}
		switch n.Logical() {
		case "date":
			d := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(v)).UTC()
			dst = append(dst, '"')
			dst = d.AppendFormat(dst, "2006-01-02")
			return append(dst, '"'), nil
		case "time-millis":
			return appendString(dst, timeOfDay(time.Duration(v)*time.Millisecond)), nil
		}
		return strconv.AppendInt(dst, int64(v), 10), nil
	case avro.Long:
		v, err := t.long()
		if err != nil {
			return nil, err
		}
		var ts time.Time
		switch n.Logical() {
		case "timestamp-millis":
			s := v / 1e3
			ts = time.Unix(s, (v-s*1e3)*1e6).UTC()
		case "timestamp-micros":
			s := v / 1e6
			ts = time.Unix(s, (v-s*1e6)*1e3).UTC()
		case "time-micros":
			return appendString(dst, timeOfDay(time.Duration(v)*time.Microsecond)), nil
		default:
			return strconv.AppendInt(dst, v, 10), nil
		}
		dst = append(dst, '"')
		dst = ts.AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"'), nil
	case avro.Float:
		if len(t.b) < 4 {
			return nil, errShort
		}
		f := math.Float32frombits(binary.LittleEndian.Uint32(t.b))
		t.b = t.b[4:]
		return appendFloat(dst, float64(f), 32), nil
	case avro.Double:
		if len(t.b) < 8 {
			return nil, errShort
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(t.b))
		t.b = t.b[8:]
		return appendFloat(dst, f, 64), nil
	case avro.String:
		v, err := t.bytes()
		if err != nil {
			return nil, err
		}
		return appendString(dst, string(v)), nil
	case avro.Bytes, avro.Fixed:
		var v []byte
		var err error
		if n.Kind() == avro.Bytes {
			v, err = t.bytes()
		} else {
			v, err = t.fixed(n.Size())
		}
		if err != nil {
			return nil, err
		}
		if n.Logical() == "decimal" {
			return t.decimal(dst, v, n.Scale()), nil
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v)
		return append(dst, '"'), nil
	case avro.Enum:
		i, err := t.int()
		if err != nil {
			return nil, err
		}
		if i < 0 || int(i) >= len(n.Symbols()) {
			return nil, fmt.Errorf("avro: enum index %d out of range", i)
		}
		if err := t.bud.Output(len(n.Symbols()[i])); err != nil {
			return nil, err
		}
		return appendString(dst, n.Symbols()[i]), nil
	case avro.Union:
		i, err := t.long()
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(n.NumBranches()) {
			return nil, fmt.Errorf("avro: union index %d out of range", i)
		}
		return t.value(dst, n.Branch(int(i)), generic || n.SoleBranch().IsZero(), depth+1)
	case avro.Array:
		dst = append(dst, '[')
		first := true
		minItem := n.Items().MinSize()
		for {
			c, err := t.blockCount(minItem)
			if err != nil {
				return nil, err
			}
			if c == 0 {
				break
			}
			for ; c > 0; c-- {
				if !first {
					dst = append(dst, ',')
				}
				first = false
				if dst, err = t.value(dst, n.Items(), generic, depth+1); err != nil {
					return nil, err
				}
			}
		}
		return append(dst, ']'), nil
	case avro.Map:
		return t.mapValue(dst, n, generic, depth)
	case avro.Record:
		return t.record(dst, n, generic, depth, nil)
	}
	return nil, fmt.Errorf("avro: unsupported type %s", n)
}

func (t *transcoder) decimal(dst, v []byte, scale int) []byte {
	i := new(big.Int).SetBytes(v)
	if len(v) > 0 && v[0]&0x80 != 0 { // two's complement negative
		i.Sub(i, new(big.Int).Lsh(big.NewInt(1), uint(len(v)*8)))
	}
	r := new(big.Rat).SetFrac(i, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
	s := r.FloatString(scale)
	if t.mode == DecimalNumber {
		return append(dst, s...)
	}
	return appendString(dst, s)
}

// fieldErr names the field a decoding error is in, except for a budget
// error, which is about the record as a whole (and could be as deep as
// the depth limit).
func fieldErr(name string, err error) error {
	if errors.Is(err, avro.ErrBudget) {
		return err
	}
	return fmt.Errorf("field %s: %w", name, err)
}

type kv struct {
	key string
	val []byte
}

func (t *transcoder) mapValue(dst []byte, n avro.Type, generic bool, depth int) ([]byte, error) {
	var entries []kv
	minItem := 1 + n.Items().MinSize()
	for {
		c, err := t.blockCount(minItem)
		if err != nil {
			return nil, err
		}
		if c == 0 {
			break
		}
		for ; c > 0; c-- {
			k, err := t.bytes()
			if err != nil {
				return nil, err
			}
			v, err := t.value(nil, n.Items(), generic, depth+1)
			if err != nil {
				return nil, err
			}
			entries = append(entries, kv{string(k), v})
		}
	}
	// Sorted keys, the last of duplicate keys wins (as in a Go map).
	slices.SortStableFunc(entries, func(a, b kv) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	dst = append(dst, '{')
	first := true
	for i, e := range entries {
		if i+1 < len(entries) && entries[i+1].key == e.key {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, e.key)
		dst = append(dst, ':')
		dst = append(dst, e.val...)
	}
	return append(dst, '}'), nil
}

// record writes a record; with skip non-nil (the document's top level) the
// named fields are decoded but left out and the object is left open.
func (t *transcoder) record(dst []byte, n avro.Type, generic bool, depth int, skip []string) ([]byte, error) {
	if generic {
		entries := make([]kv, 0, n.NumFields())
		for i := range n.NumFields() {
			f := n.Field(i)
			if err := t.bud.Output(len(f.Name())); err != nil {
				return nil, err
			}
			v, err := t.value(nil, f.Type(), true, depth+1)
			if err != nil {
				return nil, fieldErr(f.Name(), err)
			}
			entries = append(entries, kv{f.Name(), v})
		}
		slices.SortFunc(entries, func(a, b kv) int {
			if a.key < b.key {
				return -1
			}
			if a.key > b.key {
				return 1
			}
			return 0
		})
		dst = append(dst, '{')
		for i, e := range entries {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, e.key)
			dst = append(dst, ':')
			dst = append(dst, e.val...)
		}
		return append(dst, '}'), nil
	}
	dst = append(dst, '{')
	first := true
	for i := range n.NumFields() {
		f := n.Field(i)
		if err := t.bud.Output(len(f.Name())); err != nil {
			return nil, err
		}
		mark := len(dst)
		if !first {
			dst = append(dst, ',')
		}
		if skip != nil { // the document's top level
			dst = appendString(dst, FieldName(f.Name()))
		} else {
			dst = appendString(dst, f.Name())
		}
		dst = append(dst, ':')
		var err error
		if dst, err = t.value(dst, f.Type(), false, depth+1); err != nil {
			return nil, fieldErr(f.Name(), err)
		}
		if slices.Contains(skip, f.Name()) {
			dst = dst[:mark] // decoded, not written
			continue
		}
		first = false
	}
	if skip != nil {
		return dst, nil
	}
	return append(dst, '}'), nil
}
