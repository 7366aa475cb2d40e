package avro

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/registry"
)

// refSource is an in-memory registry: ids and subject versions.
type refSource struct {
	byID      map[int]*registry.Schema
	byVersion map[string]*registry.Schema // "subject/version"
}

func (r *refSource) SchemaByID(_ context.Context, id int) (*registry.Schema, error) {
	if s, ok := r.byID[id]; ok {
		return s, nil
	}
	return nil, errors.New("not found")
}

func (r *refSource) ByVersion(_ context.Context, subject string, version int) (*registry.Schema, error) {
	if s, ok := r.byVersion[fmt.Sprintf("%s/%d", subject, version)]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("subject %s version %d not found", subject, version)
}

func (r *refSource) Latest(ctx context.Context, subject string) (*registry.Schema, error) {
	return r.ByVersion(ctx, subject, 1)
}

const (
	addressSchema  = `{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"city","type":"string"},{"name":"zip","type":["null","string"],"default":null}]}`
	customerSchema = `{"type":"record","name":"Customer","namespace":"com.acme","fields":[{"name":"name","type":"string"},{"name":"home","type":"Address"}]}`
	// Order uses Address relatively, twice, next to Customer (which brings
	// Address too); a default that happens to be a type name stays a string.
	orderRefSchema = `{"type":"record","name":"Order","namespace":"com.acme","fields":[
	 {"name":"kind","type":"string","default":"com.acme.Address"},
	 {"name":"billing","type":"Address"},
	 {"name":"shipping","type":["null","com.acme.Address"],"default":null},
	 {"name":"buyer","type":"com.acme.Customer"},
	 {"name":"history","type":{"type":"array","items":"Address"}}]}`
	// orderInlined is the same schema written out by hand.
	orderInlined = `{"type":"record","name":"Order","namespace":"com.acme","fields":[
	 {"name":"kind","type":"string","default":"com.acme.Address"},
	 {"name":"billing","type":` + addressSchema + `},
	 {"name":"shipping","type":["null","com.acme.Address"],"default":null},
	 {"name":"buyer","type":{"type":"record","name":"Customer","fields":[{"name":"name","type":"string"},{"name":"home","type":"Address"}]}},
	 {"name":"history","type":{"type":"array","items":"Address"}}]}`
)

func newRefSource() *refSource {
	addr := &registry.Schema{ID: 1, Schema: addressSchema}
	cust := &registry.Schema{ID: 2, Schema: customerSchema, References: []registry.Reference{{Name: "com.acme.Address", Subject: "address", Version: 1}}}
	order := &registry.Schema{ID: 3, Schema: orderRefSchema, References: []registry.Reference{
		{Name: "com.acme.Address", Subject: "address", Version: 1},
		{Name: "com.acme.Customer", Subject: "customer", Version: 1},
	}}
	return &refSource{
		byID:      map[int]*registry.Schema{1: addr, 2: cust, 3: order},
		byVersion: map[string]*registry.Schema{"address/1": addr, "customer/1": cust},
	}
}

func TestReferencesInlined(t *testing.T) {
	src := newRefSource()
	cd, err := NewCodecs(src).ByID(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(cd.Schema.References) != 0 || strings.Count(cd.Schema.Schema, `"fields"`) != 3 {
		t.Fatalf("inlined schema %s (references %v): want Order, Address and Customer each defined once", cd.Schema.Schema, cd.Schema.References)
	}
	want := mustCodec(t, orderInlined)
	in := []byte(`{"kind":"x","billing":{"city":"Oslo","zip":"0150"},"shipping":{"city":"Bergen"},"buyer":{"name":"Ann","home":{"city":"Oslo"}},"history":[{"city":"Rome","zip":null}]}`)
	got, err := cd.BinaryFromJSON(nil, in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	exp, err := want.BinaryFromJSON(nil, in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, exp) {
		t.Fatalf("encoded %x, hand-inlined schema gives %x", got, exp)
	}
	// goavro (the codec's decoder) reads it back.
	native, _, err := cd.NativeFromBinary(got)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(native); !strings.Contains(string(b), "Bergen") {
		t.Fatalf("decoded %s", b)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(cd.Schema.Schema), &doc); err != nil || doc["fields"].([]any)[0].(map[string]any)["default"] != "com.acme.Address" {
		t.Fatalf("the string default was touched: %s", cd.Schema.Schema)
	}
}

func TestReferenceErrors(t *testing.T) {
	src := newRefSource()
	src.byID[4] = &registry.Schema{ID: 4, Schema: orderRefSchema, References: []registry.Reference{{Name: "com.acme.Address", Subject: "gone", Version: 3}}}
	if _, err := NewCodecs(src).ByID(context.Background(), 4); err == nil || !strings.Contains(err.Error(), "subject gone version 3") {
		t.Fatalf("missing reference: %v", err)
	}
	// A cycle (a refers to b refers to a) is refused.
	a := &registry.Schema{Schema: `{"type":"record","name":"A","fields":[{"name":"b","type":["null","B"]}]}`, References: []registry.Reference{{Name: "B", Subject: "b", Version: 1}}}
	b := &registry.Schema{Schema: `{"type":"record","name":"B","fields":[{"name":"a","type":["null","A"]}]}`, References: []registry.Reference{{Name: "A", Subject: "a", Version: 1}}}
	src.byVersion["a/1"], src.byVersion["b/1"] = a, b
	src.byID[5] = a
	if _, err := NewCodecs(src).ByID(context.Background(), 5); err == nil || !strings.Contains(err.Error(), "part of a reference cycle") {
		t.Fatalf("reference cycle: %v", err)
	}
	// A chain longer than the bound is refused.
	for i := 0; i < 40; i++ {
		s := fmt.Sprintf(`{"type":"record","name":"L%d","fields":[]}`, i)
		var refs []registry.Reference
		if i > 0 {
			s = fmt.Sprintf(`{"type":"record","name":"L%d","fields":[{"name":"p","type":"L%d"}]}`, i, i-1)
			refs = []registry.Reference{{Name: fmt.Sprintf("L%d", i-1), Subject: fmt.Sprintf("l%d", i-1), Version: 1}}
		}
		src.byVersion[fmt.Sprintf("l%d/1", i)] = &registry.Schema{Schema: s, References: refs}
	}
	src.byID[6] = src.byVersion["l39/1"]
	if _, err := NewCodecs(src).ByID(context.Background(), 6); err == nil || !strings.Contains(err.Error(), "nested more than 32 deep") {
		t.Fatalf("reference chain of 40: %v", err)
	}
	// A source that cannot resolve references says so.
	if _, err := NewCodecs(idOnly{src}).ByID(context.Background(), 3); !errors.Is(err, ErrUnusableSchema) {
		t.Fatalf("without a reference source: %v", err)
	}
}

// countingSource counts the lookups Inline makes.
type countingSource struct {
	*refSource
	lookups int
}

func (c *countingSource) ByVersion(ctx context.Context, subject string, version int) (*registry.Schema, error) {
	c.lookups++
	return c.refSource.ByVersion(ctx, subject, version)
}

// diamondRefs builds levels of two subjects, x<k> and y<k>, each
// referencing both subjects of the next level: 2^levels paths lead from
// the top to the bottom, through 2*levels subject versions.
func diamondRefs(levels int) (*refSource, *registry.Schema) {
	src := &refSource{byID: map[int]*registry.Schema{}, byVersion: map[string]*registry.Schema{}}
	var refs []registry.Reference
	for k := levels; k >= 1; k-- {
		var next []registry.Reference
		for _, side := range []string{"x", "y"} {
			name := fmt.Sprintf("ns.%s%d", strings.ToUpper(side), k)
			fields := `{"name":"v","type":"int"}`
			for _, r := range refs {
				fields += fmt.Sprintf(`,{"name":"f%s","type":%q}`, strings.ReplaceAll(r.Name, ".", "_"), r.Name)
			}
			src.byVersion[fmt.Sprintf("%s%d/1", side, k)] = &registry.Schema{Schema: fmt.Sprintf(`{"type":"record","name":%q,"fields":[%s]}`, name, fields), References: refs}
			next = append(next, registry.Reference{Name: name, Subject: fmt.Sprintf("%s%d", side, k), Version: 1})
		}
		refs = next
	}
	root := &registry.Schema{ID: 1, Schema: `{"type":"record","name":"ns.Top","fields":[{"name":"x","type":"ns.X1"},{"name":"y","type":"ns.Y1"}]}`, References: refs}
	src.byID[1] = root
	return src, root
}

func TestInlineIsLinearInReferences(t *testing.T) {
	t.Parallel()
	const levels = 12
	src, root := diamondRefs(levels)
	cs := &countingSource{refSource: src}
	text, err := Inline(context.Background(), cs, root)
	if err != nil {
		t.Fatal(err)
	}
	if cs.lookups != 2*levels {
		t.Fatalf("%d lookups for %d subject versions: references are walked as a tree", cs.lookups, 2*levels)
	}
	if got := strings.Count(text, `"fields"`); got != 2*levels+1 {
		t.Fatalf("%d records defined in the inlined text, want %d: %s", got, 2*levels+1, text)
	}
	if _, err := NewCodec(1, text); err != nil {
		t.Fatalf("inlined schema does not compile: %v\n%s", err, text)
	}
	// The inlined text and the schema measured through its references
	// are the same schema.
	var refTexts []string
	for k := levels; k >= 1; k-- {
		refTexts = append(refTexts, src.byVersion[fmt.Sprintf("x%d/1", k)].Schema, src.byVersion[fmt.Sprintf("y%d/1", k)].Schema)
	}
	viaRefs, err := MeasureSchema(root.Schema, refTexts...)
	if err != nil {
		t.Fatal(err)
	}
	inlined, err := MeasureSchema(text)
	if err != nil {
		t.Fatal(err)
	}
	if viaRefs.ExpandedTypes != inlined.ExpandedTypes || viaRefs.Depth != inlined.Depth {
		t.Fatalf("measured through references %+v, inlined %+v", viaRefs, inlined)
	}
}

// TestInlineNestedReferencedType: a schema may use a type defined inside a
// referenced schema (Confluent parses the referenced schemas first, so all
// their names are known); the inlined schema defines it where it is first
// used; a nested type of the null namespace stays defined in its parent.
func TestInlineNestedReferencedType(t *testing.T) {
	t.Parallel()
	lib := &registry.Schema{Schema: `{"type":"record","name":"Lib","namespace":"lib","fields":[
		{"name":"inner","type":{"type":"record","name":"Inner","fields":[{"name":"v","type":"int"}]}},
		{"name":"plain","type":{"type":"enum","name":"Plain","namespace":"","symbols":["A"]}}]}`}
	src := &refSource{byID: map[int]*registry.Schema{}, byVersion: map[string]*registry.Schema{"lib/1": lib}}
	root := &registry.Schema{Schema: `{"type":"record","name":"Root","namespace":"app","fields":[
		{"name":"i","type":"lib.Inner"},{"name":"l","type":["null","lib.Lib"]}]}`,
		References: []registry.Reference{{Name: "lib.Lib", Subject: "lib", Version: 1}}}
	text, err := Inline(context.Background(), src, root)
	if err != nil {
		t.Fatal(err)
	}
	cd, err := NewCodec(1, text)
	if err != nil {
		t.Fatalf("inlined schema does not compile: %v\n%s", err, text)
	}
	bin, err := cd.BinaryFromJSON(nil, []byte(`{"i":{"v":1},"l":{"inner":{"v":2},"plain":"A"}}`), Options{})
	if err != nil {
		t.Fatalf("encoding with the inlined schema: %v\n%s", err, text)
	}
	if len(bin) == 0 {
		t.Fatal("nothing encoded")
	}
	for _, name := range []string{`"lib.Inner"`, `"Plain"`, `"lib.Lib"`} {
		if n := strings.Count(text, `"name":`+name); n != 1 {
			t.Fatalf("%s defined %d times in %s", name, n, text)
		}
	}
}

type idOnly struct{ s *refSource }

func (i idOnly) SchemaByID(ctx context.Context, id int) (*registry.Schema, error) {
	return i.s.SchemaByID(ctx, id)
}

// FuzzInline: any schema text with references either inlines to JSON that
// has no reference left unresolved when it compiles, or fails; never a
// panic.
func FuzzInline(f *testing.F) {
	f.Add(orderRefSchema)
	f.Add(customerSchema)
	f.Add(`["null","com.acme.Address",{"type":"map","values":"Address"}]`)
	f.Add(`{"type":{"type":"array","items":"com.acme.Address"}}`)
	f.Fuzz(func(t *testing.T, schema string) {
		src := newRefSource()
		s := &registry.Schema{Schema: schema, References: []registry.Reference{{Name: "com.acme.Address", Subject: "address", Version: 1}}}
		text, err := Inline(context.Background(), src, s)
		if err != nil {
			return
		}
		if !json.Valid([]byte(text)) {
			t.Fatalf("inlined %q into invalid JSON %q", schema, text)
		}
		if c, err := NewCodec(0, text); err == nil && strings.Count(text, `"name":"com.acme.Address"`) > 1 {
			t.Fatalf("Address defined twice in %s (compiled: %v)", text, c != nil)
		}
	})
}
