package avro

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ValidateBinary checks that data starts with one Avro binary datum of the
// codec's schema and returns what follows it, without building the datum:
// the gateway validates producers' Avro payloads with it on the hot path.
// It accepts what goavro's NativeFromBinary accepts (FuzzValidateBinary
// holds it to that), except that varints longer than 5 (int) or 10 (long)
// bytes are refused, and that the walk is bounded by the codec's Limits
// for a record of len(data) bytes: one step per value (a record, each
// field, array item, map key and value, union branch, scalar). Past them
// it fails with a *BudgetError.
func (c *Codec) ValidateBinary(data []byte) (rest []byte, err error) {
	v := validator{b: data, bud: c.limits.budget(len(data))}
	if err := v.datum(c.root, 0); err != nil {
		return nil, err
	}
	return data[v.i:], nil
}

// NativeFromBinary decodes one datum as goavro's NativeFromBinary does,
// after ValidateBinary's walk has checked that it is well formed and fits
// the codec's Limits: goavro itself builds whatever tree the schema
// describes (2^22 maps for 0 bytes of a schema of shared types), so it
// only ever sees data whose tree is bounded by its size. Errors are
// ValidateBinary's (a *BudgetError past the limits).
func (c *Codec) NativeFromBinary(data []byte) (native any, rest []byte, err error) {
	if _, err := c.ValidateBinary(data); err != nil {
		return nil, data, err
	}
	return c.Codec.NativeFromBinary(data)
}

type validator struct {
	b   []byte
	i   int
	bud Budget
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
	if err := v.bud.Depth(depth); err != nil {
		return err
	}
	if err := v.bud.Step(1); err != nil {
		return err
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
		at := v.i
		x, err := v.varint(binary.MaxVarintLen32)
		if err == nil && (x < math.MinInt32 || x > math.MaxInt32) {
			return fmt.Errorf("offset %d: int %d out of range", at, x)
		}
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
				if errors.Is(err, ErrBudget) {
					return err // the record as a whole: no path (it could be as deep as the limit)
				}
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
		var keys mapKeys
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
			// A count the rest of the data cannot hold is malformed data;
			// items that take no bytes (null, empty records) are bounded
			// by the budget alone: refuse a block that cannot fit it at
			// once (map keys are charged here, items as they are walked).
			itemMin := int64(n.items.minSize)
			if n.kind == kMap {
				itemMin++ // the key's length
			}
			if left := int64(len(v.b) - v.i); itemMin > 0 && count > left/itemMin {
				return fmt.Errorf("offset %d: block count %d exceeds the remaining %d bytes", v.i, count, left)
			}
			if err := v.bud.Need(count); err != nil {
				return err
			}
			if n.kind == kMap {
				if err := v.bud.Step(count); err != nil {
					return err
				}
			}
			for k := int64(0); k < count; k++ {
				if n.kind == kMap {
					l, err := v.varint(binary.MaxVarintLen64)
					if err != nil {
						return err
					}
					start := v.i
					if err := v.skip(l, "map key"); err != nil {
						return err
					}
					if keys.seen(v.b[start:v.i]) {
						return fmt.Errorf("offset %d: duplicate map key %q", start, v.b[start:v.i])
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

// mapKeys finds a key repeated in one map, which goavro refuses: the first
// keys are compared in place, a set takes over past them.
type mapKeys struct {
	few [8][]byte
	n   int
	set map[string]struct{}
}

func (k *mapKeys) seen(key []byte) bool {
	if k.set == nil {
		for _, f := range k.few[:k.n] {
			if bytes.Equal(f, key) {
				return true
			}
		}
		if k.n < len(k.few) {
			k.few[k.n] = key
			k.n++
			return false
		}
		k.set = make(map[string]struct{}, 2*len(k.few))
		for _, f := range k.few {
			k.set[string(f)] = struct{}{}
		}
	}
	if _, ok := k.set[string(key)]; ok {
		return true
	}
	k.set[string(key)] = struct{}{}
	return false
}
