package compat_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/pkg/avro"
	pkgregistry "github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/services/schema-registry/internal/avroschema"
	"github.com/sluicehq/sluice/services/schema-registry/internal/compat"
	"github.com/sluicehq/sluice/services/schema-registry/internal/registry"
	"github.com/sluicehq/sluice/services/schema-registry/internal/schemagen"
	"github.com/sluicehq/sluice/services/schema-registry/internal/store"
)

// treeWalk is the oracle for the measure, on the checker's model (a
// different parser from the measure's): it expands the schema as a tree,
// cutting only at records already on its path.
type treeWalk struct {
	path   []compat.Schema
	steps  int
	mutual bool
}

func (w *treeWalk) expand(s compat.Schema) (int64, int) {
	w.steps++
	if w.steps > 200_000 {
		return 1, 0
	}
	var kids []compat.Schema
	switch s.Kind() {
	case avro.Record:
		for i, p := range w.path {
			if p == s {
				w.mutual = w.mutual || i != len(w.path)-1
				return 1, 0
			}
		}
		w.path = append(w.path, s)
		defer func() { w.path = w.path[:len(w.path)-1] }()
		for i := range s.NumFields() {
			kids = append(kids, s.Field(i).Type())
		}
	case avro.Array, avro.Map:
		kids = []compat.Schema{s.Items()}
	case avro.Union:
		for i := range s.NumBranches() {
			kids = append(kids, s.Branch(i))
		}
	default:
		return 1, 0
	}
	size, depth := int64(1), 0
	for _, k := range kids {
		ks, kd := w.expand(k)
		size += ks
		depth = max(depth, kd)
	}
	return size, depth + 1
}

// refSource serves a generated set's subjects to avro.Inline, counting
// lookups.
type refSource struct {
	set     schemagen.Set
	lookups int
}

func (r *refSource) ByVersion(_ context.Context, subject string, version int) (*pkgregistry.Schema, error) {
	r.lookups++
	for _, s := range r.set.Subjects {
		if s.Name == subject && version == 1 {
			return &pkgregistry.Schema{Schema: s.Schema, References: pkgRefs(s.References)}, nil
		}
	}
	return nil, fmt.Errorf("subject %s version %d not found", subject, version)
}

func (r *refSource) Latest(ctx context.Context, subject string) (*pkgregistry.Schema, error) {
	return r.ByVersion(ctx, subject, 1)
}

func pkgRefs(refs []schemagen.Reference) []pkgregistry.Reference {
	var out []pkgregistry.Reference
	for _, r := range refs {
		out = append(out, pkgregistry.Reference{Name: r.Name, Subject: r.Subject, Version: r.Version})
	}
	return out
}

// memLog is an in-memory _schemas log.
type memLog struct {
	mu    sync.Mutex
	next  int64
	state *store.State
}

func (m *memLog) State() *store.State        { return m.state }
func (m *memLog) Sync(context.Context) error { return nil }
func (m *memLog) Write(_ context.Context, key, value []byte) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	off := m.next
	m.next++
	m.state.Apply(off, key, value)
	return off, nil
}

var limits = avro.SchemaLimits{MaxExpandedTypes: 100_000, MaxDepth: 64}

// paths runs one schema through every path and checks what they agree on.
// It returns the schema's stats and its parse (nil when too deep to parse).
func paths(t *testing.T, set schemagen.Set, name, text string, refs []schemagen.Reference, refTexts []string) (avro.SchemaStats, compat.Schema) {
	t.Helper()
	// Measured within the limits' budget (exact unless Partial): a dense
	// cycle would otherwise take MeasureSchema's whole budget every run.
	st, err := limits.Check(text, refTexts...)
	var le *avro.LimitError
	if err != nil && !errors.As(err, &le) {
		t.Fatalf("%s: measure: %v\n%s", name, err, text)
	}
	if over := st.Partial || st.ExpandedTypes > limits.MaxExpandedTypes || st.Depth > limits.MaxDepth; over != (le != nil) {
		t.Fatalf("%s: stats %+v, limits say %v", name, st, err)
	}
	if err := avroschema.Validate(text, refTexts); err != nil {
		t.Fatalf("%s: the generator wrote an invalid schema: %v\n%s", name, err, text)
	}
	c1, err := avro.Canonical(text)
	if err != nil {
		if st.Depth <= limits.MaxDepth {
			t.Fatalf("%s: canonical form of a schema %d deep: %v", name, st.Depth, err)
		}
		return st, compat.Schema{}
	}
	if c2, err := avro.Canonical(c1); err != nil || c2 != c1 {
		t.Fatalf("%s: canonical form is not a fixed point (%v)", name, err)
	}
	parsed, err := compat.Parse(text, refTexts)
	if err != nil {
		t.Fatalf("%s: parse: %v", name, err)
	}
	w := &treeWalk{}
	size, depth := w.expand(parsed)
	if w.steps <= 200_000 && !st.Partial {
		if w.mutual && (st.ExpandedTypes < size || st.Depth < depth) {
			t.Fatalf("%s: measured %+v, below a tree walk (%d types, depth %d)", name, st, size, depth)
		}
		if !w.mutual && (st.ExpandedTypes != size || st.Depth != depth) {
			t.Fatalf("%s: measured %+v, a tree walk gives %d types, depth %d\n%s", name, st, size, depth, text)
		}
	}
	incs, steps, err := compat.CheckSteps(context.Background(), parsed, parsed)
	if err != nil || len(incs) != 0 {
		t.Fatalf("%s: cannot read itself: %v %v", name, incs, err)
	}
	if bound := 8*st.TextTypes + 16; steps > bound {
		t.Fatalf("%s: %d steps to check a schema of %d types against itself (bound %d)", name, steps, st.TextTypes, bound)
	}
	src := &refSource{set: set}
	inlined, err := avro.Inline(context.Background(), src, &pkgregistry.Schema{Schema: text, References: pkgRefs(refs)})
	if err != nil {
		t.Fatalf("%s: inline: %v", name, err)
	}
	if src.lookups > len(set.Subjects) {
		t.Fatalf("%s: %d lookups for %d subjects", name, src.lookups, len(set.Subjects))
	}
	if err := avroschema.Validate(inlined, nil); err != nil {
		t.Fatalf("%s: inlined schema is invalid: %v\n%s", name, err, inlined)
	}
	ist, err := limits.Check(inlined)
	if err != nil && !errors.As(err, &le) {
		t.Fatalf("%s: measure inlined: %v", name, err)
	}
	if !w.mutual && !st.Partial && !ist.Partial && (ist.ExpandedTypes != st.ExpandedTypes || ist.Depth != st.Depth) {
		t.Fatalf("%s: measured %+v through references, %+v inlined", name, st, ist)
	}
	return st, parsed
}

// FuzzSchemaPaths generates sets of schemas (shared named types used many
// times, issue 13's chains, deep unions and nesting, recursive and
// mutually recursive records, references between subjects) and runs them
// through measure, goavro, the canonical form, the checker's parser, the
// checker, inlining and registration. Properties: no panic; the measure
// agrees with a tree walk (never below it); limits refuse exactly what
// the measure puts over them, on registration too; the checker's work is
// linear; inlining looks each subject up once and yields a schema that
// measures the same; an evolved version (fields added with defaults,
// promotions) is BACKWARD compatible and registers.
func FuzzSchemaPaths(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{3, 7, 3, 11, 23, 5, 2, 8, 9, 10, 13, 14, 15},
		{2, 4, 7, 2, 11, 20, 7, 3, 10, 4, 5, 6, 13, 13, 13, 13},
		{1, 3, 15, 15, 15, 7, 2, 15, 15, 10, 3, 15, 15, 15},
		{0, 4, 12, 39, 2, 2, 2, 1, 0, 1, 2, 0, 1, 2, 7, 1, 12, 30},
		{0, 4, 11, 23, 11, 23, 7, 7, 7, 7},
		[]byte(strings.Repeat("\x07\x03", 40)),
		[]byte(strings.Repeat("\x0a\x05\x0f\x07\x02", 30)),
	} {
		f.Add(seed)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		set := schemagen.Generate(data)
		reg := registry.New(&memLog{state: store.NewState(log)}, compat.AvroChecker{}, registry.Options{Limits: limits}, log)
		ctx := context.Background()
		for _, sub := range set.Subjects {
			refTexts := set.RefTexts(sub)
			st, _ := paths(t, set, sub.Name, sub.Schema, sub.References, refTexts)
			var refs []registry.Reference
			for _, r := range sub.References {
				refs = append(refs, registry.Reference{Name: r.Name, Subject: r.Subject, Version: r.Version})
			}
			_, err := reg.Register(ctx, sub.Name, registry.SchemaInput{Schema: sub.Schema, References: refs})
			over := st.Partial || st.ExpandedTypes > limits.MaxExpandedTypes || st.Depth > limits.MaxDepth
			var re *registry.Error
			switch {
			case over && (!errors.As(err, &re) || re.Code != registry.CodeInvalidSchema || !strings.Contains(re.Message, "over the limit")):
				t.Fatalf("%s over the limits (%+v) registered: %v", sub.Name, st, err)
			case !over && err != nil:
				t.Fatalf("%s (%+v) not registered: %v", sub.Name, st, err)
			case over:
				return // what references it cannot register either
			}
		}
		main := set.Main()
		refTexts := set.RefTexts(main)
		mst, mainParsed := paths(t, set, "main", main.Schema, main.References, refTexts)
		est, evolved := paths(t, set, "evolved", set.Evolved, main.References, refTexts)
		if mainParsed.IsZero() || evolved.IsZero() {
			return
		}
		incs, steps, err := compat.CheckSteps(ctx, evolved, mainParsed)
		if err != nil || len(incs) != 0 {
			t.Fatalf("the evolved schema cannot read the first: %v %v\n%s\n%s", incs, err, main.Schema, set.Evolved)
		}
		if bound := 8*(mst.TextTypes+est.TextTypes) + 16; steps > bound {
			t.Fatalf("%d steps to check schemas of %d and %d types (bound %d)", steps, est.TextTypes, mst.TextTypes, bound)
		}
		if _, _, err := compat.CheckSteps(ctx, mainParsed, evolved); err != nil {
			t.Fatal(err)
		}
		var refs []registry.Reference
		for _, r := range main.References {
			refs = append(refs, registry.Reference{Name: r.Name, Subject: r.Subject, Version: r.Version})
		}
		eover := est.Partial || est.ExpandedTypes > limits.MaxExpandedTypes || est.Depth > limits.MaxDepth
		if _, err := reg.Register(ctx, main.Name, registry.SchemaInput{Schema: set.Evolved, References: refs}); (err == nil) == eover {
			t.Fatalf("evolved version (%+v): %v", est, err)
		}
	})
}
