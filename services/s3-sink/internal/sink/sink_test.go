package sink

import (
	"regexp"
	"testing"
	"time"
)

func TestSelected(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(".*")
	for topic, want := range map[string]bool{"orders": true, "_schemas": false, "orders.dlq": false, "dlq.orders": true, "__consumer_offsets": false} {
		if got := Selected(re, topic); got != want {
			t.Errorf("Selected(%q) = %v", topic, got)
		}
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	w := &worker{s: &Sink{}}
	w.s.cfg.RotateInterval = time.Hour
	for ms, want := range map[int64]int64{0: 0, 3599_999: 0, 3600_000: 1, -1: -1, -3600_000: -1, -3600_001: -2} {
		if got := w.window(unixMilli(ms)); got != want {
			t.Errorf("window(%d) = %d, want %d", ms, got, want)
		}
	}
}

func unixMilli(ms int64) time.Time { return time.UnixMilli(ms) }
