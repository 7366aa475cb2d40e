package partition

import (
	"errors"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/pkg/avro"
)

const nestedSchema = `{"type":"record","name":"Order","namespace":"shop","fields":[
 {"name":"id","type":"long"},
 {"name":"country","type":["null","string"]},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"home","type":{"type":"record","name":"Address","fields":[{"name":"city","type":"string"},{"name":"geo","type":{"type":"record","name":"Geo","fields":[{"name":"lat","type":"double"}]}}]}},
 {"name":"work","type":["null","Address"]},
 {"name":"other","type":["null",{"type":"record","name":"x.Other","fields":[{"name":"city","type":{"type":"map","values":"string"}}]}]},
 {"name":"either","type":["Geo",{"type":"record","name":"Plain","fields":[{"name":"lat","type":"string"}]}]},
 {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
 {"name":"when","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"ratio","type":"float"}
]}`

func TestCheckSchema(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, path string
		leaf       func(avro.Kind) bool
		ok         bool
	}{
		{"top-level scalar", "id", ScalarKinds, true},
		{"optional string", "country", ScalarKinds, true},
		{"missing", "region", ScalarKinds, false},
		{"array is not a path", "tags", ScalarKinds, false},
		{"record is not a path", "home", ScalarKinds, false},
		{"nested", "home.city", ScalarKinds, true},
		{"nested twice", "home.geo.lat", ScalarKinds, true},
		{"through a union and a reference", "work.city", ScalarKinds, true},
		{"through a union to a map only", "other.city", ScalarKinds, false},
		{"missing nested", "home.zip", ScalarKinds, false},
		{"into a scalar", "id.x", ScalarKinds, false},
		{"two record branches", "either.lat", ScalarKinds, true},
		{"enum", "kind", ScalarKinds, true},
		{"timestamp logical type", "when", TimeKinds, true},
		{"float is not a time", "ratio", TimeKinds, false},
		{"string is a time", "home.city", TimeKinds, true},
		{"optional string is a time", "country", TimeKinds, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := CheckSchema(nestedSchema, strings.Split(c.path, "."), c.leaf)
			if c.ok && err != nil {
				t.Fatalf("CheckSchema(%s) = %v", c.path, err)
			}
			if !c.ok && !errors.Is(err, ErrNotInSchema) {
				t.Fatalf("CheckSchema(%s) = %v, want ErrNotInSchema", c.path, err)
			}
		})
	}
	if err := CheckSchema(`{"type":`, []string{"a"}, ScalarKinds); err == nil || errors.Is(err, ErrNotInSchema) {
		t.Fatalf("broken JSON: %v", err)
	}
}

// FuzzCheckSchema differentially checks CheckSchema against goavro: when
// it says no record of a schema can carry a scalar at a path, no datum
// goavro decodes with that schema has one there (and it never panics).
func FuzzCheckSchema(f *testing.F) {
	f.Add(nestedSchema, "home.city", make([]byte, 32))
	f.Add(`{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`, "a", []byte{2, 'x'})
	f.Add(`{"type":"record","name":"R","fields":[{"name":"a","type":{"type":{"type":["null","R"]}}}]}`, "a.a", []byte{2, 0})
	f.Add(`["null",{"type":"record","name":"n.R","fields":[{"name":"a","type":"int"}]}]`, "a", []byte{2, 4})
	f.Add(`{"type":"record","name":"R","fields":[{"name":"a","type":["null",{"type":"record","name":"S","fields":[{"name":"b","type":"long"}]}]}]}`, "a.b", []byte{2, 6})
	f.Fuzz(func(t *testing.T, schema, path string, data []byte) {
		if len(schema) > 4096 || len(data) > 4096 || path == "" {
			return
		}
		segs := strings.Split(path, ".")
		err := CheckSchema(schema, segs, ScalarKinds)
		if err == nil || !errors.Is(err, ErrNotInSchema) {
			return
		}
		codec, cerr := goavro.NewCodec(schema)
		if cerr != nil {
			return
		}
		v, _, derr := codec.NativeFromBinary(data)
		if derr != nil {
			return
		}
		got, lerr := Lookup(v, segs)
		if lerr != nil {
			return
		}
		if _, serr := scalar(got); serr == nil {
			t.Fatalf("CheckSchema(%s) = %v, but a datum of the schema has %#v there", path, err, got)
		}
	})
}

func TestFieldTimeKindsAgree(t *testing.T) {
	t.Parallel()
	// Each kind TimeKinds accepts is one FieldTime reads.
	for kind, v := range map[avro.Kind]any{avro.Long: int64(1), avro.Int: int32(1), avro.Double: 1.5, avro.String: "2026-01-01T00:00:00Z"} {
		if !TimeKinds(kind) {
			t.Fatalf("%s not a time kind", kind)
		}
		if _, err := FieldTime(map[string]any{"f": v}, []string{"f"}); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}
	if _, err := FieldTime(map[string]any{"f": float32(1)}, []string{"f"}); err == nil || TimeKinds(avro.Float) {
		t.Fatal("float: FieldTime and TimeKinds disagree")
	}
}
