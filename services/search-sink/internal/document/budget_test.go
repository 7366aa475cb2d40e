package document

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/avro/avrogen"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/wire"
)

func zz(v int64) []byte { return binary.AppendVarint(nil, v) }

// distinctKeys encodes n map keys "k000", "k001", ... (values of 0 bytes).
func distinctKeys(n int) []byte {
	var b []byte
	for i := range n {
		b = append(append(b, zz(4)...), fmt.Sprintf("k%03d", i)...)
	}
	return b
}

// transcodeSteps transcodes payload as Build does and returns the error
// and the steps taken.
func transcodeSteps(t testing.TB, schema string, payload []byte) (error, int64) {
	t.Helper()
	n, err := ParseSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	tr := transcoder{b: payload, bud: avro.DefaultLimits().NewBudget(len(payload))}
	_, err = tr.value(nil, n, false, 0)
	return err, tr.bud.Used()
}

// The transcoder refuses hostile records with the budget error after a
// number of steps bounded by their size; both Build paths dead-letter them
// (PermanentError) with the budget reason.
func TestTranscoderBudget(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		schema string
		data   []byte
	}{
		"shared types, depth 22, 0 bytes":  {avrogen.SharedChain(22, ""), nil},
		"array of null, 2^20 in one block": {`{"type":"array","items":"null"}`, append(zz(1<<20), 0)},
		"array of empty records":           {`{"type":"array","items":{"type":"record","name":"E","fields":[]}}`, append(zz(1<<19), 0)},
		"map values of shared types": {`{"type":"map","values":` + avrogen.SharedChain(10, "") + `}`,
			append(append(zz(100), distinctKeys(100)...), 0)},
		"long field names, many times": {`{"type":"array","items":{"type":"record","name":"L","fields":[{"name":"` + strings.Repeat("n", 4000) + `","type":"null"}]}}`,
			append(zz(5000), 0)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err, steps := transcodeSteps(t, tc.schema, tc.data)
			if !errors.Is(err, avro.ErrBudget) {
				t.Fatalf("error = %v, want ErrBudget", err)
			}
			if max := avro.DefaultLimits().Steps(len(tc.data)) + 1; steps > max {
				t.Fatalf("%d steps, more than %d", steps, max)
			}
			ac, err := avro.NewCodec(9, tc.schema)
			if err != nil {
				t.Fatal(err)
			}
			namer, _ := NewNamer(ModeIndex, "<topic>-{yyyy.MM.dd}", "", "")
			src := fakeCodecs{9: {ID: 9, Schema: tc.schema, Codec: ac}}
			for _, fields := range []bool{false, true} {
				b := NewBuilder(src, Options{Namer: namer, Fields: fields})
				_, err := b.Build(context.Background(), &kafkago.Message{Topic: "t", Value: wire.Encode(9, tc.data), Time: time.Unix(1, 0)})
				if !IsPermanent(err) || !errors.Is(err, avro.ErrBudget) || !strings.HasPrefix(err.Error(), "decoding avro (schema id 9): decode budget exceeded: ") {
					t.Fatalf("Build (fields %v): %v, want a permanent budget error", fields, err)
				}
			}
		})
	}
}

// FuzzTranscodeGenerated: over avrogen's schemas (shared named types,
// issue 13's chains, deep unions, recursive types) with random bytes and
// goavro-encoded values, the transcoder stays within the budget of the
// record's size, and when both it and the goavro path (pkg/avro's
// budgeted NativeFromBinary, then Normalize) decode a record, the
// documents are identical.
func FuzzTranscodeGenerated(f *testing.F) {
	limitGoavro(f)
	f.Add([]byte{0, 7}, []byte{}, []byte{1})
	f.Add([]byte{2, 5, 5, 5, 11, 3}, []byte{2, 2, 2, 0}, []byte{3, 3})
	f.Add([]byte{3, 3, 6, 2, 6, 1, 9, 11}, []byte{0xfe, 0xff, 0x7f, 0}, []byte{7, 7, 7})
	namer, _ := NewNamer(ModeIndex, "<topic>-{yyyy.MM.dd}", "", "")
	f.Fuzz(func(t *testing.T, schemaSeed, data, valueSeed []byte) {
		root, text := avrogen.Schema(avrogen.NewSource(schemaSeed), avrogen.DefaultOptions)
		ac, err := avro.NewCodec(5, text)
		if errors.Is(err, avro.ErrBudget) {
			return
		}
		if err != nil {
			t.Fatalf("generated schema refused: %v", err)
		}
		src := fakeCodecs{5: {ID: 5, Schema: text, Codec: ac}}
		native := NewBuilder(src, Options{Namer: namer, MetaField: "_kafka", Fields: true})
		direct := NewBuilder(src, Options{Namer: namer, MetaField: "_kafka"})
		inputs := [][]byte{data}
		if v, err := avrogen.Value(avrogen.NewSource(valueSeed), root, 24, 2000); err == nil {
			bin, err := ac.Codec.BinaryFromNative(nil, v)
			if err != nil {
				t.Fatalf("goavro cannot encode a generated value: %v", err)
			}
			inputs = append(inputs, bin)
		}
		for _, in := range inputs {
			if _, steps := transcodeSteps(t, text, in); steps > ac.Limits().Steps(len(in))+1 {
				t.Fatalf("transcoding took %d steps", steps)
			}
			m := &kafkago.Message{Topic: "t", Value: wire.Encode(5, in), Time: time.Unix(1, 0)}
			a, errA := native.Build(context.Background(), m)
			b, errB := direct.Build(context.Background(), m)
			if errA == nil && errB == nil && string(a.Body) != string(b.Body) {
				t.Fatalf("documents differ:\ngoavro:     %s\ntranscoder: %s\n%s", a.Body, b.Body, text)
			}
			if errA == nil && errB != nil && !strings.Contains(errB.Error(), "exceeds the data") && !strings.Contains(errB.Error(), "out of range") &&
				!strings.Contains(errB.Error(), "overflows") && !strings.Contains(errB.Error(), "nested too deeply") && !errors.Is(errB, avro.ErrBudget) {
				t.Fatalf("goavro decodes but the transcoder fails: %v\n%s", errB, text)
			}
		}
	})
}

// schemaSource serves one schema text for every id.
type schemaSource string

func (s schemaSource) SchemaByID(_ context.Context, id int) (*registry.Schema, error) {
	return &registry.Schema{ID: id, Schema: string(s)}, nil
}

// codecsSource adapts pkg/avro's cache as run.go does.
type codecsSource struct{ c *avro.Codecs }

func (s codecsSource) Codec(ctx context.Context, id int) (*Codec, error) {
	c, err := s.c.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Codec{ID: c.ID, Schema: c.Schema.Schema, Codec: c}, nil
}

// A schema pkg/avro refuses to compile (here: field defaults that expand
// into 2^40 values, which goavro would expand at compile time) makes its
// records permanent failures, dead-lettered, instead of holding the
// partition forever as if the registry were down.
func TestUnusableSchemaIsPermanent(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(`{"type":"record","name":"T0","fields":[`)
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, `{"name":"a","default":{},"type":{"type":"record","name":"T%d","fields":[`, i)
	}
	b.WriteString(`{"name":"x","type":"int","default":0}`)
	for i := 40; i >= 1; i-- {
		fmt.Fprintf(&b, `]}},{"name":"b","default":{},"type":"T%d"}`, i)
	}
	b.WriteString(`]}`)
	namer, _ := NewNamer(ModeIndex, "<topic>-{yyyy.MM.dd}", "", "")
	bl := NewBuilder(codecsSource{avro.NewCodecs(schemaSource(b.String()))}, Options{Namer: namer})
	_, err := bl.Build(context.Background(), &kafkago.Message{Topic: "t", Value: wire.Encode(3, nil), Time: time.Unix(1, 0)})
	if !IsPermanent(err) || !errors.Is(err, avro.ErrUnusableSchema) {
		t.Fatalf("Build: %v, want a permanent unusable-schema error", err)
	}
}
