package avro

import "testing"

func TestCanonicalEqualForms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		a, b string
	}{
		{"whitespace", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`, "{ \"type\" : \"record\",\n \"name\": \"R\", \"fields\": [ {\"name\":\"a\", \"type\":\"int\"} ] }"},
		{"key order", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`, `{"fields":[{"type":"int","name":"a"}],"name":"R","type":"record"}`},
		{"namespace attribute vs full name", `{"type":"record","name":"R","namespace":"com.acme","fields":[]}`, `{"type":"record","name":"com.acme.R","fields":[]}`},
		{"wrapped primitive", `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"int"}}]}`, `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`},
		{"inherited namespace of nested names", `{"type":"record","name":"R","namespace":"n","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}},{"name":"f","type":"E"}]}`, `{"type":"record","name":"n.R","fields":[{"name":"e","type":{"type":"enum","name":"n.E","symbols":["A"]}},{"name":"f","type":"n.E"}]}`},
		{"top-level primitive", `"string"`, `{"type":"string"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ca, err := Canonical(tc.a)
			if err != nil {
				t.Fatal(err)
			}
			cb, err := Canonical(tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if ca != cb {
				t.Fatalf("canonical forms differ:\n%s\n%s", ca, cb)
			}
		})
	}
}

func TestCanonicalDistinguishes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		a, b string
	}{
		{"field order", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}`, `{"type":"record","name":"R","fields":[{"name":"b","type":"int"},{"name":"a","type":"int"}]}`},
		{"default", `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":1}]}`, `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":2}]}`},
		{"namespace", `{"type":"record","name":"R","namespace":"x","fields":[]}`, `{"type":"record","name":"R","namespace":"y","fields":[]}`},
		{"logical type", `{"type":"long","logicalType":"timestamp-millis"}`, `"long"`},
		{"doc", `{"type":"record","name":"R","doc":"one","fields":[]}`, `{"type":"record","name":"R","doc":"two","fields":[]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ca, _ := Canonical(tc.a)
			cb, _ := Canonical(tc.b)
			if ca == cb {
				t.Fatalf("distinct schemas got one canonical form %s", ca)
			}
		})
	}
}
