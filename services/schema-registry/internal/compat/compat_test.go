package compat

import (
	"context"
	"strings"
	"testing"
)

// checkPair runs AvroChecker without a deadline.
func checkPair(t testing.TB, reader, writer Schema) []Incompatibility {
	t.Helper()
	incs, err := AvroChecker{}.Check(context.Background(), reader, writer)
	if err != nil {
		t.Fatal(err)
	}
	return incs
}

// checkLevel runs CheckLevel with AvroChecker without a deadline.
func checkLevel(t testing.TB, level string, candidate Schema, existing []Schema) []string {
	t.Helper()
	msgs, err := CheckLevel(context.Background(), AvroChecker{}, level, candidate, existing)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// Schemas of Confluent's AvroCompatibilityTest (the facts, restated).
const (
	cSchema1 = `{"type":"record","name":"myrecord","fields":[{"type":"string","name":"f1"}]}`
	cSchema2 = `{"type":"record","name":"myrecord","fields":[{"type":"string","name":"f1"},{"type":"string","name":"f2","default":"foo"}]}`
	cSchema3 = `{"type":"record","name":"myrecord","fields":[{"type":"string","name":"f1"},{"type":"string","name":"f2"}]}`
	cSchema4 = `{"type":"record","name":"myrecord","fields":[{"type":"string","name":"f1_new","aliases":["f1"]}]}`
	cSchema6 = `{"type":"record","name":"myrecord","fields":[{"type":["null","string"],"name":"f1","doc":"doc of f1"}]}`
	cSchema7 = `{"type":"record","name":"myrecord","fields":[{"type":["null","string","int"],"name":"f1","doc":"doc of f1"}]}`
	cSchema8 = `{"type":"record","name":"myrecord","fields":[{"type":"string","name":"f1"},{"type":"string","name":"f2","default":"foo"},{"type":"string","name":"f3","default":"bar"}]}`
)

// Schemas of Apache Avro's TestSchemaCompatibility / TestSchemas.
const (
	aNull         = `"null"`
	aBoolean      = `"boolean"`
	aInt          = `"int"`
	aLong         = `"long"`
	aFloat        = `"float"`
	aDouble       = `"double"`
	aString       = `"string"`
	aBytes        = `"bytes"`
	aIntArray     = `{"type":"array","items":"int"}`
	aLongArray    = `{"type":"array","items":"long"}`
	aStringArray  = `{"type":"array","items":"string"}`
	aIntMap       = `{"type":"map","values":"int"}`
	aLongMap      = `{"type":"map","values":"long"}`
	aEnum1AB      = `{"type":"enum","name":"Enum1","symbols":["A","B"]}`
	aEnum1ABC     = `{"type":"enum","name":"Enum1","symbols":["A","B","C"]}`
	aEnum1BC      = `{"type":"enum","name":"Enum1","symbols":["B","C"]}`
	aEnum1ABDef   = `{"type":"enum","name":"Enum1","symbols":["A","B"],"default":"A"}`
	aEnum2AB      = `{"type":"enum","name":"Enum2","symbols":["A","B"]}`
	aEnumAlias    = `{"type":"enum","name":"Enum2","aliases":["Enum1"],"symbols":["A","B"]}`
	aIntUnion     = `["int"]`
	aLongUnion    = `["long"]`
	aStringUnion  = `["string"]`
	aIntLongUnion = `["int","long"]`
	aNullIntUnion = `["null","int"]`
	aIntStrUnion  = `["int","string"]`
	aFixed4       = `{"type":"fixed","name":"Fixed","size":4}`
	aFixed8       = `{"type":"fixed","name":"Fixed","size":8}`
	aFixedOther   = `{"type":"fixed","name":"Other","size":4}`
	aEmptyRecord1 = `{"type":"record","name":"Record1","fields":[]}`
	aEmptyRecord2 = `{"type":"record","name":"Record2","fields":[]}`
	aAIntRecord1  = `{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"}]}`
	aALongRecord1 = `{"type":"record","name":"Record1","fields":[{"name":"a","type":"long"}]}`
	aADIntRecord1 = `{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0}]}`
	aAIntBInt     = `{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}`
	aAIntBDInt    = `{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}`
	aADIntBDInt   = `{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":"int","default":0}]}`
	aNsRecord1    = `{"type":"record","name":"R","fields":[{"name":"f","type":{"type":"record","name":"I","namespace":"ns1","fields":[{"name":"x","type":"int"}]}}]}`
	aNsRecord2    = `{"type":"record","name":"R","fields":[{"name":"f","type":{"type":"record","name":"I","namespace":"ns2","fields":[{"name":"x","type":"int"}]}}]}`
	aRecordAlias  = `{"type":"record","name":"Renamed","aliases":["Record1"],"fields":[{"name":"a","type":"int"}]}`
	aFieldAlias   = `{"type":"record","name":"Record1","fields":[{"name":"z","aliases":["a"],"type":"int"}]}`
	aLinkedList   = `{"type":"record","name":"LinkedList","fields":[{"name":"value","type":"int"},{"name":"next","type":["null","LinkedList"]}]}`
	aLinkedListL  = `{"type":"record","name":"LinkedList","fields":[{"name":"value","type":"long"},{"name":"next","type":["null","LinkedList"]}]}`
	aIntListRec   = `{"type":"record","name":"List","fields":[{"name":"list","type":{"type":"array","items":"int"}}]}`
	aLongListRec  = `{"type":"record","name":"List","fields":[{"name":"list","type":{"type":"array","items":"long"}}]}`
	aRecInUnion1  = `["null",{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"}]}]`
	aRecInUnion2  = `["null",{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}]`
	aMapOfUnion1  = `{"type":"map","values":["null","int"]}`
	aMapOfUnion2  = `{"type":"map","values":["null","long"]}`
	aDecimal42    = `{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}`
	aDecimal52    = `{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}`
	aDecimal43    = `{"type":"bytes","logicalType":"decimal","precision":4,"scale":3}`
	aFixedDec42   = `{"type":"fixed","name":"Dec","size":8,"logicalType":"decimal","precision":4,"scale":2}`
	aFixedDec62   = `{"type":"fixed","name":"Dec","size":8,"logicalType":"decimal","precision":6,"scale":2}`
	aTimestampMs  = `{"type":"long","logicalType":"timestamp-millis"}`
	aDateInt      = `{"type":"int","logicalType":"date"}`
)

type levelCase struct {
	name     string // the upstream case it mirrors
	level    string
	schema   string
	existing []string // oldest first
	want     bool
}

var levelCases = []levelCase{
	// Confluent AvroCompatibilityTest.testBasicBackwardsCompatibility
	{"Confluent/backward: adding a field with default is a backward compatible change", "BACKWARD", cSchema2, []string{cSchema1}, true},
	{"Confluent/backward: adding a field w/o default is not a backward compatible change", "BACKWARD", cSchema3, []string{cSchema1}, false},
	{"Confluent/backward: changing field name with alias is a backward compatible change", "BACKWARD", cSchema4, []string{cSchema1}, true},
	{"Confluent/backward: evolving a field type to a union is a backward compatible change", "BACKWARD", cSchema6, []string{cSchema1}, true},
	{"Confluent/backward: removing a type from a union is not a backward compatible change", "BACKWARD", cSchema1, []string{cSchema6}, false},
	{"Confluent/backward: adding a new type in union is a backward compatible change", "BACKWARD", cSchema7, []string{cSchema6}, true},
	{"Confluent/backward: removing a type from a union (3 to 2 branches) is not a backward compatible change", "BACKWARD", cSchema6, []string{cSchema7}, false},
	{"Confluent/backward: only the last schema is checked for compatibility", "BACKWARD", cSchema3, []string{cSchema1, cSchema2}, true},
	// Confluent testBasicBackwardsTransitiveCompatibility
	{"Confluent/backward transitive: iteratively adding fields with defaults is a compatible change", "BACKWARD_TRANSITIVE", cSchema8, []string{cSchema1, cSchema2}, true},
	{"Confluent/backward transitive: adding a field with default is a backward compatible change", "BACKWARD_TRANSITIVE", cSchema2, []string{cSchema1}, true},
	{"Confluent/backward transitive: removing a default is a compatible change, but not transitively (one version)", "BACKWARD_TRANSITIVE", cSchema3, []string{cSchema2}, true},
	{"Confluent/backward transitive: removing a default is not a transitively compatible change", "BACKWARD_TRANSITIVE", cSchema3, []string{cSchema1, cSchema2}, false},
	// Confluent testBasicForwardsCompatibility
	{"Confluent/forward: adding a field is a forward compatible change", "FORWARD", cSchema2, []string{cSchema1}, true},
	{"Confluent/forward: adding a field without default is a forward compatible change", "FORWARD", cSchema3, []string{cSchema1}, true},
	{"Confluent/forward: adding a field (schema3 after schema2) is a forward compatible change", "FORWARD", cSchema3, []string{cSchema2}, true},
	{"Confluent/forward: adding a default (schema2 after schema3) is a forward compatible change", "FORWARD", cSchema2, []string{cSchema3}, true},
	{"Confluent/forward: only the last schema is checked for compatibility", "FORWARD", cSchema1, []string{cSchema3, cSchema2}, true},
	{"Confluent/forward: removing a field without default is not forward compatible", "FORWARD", cSchema1, []string{cSchema3}, false},
	// Confluent testBasicForwardsTransitiveCompatibility
	{"Confluent/forward transitive: iteratively removing fields with defaults is a compatible change", "FORWARD_TRANSITIVE", cSchema1, []string{cSchema8, cSchema2}, true},
	{"Confluent/forward transitive: adding default to a field is a compatible change", "FORWARD_TRANSITIVE", cSchema2, []string{cSchema3}, true},
	{"Confluent/forward transitive: removing a field with a default is a compatible change", "FORWARD_TRANSITIVE", cSchema1, []string{cSchema2}, true},
	{"Confluent/forward transitive: removing a default is not a transitively compatible change", "FORWARD_TRANSITIVE", cSchema1, []string{cSchema3, cSchema2}, false},
	// Confluent testBasicFullCompatibility
	{"Confluent/full: adding a field with default is a backward and a forward compatible change", "FULL", cSchema2, []string{cSchema1}, true},
	{"Confluent/full: transitively adding a field without a default is not a compatible change (only latest checked)", "FULL", cSchema3, []string{cSchema1, cSchema2}, true},
	{"Confluent/full: transitively removing a field without a default is not a compatible change (only latest checked)", "FULL", cSchema1, []string{cSchema3, cSchema2}, true},
	{"Confluent/full: adding a field without default is not fully compatible", "FULL", cSchema3, []string{cSchema1}, false},
	// Confluent testBasicFullTransitiveCompatibility
	{"Confluent/full transitive: iteratively adding fields with defaults is a compatible change", "FULL_TRANSITIVE", cSchema8, []string{cSchema1, cSchema2}, true},
	{"Confluent/full transitive: iteratively removing fields with defaults is a compatible change", "FULL_TRANSITIVE", cSchema1, []string{cSchema8, cSchema2}, true},
	{"Confluent/full transitive: adding default to a field is a compatible change", "FULL_TRANSITIVE", cSchema2, []string{cSchema3}, true},
	{"Confluent/full transitive: removing a field with a default is a compatible change", "FULL_TRANSITIVE", cSchema1, []string{cSchema2}, true},
	{"Confluent/full transitive: adding a field with default is a compatible change", "FULL_TRANSITIVE", cSchema2, []string{cSchema1}, true},
	{"Confluent/full transitive: removing a default from a field compatible change", "FULL_TRANSITIVE", cSchema3, []string{cSchema2}, true},
	{"Confluent/full transitive: transitively adding a field without a default is not a compatible change", "FULL_TRANSITIVE", cSchema3, []string{cSchema2, cSchema1}, false},
	{"Confluent/full transitive: transitively removing a field without a default is not a compatible change", "FULL_TRANSITIVE", cSchema1, []string{cSchema2, cSchema3}, false},
	// Confluent: NONE accepts anything.
	{"Confluent/none: an incompatible change is accepted under NONE", "NONE", cSchema3, []string{cSchema1}, true},
	{"Confluent/none: a type change is accepted under NONE", "NONE", aInt, []string{aString}, true},
	{"Confluent/none: first version is always compatible", "BACKWARD", cSchema3, nil, true},
}

func TestLevels(t *testing.T) {
	t.Parallel()
	for _, tc := range levelCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cand := mustParse(t, tc.schema)
			var ex []Schema
			for _, e := range tc.existing {
				ex = append(ex, mustParse(t, e))
			}
			msgs := checkLevel(t, tc.level, cand, ex)
			if got := len(msgs) == 0; got != tc.want {
				t.Fatalf("%s: compatible = %v, want %v; messages: %v", tc.level, got, tc.want, msgs)
			}
		})
	}
}

type pairCase struct {
	name           string // Avro TestSchemaCompatibility* case it mirrors
	reader, writer string
	want           bool
	wantType       string // expected incompatibility type when !want
}

var pairCases = []pairCase{
	// TestSchemaCompatibility.testValidateSchemaPairs / TestSchemaCompatibilityTypeMismatch
	{"Avro/primitives: boolean reads boolean", aBoolean, aBoolean, true, ""},
	{"Avro/primitives: int reads int", aInt, aInt, true, ""},
	{"Avro/promotion: long reads int", aLong, aInt, true, ""},
	{"Avro/promotion: float reads int", aFloat, aInt, true, ""},
	{"Avro/promotion: float reads long", aFloat, aLong, true, ""},
	{"Avro/promotion: double reads int", aDouble, aInt, true, ""},
	{"Avro/promotion: double reads long", aDouble, aLong, true, ""},
	{"Avro/promotion: double reads float", aDouble, aFloat, true, ""},
	{"Avro/promotion: string reads bytes", aString, aBytes, true, ""},
	{"Avro/promotion: bytes reads string", aBytes, aString, true, ""},
	{"Avro/type mismatch: int cannot read long", aInt, aLong, false, "TYPE_MISMATCH"},
	{"Avro/type mismatch: long cannot read float", aLong, aFloat, false, "TYPE_MISMATCH"},
	{"Avro/type mismatch: float cannot read double", aFloat, aDouble, false, "TYPE_MISMATCH"},
	{"Avro/type mismatch: null cannot read int", aNull, aInt, false, "TYPE_MISMATCH"},
	{"Avro/type mismatch: boolean cannot read int", aBoolean, aInt, false, "TYPE_MISMATCH"},
	{"Avro/type mismatch: string cannot read int", aString, aInt, false, "TYPE_MISMATCH"},
	{"Avro/type mismatch: int cannot read string", aInt, aString, false, "TYPE_MISMATCH"},
	{"Avro/type mismatch: array cannot read map", aIntArray, aIntMap, false, "TYPE_MISMATCH"},
	{"Avro/type mismatch: record cannot read enum", aEmptyRecord1, aEnum1AB, false, "TYPE_MISMATCH"},
	{"Avro/type mismatch: fixed cannot read bytes", aFixed4, aBytes, false, "TYPE_MISMATCH"},
	// arrays and maps
	{"Avro/arrays: int array reads int array", aIntArray, aIntArray, true, ""},
	{"Avro/arrays: long array reads int array", aLongArray, aIntArray, true, ""},
	{"Avro/arrays: int array cannot read long array", aIntArray, aLongArray, false, "TYPE_MISMATCH"},
	{"Avro/arrays: string array cannot read int array", aStringArray, aIntArray, false, "TYPE_MISMATCH"},
	{"Avro/maps: long map reads int map", aLongMap, aIntMap, true, ""},
	{"Avro/maps: int map cannot read long map", aIntMap, aLongMap, false, "TYPE_MISMATCH"},
	{"Avro/maps: map of [null,long] reads map of [null,int]", aMapOfUnion2, aMapOfUnion1, true, ""},
	{"Avro/maps: map of [null,int] cannot read map of [null,long]", aMapOfUnion1, aMapOfUnion2, false, "MISSING_UNION_BRANCH"},
	// TestSchemaCompatibilityEnumDefaults / MissingEnumSymbols / NameMismatch
	{"Avro/enums: same symbols", aEnum1AB, aEnum1AB, true, ""},
	{"Avro/enums: reader with more symbols reads writer", aEnum1ABC, aEnum1AB, true, ""},
	{"Avro/enums: reader missing writer symbol C", aEnum1AB, aEnum1ABC, false, "MISSING_ENUM_SYMBOLS"},
	{"Avro/enums: reader missing writer symbol A", aEnum1BC, aEnum1AB, false, "MISSING_ENUM_SYMBOLS"},
	{"Avro/enum defaults: reader default covers a missing symbol", aEnum1ABDef, aEnum1ABC, true, ""},
	{"Avro/name mismatch: enum names differ", aEnum2AB, aEnum1AB, false, "NAME_MISMATCH"},
	{"Avro/aliases: enum reader alias matches writer name", aEnumAlias, aEnum1AB, true, ""},
	// TestSchemaCompatibilityFixedSizeMismatch / NameMismatch
	{"Avro/fixed: same size", aFixed4, aFixed4, true, ""},
	{"Avro/fixed: size mismatch 4 vs 8", aFixed4, aFixed8, false, "FIXED_SIZE_MISMATCH"},
	{"Avro/fixed: size mismatch 8 vs 4", aFixed8, aFixed4, false, "FIXED_SIZE_MISMATCH"},
	{"Avro/name mismatch: fixed names differ", aFixedOther, aFixed4, false, "NAME_MISMATCH"},
	// TestSchemaCompatibilityMissingUnionBranch / unions
	{"Avro/unions: int union reads int union", aIntUnion, aIntUnion, true, ""},
	{"Avro/unions: [int,long] reads [int]", aIntLongUnion, aIntUnion, true, ""},
	{"Avro/unions: [int] cannot read [int,long] (missing long)", aIntUnion, aIntLongUnion, false, "MISSING_UNION_BRANCH"},
	{"Avro/unions: [long] reads [int] by promotion", aLongUnion, aIntUnion, true, ""},
	{"Avro/unions: [string] cannot read [int]", aStringUnion, aIntUnion, false, "MISSING_UNION_BRANCH"},
	{"Avro/unions: long reads [int] writer", aLong, aIntUnion, true, ""},
	{"Avro/unions: int cannot read [int,long] writer", aInt, aIntLongUnion, false, "TYPE_MISMATCH"},
	{"Avro/unions: int cannot read [null,int] writer", aInt, aNullIntUnion, false, "TYPE_MISMATCH"},
	{"Avro/unions: [null,int] reads int writer", aNullIntUnion, aInt, true, ""},
	{"Avro/unions: [int,string] reads string writer", aIntStrUnion, aString, true, ""},
	{"Avro/unions: [null,int] cannot read string writer", aNullIntUnion, aString, false, "MISSING_UNION_BRANCH"},
	{"Avro/unions: record in union gains a defaulted field", aRecInUnion2, aRecInUnion1, true, ""},
	// TestSchemaCompatibilityReaderFieldMissingDefaultValue / records
	{"Avro/records: empty reader ignores writer fields", aEmptyRecord1, aAIntRecord1, true, ""},
	{"Avro/records: reader field missing in writer without default", aAIntRecord1, aEmptyRecord1, false, "READER_FIELD_MISSING_DEFAULT_VALUE"},
	{"Avro/records: reader field missing in writer with default", aADIntRecord1, aEmptyRecord1, true, ""},
	{"Avro/records: reader adds field b without default", aAIntBInt, aAIntRecord1, false, "READER_FIELD_MISSING_DEFAULT_VALUE"},
	{"Avro/records: reader adds field b with default", aAIntBDInt, aAIntRecord1, true, ""},
	{"Avro/records: all reader fields defaulted read empty writer", aADIntBDInt, aEmptyRecord1, true, ""},
	{"Avro/records: reader drops writer field b", aAIntRecord1, aAIntBInt, true, ""},
	{"Avro/records: long field reads int field", aALongRecord1, aAIntRecord1, true, ""},
	{"Avro/records: int field cannot read long field", aAIntRecord1, aALongRecord1, false, "TYPE_MISMATCH"},
	{"Avro/name mismatch: record names differ", aEmptyRecord2, aEmptyRecord1, false, "NAME_MISMATCH"},
	{"Avro/names: nested record namespaces are not compared", aNsRecord1, aNsRecord2, true, ""},
	{"Avro/aliases: record reader alias matches writer name", aRecordAlias, aAIntRecord1, true, ""},
	{"Avro/aliases: field reader alias matches writer field", aFieldAlias, aAIntRecord1, true, ""},
	{"Avro/aliases: aliased reader field absent from writer needs a default", aFieldAlias, aEmptyRecord1, false, "READER_FIELD_MISSING_DEFAULT_VALUE"},
	// recursive types
	{"Avro/recursion: linked list reads linked list", aLinkedList, aLinkedList, true, ""},
	{"Avro/recursion: long linked list reads int linked list", aLinkedListL, aLinkedList, true, ""},
	{"Avro/recursion: int linked list cannot read long linked list", aLinkedList, aLinkedListL, false, "TYPE_MISMATCH"},
	{"Avro/records: record with long list reads int list", aLongListRec, aIntListRec, true, ""},
	{"Avro/records: record with int list cannot read long list", aIntListRec, aLongListRec, false, "TYPE_MISMATCH"},
	// logical types (Avro spec: decimals resolve only with equal precision and scale)
	{"Avro spec/decimal: same precision and scale", aDecimal42, aDecimal42, true, ""},
	{"Avro spec/decimal: precision change is incompatible", aDecimal52, aDecimal42, false, "TYPE_MISMATCH"},
	{"Avro spec/decimal: scale change is incompatible", aDecimal43, aDecimal42, false, "TYPE_MISMATCH"},
	{"Avro spec/decimal: fixed decimal precision change is incompatible", aFixedDec62, aFixedDec42, false, "TYPE_MISMATCH"},
	{"Avro spec/logical: timestamp-millis reads long (annotation only)", aTimestampMs, aLong, true, ""},
	{"Avro spec/logical: date reads int (annotation only)", aDateInt, aInt, true, ""},
	{"Avro spec/logical: long timestamp reads int date by promotion", aTimestampMs, aDateInt, true, ""},
}

func mustParse(t testing.TB, s string) Schema {
	t.Helper()
	p, err := Parse(s, nil)
	if err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return p
}

func TestPairs(t *testing.T) {
	t.Parallel()
	for _, tc := range pairCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := checkPair(t, mustParse(t, tc.reader), mustParse(t, tc.writer))
			if (len(got) == 0) != tc.want {
				t.Fatalf("compatible = %v, want %v: %v", len(got) == 0, tc.want, got)
			}
			if !tc.want {
				found := false
				for _, inc := range got {
					found = found || inc.Type == tc.wantType
				}
				if !found {
					t.Fatalf("want an incompatibility of type %s, got %v", tc.wantType, got)
				}
			}
		})
	}
}

// TestPairsUnderLevels runs every pair under the level it stands for:
// BACKWARD (new schema = reader), FORWARD (new schema = writer) and FULL
// (both directions must hold).
func TestPairsUnderLevels(t *testing.T) {
	t.Parallel()
	for _, tc := range pairCases {
		r, w := mustParse(t, tc.reader), mustParse(t, tc.writer)
		if ok := len(checkLevel(t, "BACKWARD", r, []Schema{w})) == 0; ok != tc.want {
			t.Errorf("%s: BACKWARD = %v, want %v", tc.name, ok, tc.want)
		}
		if ok := len(checkLevel(t, "FORWARD", w, []Schema{r})) == 0; ok != tc.want {
			t.Errorf("%s: FORWARD = %v, want %v", tc.name, ok, tc.want)
		}
		reverse := len(checkPair(t, w, r)) == 0
		if ok := len(checkLevel(t, "FULL", r, []Schema{w})) == 0; ok != (tc.want && reverse) {
			t.Errorf("%s: FULL = %v, want %v", tc.name, ok, tc.want && reverse)
		}
	}
}

func TestCaseCount(t *testing.T) {
	t.Parallel()
	if n := len(levelCases) + len(pairCases); n < 60 {
		t.Fatalf("only %d compatibility cases, want at least 60", n)
	}
	levels := map[string]bool{}
	for _, c := range levelCases {
		levels[c.level] = true
	}
	for _, l := range Levels {
		if !levels[l] {
			t.Errorf("no level case for %s", l)
		}
	}
}

func TestMessagesNameLocation(t *testing.T) {
	t.Parallel()
	msgs := checkLevel(t, "BACKWARD", mustParse(t, cSchema3), []Schema{mustParse(t, cSchema1)})
	if len(msgs) != 1 || !strings.Contains(msgs[0], "READER_FIELD_MISSING_DEFAULT_VALUE") || !strings.Contains(msgs[0], "/fields/1") || !strings.Contains(msgs[0], "f2") {
		t.Fatalf("messages = %v", msgs)
	}
}

func TestReferencesParse(t *testing.T) {
	t.Parallel()
	ref := `{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"city","type":"string"}]}`
	main := `{"type":"record","name":"Customer","namespace":"com.acme","fields":[{"name":"addr","type":"Address"}]}`
	s, err := Parse(main, []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	if s.Field(0).Type().Name() != "com.acme.Address" {
		t.Fatalf("reference resolved to %q", s.Field(0).Type().Name())
	}
	if _, err := Parse(main, nil); err == nil {
		t.Fatal("unknown named type accepted without its reference")
	}
}
