package store

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// Record is one fixture record: raw key and value JSON (value null is a
// tombstone).
type Record struct {
	Key   json.RawMessage `json:"key"`
	Value json.RawMessage `json:"value"`
}

// LoadFixture reads a JSON-lines fixture of _schemas records.
func LoadFixture(t testing.TB, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if string(r.Value) == "null" {
			r.Value = nil
		}
		out = append(out, r)
	}
	return out
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestConfluentFixture(t *testing.T) {
	t.Parallel()
	st := NewState(quietLogger())
	for i, r := range LoadFixture(t, "testdata/confluent_schemas.jsonl") {
		st.Apply(int64(i), r.Key, r.Value)
	}
	if lvl, _ := st.Config(""); lvl != "FULL" {
		t.Errorf("global compatibility = %q, want FULL", lvl)
	}
	if lvl, _ := st.Config("payments-value"); lvl != "NONE" {
		t.Errorf("payments-value compatibility = %q, want NONE", lvl)
	}
	if lvl, ok := st.Config("address-value"); ok {
		t.Errorf("address-value compatibility = %q after a config without a level, want none", lvl)
	}
	if m, _ := st.Mode("frozen-value"); m != "READONLY" {
		t.Errorf("frozen-value mode = %q", m)
	}
	if m, _ := st.Mode(""); m != "READWRITE" {
		t.Errorf("global mode = %q", m)
	}
	if got := st.Subjects(false, ""); !equal(got, []string{"address-value", "customers-value", "orders-value", "payments-value"}) {
		t.Errorf("live subjects = %v", got)
	}
	if got := st.Subjects(true, ""); !equal(got, []string{"address-value", "customers-value", "old-value", "orders-value", "payments-value"}) {
		t.Errorf("subjects incl. deleted = %v", got)
	}
	// orders-value: v1, v2 live, v3 soft-deleted.
	vs := st.Versions("orders-value", false)
	if len(vs) != 2 || vs[0].ID != 1 || vs[1].ID != 2 {
		t.Errorf("orders-value live versions = %+v", vs)
	}
	if v, ok := st.Version("orders-value", 3); !ok || !v.Deleted || v.ID != 8 {
		t.Errorf("orders-value v3 = %+v %v, want soft-deleted id 8", v, ok)
	}
	// Same schema under two subjects shares id 1.
	if uses := st.UsesOf(1, false); len(uses) != 2 {
		t.Errorf("id 1 used by %+v, want orders-value/1 and payments-value/1", uses)
	}
	// DELETE_SUBJECT soft-deleted both versions of old-value.
	if vs := st.Versions("old-value", true); len(vs) != 2 || !vs[0].Deleted || !vs[1].Deleted {
		t.Errorf("old-value = %+v, want 2 soft-deleted versions", vs)
	}
	// The tombstone removed gone-value; its id no longer resolves.
	if st.SubjectExists("gone-value", true) {
		t.Error("gone-value survived its tombstone")
	}
	if _, ok := st.SchemaByID(7); ok {
		t.Error("id 7 resolves after a permanent delete")
	}
	if st.MaxID() != 8 {
		t.Errorf("max id = %d, want 8 (ids are never reused)", st.MaxID())
	}
	// References.
	sc, ok := st.SchemaByID(4)
	if !ok || len(sc.References) != 1 || sc.References[0].Subject != "address-value" || sc.Type != "AVRO" {
		t.Errorf("id 4 = %+v", sc)
	}
	if ids := st.ReferencedBy("address-value", 1); !equal(ids, []int{4}) {
		t.Errorf("address-value/1 referenced by %v", ids)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestKeysMatchConfluentBytes: compaction compares keys as bytes, so ours
// must be byte-identical to Confluent's for the same thing.
func TestKeysMatchConfluentBytes(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		string(SchemaKey("orders-value", 3)): `{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}`,
		string(ConfigKey("")):                `{"keytype":"CONFIG","subject":null,"magic":0}`,
		string(ConfigKey("orders-value")):    `{"keytype":"CONFIG","subject":"orders-value","magic":0}`,
		string(ModeKey("")):                  `{"keytype":"MODE","subject":null,"magic":0}`,
		string(DeleteSubjectKey("x")):        `{"keytype":"DELETE_SUBJECT","subject":"x","magic":0}`,
		string(NoopKey()):                    `{"keytype":"NOOP","magic":0}`,
	}
	for got, want := range cases {
		if got != want {
			t.Errorf("key %s, want %s", got, want)
		}
	}
	v := SchemaValue{Subject: "s", Version: 1, ID: 7, SchemaType: "AVRO", Schema: `"int"`}
	if got := string(v.Encode()); got != `{"subject":"s","version":1,"id":7,"schema":"\"int\"","deleted":false}` {
		t.Errorf("value %s", got)
	}
}

func schemaRec(subject string, version, id int, schema string, deleted bool) (key, value []byte) {
	v := SchemaValue{Subject: subject, Version: version, ID: id, Schema: schema, Deleted: deleted}
	return SchemaKey(subject, version), v.Encode()
}

func TestFirstInLogOrderWins(t *testing.T) {
	t.Parallel()
	st := NewState(quietLogger())
	k, v := schemaRec("s", 1, 1, `"int"`, false)
	st.Apply(0, k, v)
	// Another replica raced for s/1 with another schema: it loses.
	k, v = schemaRec("s", 1, 2, `"long"`, false)
	st.Apply(1, k, v)
	if got, _ := st.Version("s", 1); got.ID != 1 {
		t.Fatalf("s/1 = id %d, want the first record's id 1", got.ID)
	}
	if _, ok := st.ConflictAt(1); !ok {
		t.Fatal("losing record not flagged")
	}
	// Same id taken for a different schema under another subject: loses.
	k, v = schemaRec("t", 1, 1, `"string"`, false)
	st.Apply(2, k, v)
	if st.SubjectExists("t", true) {
		t.Fatal("record reusing id 1 for another schema was applied")
	}
	// The same schema with a new id: loses, one id per schema.
	k, v = schemaRec("u", 1, 3, ` "int" `, false)
	st.Apply(3, k, v)
	if st.SubjectExists("u", true) {
		t.Fatal("second id for the same schema was applied")
	}
	// Same schema, same id under another subject: accepted.
	k, v = schemaRec("u", 1, 1, `"int"`, false)
	st.Apply(4, k, v)
	if got, ok := st.Version("u", 1); !ok || got.ID != 1 {
		t.Fatalf("u/1 = %+v", got)
	}
	// Identical concurrent duplicate of s/1: a no-op.
	k, v = schemaRec("s", 1, 1, `"int"`, false)
	st.Apply(5, k, v)
	if _, ok := st.ConflictAt(5); ok {
		t.Fatal("identical duplicate flagged as conflict")
	}
	// Soft delete then hard delete; ids stay reserved.
	k, v = schemaRec("s", 1, 1, `"int"`, true)
	st.Apply(6, k, v)
	if got, _ := st.Version("s", 1); !got.Deleted {
		t.Fatal("soft delete not applied")
	}
	st.Apply(7, SchemaKey("s", 1), nil)
	st.Apply(8, SchemaKey("u", 1), nil)
	if _, ok := st.SchemaByID(1); ok {
		t.Fatal("id 1 resolves after every use was removed")
	}
	if st.MaxID() != 3 {
		t.Fatalf("max id = %d, want 3 (highest id ever seen)", st.MaxID())
	}
	if st.Next() != 9 {
		t.Fatalf("next = %d", st.Next())
	}
}

func TestUnreadableRecordsAreSkipped(t *testing.T) {
	t.Parallel()
	st := NewState(quietLogger())
	st.Apply(0, []byte(`not json`), []byte(`{}`))
	st.Apply(1, []byte(`{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`), []byte(`{"broken"`))
	st.Apply(2, []byte(`{"keytype":"SCHEMA","magic":1}`), []byte(`{}`))
	st.Apply(3, []byte(`{"keytype":"CONFIG","subject":null,"magic":0}`), []byte(`[]`))
	k, v := schemaRec("s", 1, 1, `"int"`, false)
	st.Apply(4, k, v)
	if got, ok := st.Version("s", 1); !ok || got.ID != 1 {
		t.Fatalf("good record after bad ones not applied: %+v", got)
	}
	if st.Next() != 5 {
		t.Fatalf("next = %d, want 5", st.Next())
	}
}

// FuzzApply: no record, however malformed, may panic the state machine.
func FuzzApply(f *testing.F) {
	for _, r := range LoadFixture(f, "testdata/confluent_schemas.jsonl") {
		f.Add([]byte(r.Key), []byte(r.Value))
	}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		st := NewState(quietLogger())
		st.Apply(0, key, value)
		st.Apply(1, key, nil)
		st.Apply(2, key, value)
		_ = st.Dump()
	})
}

func TestDuplicateRegistrationUnderSubjectLoses(t *testing.T) {
	t.Parallel()
	st := NewState(quietLogger())
	k, v := schemaRec("s", 1, 1, `"int"`, false)
	st.Apply(0, k, v)
	k, v = schemaRec("s", 2, 1, `"int"`, false)
	st.Apply(1, k, v)
	if _, ok := st.Version("s", 2); ok {
		t.Fatal("same schema accepted twice under one subject")
	}
	// After a soft delete, re-registering makes a new version (Confluent).
	k, v = schemaRec("s", 1, 1, `"int"`, true)
	st.Apply(2, k, v)
	k, v = schemaRec("s", 2, 1, `"int"`, false)
	st.Apply(3, k, v)
	if got, ok := st.Version("s", 2); !ok || got.ID != 1 || got.Deleted {
		t.Fatalf("re-registration after soft delete = %+v %v", got, ok)
	}
}

func TestNotReadyUntilReplayed(t *testing.T) {
	t.Parallel()
	s := New(nil, Options{}, quietLogger())
	s.initEnd.Store(3)
	if err := s.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "of 3") {
		t.Fatalf("Ready before replay = %v", err)
	}
	for i := int64(0); i < 3; i++ {
		s.state.Apply(i, NoopKey(), nil)
	}
	if s.state.Next() != 3 {
		t.Fatalf("next = %d", s.state.Next())
	}
	s.markReady()
	if err := s.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after replay = %v", err)
	}
}

func TestLostKeysTracked(t *testing.T) {
	t.Parallel()
	st := NewState(quietLogger())
	k, v := schemaRec("s", 1, 1, `"int"`, false)
	st.Apply(0, k, v)
	k2, v2 := schemaRec("s", 1, 2, `"long"`, false)
	st.Apply(1, k2, v2)
	lost := st.LostKeys(0)
	if len(lost) != 1 || lost[0].ID != 1 {
		t.Fatalf("lost keys = %+v, want s/1 with winner id 1", lost)
	}
	if len(st.LostKeys(time.Hour)) != 0 {
		t.Fatal("a fresh loss is reported before its grace period")
	}
	st.Apply(2, k, v) // the winner re-asserted
	if lost := st.LostKeys(0); len(lost) != 0 {
		t.Fatalf("lost keys after re-assertion = %+v", lost)
	}
}

func TestIDWatermarkSurvivesCompaction(t *testing.T) {
	t.Parallel()
	st := NewState(quietLogger())
	// What a compacted log holds after id 9's records were tombstoned and
	// removed: only the watermark written before the tombstones.
	st.Apply(0, DeleteSubjectKey(WatermarkSubject), []byte(`{"subject":"`+WatermarkSubject+`","version":9}`))
	if st.MaxID() != 9 {
		t.Fatalf("max id = %d, want 9 from the watermark", st.MaxID())
	}
	if subs := st.Subjects(true, ""); len(subs) != 0 {
		t.Fatalf("watermark shows up as subjects %v", subs)
	}
}
