package avro

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxZeroSizeItems bounds the items of arrays and maps whose items can
// take no bytes at all (null, empty records): without it a few bytes
// claiming 2^62 nulls would keep ValidateBinary busy for years. Items
// that take at least a byte are bounded by the datum's length.
const maxZeroSizeItems = MaxBlockCount

// ValidateBinary checks that data starts with one Avro binary datum of the
// codec's schema and returns what follows it, without building the datum:
// the gateway validates producers' Avro payloads with it on the hot path.
// It accepts what goavro's NativeFromBinary accepts (FuzzValidateBinary
// holds it to that), except that varints longer than 5 (int) or 10 (long)
// bytes are refused.
func (c *Codec) ValidateBinary(data []byte) (rest []byte, err error) {
	v := validator{b: data}
	if err := v.datum(c.root, 0); err != nil {
		return nil, err
	}
	return data[v.i:], nil
}

type validator struct {
	b []byte
	i int
}

var errShort = errors.New("short buffer")

func (v *validator) varint(max int) (int64, error) {
	x, n := binary.Uvarint(v.b[v.i:])
	switch {
	case n == 0:
		return 0, errShort
	case n < 0 || n > max:
		return 0, fmt.Errorf("offset %d: varint too long", v.i)
	}
	v.i += n
	return int64(x>>1) ^ -int64(x&1), nil
}

func (v *validator) skip(n int64, what string) error {
	if n < 0 {
		return fmt.Errorf("offset %d: negative %s length %d", v.i, what, n)
	}
	if n > int64(len(v.b)-v.i) {
		return errShort
	}
	v.i += int(n)
	return nil
}

func (v *validator) datum(n *node, depth int) error {
	if depth > maxDepth {
		return errors.New("exceeded max depth")
	}
	switch n.kind {
	case kNull:
		return nil
	case kBoolean:
		if v.i >= len(v.b) {
			return errShort
		}
		if b := v.b[v.i]; b > 1 {
			return fmt.Errorf("offset %d: boolean byte %d, want 0 or 1", v.i, b)
		}
		v.i++
		return nil
	case kInt:
		_, err := v.varint(binary.MaxVarintLen32)
		return err
	case kLong:
		_, err := v.varint(binary.MaxVarintLen64)
		return err
	case kFloat:
		return v.skip(4, "float")
	case kDouble:
		return v.skip(8, "double")
	case kBytes, kString:
		l, err := v.varint(binary.MaxVarintLen64)
		if err != nil {
			return err
		}
		return v.skip(l, "bytes")
	case kFixed:
		return v.skip(int64(n.size), "fixed")
	case kEnum:
		idx, err := v.varint(binary.MaxVarintLen64)
		if err != nil {
			return err
		}
		if idx < 0 || idx >= int64(len(n.symbols)) {
			return fmt.Errorf("enum %s index %d out of range [0,%d)", n.name, idx, len(n.symbols))
		}
		return nil
	case kRecord:
		for _, f := range n.fields {
			if err := v.datum(f.typ, depth+1); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
		return nil
	case kUnion:
		idx, err := v.varint(binary.MaxVarintLen64)
		if err != nil {
			return err
		}
		if idx < 0 || idx >= int64(len(n.branches)) {
			return fmt.Errorf("union index %d out of range [0,%d)", idx, len(n.branches))
		}
		return v.datum(n.branches[idx], depth+1)
	case kArray, kMap:
		total := int64(0)
		for {
			count, err := v.varint(binary.MaxVarintLen64)
			if err != nil {
				return err
			}
			if count == 0 {
				return nil
			}
			if count < 0 {
				if count == -1<<63 {
					return fmt.Errorf("offset %d: bad block count", v.i)
				}
				count = -count
				if _, err := v.varint(binary.MaxVarintLen64); err != nil { // block size, unused
					return err
				}
			}
			if count > MaxBlockCount {
				return fmt.Errorf("block count %d over the limit of %d", count, MaxBlockCount)
			}
			if total += count; total > maxZeroSizeItems && total > int64(len(v.b)) {
				return fmt.Errorf("%d items cannot fit in %d bytes", total, len(v.b))
			}
			for k := int64(0); k < count; k++ {
				if n.kind == kMap {
					l, err := v.varint(binary.MaxVarintLen64)
					if err != nil {
						return err
					}
					if err := v.skip(l, "map key"); err != nil {
						return err
					}
				}
				if err := v.datum(n.items, depth+1); err != nil {
					return err
				}
			}
		}
	}
	return fmt.Errorf("internal: unknown kind %d", n.kind)
}
