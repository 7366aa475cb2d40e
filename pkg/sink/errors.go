package sink

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Reason says why a topic is parked or what a retry was for; the values
// are a small fixed set per sink (a metric label).
type Reason string

// Reasons the runtime itself uses.
const (
	// ReasonFailing: a failure without a more specific reason kept failing.
	ReasonFailing Reason = "failing"
	// ReasonKafka: reading the partition kept failing.
	ReasonKafka Reason = "kafka_unavailable"
	// ReasonRegistry: the schema registry kept failing (network, 5xx).
	ReasonRegistry Reason = "registry_unavailable"
	// ReasonSchema: the topic's current schema cannot be used.
	ReasonSchema Reason = "schema"
	// ReasonDLQRefused: the dead-letter topic refused a dead letter (too
	// large, not authorized).
	ReasonDLQRefused Reason = "dlq_refused"
	// ReasonDLQUnavailable: writing dead letters kept failing.
	ReasonDLQUnavailable Reason = "dlq_unavailable"
)

// PoisonError is a record the destination refuses for good: the runtime
// dead-letters it and moves on.
type PoisonError struct {
	Offset int64
	Stage  string // the sluice-stage header (decode, index, limits...)
	Reason string // the sluice-error header
}

func (e *PoisonError) Error() string {
	return fmt.Sprintf("record at offset %d refused (%s): %s", e.Offset, e.Stage, e.Reason)
}

// Poison returns the error of a record to dead-letter.
func Poison(offset int64, stage, reason string) error {
	return &PoisonError{Offset: offset, Stage: stage, Reason: reason}
}

// TransientError is a failure worth retrying: the runtime drops what is
// not durable, waits with jittered exponential backoff and replays the
// partition from its committed offset; after Options.Retry.Attempts
// failures in a row the topic is parked with Reason.
type TransientError struct {
	Reason Reason
	Err    error
}

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// Transient marks err as worth retrying soon.
func Transient(reason Reason, err error) error { return &TransientError{Reason: reason, Err: err} }

// ParkError parks the record's topic at once: retrying soon cannot help.
// While parked, Probe (if not nil) is retried with the park backoff and
// the topic is released when it succeeds; without a probe the topic is
// released after the backoff (or at Until) and its records tried again.
type ParkError struct {
	Reason Reason
	Err    error
	Probe  func(ctx context.Context) error
	Until  time.Time
}

func (e *ParkError) Error() string { return e.Err.Error() }
func (e *ParkError) Unwrap() error { return e.Err }

// Park returns an error that parks the topic at once.
func Park(reason Reason, err error, probe func(ctx context.Context) error) error {
	return &ParkError{Reason: reason, Err: err, Probe: probe}
}

// ParkUntil returns an error that parks the topic until a fixed time.
func ParkUntil(reason Reason, err error, until time.Time) error {
	return &ParkError{Reason: reason, Err: err, Until: until}
}

// FatalError stops the whole runtime: the configuration says a record
// must not pass (and there is nothing to retry).
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// Fatal marks err as stopping the runtime.
func Fatal(err error) error { return &FatalError{Err: err} }

// errStopped ends a partition's waits when the runtime stops.
var errStopped = errors.New("sink stopping")
