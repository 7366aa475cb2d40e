package avro

import (
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// The s3-sink validated records with a walker of its own (avrocheck)
// before ValidateBinary became the only one; these are its cases.

const everythingSchema = `{"type":"record","name":"All","namespace":"t","fields":[
 {"name":"n","type":"null"},
 {"name":"b","type":"boolean"},
 {"name":"i","type":"int"},
 {"name":"l","type":"long"},
 {"name":"f","type":"float"},
 {"name":"d","type":"double"},
 {"name":"by","type":"bytes"},
 {"name":"s","type":"string"},
 {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
 {"name":"fx","type":{"type":"fixed","name":"Hash","size":4}},
 {"name":"a","type":{"type":"array","items":"long"}},
 {"name":"m","type":{"type":"map","values":["null","string"]}},
 {"name":"u","type":["null","t.Color","Hash",{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"}]}]},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
 {"name":"nested","type":{"type":"array","items":"Inner"}},
 {"name":"nulls","type":{"type":"array","items":"null"}}
]}`

const linkedSchema = `{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}`

func everythingDatum() map[string]any {
	return map[string]any{
		"n": nil, "b": true, "i": int32(-7), "l": int64(1 << 40), "f": float32(1.5), "d": 2.25,
		"by": []byte{1, 2, 3}, "s": "héllo", "e": "GREEN", "fx": []byte("abcd"),
		"a": []any{int64(1), int64(-2)}, "m": map[string]any{"k": goavro.Union("string", "v"), "z": nil},
		"u":  goavro.Union("t.Inner", map[string]any{"x": int32(3)}),
		"ts": time.UnixMilli(1700000000000), "dec": big.NewRat(12345, 100),
		"nested": []any{map[string]any{"x": int32(1)}}, "nulls": []any{nil, nil},
	}
}

func TestValidateBinaryAcceptsGoavroEncodings(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		schema string
		datum  any
	}{
		"every type": {everythingSchema, everythingDatum()},
		"recursive":  {linkedSchema, map[string]any{"v": int32(1), "next": goavro.Union("Node", map[string]any{"v": int32(2), "next": nil})}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := mustCodec(t, tc.schema)
			b, err := c.Codec.BinaryFromNative(nil, tc.datum)
			if err != nil {
				t.Fatal(err)
			}
			if rest, err := c.ValidateBinary(b); err != nil || len(rest) != 0 {
				t.Fatalf("ValidateBinary: rest %d bytes, %v", len(rest), err)
			}
			for i := range b {
				if rest, err := c.ValidateBinary(b[:i]); err == nil {
					t.Fatalf("truncated to %d of %d bytes accepted (rest %d)", i, len(b), len(rest))
				}
			}
			if rest, err := c.ValidateBinary(append(append([]byte(nil), b...), 0)); err != nil || len(rest) != 1 {
				t.Fatalf("with a trailing byte: rest %d bytes, %v", len(rest), err)
			}
		})
	}
}

// Values goavro refuses, or that are not Avro, are refused.
func TestValidateBinaryRefuses(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		schema string
		data   []byte
		want   string
	}{
		"int beyond 32 bits":   {`"int"`, zz(1 << 33), "out of range"},
		"int varint too long":  {`"int"`, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, "varint too long"},
		"boolean byte 2":       {`"boolean"`, []byte{2}, "want 0 or 1"},
		"enum index":           {`{"type":"enum","name":"E","symbols":["A"]}`, zz(1), "out of range"},
		"union index":          {`["null","int"]`, zz(2), "out of range"},
		"negative length":      {`"string"`, zz(-1), "negative"},
		"duplicate map key":    {`{"type":"map","values":"int"}`, cat(zz(2), zz(1), []byte("k"), zz(1), zz(1), []byte("k"), zz(2), zz(0)), "duplicate map key"},
		"duplicate key, later": {`{"type":"map","values":"null"}`, cat(zz(20), distinctKeys(19), zz(4), []byte("k007"), zz(0)), "duplicate map key"},
		"block over the limit": {`{"type":"array","items":"int"}`, cat(zz(MaxBlockCount+1), zz(0)), "over the limit"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := mustCodec(t, tc.schema)
			_, err := c.ValidateBinary(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if _, _, gerr := c.Codec.NativeFromBinary(tc.data); gerr == nil && tc.want == "duplicate map key" {
				t.Fatalf("goavro accepts what ValidateBinary refuses as %q", tc.want)
			}
		})
	}
}

// A map of distinct keys past the first few compared in place is accepted.
func TestValidateBinaryManyMapKeys(t *testing.T) {
	t.Parallel()
	c := mustCodec(t, `{"type":"map","values":"null"}`)
	data := cat(zz(300), distinctKeys(300), zz(0))
	if rest, err := c.ValidateBinary(data); err != nil || len(rest) != 0 {
		t.Fatalf("rest %d, %v", len(rest), err)
	}
}
