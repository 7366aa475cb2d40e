package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/pkg/registry"
)

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
		if got := PermanentSchemaError(c.err); got != c.want {
			t.Errorf("%s: PermanentSchemaError = %v, want %v", name, got, c.want)
		}
	}
}

// TestUnknownSchemaGrace: a 404 for a schema id is retried while a run of
// 404s is young (a registry replica may lag), then dead-lettered; a
// producer cycling new unknown ids gets one window per run, not one per
// id; a quiet spell re-arms the window; other errors are not affected.
func TestUnknownSchemaGrace(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	s := &schemaResolver{grace: 10 * time.Second, now: func() time.Time { return now }}
	notFound := &registry.Error{Status: 404, Code: 40403}
	if !s.young(notFound) {
		t.Fatal("first 404 not retried")
	}
	now = now.Add(9 * time.Second)
	if !s.young(notFound) {
		t.Fatal("404 within the grace not retried")
	}
	now = now.Add(2 * time.Second)
	if s.young(notFound) {
		t.Fatal("404 after the grace still retried")
	}
	// Ever new ids within the run: each dead-lettered at once (a fresh
	// clock per id would stall the partition 10 s per id).
	for id := 8; id < 1000; id++ {
		now = now.Add(time.Second)
		if s.young(notFound) {
			t.Fatalf("id %d, new in a run already past its grace, was given a grace of its own", id)
		}
	}
	// After a quiet spell of twice the grace the window re-arms.
	now = now.Add(21 * time.Second)
	if !s.young(notFound) {
		t.Fatal("the window did not re-arm after a quiet spell")
	}
	if s.young(&registry.Error{Status: 422}) {
		t.Fatal("a 422 is retried")
	}
}

func TestDLQFailure(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		park bool
	}{
		{"too large", kafkago.WriteErrors{kafkago.MessageSizeTooLarge}, true},
		{"too large for the client", kafkago.MessageTooLargeError{}, true},
		{"not authorized", fmt.Errorf("creating x.dlq: %w", kafkago.TopicAuthorizationFailed), true},
		{"leader moved", kafkago.WriteErrors{kafkago.NotLeaderForPartition}, false},
		{"network", errors.New("broken pipe"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := dlqFailure(c.err)
			var pe *ParkError
			if got := backoff.IsPermanent(err) && errors.As(err, &pe) && pe.Reason == ReasonDLQRefused; got != c.park {
				t.Fatalf("dlqFailure(%v) = %v, park %v; want %v", c.err, err, got, c.park)
			}
		})
	}
}
