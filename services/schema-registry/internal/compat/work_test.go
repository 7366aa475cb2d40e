package compat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// sharedChain is issue 13's schema: records T0..Tdepth, each using the
// next one twice; leaf is the type of Tdepth's only field, extra is
// appended to T0's fields. Expanded as a tree it has 3*2^depth types.
func sharedChain(depth int, leaf, extra string) string {
	var b strings.Builder
	b.WriteString(`{"type":"record","name":"T0","fields":[`)
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, `{"name":"a","type":{"type":"record","name":"T%d","fields":[`, i)
	}
	fmt.Fprintf(&b, `{"name":"x","type":%q}`, leaf)
	for i := depth; i >= 1; i-- {
		fmt.Fprintf(&b, `]}},{"name":"b","type":"T%d"}`, i)
	}
	b.WriteString(extra + `]}`)
	return b.String()
}

// wideUnion is a union of n records R0..Rn-1 (field type leaf) plus null.
func wideUnion(n int, leaf string) string {
	parts := []string{`"null"`}
	for i := 0; i < n; i++ {
		parts = append(parts, fmt.Sprintf(`{"type":"record","name":"R%d","fields":[{"name":"v","type":%q}]}`, i, leaf))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// TestCheckWorkIsLinear bounds the checker's steps on schemas whose
// expansion is exponential (shared named types) or whose unions are wide:
// the steps grow with the text, not with the expansion or the product of
// union widths.
func TestCheckWorkIsLinear(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		reader, writer string
		maxSteps       int
		incompatible   int // reasons expected
	}{
		{"shared chain depth 22, field added with default", sharedChain(22, "int", `,{"name":"n","type":"int","default":0}`), sharedChain(22, "int", ""), 4 * 25, 0},
		{"shared chain depth 40, promotion", sharedChain(40, "long", ""), sharedChain(40, "int", ""), 4 * 43, 0},
		// The leaf differs: one reason, at the first place the pair is met.
		{"shared chain depth 40, incompatible leaf", sharedChain(40, "string", ""), sharedChain(40, "int", ""), 4 * 43, 1},
		{"union of 2000 records", wideUnion(2000, "long"), wideUnion(2000, "int"), 6 * 2002, 0},
		{"union of 2000 records, incompatible", wideUnion(2000, "int"), wideUnion(2000, "long"), 6 * 2002, 2000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, w := mustParse(t, tc.reader), mustParse(t, tc.writer)
			// The context stops a check that goes past the bound, so that
			// an exponential walk fails the test instead of hanging it.
			ctx := &expiringCtx{Context: context.Background()}
			ctx.after.Store(int64(tc.maxSteps/ctxEvery + 1))
			incs, steps, err := checkSteps(ctx, r, w)
			if err != nil {
				t.Fatalf("more than %d steps: the check walks the expansion (%v)", tc.maxSteps, err)
			}
			if len(incs) != tc.incompatible {
				t.Fatalf("%d incompatibilities, want %d: %v", len(incs), tc.incompatible, incs[:min(len(incs), 3)])
			}
			if steps > tc.maxSteps {
				t.Fatalf("%d steps, want at most %d: the check walks the expansion", steps, tc.maxSteps)
			}
			t.Logf("%d steps", steps)
		})
	}
}

// TestCheckMessagesOnSharedTypes: an incompatible shared type is reported
// once, at the first place it is met, even when the union-branch search
// examined it quietly first.
func TestCheckMessagesOnSharedTypes(t *testing.T) {
	t.Parallel()
	shared := func(leaf string) string {
		return `{"type":"record","name":"Outer","fields":[
			{"name":"u","type":["null",{"type":"record","name":"S","fields":[{"name":"v","type":"` + leaf + `"}]}]},
			{"name":"s","type":"S"}]}`
	}
	got := checkPair(t, mustParse(t, shared("int")), mustParse(t, shared("long")))
	want := []string{
		"{errorType:'MISSING_UNION_BRANCH', description:'reader union lacking writer type: record S (writer branch 1)', location:'/fields/0/type'}",
		"{errorType:'TYPE_MISMATCH', description:'reader type: int not compatible with writer type: long', location:'/fields/1/type/fields/0/type'}",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("reason %d: %s, want %s", i, got[i], want[i])
		}
	}
}

// expiringCtx reports an expired deadline from its n-th look on.
type expiringCtx struct {
	context.Context
	looks, after atomic.Int64
}

func (c *expiringCtx) Err() error {
	if c.looks.Add(1) > c.after.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

func TestCheckHonoursDeadline(t *testing.T) {
	t.Parallel()
	// 20,000 fields: a check of 20,001 pairs, looking at the context
	// every ctxEvery steps.
	var fields []string
	for i := 0; i < 20_000; i++ {
		fields = append(fields, fmt.Sprintf(`{"name":"f%d","type":{"type":"array","items":"int"}}`, i))
	}
	big := mustParse(t, `{"type":"record","name":"R","fields":[`+strings.Join(fields, ",")+`]}`)
	for _, after := range []int64{0, 3} {
		ctx := &expiringCtx{Context: context.Background()}
		ctx.after.Store(after)
		incs, steps, err := checkSteps(ctx, big, big)
		if !errors.Is(err, context.DeadlineExceeded) || incs != nil {
			t.Fatalf("deadline after %d looks: %v, %v", after, incs, err)
		}
		if limit := int(after)*ctxEvery + 1; steps > limit {
			t.Fatalf("deadline after %d looks: %d steps, want at most %d", after, steps, limit)
		}
		if !strings.Contains(err.Error(), "compatibility check stopped after") {
			t.Fatalf("error %q does not say what stopped", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CheckLevel(ctx, AvroChecker{}, "FULL", big, []Schema{big}); !errors.Is(err, context.Canceled) {
		t.Fatalf("CheckLevel with a canceled context: %v", err)
	}
}
