package avrocheck

import (
	"math/big"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

const everything = `{"type":"record","name":"All","namespace":"t","fields":[
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

const linked = `{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}`

func sample() map[string]any {
	return map[string]any{
		"n": nil, "b": true, "i": int32(-7), "l": int64(1 << 40), "f": float32(1.5), "d": 2.25,
		"by": []byte{1, 2, 3}, "s": "héllo", "e": "GREEN", "fx": []byte("abcd"),
		"a": []any{int64(1), int64(-2)}, "m": map[string]any{"k": goavro.Union("string", "v"), "z": nil},
		"u":  goavro.Union("t.Inner", map[string]any{"x": int32(3)}),
		"ts": time.UnixMilli(1700000000000), "dec": big.NewRat(12345, 100),
		"nested": []any{map[string]any{"x": int32(1)}}, "nulls": []any{nil, nil},
	}
}

func encodings(t testing.TB) (map[string]*goavro.Codec, map[string][]byte) {
	codecs := map[string]*goavro.Codec{}
	data := map[string][]byte{}
	for name, s := range map[string]string{"everything": everything, "linked": linked} {
		c, err := goavro.NewCodec(s)
		if err != nil {
			t.Fatal(err)
		}
		codecs[name] = c
	}
	var err error
	if data["everything"], err = codecs["everything"].BinaryFromNative(nil, sample()); err != nil {
		t.Fatal(err)
	}
	list := map[string]any{"v": int32(1), "next": goavro.Union("Node", map[string]any{"v": int32(2), "next": nil})}
	if data["linked"], err = codecs["linked"].BinaryFromNative(nil, list); err != nil {
		t.Fatal(err)
	}
	return codecs, data
}

func TestValidAccepted(t *testing.T) {
	t.Parallel()
	_, data := encodings(t)
	for name, s := range map[string]string{"everything": everything, "linked": linked} {
		v, err := New(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(data[name]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b := data[name]
		for i := 0; i < len(b); i++ {
			if v.Validate(b[:i]) == nil {
				t.Fatalf("%s: truncated to %d of %d bytes accepted", name, i, len(b))
			}
		}
		if v.Validate(append(append([]byte(nil), b...), 0)) == nil {
			t.Fatalf("%s: trailing byte accepted", name)
		}
	}
}

func TestBadSchemas(t *testing.T) {
	t.Parallel()
	for _, s := range []string{`nope`, `"Unknown"`, `[]`, `{"type":"record","fields":[]}`, `{"type":"fixed","name":"F","size":-1}`, `{"type":"array","items":"what"}`} {
		if _, err := New(s); err == nil {
			t.Errorf("New(%s) accepted", s)
		}
	}
}

// FuzzAgreesWithGoavro: whatever the validator accepts, goavro decodes
// completely; valid encodings are accepted.
func FuzzAgreesWithGoavro(f *testing.F) {
	codecs, data := encodings(f)
	f.Add(uint8(0), data["everything"])
	f.Add(uint8(1), data["linked"])
	f.Add(uint8(0), []byte{0x02, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(uint8(1), []byte{0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x00})
	vals := map[uint8]*Validator{}
	names := map[uint8]string{0: "everything", 1: "linked"}
	for k, name := range names {
		s := everything
		if name == "linked" {
			s = linked
		}
		v, err := New(s)
		if err != nil {
			f.Fatal(err)
		}
		vals[k] = v
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		which %= 2
		err := vals[which].Validate(b)
		if err != nil {
			return
		}
		_, rest, gerr := codecs[names[which]].NativeFromBinary(b)
		if gerr != nil || len(rest) != 0 {
			t.Fatalf("validator accepted %x; goavro: err %v, %d trailing bytes", b, gerr, len(rest))
		}
	})
}
