package sink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/aws/smithy-go"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/services/s3-sink/internal/upload"
)

// This file classifies failures: what is retried, what parks a topic at
// once, and with which delays. It knows nothing about workers, so it can
// move to a shared sink runtime unchanged.

// Reason says why a topic is parked; the values are a fixed set (a metric
// label).
type Reason string

// Park reasons.
const (
	// ReasonS3Refused: S3 answered 4xx to a request for the topic's keys
	// (AccessDenied on its prefix, NoSuchBucket, KeyTooLong...).
	ReasonS3Refused Reason = "s3_refused"
	// ReasonS3Unavailable: S3 kept failing (5xx, 503 SlowDown, network)
	// for S3_SINK_RETRY_ATTEMPTS attempts.
	ReasonS3Unavailable Reason = "s3_unavailable"
	// ReasonKafka: reading the partition kept failing.
	ReasonKafka Reason = "kafka_unavailable"
	// ReasonRegistry: the schema registry kept failing (network, 5xx).
	ReasonRegistry Reason = "registry_unavailable"
	// ReasonSchema: the topic's current schema (latest of <topic>-value)
	// is unusable, or lacks the partitioning or timestamp field.
	ReasonSchema Reason = "schema"
	// ReasonObjectKey: the topic's name, with the prefix and key limits,
	// leaves no room for object keys.
	ReasonObjectKey Reason = "object_key"
	// ReasonDLQRefused: the dead-letter topic refused a dead letter
	// (too large for it even after S3_SINK_DLQ_MAX_BYTES, not authorized).
	ReasonDLQRefused Reason = "dlq_refused"
	// ReasonDLQUnavailable: writing dead letters kept failing.
	ReasonDLQUnavailable Reason = "dlq_unavailable"
	// ReasonFailing: anything else that kept failing.
	ReasonFailing Reason = "failing"
)

// parkError parks the topic at once: retrying soon cannot help.
type parkError struct {
	reason Reason
	err    error
}

func (e *parkError) Error() string { return e.err.Error() }
func (e *parkError) Unwrap() error { return e.err }

func parkNow(reason Reason, err error) error { return &parkError{reason: reason, err: err} }

// transientError is a failure worth retrying, with the reason the topic is
// parked for if retries run out.
type transientError struct {
	reason Reason
	err    error
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// s3Failure classifies an error from an S3 request: a 4xx answer other
// than timeouts, conflicts, precondition failures (a concurrent writer:
// replay and adopt), throttling, a vanished multipart upload or object
// (aborted or expired meanwhile) parks the topic; everything else (5xx,
// 503 SlowDown, network) is retried.
func s3Failure(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, upload.ErrExists) {
		return &transientError{ReasonS3Unavailable, err}
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		code := re.HTTPStatusCode()
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchUpload" || ae.ErrorCode() == "NoSuchKey") {
			return &transientError{ReasonS3Unavailable, err}
		}
		if code >= 400 && code < 500 && code != 408 && code != 409 && code != 412 && code != 429 {
			return parkNow(ReasonS3Refused, err)
		}
	}
	return &transientError{ReasonS3Unavailable, err}
}

// dlqFailure classifies an error writing a dead letter: a refusal no
// retry can change (too large, not authorized, invalid topic) parks the
// topic; anything else is retried.
func dlqFailure(err error) error {
	var we kafkago.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				err = fmt.Errorf("%w (%w)", err, e)
				break
			}
		}
	}
	var ke kafkago.Error
	if errors.As(err, &ke) {
		switch ke {
		case kafkago.MessageSizeTooLarge, kafkago.RecordListTooLarge, kafkago.InvalidRecord,
			kafkago.TopicAuthorizationFailed, kafkago.ClusterAuthorizationFailed, kafkago.InvalidTopic,
			kafkago.PolicyViolation:
			return backoff.Permanent(parkNow(ReasonDLQRefused, err))
		}
	}
	var mt kafkago.MessageTooLargeError
	if errors.As(err, &mt) {
		return backoff.Permanent(parkNow(ReasonDLQRefused, err))
	}
	return err
}

// Permanent reports whether a schema lookup error will not go away by
// retrying: the registry answered 4xx (unknown id), or the schema is not
// usable Avro. Network errors and 5xx are transient.
func Permanent(err error) bool {
	var re *registry.Error
	if errors.As(err, &re) {
		return re.Status >= 400 && re.Status < 500 && re.Status != 408 && re.Status != 429
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	return true
}

// policies are the two retry cadences: quick bounded retries of transient
// failures, then slow retries of a parked topic.
type policies struct {
	retry backoff.Policy // Attempts bounds the quick retries
	park  backoff.Policy
}

func newPolicies(attempts int, maxDelay, parkMin, parkMax time.Duration) policies {
	return policies{
		retry: backoff.Policy{Base: 100 * time.Millisecond, Max: maxDelay, Attempts: attempts},
		park:  backoff.Policy{Base: parkMin, Max: parkMax},
	}
}

// retryLoop retries fn in place (a registry lookup, a dead-letter write)
// with the quick policy; when the attempts run out the failure parks the
// topic with reason. fn marks errors that must not be retried with
// backoff.Permanent. wait ends early when the worker must stop.
func (p policies) retryLoop(wait context.Context, reason Reason, what string, fn func(ctx context.Context) error, onRetry func(err error, d time.Duration)) error {
	err := p.retry.Retry(wait, fn, onRetry)
	if err == nil || wait.Err() != nil {
		return err
	}
	var pe *parkError
	if errors.As(err, &pe) {
		return err
	}
	if errors.Is(err, backoff.ErrExhausted) {
		return parkNow(reason, fmt.Errorf("%s: %d attempts failed: %w", what, p.retry.Attempts, err))
	}
	return err
}
