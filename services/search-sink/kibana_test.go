package main

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/services/search-sink/internal/rules"
)

// TestKibanaSavedObjects checks deployments/kibana/sluice.ndjson: one JSON
// object per line, embedded JSON strings parse, every reference resolves
// to an object in the file, and the fields the saved objects use are the
// ones the sink writes.
func TestKibanaSavedObjects(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../../deployments/kibana/sluice.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type obj struct {
		ID         string         `json:"id"`
		Type       string         `json:"type"`
		Attributes map[string]any `json:"attributes"`
		References []struct {
			ID, Name, Type string
		} `json:"references"`
		ExportedCount *int `json:"exportedCount"`
	}
	ids := map[string]string{}
	var objs []obj
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var o obj
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if o.ExportedCount != nil {
			if *o.ExportedCount != len(objs) {
				t.Fatalf("exportedCount %d, objects %d", *o.ExportedCount, len(objs))
			}
			continue
		}
		ids[o.ID] = o.Type
		objs = append(objs, o)
	}
	used := ""
	for _, o := range objs {
		for _, key := range []string{"visState", "panelsJSON", "optionsJSON", "uiStateJSON"} {
			if s, ok := o.Attributes[key].(string); ok {
				var v any
				if err := json.Unmarshal([]byte(s), &v); err != nil {
					t.Fatalf("%s %s: %s is not JSON: %v", o.Type, o.ID, key, err)
				}
				used += s
			}
		}
		if meta, ok := o.Attributes["kibanaSavedObjectMeta"].(map[string]any); ok {
			var v any
			if err := json.Unmarshal([]byte(meta["searchSourceJSON"].(string)), &v); err != nil {
				t.Fatalf("%s: searchSourceJSON: %v", o.ID, err)
			}
		}
		for _, r := range o.References {
			if ids[r.ID] != r.Type {
				t.Fatalf("%s %s references %s %s, which the file does not define", o.Type, o.ID, r.Type, r.ID)
			}
		}
		if cols, ok := o.Attributes["columns"].([]any); ok {
			for _, c := range cols {
				used += " " + c.(string)
			}
		}
	}
	if ids["sluice-search-sink"] != "dashboard" {
		t.Fatal("no dashboard")
	}
	for _, field := range []string{"_kafka.topic", "_kafka.offset", "rule", "severity", "message"} {
		if !strings.Contains(used, field) {
			t.Errorf("saved objects do not use %s", field)
		}
	}
}

// TestExampleRulesFileIsValid keeps rules.example.yaml loadable.
func TestExampleRulesFileIsValid(t *testing.T) {
	t.Parallel()
	f, err := rules.LoadFile("rules.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for _, r := range f.Rules {
		types[r.Type] = true
	}
	for _, want := range []string{"threshold", "spike", "drop", "flatline", "outlier", "new_term", "cardinality"} {
		if !types[want] {
			t.Errorf("example lacks a %s rule", want)
		}
	}
}
