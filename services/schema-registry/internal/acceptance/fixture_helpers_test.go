package acceptance_test

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

type fixtureRecord struct {
	Key   json.RawMessage `json:"key"`
	Value json.RawMessage `json:"value"`
}

func loadFixture(t testing.TB, path string) []fixtureRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fixtureRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var r fixtureRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if string(r.Value) == "null" {
			r.Value = nil
		}
		out = append(out, r)
	}
	return out
}

func trim(s string) string { return strings.TrimSpace(s) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
