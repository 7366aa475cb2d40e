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
	// A cycle (a refers to b refers to a) stops at the depth bound.
	a := &registry.Schema{Schema: `{"type":"record","name":"A","fields":[{"name":"b","type":["null","B"]}]}`, References: []registry.Reference{{Name: "B", Subject: "b", Version: 1}}}
	b := &registry.Schema{Schema: `{"type":"record","name":"B","fields":[{"name":"a","type":["null","A"]}]}`, References: []registry.Reference{{Name: "A", Subject: "a", Version: 1}}}
	src.byVersion["a/1"], src.byVersion["b/1"] = a, b
	src.byID[5] = a
	if _, err := NewCodecs(src).ByID(context.Background(), 5); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("reference cycle: %v", err)
	}
	// A source that cannot resolve references says so.
	if _, err := NewCodecs(idOnly{src}).ByID(context.Background(), 3); !errors.Is(err, ErrUnusableSchema) {
		t.Fatalf("without a reference source: %v", err)
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
