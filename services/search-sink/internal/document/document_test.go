package document

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/wire"
)

const richSchema = `{"type":"record","name":"Event","namespace":"t","fields":[
 {"name":"id","type":"long"},
 {"name":"name","type":["null","string"]},
 {"name":"at","type":["null",{"type":"long","logicalType":"timestamp-millis"}]},
 {"name":"at_us","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"tod","type":{"type":"int","logicalType":"time-millis"}},
 {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":3}},
 {"name":"opt_price","type":["null",{"type":"fixed","name":"Money","size":8,"logicalType":"decimal","precision":12,"scale":2}]},
 {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":["null","long"]}},
 {"name":"inner","type":["null",{"type":"record","name":"Inner","fields":[{"name":"x","type":"double"},{"name":"again","type":["null","Inner"],"default":null}]}]},
 {"name":"ratio","type":"double"},
 {"name":"raw","type":"bytes"}
]}`

type fakeCodecs map[int]*Codec

func (f fakeCodecs) Codec(_ context.Context, id int) (*Codec, error) {
	if c, ok := f[id]; ok {
		return c, nil
	}
	return nil, &registry.Error{Status: 404, Code: registry.CodeSchemaNotFound, Message: "Schema not found"}
}

type errCodecs struct{ err error }

func (e errCodecs) Codec(context.Context, int) (*Codec, error) { return nil, e.err }

type downCodecs struct{}

func (downCodecs) Codec(context.Context, int) (*Codec, error) {
	return nil, errors.New("dial tcp 127.0.0.1:8081: connection refused")
}

func newBuilder(t testing.TB, mode IndexMode, id IDMode, dec DecimalMode) (*Builder, *goavro.Codec) {
	return newBuilderFields(t, mode, id, dec, true)
}

func newBuilderFields(t testing.TB, mode IndexMode, id IDMode, dec DecimalMode, fields bool) (*Builder, *goavro.Codec) {
	t.Helper()
	ac, err := avro.NewCodec(0, richSchema)
	if err != nil {
		t.Fatal(err)
	}
	gc := ac.Codec
	namer, err := NewNamer(mode, "<topic>-{yyyy.MM.dd}", "logs", "default")
	if err != nil {
		t.Fatal(err)
	}
	return NewBuilder(fakeCodecs{7: {ID: 7, Schema: richSchema, Codec: ac}}, Options{Namer: namer, IDMode: id, Decimal: dec, MetaField: "_kafka", Fields: fields}), gc
}

func richRecord() map[string]any {
	at := time.Date(2026, 2, 3, 4, 5, 6, 789e6, time.UTC)
	return map[string]any{
		"id": int64(42), "name": goavro.Union("string", "widget"),
		"at": goavro.Union("long.timestamp-millis", at), "at_us": at.Add(123 * time.Microsecond),
		"day": at, "tod": 5*time.Hour + 6*time.Minute + 7*time.Second + 8*time.Millisecond,
		"price": big.NewRat(12345, 1000), "opt_price": goavro.Union("t.Money", big.NewRat(-5, 2)),
		"kind": "B", "tags": []any{"a", "b"}, "attrs": map[string]any{"x": goavro.Union("long", int64(1)), "y": nil},
		"inner": goavro.Union("t.Inner", map[string]any{"x": 1.5, "again": goavro.Union("t.Inner", map[string]any{"x": 2.5, "again": nil})}),
		"ratio": 0.25, "raw": []byte{1, 2, 3},
	}
}

func TestBuildDocument(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		dec        DecimalMode
		fields     bool
		wantPrice  string
		wantOptPri string
	}{
		{"decimals as strings", DecimalString, true, `"12.345"`, `"-2.50"`},
		{"decimals as numbers", DecimalNumber, true, `12.345`, `-2.50`},
		{"transcoded, decimals as strings", DecimalString, false, `"12.345"`, `"-2.50"`},
		{"transcoded, decimals as numbers", DecimalNumber, false, `12.345`, `-2.50`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, gc := newBuilderFields(t, ModeIndex, IDOffset, tc.dec, tc.fields)
			bin, err := gc.BinaryFromNative(nil, richRecord())
			if err != nil {
				t.Fatal(err)
			}
			recTime := time.Date(2026, 2, 3, 23, 59, 59, 0, time.FixedZone("x", 3600))
			m := &kafkago.Message{Topic: "Orders", Partition: 2, Offset: 17, Key: []byte("k1"), Value: wire.Encode(7, bin), Time: recTime}
			d, err := b.Build(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if d.Index != "orders-2026.02.03" || d.ID != "Orders+2+17" || d.Action != ActionIndex || d.Version != -1 {
				t.Fatalf("doc meta = %q %q %q %d", d.Index, d.ID, d.Action, d.Version)
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(d.Body, &got); err != nil {
				t.Fatalf("body %s: %v", d.Body, err)
			}
			want := map[string]string{
				"id": `42`, "name": `"widget"`, "at": `"2026-02-03T04:05:06.789Z"`, "at_us": `"2026-02-03T04:05:06.789123Z"`,
				"day": `"2026-02-03"`, "tod": `"05:06:07.008"`, "price": tc.wantPrice, "opt_price": tc.wantOptPri,
				"kind": `"B"`, "tags": `["a","b"]`, "attrs": `{"x":1,"y":null}`, "inner": `{"x":1.5,"again":{"x":2.5,"again":null}}`,
				"ratio": `0.25`, "raw": `"AQID"`, "@timestamp": `"2026-02-03T22:59:59Z"`,
				"_kafka": `{"topic":"Orders","partition":2,"offset":17,"key":"k1"}`,
			}
			for k, v := range want {
				if string(got[k]) != v {
					t.Errorf("%s = %s, want %s", k, got[k], v)
				}
			}
			if len(got) != len(want) {
				t.Errorf("document has %d fields, want %d: %s", len(got), len(want), d.Body)
			}
			if !tc.fields {
				if d.Fields != nil {
					t.Error("transcoded document has rule fields")
				}
				return
			}
			if _, ok := d.Fields["@timestamp"]; ok {
				t.Error("rule fields leak @timestamp")
			}
			if d.Fields["name"] != "widget" {
				t.Errorf("rule fields: name = %v", d.Fields["name"])
			}
		})
	}
}

func TestBuildModesAndErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, gc := newBuilder(t, ModeDataStream, IDOffset, DecimalString)
	bin, _ := gc.BinaryFromNative(nil, richRecord())
	d, err := b.Build(ctx, &kafkago.Message{Topic: "orders", Value: wire.Encode(7, bin), Time: time.Now()})
	if err != nil || d.Index != "logs-orders-default" || d.Action != ActionCreate {
		t.Fatalf("data stream doc = %+v, %v", d, err)
	}

	kb, _ := newBuilder(t, ModeIndex, IDKey, DecimalString)
	d, err = kb.Build(ctx, &kafkago.Message{Topic: "orders", Offset: 9, Key: []byte("user-1"), Value: wire.Encode(7, bin)})
	if err != nil || d.ID != "user-1" || d.Version != 9 {
		t.Fatalf("key mode doc = %+v, %v", d, err)
	}
	d, err = kb.Build(ctx, &kafkago.Message{Topic: "orders", Offset: 10, Key: []byte("user-1")})
	if err != nil || d.Action != ActionDelete || d.Version != 10 {
		t.Fatalf("tombstone in key mode = %+v, %v", d, err)
	}
	long := []byte(strings.Repeat("k", 600))
	if id := KeyID(long); !strings.HasPrefix(id, "sha256:") || len(id) != 7+64 {
		t.Fatalf("long key id = %q", id)
	}
	if id := KeyID([]byte{0xff, 0xfe}); id != "//4=" {
		t.Fatalf("binary key id = %q", id)
	}

	ob, _ := newBuilder(t, ModeIndex, IDOffset, DecimalString)
	if d, err := ob.Build(ctx, &kafkago.Message{Topic: "orders"}); d != nil || err != nil {
		t.Fatalf("tombstone in offset mode = %+v, %v; want skipped", d, err)
	}
	for name, m := range map[string]*kafkago.Message{
		"no framing":     {Topic: "orders", Value: []byte("{\"json\":true}")},
		"short":          {Topic: "orders", Value: []byte{0, 0}},
		"unknown schema": {Topic: "orders", Value: wire.Encode(99, bin)},
		"corrupt avro":   {Topic: "orders", Value: wire.Encode(7, bin[:5])},
		"trailing bytes": {Topic: "orders", Value: wire.Encode(7, append(append([]byte{}, bin...), 1, 2))},
	} {
		if _, err := ob.Build(ctx, m); !IsPermanent(err) {
			t.Errorf("%s: err = %v, want permanent", name, err)
		}
	}
	down := NewBuilder(downCodecs{}, Options{Namer: ob.opt.Namer})
	if _, err := down.Build(ctx, &kafkago.Message{Topic: "orders", Value: wire.Encode(7, bin)}); err == nil || IsPermanent(err) {
		t.Fatalf("registry down: err = %v, want transient", err)
	}
	for _, status := range []int{401, 403, 429, 503} {
		denied := NewBuilder(errCodecs{&registry.Error{Status: status, Message: "no"}}, Options{Namer: ob.opt.Namer})
		if _, err := denied.Build(ctx, &kafkago.Message{Topic: "orders", Value: wire.Encode(7, bin)}); err == nil || IsPermanent(err) {
			t.Fatalf("registry %d: err = %v, want transient (the record is not at fault)", status, err)
		}
	}
}

func TestNamer(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC)
	cases := []struct {
		mode             IndexMode
		pattern, topic   string
		want, wantPatten string
	}{
		{ModeIndex, "<topic>-{yyyy.MM.dd}", "Orders", "orders-2026.12.31", "orders-*"},
		{ModeIndex, "events-<topic>-{yyyy.MM}-v1", "a/b", "events-a_b-2026.12-v1", "events-a_b-*-v1"},
		{ModeIndex, "<topic>-{yy}{MM}-{dd.HH}", "x", "x-2612-31.23", "x-**-*"},
		{ModeIndex, "<topic>", "_hidden", "hidden", "hidden"},
		{ModeDataStream, "", "clicks", "logs-clicks-default", "logs-clicks-*"},
	}
	for _, tc := range cases {
		n, err := NewNamer(tc.mode, tc.pattern, "logs", "default")
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		if got := n.Name(tc.topic, at); got != tc.want {
			t.Errorf("Name(%s, %s) = %s, want %s", tc.pattern, tc.topic, got, tc.want)
		}
		if got := n.Pattern(tc.topic); got != tc.wantPatten {
			t.Errorf("Pattern(%s, %s) = %s, want %s", tc.pattern, tc.topic, got, tc.wantPatten)
		}
	}
	for _, bad := range []string{"{yyyy}-<topic>", "no-topic", "<topic>-{yyyy", "<topic>-{qq}", "<topic>-{}", "UP-<topic>", "<topic>-}"} {
		if _, err := NewNamer(ModeIndex, bad, "", ""); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
	if _, err := NewNamer(ModeDataStream, "", "logs", "my-ns"); err == nil {
		t.Error("namespace with - accepted")
	}
}

func FuzzBuild(f *testing.F) {
	limitGoavro(f)
	ac, err := avro.NewCodec(0, richSchema)
	if err != nil {
		f.Fatal(err)
	}
	gc := ac.Codec
	bin, _ := gc.BinaryFromNative(nil, richRecord())
	f.Add(wire.Encode(7, bin))
	f.Add([]byte{0, 0, 0, 0, 7})
	f.Add([]byte{})
	namer, _ := NewNamer(ModeIndex, "<topic>-{yyyy.MM.dd}", "", "")
	b := NewBuilder(fakeCodecs{7: {ID: 7, Schema: richSchema, Codec: ac}}, Options{Namer: namer, MetaField: "_kafka"})
	f.Fuzz(func(t *testing.T, v []byte) {
		d, err := b.Build(context.Background(), &kafkago.Message{Topic: "t", Value: v})
		if err != nil {
			if !IsPermanent(err) {
				t.Fatalf("non-permanent error for bad bytes: %v", err)
			}
			return
		}
		if d != nil && !json.Valid(d.Body) {
			t.Fatalf("invalid JSON document: %s", d.Body)
		}
	})
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\ slash", "ctl\x00\x1f\n\t", "\u2028\u2029", "bad\xff\xfeutf8", "日本語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: invalid JSON: %v", s, b, err)
		}
		want, _ := json.Marshal(s)
		var wantS string
		_ = json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Fatalf("appendString(%q) decodes to %q, encoding/json gives %q", s, got, wantS)
		}
	})
}

func TestAppendValueMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	vals := []any{nil, true, int64(-5), int32(7), 1.5, 1e21, 1e-7, float32(0.1), 3.0, -0.0, json.Number("12.30"), "x",
		[]byte{0, 1, 2}, []any{int64(1), "a", nil}, map[string]any{"b": int64(1), "a": map[string]any{"z": []any{}}},
		time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)}
	for _, v := range vals {
		got := appendValue(nil, avro.Type{}, v, 0)
		want, _ := json.Marshal(v)
		if string(got) != string(want) {
			t.Errorf("appendValue(%#v) = %s, encoding/json = %s", v, got, want)
		}
	}
}
