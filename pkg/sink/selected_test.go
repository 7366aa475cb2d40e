package sink

import (
	"regexp"
	"testing"
)

// TestSelected: a regex never selects internal or dead-letter topics, nor
// excluded ones (moved from s3-sink with the topic selection).
func TestSelected(t *testing.T) {
	t.Parallel()
	r := &Runtime{o: Options{TopicRegex: regexp.MustCompile(".*"), Exclude: []string{"audit"}}}
	for topic, want := range map[string]bool{"orders": true, "_schemas": false, "orders.dlq": false, "dlq.orders": true,
		"__consumer_offsets": false, "_sluice-rules-state": false, "audit": false} {
		if got := r.Selected(topic); got != want {
			t.Errorf("Selected(%q) = %v, want %v", topic, got, want)
		}
	}
}
