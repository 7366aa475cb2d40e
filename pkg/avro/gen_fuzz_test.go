package avro

import (
	"errors"
	"testing"

	"github.com/sluicehq/sluice/pkg/avro/avrogen"
	"github.com/sluicehq/sluice/pkg/avro/internal/jsonscan"
)

// generated compiles a schema generated from seed; ok is false when the
// schema is refused for its defaults (the budget of a record the schema's
// size), which is the only refusal allowed.
func generated(t *testing.T, seed []byte) (*avrogen.Type, *Codec, bool) {
	root, text := avrogen.Schema(avrogen.NewSource(seed), avrogen.DefaultOptions)
	c, err := NewCodec(1, text)
	if errors.Is(err, ErrBudget) {
		return nil, nil, false
	}
	if err != nil {
		t.Fatalf("generated schema refused: %v\n%s", err, text)
	}
	return root, c, true
}

// realWork reports whether refusing data for the budget was right: walked
// again with a budget 16 times larger and no depth limit beyond the JSON
// one, the walk takes more steps than the budget allows, or nests deeper
// than the depth limit.
func realWork(c *Codec, data []byte, limit string) bool {
	big := Limits{BaseSteps: 16 * int(c.limits.Steps(len(data))), StepsPerByte: 1, MaxDepth: jsonscan.MaxDepth}
	v := validator{b: data, bud: big.budget(len(data))}
	err := v.datum(c.root, 0)
	if limit == LimitDepth {
		deep := validator{b: data, bud: Limits{BaseSteps: big.BaseSteps, StepsPerByte: 1, MaxDepth: c.limits.MaxDepth + 1}.budget(len(data))}
		derr := deep.datum(c.root, 0)
		var be *BudgetError
		// Still too deep one level further, or the steps ran out first.
		return errors.As(derr, &be) || errors.Is(err, ErrBudget)
	}
	return errors.Is(err, ErrBudget) || v.bud.Used() > c.limits.Steps(len(data))
}

// FuzzGeneratedSchemas runs the decoders and the JSON encoder over
// generated schemas (shared named types used many times, issue 13's
// chains, deep unions, recursive types, defaults) with random bytes and
// with values goavro encoded, goavro being the oracle:
//   - every walk stays within the budget of its input's size;
//   - what ValidateBinary accepts goavro decodes to the same length, and
//     what goavro encodes ValidateBinary accepts;
//   - a budget refusal is real: a walk with 16 times the budget exceeds
//     the budget (or the depth limit) too;
//   - JSONFromBinary's output converts back (to the same bytes from Avro
//     JSON; plain JSON infers union branches);
//   - BinaryFromJSON and the generic path (DecodeJSON, NativeFromJSON,
//     goavro) accept the same JSON and produce the same datum, unless
//     either runs out of budget.
func FuzzGeneratedSchemas(f *testing.F) {
	f.Add([]byte{0, 7}, []byte{}, []byte{1, 2, 3})                // a chain of 8 shared levels, 0 bytes
	f.Add([]byte{0, 29}, []byte{}, []byte{})                      // a chain of 30
	f.Add([]byte{2, 5, 5, 5, 5, 5}, []byte{2, 2, 2, 2}, []byte{}) // recursive references
	f.Add([]byte{2, 4, 11, 3, 9, 11, 2}, []byte{0x80, 0x80, 0x40}, []byte{5})
	f.Add([]byte{3, 3, 6, 2, 6, 1, 9, 11}, []byte{0xfe, 0xff, 0x7f, 0}, []byte{7, 7, 7})
	f.Fuzz(fuzzGenerated)
}

func fuzzGenerated(t *testing.T, schemaSeed, data, valueSeed []byte) {
	root, c, ok := generated(t, schemaSeed)
	if !ok {
		return
	}
	// Random bytes.
	checkBinary(t, c, data)
	// A value goavro encodes.
	v, err := avrogen.Value(avrogen.NewSource(valueSeed), root, 24, 2000)
	if err != nil {
		return
	}
	bin, err := c.Codec.BinaryFromNative(nil, v)
	if err != nil {
		t.Fatalf("goavro cannot encode a generated value: %v\n%s\n%#v", err, c.Schema.Schema, v)
	}
	if rest, err := c.ValidateBinary(bin); err != nil || len(rest) != 0 {
		t.Fatalf("ValidateBinary refused goavro's encoding %x: rest %d, %v\n%s", bin, len(rest), err, c.Schema.Schema)
	}
	checkBinary(t, c, bin)
	for _, mode := range []Mode{PlainJSON, AvroJSON} {
		js, err := c.JSONFromBinary(nil, bin, mode)
		if err != nil {
			if errors.Is(err, ErrBudget) {
				continue
			}
			t.Fatalf("JSONFromBinary(%s) of a valid record: %v", mode, err)
		}
		back, err := c.BinaryFromJSON(nil, js, Options{Mode: mode})
		if err != nil {
			if errors.Is(err, ErrBudget) {
				continue
			}
			t.Fatalf("%s %s does not convert back: %v\n%s", mode, js, err, c.Schema.Schema)
		}
		// Plain JSON infers union branches (a fixed's base64 may become a
		// string branch): only the Avro JSON encoding is exact.
		if mode == AvroJSON && !sameDatum(t, c, bin, back) {
			t.Fatalf("round trip through %s changed the datum: %s\n%s", mode, js, c.Schema.Schema)
		}
		// The same JSON, mutated by the fuzz bytes, through both encoders.
		mut := mutate(js, data)
		checkJSON(t, c, mut, mode)
	}
}

// checkBinary holds ValidateBinary, NativeFromBinary and JSONFromBinary to
// the budget and to goavro on data.
func checkBinary(t *testing.T, c *Codec, data []byte) {
	err, steps := validateSteps(c, data)
	if max := c.limits.Steps(len(data)) + 1; steps > max {
		t.Fatalf("validation took %d steps, more than %d", steps, max)
	}
	var be *BudgetError
	switch {
	case errors.As(err, &be):
		if !realWork(c, data, be.Limit) {
			t.Fatalf("%x refused (%v) but a walk with a larger budget stays within it\n%s", data, err, c.Schema.Schema)
		}
		if _, _, nerr := c.NativeFromBinary(data); !errors.Is(nerr, ErrBudget) {
			t.Fatalf("NativeFromBinary: %v, want ErrBudget", nerr)
		}
	case err == nil:
		rest, _ := c.ValidateBinary(data)
		_, grest, gerr := c.Codec.NativeFromBinary(data)
		if gerr != nil || len(grest) != len(rest) {
			t.Fatalf("ValidateBinary accepted %x (rest %d); goavro: %v, rest %d\n%s", data, len(rest), gerr, len(grest), c.Schema.Schema)
		}
		if _, _, nerr := c.NativeFromBinary(data); nerr != nil {
			t.Fatalf("NativeFromBinary refused what ValidateBinary accepts: %v", nerr)
		}
	}
	for _, mode := range []Mode{PlainJSON, AvroJSON} {
		p := &pathBuf{}
		native, rest, err := c.NativeFromBinary(data)
		if err != nil || len(rest) != 0 {
			return
		}
		p.bud = c.limits.NewBudget(len(data))
		if _, err := appendJSON(nil, c.root, native, mode, p); err != nil && !errors.Is(err, ErrBudget) {
			t.Fatalf("rendering a decoded record as %s: %v", mode, err)
		}
		if p.bud.Used() > c.limits.Steps(len(data))+1 {
			t.Fatalf("rendering took %d steps", p.bud.Used())
		}
	}
}

// checkJSON holds the direct encoder to the budget and to the generic
// path.
func checkJSON(t *testing.T, c *Codec, js []byte, mode Mode) {
	if _, _, steps := encodeSteps(c, string(js), mode); steps > c.limits.Steps(len(js))+1 {
		t.Fatalf("encoding took %d steps, more than %d", steps, c.limits.Steps(len(js)))
	}
	bin, err := c.BinaryFromJSON(nil, js, Options{Mode: mode})
	v, derr := DecodeJSON(js)
	if derr != nil {
		if err == nil {
			t.Fatalf("encoded malformed JSON %q", js)
		}
		return
	}
	p := &pathBuf{bud: c.limits.NewBudget(len(js))}
	native, gerr := fromJSON(c.root, v, Options{Mode: mode}, p)
	if p.bud.Used() > c.limits.Steps(len(js))+1 {
		t.Fatalf("NativeFromJSON took %d steps, more than %d", p.bud.Used(), c.limits.Steps(len(js)))
	}
	var gen []byte
	if gerr == nil {
		gen, gerr = c.Codec.BinaryFromNative(nil, native)
	}
	if errors.Is(err, ErrBudget) || errors.Is(gerr, ErrBudget) {
		return // the two paths count their work differently
	}
	if (err == nil) != (gerr == nil) {
		t.Fatalf("%q (%s): direct encoder %v, generic path %v\n%s", js, mode, err, gerr, c.Schema.Schema)
	}
	if err == nil && !sameDatum(t, c, bin, gen) {
		t.Fatalf("%q (%s): direct encoder and goavro disagree", js, mode)
	}
}

// mutate changes js as the fuzz bytes say: truncate, flip, duplicate a
// span, or leave it.
func mutate(js, how []byte) []byte {
	if len(how) < 2 || len(js) == 0 {
		return js
	}
	out := append([]byte(nil), js...)
	at := int(how[1]) % len(out)
	switch how[0] % 4 {
	case 0:
		return out[:at]
	case 1:
		out[at] ^= how[len(how)-1] | 1
	case 2:
		end := min(len(out), at+int(how[len(how)-1])%16)
		out = append(out[:end:end], js[at:]...)
	}
	return out
}
