package avroschema

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/avro"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		schema  string
		refs    []string
		wantErr string // substring; "" means valid
	}{
		{"record", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`, nil, ""},
		{"not JSON", `{"type":`, nil, "JSON"},
		{"unknown type", `{"type":"record","name":"R","fields":[{"name":"a","type":"integer"}]}`, nil, "integer"},
		{"bad default", `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}`, nil, "default"},
		{"record without name", `{"type":"record","fields":[]}`, nil, "name"},
		{"fixed without size", `{"type":"fixed","name":"F"}`, nil, "size"},
		{"empty", ``, nil, "empty"},
		{"reference resolves", `{"type":"record","name":"C","namespace":"a","fields":[{"name":"x","type":"a.Addr"}]}`, []string{`{"type":"record","name":"Addr","namespace":"a","fields":[]}`}, ""},
		{"missing reference", `{"type":"record","name":"C","namespace":"a","fields":[{"name":"x","type":"a.Addr"}]}`, nil, "Addr"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(tc.schema, tc.refs)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("valid schema rejected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

// FuzzCanonical checks that the canonicaliser never panics, that its
// output is a fixed point, and that whatever goavro accepts canonicalises.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		`"int"`, `["null","string"]`, `{"type":"array","items":"long"}`,
		`{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":{"type":"enum","name":"E","symbols":["A"]}},{"name":"b","type":"E","default":"A"}]}`,
		`{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]}]}`,
		`{"type":"fixed","name":"F","size":4,"aliases":["G"]}`,
		`{"type":"map","values":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}}`,
		`{"type":{"type":"string"}}`, `{}`, `[`, `{"type":"record","name":"R","fields":[1]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := avro.Canonical(s)
		if err != nil {
			if Validate(s, nil) == nil && strings.TrimSpace(s) != "" {
				t.Fatalf("goavro accepts %q but the canonicaliser fails: %v", s, err)
			}
			return
		}
		c2, err := avro.Canonical(c)
		if err != nil {
			t.Fatalf("canonical form %q does not re-canonicalise: %v", c, err)
		}
		if c2 != c {
			t.Fatalf("canonical form is not a fixed point:\n%s\n%s", c, c2)
		}
		if Validate(s, nil) == nil && Validate(c, nil) != nil {
			t.Fatalf("goavro accepts %q but not its canonical form %q: %v", s, c, Validate(c, nil))
		}
	})
}
