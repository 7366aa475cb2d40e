package sink

import (
	"testing"
	"time"
)

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
