package avro

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzBinaryFromJSON feeds arbitrary JSON to the converter in both modes.
// Properties: no panic; errors are *FieldError; anything accepted encodes,
// decodes, renders as JSON and converts back to the same bytes.
func FuzzBinaryFromJSON(f *testing.F) {
	c := mustCodec(f, orderSchema)
	seeds := []string{
		`{"id":"o","qty":1,"total":1,"ts":0}`,
		`{"id":"o","qty":1,"total":1,"ts":"2024-05-01T12:30:00Z","choice":{"sku":"c","price":3},"items":[{"sku":"a","price":1}]}`,
		`{"id":"o","qty":1,"total":1,"ts":0,"choice":{"long":5},"price":"12.5","day":19000}`,
		`{"id":"o","qty":1,"total":1,"ts":0,"next":{"Order":{"id":"p","qty":2,"total":3,"ts":4}}}`,
		`{"id":"o","qty":1,"total":1,"ts":0,"attrs":{"a":1},"hash":"\u0001\u0002\u0003\u0004"}`,
		`[]`, `null`, `"x"`, `{"id":1}`, `{"id":"o","qty":1e3,"total":-0,"ts":1.0}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, avroMode bool) {
		mode := PlainJSON
		if avroMode {
			mode = AvroJSON
		}
		bin, err := c.BinaryFromJSON(nil, data, Options{Mode: mode, Root: "value"})
		// The generic path (DecodeJSON, NativeFromJSON, goavro) is the oracle.
		var gen []byte
		v, gerr := DecodeJSON(data)
		if gerr == nil {
			gen, gerr = c.BinaryFromJSONValue(nil, v, Options{Mode: mode, Root: "value"})
		}
		if (err == nil) != (gerr == nil) {
			t.Fatalf("%q (%s): direct encoder err %v, goavro path err %v", data, mode, err, gerr)
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, want *FieldError", err, err)
			}
			return
		}
		if !sameDatum(t, c, bin, gen) {
			t.Fatalf("%q (%s): direct encoder and goavro disagree", data, mode)
		}
		for _, m := range []Mode{PlainJSON, AvroJSON} {
			js, err := c.JSONFromBinary(nil, bin, m)
			if err != nil {
				t.Fatalf("accepted %q but cannot render %s: %v", data, m, err)
			}
			bin2, err := c.BinaryFromJSON(nil, js, Options{Mode: m})
			if err != nil {
				t.Fatalf("rendered %s %s does not convert back: %v", m, js, err)
			}
			if !sameDatum(t, c, bin, bin2) {
				t.Fatalf("round trip through %s changed bytes: %q -> %s", m, data, js)
			}
		}
	})
}

// FuzzJSONFromBinary decodes arbitrary bytes: never panics.
func FuzzJSONFromBinary(f *testing.F) {
	c := mustCodec(f, orderSchema)
	good, err := c.BinaryFromJSON(nil, []byte(`{"id":"o","qty":1,"total":1,"ts":0,"choice":"s"}`), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x02, 'a', 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = c.JSONFromBinary(nil, data, PlainJSON)
		_, _ = c.JSONFromBinary(nil, data, AvroJSON)
	})
}

// FuzzDecodeJSON checks the hand-written parser against encoding/json
// (UseNumber): both fail, or both produce the same value.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,2.5e-3,-0,true,false,null,"x\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t"]}`, `[]`, `{}`, `"\ud800"`, `"\ud800\u0041"`,
		`01`, `1.`, `-`, `[1,]`, `{"a":1,}`, `"a` + "\x01" + `"`, "\"\xff\xfe\"", `{"a":1}{}`, ` 5 `, `1e+`, `[[[[]]]]`, `"\u12"`, `tru`, `nul`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeJSON(data)
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		werr := dec.Decode(&want)
		if werr == nil {
			if _, terr := dec.Token(); terr != io.EOF {
				werr = errors.New("trailing data")
			}
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: DecodeJSON err %v, encoding/json err %v", data, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: DecodeJSON %#v, encoding/json %#v", data, got, want)
		}
	})
}

// FuzzScan checks ScanObject/ScanArray against encoding/json validity and
// that the raw members re-assemble to the same value.
func FuzzScan(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[1,{"c":"\u00e9"}],"d":null}`, `[1,"x",{}]`, `{"a":}`, `[1,]`, `{} x`, `{"a":"\x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, werr := decodeNumber(data)
		m := map[string]any{}
		oerr := ScanObject(data, func(k string, raw Valid) error {
			v, err := decodeNumber(raw)
			if err != nil {
				t.Fatalf("member %q raw %q is not JSON: %v", k, raw, err)
			}
			m[k] = v
			return nil
		})
		if _, isObj := want.(map[string]any); werr == nil && isObj {
			if oerr != nil || !reflect.DeepEqual(want, m) {
				t.Fatalf("%q: ScanObject err %v, got %v want %v", data, oerr, m, want)
			}
			// Scanning the validated text again (trusted) delimits the same members.
			m2 := map[string]any{}
			if err := ScanObject(Valid(data), func(k string, raw Valid) error {
				v, err := decodeNumber(raw)
				m2[k] = v
				return err
			}); err != nil || !reflect.DeepEqual(m, m2) {
				t.Fatalf("%q: trusted ScanObject err %v, got %v want %v", data, err, m2, m)
			}
		} else if oerr == nil {
			t.Fatalf("%q: ScanObject accepted, encoding/json: %v (%T)", data, werr, want)
		}
		var a []any
		aerr := ScanArray(data, func(_ int, raw Valid) error {
			v, err := decodeNumber(raw)
			if err != nil {
				t.Fatalf("element raw %q is not JSON: %v", raw, err)
			}
			a = append(a, v)
			return nil
		})
		if wa, isArr := want.([]any); werr == nil && isArr {
			if aerr != nil || len(a) != len(wa) || (len(a) > 0 && !reflect.DeepEqual(wa, a)) {
				t.Fatalf("%q: ScanArray err %v, got %v want %v", data, aerr, a, wa)
			}
			var a2 []any
			if err := ScanArray(Valid(data), func(_ int, raw Valid) error {
				v, err := decodeNumber(raw)
				a2 = append(a2, v)
				return err
			}); err != nil || len(a2) != len(a) || (len(a) > 0 && !reflect.DeepEqual(a, a2)) {
				t.Fatalf("%q: trusted ScanArray err %v, got %v want %v", data, err, a2, a)
			}
		} else if aerr == nil {
			t.Fatalf("%q: ScanArray accepted, encoding/json: %v", data, werr)
		}
	})
}

// decodeNumber is encoding/json with UseNumber and no trailing data.
func decodeNumber(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

// cursorValue rebuilds the value at c the way decodeNumber would, using
// only the Cursor's calls.
func cursorValue(c *Cursor, data []byte) (any, error) {
	if i := c.Offset(); i < len(data) {
		switch data[i] {
		case '{':
			m := map[string]any{}
			err := c.Object(func(k string) error {
				v, err := cursorValue(c, data)
				m[k] = v
				return err
			})
			return m, err
		case '[':
			a := []any{}
			err := c.Array(func(int) error {
				v, err := cursorValue(c, data)
				a = append(a, v)
				return err
			})
			return a, err
		}
	}
	raw, err := c.Value()
	if err != nil {
		return nil, err
	}
	return decodeNumber(raw)
}

// FuzzCursor: a Cursor walk accepts exactly the valid JSON documents and
// sees the same values as a full decode.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[1,{"c":"\u00e9"}],"d":null}`, `[1,"x",{}]`, `{"a":}`, `[1,]`, `{} x`, `{"a":"\x"}`, ` "s" `, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, werr := decodeNumber(data)
		c := NewCursor(data)
		got, gerr := cursorValue(c, data)
		if gerr == nil {
			gerr = c.End()
		}
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: decode err %v, cursor err %v", data, werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(want, got) {
			t.Fatalf("%q: cursor saw %#v, want %#v", data, got, want)
		}
	})
}

// FuzzValidateBinary: whatever ValidateBinary accepts, goavro decodes,
// ending at the same byte; and every datum goavro encodes is accepted,
// unless it really is over the decode budget.
func FuzzValidateBinary(f *testing.F) {
	c := mustCodec(f, pageViewSchema)
	seed, err := c.BinaryFromJSON(nil, []byte(`{"id":"6f1c8a7e-3b2d-4c5e-9f00-000000012345","user":"u","event":"BUY","ts":1,"url":"x","referrer":"r","duration_ms":-3,"amount":1.5,"tags":{"a":"b","c":""}}`), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(0, seed)
	f.Add(1, []byte{2, 0, 4, 0, 0})
	f.Add(2, []byte{3, 2, 2, 0})
	schemas := []string{pageViewSchema,
		`{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"null"}},{"name":"m","type":{"type":"map","values":["null","boolean","int"]}}]}`,
		`{"type":"record","name":"S","fields":[{"name":"f","type":{"type":"fixed","name":"F","size":3}},{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},{"name":"x","type":["null",{"type":"array","items":"double"}]},{"name":"y","type":"float"},{"name":"l","type":"long"}]}`,
		everythingSchema, // 3 and 4: the s3-sink's avrocheck cases (its corpus is testdata/fuzz/FuzzValidateBinary/avrocheck-*)
		linkedSchema,
	}
	codecs := make([]*Codec, len(schemas))
	for i, s := range schemas {
		codecs[i] = mustCodec(f, s)
	}
	f.Fuzz(func(t *testing.T, which int, data []byte) {
		c := codecs[uint(which)%uint(len(codecs))]
		rest, err := c.ValidateBinary(data)
		native, grest, gerr := c.Codec.NativeFromBinary(data)
		if err == nil {
			if gerr != nil {
				t.Fatalf("ValidateBinary accepted %x, goavro: %v", data, gerr)
			}
			if len(rest) != len(grest) {
				t.Fatalf("%x: rest %d bytes, goavro %d", data, len(rest), len(grest))
			}
		}
		if gerr == nil {
			// Re-encode what goavro read: a canonical datum must pass.
			bin, eerr := c.Codec.BinaryFromNative(nil, native)
			if eerr != nil {
				return
			}
			if _, _, rerr := c.Codec.NativeFromBinary(bin); rerr != nil {
				return // e.g. blocks goavro merged over its own block limit
			}
			_, verr := c.ValidateBinary(bin)
			var be *BudgetError
			if errors.As(verr, &be) && realWork(c, bin, be.Limit) {
				return // e.g. 2^19 nulls in 5 bytes: over the budget indeed
			}
			if verr != nil {
				t.Fatalf("ValidateBinary refused goavro's encoding %x: %v", bin, verr)
			}
		}
	})
}

// FuzzEncodeAt: encoding a value inside a document in one pass gives what
// BinaryFromJSON gives for the value's text, error or not, and leaves the
// cursor where a plain walk would.
func FuzzEncodeAt(f *testing.F) {
	c := mustCodec(f, pageViewSchema)
	f.Add([]byte(`{"id":"6f1c8a7e-3b2d-4c5e-9f00-000000012345","user":"u","event":"BUY","ts":"2024-05-01T12:00:00Z","url":"x","referrer":null,"duration_ms":3,"amount":1.5,"tags":{}}`))
	f.Add([]byte(`{"user":"u","id":"6f1c8a7e-3b2d-4c5e-9f00-000000012345","event":"VIEW","ts":1,"url":"x","duration_ms":3,"amount":1,"tags":{"a":"b","a":"c"}}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`{"id":"x",}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		doc := append(append([]byte(`{"records":[{"value":`), value...), `,"k":1}]}`...)
		cur := NewCursor(doc)
		var out, raw []byte
		var verr, serr error
		err := cur.Object(func(string) error {
			return cur.Array(func(int) error {
				return cur.Object(func(k string) error {
					if k != "value" {
						_, err := cur.Value()
						return err
					}
					out, raw, verr, serr = c.EncodeAt([]byte{9}, cur, Options{Root: "value"})
					return serr
				})
			})
		})
		if err == nil {
			err = cur.End()
		}
		if json.Valid(doc) != (err == nil) {
			t.Fatalf("%q: document valid %v, walk error %v", doc, json.Valid(doc), err)
		}
		if err != nil {
			return
		}
		want, werr := c.BinaryFromJSON([]byte{9}, raw, Options{Root: "value"})
		if (verr == nil) != (werr == nil) || (verr != nil && verr.Error() != werr.Error()) || !bytes.Equal(out, want) {
			t.Fatalf("%q: EncodeAt %x, %v; BinaryFromJSON %x, %v", value, out, verr, want, werr)
		}
	})
}
