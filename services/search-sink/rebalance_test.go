package main

import (
	"testing"
	"time"
)

// TestRebalanceAcrossInstances: a second instance joins and the first
// leaves mid-stream; generation ends flush and commit, and every record is
// indexed with offsets at the end.
func TestRebalanceAcrossInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4)
	names := []string{dayIndex("orders", 0), dayIndex("orders", 1), dayIndex("orders", 2)}
	e.produce(t, 0, 400)
	stopA := startSink(t, e.args(t, "-search-sink-group-id", "rb"))
	eventually(t, 30*time.Second, "first batch", func() bool { return len(e.docs(names...)) == 400 })
	stopB := startSink(t, e.args(t, "-search-sink-group-id", "rb"))
	e.produce(t, 400, 400)
	eventually(t, 60*time.Second, "second batch with two members", func() bool { return len(e.docs(names...)) == 800 })
	if err := stopA(); err != nil {
		t.Fatalf("first instance: %v", err)
	}
	e.produce(t, 800, 400)
	eventually(t, 60*time.Second, "third batch after the first left", func() bool { return len(e.docs(names...)) == 1200 })
	eventually(t, 30*time.Second, "offsets at the end", func() bool { return sum(e.committed(t, "rb")) == 1200 })
	if err := stopB(); err != nil {
		t.Fatalf("second instance: %v", err)
	}
}
