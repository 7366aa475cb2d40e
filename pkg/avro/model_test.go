package avro

import (
	"strings"
	"testing"
)

func TestParseSchemaModel(t *testing.T) {
	t.Parallel()
	ref := `{"type":"record","name":"Addr","namespace":"com.acme","aliases":["Address","old.Place"],"fields":[{"name":"city","type":"string","aliases":["town"]}]}`
	text := `{"type":"record","name":"Order","namespace":"com.acme","fields":[
		{"name":"ship","type":"Addr"},
		{"name":"bill","type":["null","com.acme.Addr"],"default":null},
		{"name":"state","type":{"type":"enum","name":"State","symbols":["NEW","PAID"],"default":"NEW"}},
		{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
		{"name":"ts","type":{"type":"int","logicalType":"timestamp-millis"}},
		{"name":"tags","type":{"type":"map","values":{"type":"array","items":"string"}}},
		{"name":"id","type":{"type":"fixed","name":"Id","size":16}},
		{"name":"next","type":["null","Order"]}]}`
	s, err := ParseSchema(text, ref)
	if err != nil {
		t.Fatal(err)
	}
	root := s.Root()
	if root.Kind() != Record || root.Name() != "com.acme.Order" || root.ShortName() != "Order" || root.NumFields() != 8 {
		t.Fatalf("root = %v with %d fields", root, root.NumFields())
	}
	ship, _ := root.FieldByName("ship")
	bill, _ := root.FieldByName("bill")
	if ship.Type() != bill.Type().Branch(1) {
		t.Fatal("two uses of a named type are different Types")
	}
	if got := strings.Join(ship.Type().Aliases(), ","); got != "com.acme.Address,old.Place" {
		t.Fatalf("aliases = %s", got)
	}
	if f := ship.Type().Field(0); f.Name() != "city" || f.Aliases()[0] != "town" || f.HasDefault() {
		t.Fatalf("city field = %s %v %v", f.Name(), f.Aliases(), f.HasDefault())
	}
	if ship.HasDefault() || !bill.HasDefault() {
		t.Fatal("HasDefault wrong")
	}
	state := root.Field(2).Type()
	if state.Kind() != Enum || !state.HasEnumDefault() || len(state.Symbols()) != 2 {
		t.Fatalf("state = %v", state)
	}
	if i, ok := state.SymbolIndex("PAID"); !ok || i != 1 {
		t.Fatal("SymbolIndex")
	}
	amount := root.Field(3).Type()
	if amount.Logical() != "decimal" || amount.Precision() != 9 || amount.Scale() != 2 {
		t.Fatalf("amount = %v", amount)
	}
	if ts := root.Field(4).Type(); ts.Kind() != Int || ts.Logical() != "" {
		t.Fatalf("a logical type on the wrong primitive is kept: %v", ts)
	}
	tags := root.Field(5).Type()
	if tags.Kind() != Map || tags.Items().Kind() != Array || tags.Items().Items().Kind() != String {
		t.Fatalf("tags = %v", tags)
	}
	if id := root.Field(6).Type(); id.Kind() != Fixed || id.Size() != 16 || id.MinSize() != 16 {
		t.Fatalf("id = %v", id)
	}
	if next := root.Field(7).Type(); next.Branch(1) != root || next.UnionKey() != "union" || next.Branch(1).UnionKey() != "com.acme.Order" {
		t.Fatal("recursive use is not the root")
	}
	if n, ok := s.Named("com.acme.State"); !ok || n != state {
		t.Fatal("Named")
	}
}

func TestParseSchemaRefuses(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat(`{"type":"array","items":`, 300) + `"int"` + strings.Repeat("}", 300)
	for _, tc := range []struct{ name, text, want string }{
		{"not JSON", `{`, "not JSON"},
		{"twice defined", `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"fixed","name":"R","size":1}}]}`, "defined twice"},
		{"duplicate symbol", `{"type":"enum","name":"E","symbols":["A","A"]}`, "duplicate symbol"},
		{"duplicate field", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}`, "duplicate field"},
		{"unknown name", `{"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]}`, "unknown type"},
		{"too deep", deep, "too deeply"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ParseSchema(tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A default of the wrong type is the codec's business, not the model's.
	bad := `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}`
	if _, err := ParseSchema(bad); err != nil {
		t.Fatalf("model refuses a bad default: %v", err)
	}
	if _, err := NewCodec(0, bad); err == nil {
		t.Fatal("codec accepts a bad default")
	}
}

func TestUnionBranchIndex(t *testing.T) {
	t.Parallel()
	s, err := ParseSchema(`["null",{"type":"long","logicalType":"timestamp-millis"},{"type":"record","name":"a.R","fields":[]}]`)
	if err != nil {
		t.Fatal(err)
	}
	u := s.Root()
	for k, want := range map[string]int{"null": 0, "long.timestamp-millis": 1, "long": 1, "a.R": 2, "record": 2} {
		if b, ok := u.BranchByKey(k); !ok || b != u.Branch(want) {
			t.Errorf("BranchByKey(%s) = %v, %v, want branch %d", k, b, ok, want)
		}
	}
	if _, ok := u.BranchByKey("string"); ok {
		t.Error("BranchByKey(string) found a branch")
	}
	if !u.SoleBranch().IsZero() {
		t.Error("a union of two non-null branches has a sole branch")
	}
	opt, _ := ParseSchema(`["null","string"]`)
	if sole := opt.Root().SoleBranch(); sole.IsZero() || sole.Kind() != String {
		t.Errorf("SoleBranch of [null, string] = %v", sole)
	}
}

// FuzzParseSchema: the model parser never panics, and a schema it
// accepts can be walked through every named type without reaching a
// zero Type where the model promises one.
func FuzzParseSchema(f *testing.F) {
	f.Add(`{"type":"record","name":"R","fields":[{"name":"a","type":["null","R"]},{"name":"m","type":{"type":"map","values":{"type":"array","items":"long"}}}]}`)
	f.Add(`"string"`)
	f.Add(`["null",{"type":"enum","name":"E","symbols":["A"],"default":"A","aliases":["F"]}]`)
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSchema(text)
		if err != nil {
			return
		}
		seen := map[Type]bool{}
		var walk func(Type)
		walk = func(ty Type) {
			if ty.IsZero() {
				t.Fatal("zero Type inside an accepted schema")
			}
			if seen[ty] {
				return
			}
			seen[ty] = true
			switch ty.Kind() {
			case Record:
				for i := range ty.NumFields() {
					walk(ty.Field(i).Type())
				}
			case Array, Map:
				walk(ty.Items())
			case Union:
				for i := range ty.NumBranches() {
					walk(ty.Branch(i))
				}
			}
		}
		walk(s.Root())
	})
}
