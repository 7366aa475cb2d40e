package avro

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/avro/internal/jsonscan"
	"github.com/sluicehq/sluice/pkg/service"
)

// sharedSchema is the schema of issue 13: T0 {a: T1, b: T1}, T1 {a: T2,
// b: T2}, ... T<depth> {leaf}. A value of it is a tree of 2^depth leaves,
// and with an empty leaf it takes 0 bytes.
func sharedSchema(depth int, leaf string) string { return sharedSchemaWith(depth, leaf, "") }

// sharedSchemaWith adds extra (e.g. `,"default":{}`) to every field a and b.
func sharedSchemaWith(depth int, leaf, extra string) string {
	var b strings.Builder
	b.WriteString(`{"type":"record","name":"T0","fields":[`)
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, `{"name":"a"%s,"type":{"type":"record","name":"T%d","fields":[`, extra, i)
	}
	b.WriteString(leaf)
	for i := depth; i >= 1; i-- {
		fmt.Fprintf(&b, `]}},{"name":"b"%s,"type":"T%d"}`, extra, i)
	}
	b.WriteString(`]}`)
	return b.String()
}

// zz is the zigzag varint of v.
func zz(v int64) []byte { return binary.AppendVarint(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// distinctKeys encodes n map keys "k000", "k001", ... each followed by a
// value of 0 bytes.
func distinctKeys(n int) []byte {
	var b []byte
	for i := range n {
		b = append(append(b, zz(4)...), fmt.Sprintf("k%03d", i)...)
	}
	return b
}

// validateSteps runs ValidateBinary's walk and returns its error and the
// steps it took.
func validateSteps(c *Codec, data []byte) (error, int64) {
	v := validator{b: data, bud: c.limits.budget(len(data))}
	err := v.datum(c.root, 0)
	return err, v.bud.Used()
}

// Each hostile record is refused with a *BudgetError, by every decoder,
// after a number of steps bounded by its size (not by the tree it claims).
func TestBudgetHostileBinary(t *testing.T) {
	t.Parallel()
	lim := DefaultLimits()
	cases := map[string]struct {
		schema string
		data   []byte
		limit  string
		// malformed: refused (cheaply) as data that cannot hold what it
		// claims, not for the budget.
		malformed string
	}{
		"array of null, 2^20 items in one block": {
			schema: `{"type":"array","items":"null"}`,
			data:   cat(zz(1<<20), zz(0)),
			limit:  LimitSteps,
		},
		"array of null, 2^20 items as a negative count with a block size": {
			schema: `{"type":"array","items":"null"}`,
			data:   cat(zz(-(1 << 20)), zz(0), zz(0)),
			limit:  LimitSteps,
		},
		"array of null, many blocks of 2^16": {
			schema: `{"type":"array","items":"null"}`,
			data:   cat(bytes.Repeat(zz(1<<16), 64), zz(0)),
			limit:  LimitSteps,
		},
		"array of empty records": {
			schema: `{"type":"array","items":{"type":"record","name":"E","fields":[]}}`,
			data:   cat(zz(1<<20), zz(0)),
			limit:  LimitSteps,
		},
		"array of records of empty records": {
			schema: `{"type":"array","items":{"type":"record","name":"E","fields":[{"name":"a","type":{"type":"record","name":"F","fields":[]}},{"name":"b","type":"F"},{"name":"c","type":"F"}]}}`,
			data:   cat(zz(30000), zz(0)),
			limit:  LimitSteps,
		},
		"shared named types, depth 22, 0 bytes": {
			schema: sharedSchema(22, ""),
			data:   nil,
			limit:  LimitSteps,
		},
		"shared named types, depth 60, 0 bytes": {
			schema: sharedSchema(60, ""),
			data:   nil,
			limit:  LimitSteps,
		},
		"recursive type with a required self-reference": {
			schema: `{"type":"record","name":"R","fields":[{"name":"r","type":"R"}]}`,
			data:   nil,
			limit:  LimitDepth,
		},
		"recursive type through an array of itself": {
			schema: `{"type":"record","name":"R","fields":[{"name":"r","type":{"type":"array","items":"R"}}]}`,
			data:   bytes.Repeat(zz(1), 5000),
			limit:  LimitDepth,
		},
		"deep unions": {
			schema: `{"type":"record","name":"U","fields":[{"name":"u","type":["null","U"]}]}`,
			data:   cat(bytes.Repeat(zz(1), 100000), zz(0)),
			limit:  LimitDepth,
		},
		"map of null with a huge claimed block count": {
			schema:    `{"type":"map","values":"null"}`,
			data:      cat(zz(1<<20), zz(0)),
			malformed: "block count 1048576 exceeds the remaining 1 bytes",
		},
		"array of longs with a huge claimed block count": {
			schema:    `{"type":"array","items":"long"}`,
			data:      cat(zz(1<<20), zz(0)),
			malformed: "block count 1048576 exceeds the remaining 1 bytes",
		},
		"map whose values are trees of shared types": {
			schema: `{"type":"map","values":` + sharedSchema(10, "") + `}`,
			data:   cat(zz(100), distinctKeys(100), zz(0)),
			limit:  LimitSteps,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := mustCodec(t, tc.schema)
			err, steps := validateSteps(c, tc.data)
			if tc.malformed != "" {
				if err == nil || errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), tc.malformed) || steps > 10 {
					t.Fatalf("error = %v after %d steps, want %q at once", err, steps, tc.malformed)
				}
				return
			}
			var be *BudgetError
			if !errors.As(err, &be) || !errors.Is(err, ErrBudget) || be.Limit != tc.limit {
				t.Fatalf("validation error = %v, want a *BudgetError for %s", err, tc.limit)
			}
			if max := lim.Steps(len(tc.data)) + 1; steps > max {
				t.Fatalf("took %d steps, more than the %d a record of %d bytes may take", steps, max, len(tc.data))
			}
			if be.RecordBytes != len(tc.data) || !strings.Contains(err.Error(), fmt.Sprintf("a record of %d bytes", len(tc.data))) {
				t.Fatalf("error %q does not name the record size %d", err, len(tc.data))
			}
			if _, err := c.ValidateBinary(tc.data); !errors.Is(err, ErrBudget) {
				t.Fatalf("ValidateBinary: %v, want ErrBudget", err)
			}
			if _, _, err := c.NativeFromBinary(tc.data); !errors.Is(err, ErrBudget) {
				t.Fatalf("NativeFromBinary: %v, want ErrBudget", err)
			}
			if _, err := c.JSONFromBinary(nil, tc.data, PlainJSON); !errors.Is(err, ErrBudget) {
				t.Fatalf("JSONFromBinary: %v, want ErrBudget", err)
			}
		})
	}
}

// The error message names the limit, its settings and the record size.
func TestBudgetErrorMessage(t *testing.T) {
	t.Parallel()
	c := mustCodec(t, `{"type":"array","items":"null"}`).WithLimits(Limits{BaseSteps: 100, StepsPerByte: 2, MaxDepth: 5})
	_, err := c.ValidateBinary(cat(zz(1000), zz(0)))
	want := "decode budget exceeded: a record of 3 bytes needs more than 106 steps (AVRO_DECODE_BASE_STEPS 100 + AVRO_DECODE_STEPS_PER_BYTE 2 per byte)"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant %s", err, want)
	}
	r := mustCodec(t, `{"type":"record","name":"R","fields":[{"name":"r","type":"R"}]}`).WithLimits(Limits{MaxDepth: 5})
	_, err = r.ValidateBinary(nil)
	want = "decode budget exceeded: a record of 0 bytes nests deeper than AVRO_MAX_DEPTH 5"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant %s", err, want)
	}
}

// Realistic records are far inside the default budget: an order with
// nested items, optional fields and maps, and a schema of shared named
// types used a few times.
func TestBudgetAcceptsRealisticRecords(t *testing.T) {
	t.Parallel()
	c := mustCodec(t, orderSchema)
	var items []string
	for i := range 2000 {
		items = append(items, fmt.Sprintf(`{"sku":"sku-%d","price":%d.5,"note":null}`, i, i))
	}
	js := `{"id":"o","qty":1,"total":1,"ts":0,"items":[` + strings.Join(items, ",") + `],"attrs":{"a":1,"b":2},"choice":{"sku":"c","price":3}}`
	bin, err := c.BinaryFromJSON(nil, []byte(js), Options{})
	if err != nil {
		t.Fatal(err)
	}
	err, steps := validateSteps(c, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d steps for %d bytes", steps, len(bin))
	if perByte := float64(steps) / float64(len(bin)); perByte > 1 {
		t.Fatalf("a realistic order takes %.2f steps per byte", perByte)
	}
	if _, err := c.JSONFromBinary(nil, bin, PlainJSON); err != nil {
		t.Fatal(err)
	}
	// Shared types used a few times (an address for billing and shipping,
	// a money type in several places) and a 0-byte record of nulls.
	shared := mustCodec(t, sharedSchema(8, `{"name":"n","type":"null"}`))
	if _, err := shared.JSONFromBinary(nil, nil, AvroJSON); err != nil {
		t.Fatalf("a 0-byte record of 511 values: %v", err)
	}
}

// A value of a legitimately recursive type (a linked list) within the
// depth limit is accepted; one level deeper is refused.
func TestBudgetDepthBoundary(t *testing.T) {
	t.Parallel()
	c := mustCodec(t, `{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}`).WithLimits(Limits{MaxDepth: 20})
	// Record at depth 0, its union at 1, the next record at 2, ...: n
	// links reach depth 2n+1 (the final null branch).
	ok := cat(bytes.Repeat(zz(1), 9), zz(0)) // deepest value at depth 20
	if _, err := c.ValidateBinary(ok); err != nil {
		t.Fatalf("depth 20: %v", err)
	}
	if _, _, err := c.NativeFromBinary(ok); err != nil {
		t.Fatalf("depth 20: %v", err)
	}
	deep := cat(bytes.Repeat(zz(1), 10), zz(0))
	if _, err := c.ValidateBinary(deep); !errors.Is(err, ErrBudget) {
		t.Fatalf("depth 21: %v, want ErrBudget", err)
	}
}

// encodeSteps runs BinaryFromJSON's single pass and returns its error
// and steps.
func encodeSteps(c *Codec, js string, mode Mode) ([]byte, error, int64) {
	e := encoder{Scanner: jsonscan.Scanner{B: []byte(js)}, mode: mode, p: pathBuf{root: "value"}, bud: c.limits.budget(len(js))}
	e.WS()
	out, err := e.enc(c.root, nil, 0)
	return out, err, e.bud.Used()
}

// The JSON encoder's work is bounded by the JSON text's length.
func TestBudgetHostileJSON(t *testing.T) {
	t.Parallel()
	// At every level X is first tried as an A, which fails only after its
	// nested value is encoded (no "a"), then as a B: 2^depth attempts
	// without a budget.
	ab := `{"type":"record","name":"W","fields":[{"name":"v","type":[
		{"type":"record","name":"A","fields":[{"name":"v","type":["null","W"]},{"name":"a","type":"int"}]},
		{"type":"record","name":"B","fields":[{"name":"v","type":["null","W"]},{"name":"b","type":"int"}]}]}]}`
	nestedB := `null`
	for range 30 {
		nestedB = `{"v":{"v":` + nestedB + `,"b":1}}`
	}
	var recs []string
	for range 20000 {
		recs = append(recs, `{}`)
	}
	cases := map[string]struct {
		schema, json string
		mode         Mode
	}{
		"union branches retried at every level": {ab, nestedB, PlainJSON},
		"deep unions past the depth limit": {
			`{"type":"record","name":"U","fields":[{"name":"u","type":["null","U"]}]}`,
			strings.Repeat(`{"u":`, 300) + `null` + strings.Repeat(`}`, 300), PlainJSON,
		},
		"deep wrapped unions past the depth limit": {
			`{"type":"record","name":"U","fields":[{"name":"u","type":["null","U"]}]}`,
			strings.Repeat(`{"u":{"U":`, 200) + `null` + strings.Repeat(`}}`, 200), AvroJSON,
		},
		"missing fields filled from large defaults": {
			`{"type":"array","items":` + sharedSchemaWith(10, `{"name":"x","type":"long","default":0}`, `,"default":{}`) + `}`,
			`[` + strings.Join(recs, ",") + `]`, PlainJSON,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := mustCodec(t, tc.schema)
			_, err, steps := encodeSteps(c, tc.json, tc.mode)
			if !errors.Is(err, ErrBudget) {
				t.Fatalf("error = %v, want ErrBudget", err)
			}
			if max := c.limits.Steps(len(tc.json)) + 1; steps > max {
				t.Fatalf("took %d steps, more than the %d allowed", steps, max)
			}
			var fe *FieldError
			if _, err := c.BinaryFromJSON(nil, []byte(tc.json), Options{Mode: tc.mode, Root: "value"}); !errors.As(err, &fe) || !errors.Is(err, ErrBudget) || fe.Path != "value" {
				t.Fatalf("BinaryFromJSON: %v, want a *FieldError at value wrapping ErrBudget", err)
			}
			v, err := DecodeJSON([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.BinaryFromJSONValue(nil, v, Options{Mode: tc.mode, Size: len(tc.json)}); !errors.Is(err, ErrBudget) {
				t.Fatalf("BinaryFromJSONValue: %v, want ErrBudget", err)
			}
		})
	}
}

// Keys out of schema order, at every level of a deep value, are read once:
// the encoder continues from the first key out of order instead of
// starting the object again (which doubled the work per level).
func TestOutOfOrderKeysLinear(t *testing.T) {
	t.Parallel()
	c := mustCodec(t, `{"type":"record","name":"N","fields":[{"name":"n","type":["null","N"]},{"name":"x","type":"int"},{"name":"y","type":"int"}]}`)
	js := `null`
	for range 40 {
		js = `{"n":` + js + `,"y":2,"x":1}`
	}
	out, err, steps := encodeSteps(c, js, PlainJSON)
	if err != nil {
		t.Fatal(err)
	}
	if steps > 10*40 {
		t.Fatalf("%d steps for 40 levels", steps)
	}
	want, err := c.BinaryFromJSONValue(nil, mustDecode(t, js), Options{Size: len(js)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("encoded %x, generic path %x", out, want)
	}
}

func mustDecode(t testing.TB, js string) any {
	t.Helper()
	v, err := DecodeJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A schema whose field defaults expand into a huge tree is refused before
// goavro compiles it (goavro encodes every default, expanded, at compile
// time: 2^depth work).
func TestSchemaDefaultsBounded(t *testing.T) {
	t.Parallel()
	_, err := NewCodec(1, sharedSchemaWith(40, `{"name":"x","type":"int","default":0}`, `,"default":{}`))
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("NewCodec: %v, want ErrBudget", err)
	}
	// The same shape 6 levels deep (64 leaves) is fine and fills its
	// defaults in.
	c := mustCodec(t, sharedSchemaWith(6, `{"name":"x","type":"int","default":7}`, `,"default":{}`))
	bin, err := c.BinaryFromJSON(nil, []byte(`{}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bin, bytes.Repeat([]byte{14}, 64)) {
		t.Fatalf("encoded %x, want 64 times the default 7", bin)
	}
}

// Services embed Limits in their configuration: defaults, overrides and
// bad values naming the variable.
func TestLimitsConfig(t *testing.T) {
	t.Parallel()
	type cfg struct{ Avro Limits }
	cases := map[string]struct {
		env    map[string]string
		want   Limits
		badVar string
	}{
		"defaults":  {env: nil, want: DefaultLimits()},
		"overrides": {env: map[string]string{"AVRO_DECODE_BASE_STEPS": "1000", "AVRO_DECODE_STEPS_PER_BYTE": "4", "AVRO_MAX_DEPTH": "32"}, want: Limits{1000, 4, 32}},
		"zero base": {env: map[string]string{"AVRO_DECODE_BASE_STEPS": "0"}, badVar: "AVRO_DECODE_BASE_STEPS"},
		"negative":  {env: map[string]string{"AVRO_DECODE_STEPS_PER_BYTE": "-1"}, badVar: "AVRO_DECODE_STEPS_PER_BYTE"},
		"too deep":  {env: map[string]string{"AVRO_MAX_DEPTH": "20000"}, badVar: "AVRO_MAX_DEPTH"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var c cfg
			err := service.LoadConfig(&c, nil, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if tc.badVar != "" {
				var ce *service.ConfigError
				if !errors.As(err, &ce) || ce.Var != tc.badVar {
					t.Fatalf("error = %v, want one naming %s", err, tc.badVar)
				}
				return
			}
			if err != nil || c.Avro != tc.want {
				t.Fatalf("loaded %+v, %v; want %+v", c.Avro, err, tc.want)
			}
		})
	}
}

// EncodeAt (the gateway's single pass over a request) refuses a value over
// the budget of its own length, as BinaryFromJSON on it would, even when
// the rest of the request is long enough to pay for it, and the walk goes
// on with the next record.
func TestEncodeAtBudget(t *testing.T) {
	t.Parallel()
	c := mustCodec(t, `{"type":"record","name":"W","fields":[{"name":"v","type":[
		{"type":"record","name":"A","fields":[{"name":"v","type":["null","W"]},{"name":"a","type":"int"}]},
		{"type":"record","name":"B","fields":[{"name":"v","type":["null","W"]},{"name":"b","type":"int"}]}]}]}`)
	hostile := `null`
	for range 18 { // 2^18 tries: over the budget of its ~430 bytes, not of the megabyte after it
		hostile = `{"v":{"v":` + hostile + `,"b":1}}`
	}
	good := `{"v":{"v":null,"b":1}}`
	doc := `{"records":[{"value":` + hostile + `},{"value":` + good + `,"pad":"` + strings.Repeat("x", 1<<20) + `"}]}`
	cur := NewCursor([]byte(doc))
	var verrs []error
	var outs [][]byte
	err := cur.Object(func(string) error {
		return cur.Array(func(int) error {
			return cur.Object(func(k string) error {
				if k != "value" {
					_, err := cur.Value()
					return err
				}
				out, _, verr, serr := c.EncodeAt(nil, cur, Options{Root: "value"})
				verrs, outs = append(verrs, verr), append(outs, out)
				return serr
			})
		})
	})
	if err != nil || len(verrs) != 2 {
		t.Fatalf("walk: %v, %d values", err, len(verrs))
	}
	var fe *FieldError
	if !errors.As(verrs[0], &fe) || !errors.Is(verrs[0], ErrBudget) || fe.Path != "value" {
		t.Fatalf("hostile value: %v, want a budget FieldError at value", verrs[0])
	}
	if _, want := c.BinaryFromJSON(nil, []byte(hostile), Options{Root: "value"}); want == nil || want.Error() != verrs[0].Error() {
		t.Fatalf("EncodeAt %v, BinaryFromJSON %v", verrs[0], want)
	}
	if verrs[1] != nil || len(outs[1]) == 0 {
		t.Fatalf("the next value: %v", verrs[1])
	}
}
