package avro

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/pkg/registry"
)

type mapSource struct {
	calls   atomic.Int64
	schemas map[int]*registry.Schema
}

func (m *mapSource) SchemaByID(_ context.Context, id int) (*registry.Schema, error) {
	m.calls.Add(1)
	if s, ok := m.schemas[id]; ok {
		return s, nil
	}
	return nil, &registry.Error{Status: 404, Code: registry.CodeSchemaNotFound, Message: "Schema not found"}
}

func TestCodecsCompileOnce(t *testing.T) {
	t.Parallel()
	src := &mapSource{schemas: map[int]*registry.Schema{
		1: {ID: 1, Schema: `{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}`},
		2: {ID: 2, Schema: `{"type":"record"`},
		3: {ID: 3, Type: "PROTOBUF", Schema: `syntax = "proto3";`},
	}}
	c := NewCodecs(src)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		cd, err := c.ByID(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		bin, err := cd.BinaryFromNative(nil, map[string]any{"a": int64(5)})
		if err != nil || len(bin) != 1 || bin[0] != 10 {
			t.Fatalf("encode = %x, %v", bin, err)
		}
	}
	if src.calls.Load() != 1 {
		t.Fatalf("registry asked %d times, want 1", src.calls.Load())
	}
	cases := []struct {
		name string
		id   int
		want func(error) bool
	}{
		{"unknown id", 9, registry.IsNotFound},
		{"invalid schema", 2, func(err error) bool { return errors.Is(err, ErrUnusableSchema) && !registry.IsNotFound(err) }},
		{"not avro", 3, func(err error) bool { return errors.Is(err, ErrUnusableSchema) }},
	}
	for _, tc := range cases {
		if _, err := c.ByID(ctx, tc.id); !tc.want(err) {
			t.Fatalf("%s: err = %v", tc.name, err)
		}
	}
}
