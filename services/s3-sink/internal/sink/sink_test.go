package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/registry"
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

// TestPermanent: unknown schema ids and unusable schemas go to the DLQ;
// outages are retried.
func TestPermanent(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		err  error
		want bool
	}{
		"404":         {fmt.Errorf("fetching: %w", &registry.Error{Status: 404, Code: 40403}), true},
		"422":         {&registry.Error{Status: 422}, true},
		"429":         {&registry.Error{Status: 429}, false},
		"503":         {&registry.Error{Status: 503}, false},
		"refused":     {&url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}, false},
		"deadline":    {fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		"bad schema":  {errors.New("compiling schema id 3: unknown type"), true},
		"not avro id": {errors.New("schema id 3 is JSON, not AVRO"), true},
	}
	for name, c := range cases {
		if got := Permanent(c.err); got != c.want {
			t.Errorf("%s: Permanent = %v, want %v", name, got, c.want)
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

// TestUnknownSchemaGrace: a 404 for a schema id is retried while a run of
// 404s is young (a registry replica may lag), then dead-lettered; a
// producer cycling new unknown ids gets one window per run, not one per
// id; a quiet spell re-arms the window; other errors are not affected.
func TestUnknownSchemaGrace(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	s := &Sink{}
	s.o.Now = func() time.Time { return now }
	s.cfg.UnknownSchemaGrace = 10 * time.Second
	notFound := &registry.Error{Status: 404, Code: 40403}
	if !s.unknownYoung(7, notFound) {
		t.Fatal("first 404 not retried")
	}
	now = now.Add(9 * time.Second)
	if !s.unknownYoung(7, notFound) {
		t.Fatal("404 within the grace not retried")
	}
	now = now.Add(2 * time.Second)
	if s.unknownYoung(7, notFound) {
		t.Fatal("404 after the grace still retried")
	}
	// Ever new ids within the run: each dead-lettered at once (a fresh
	// clock per id would stall the partition 10 s per id).
	for id := 8; id < 1000; id++ {
		now = now.Add(time.Second)
		if s.unknownYoung(id, notFound) {
			t.Fatalf("id %d, new in a run already past its grace, was given a grace of its own", id)
		}
	}
	// After a quiet spell of twice the grace the window re-arms.
	now = now.Add(21 * time.Second)
	if !s.unknownYoung(5000, notFound) {
		t.Fatal("the window did not re-arm after a quiet spell")
	}
	if s.unknownYoung(9, &registry.Error{Status: 422}) {
		t.Fatal("a 422 is retried")
	}
}
