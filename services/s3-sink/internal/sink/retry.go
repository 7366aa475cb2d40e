package sink

import (
	"errors"

	"github.com/aws/smithy-go"

	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/services/s3-sink/internal/upload"
)

// This file classifies S3 failures for the runtime: what is retried and
// what parks a topic at once.

// Reason says why a topic is parked (a metric label).
type Reason = psink.Reason

// Park reasons of the S3 sink (the runtime adds kafka_unavailable,
// registry_unavailable, schema, dlq_refused, dlq_unavailable, failing).
const (
	// ReasonS3Refused: S3 answered 4xx to a request for the topic's keys
	// (AccessDenied on its prefix, NoSuchBucket, KeyTooLong...).
	ReasonS3Refused Reason = "s3_refused"
	// ReasonS3Unavailable: S3 kept failing (5xx, 503 SlowDown, network)
	// for S3_SINK_RETRY_ATTEMPTS attempts.
	ReasonS3Unavailable Reason = "s3_unavailable"
	// ReasonObjectKey: the topic's name, with the prefix and key limits,
	// leaves no room for object keys.
	ReasonObjectKey Reason = "object_key"
	// ReasonRegistry: the schema registry kept failing (network, 5xx).
	ReasonRegistry = psink.ReasonRegistry
	// ReasonSchema: the topic's current schema (latest of <topic>-value)
	// is unusable, or lacks the partitioning or timestamp field.
	ReasonSchema = psink.ReasonSchema
)

func parkNow(reason Reason, err error) error { return psink.Park(reason, err, nil) }

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
		return psink.Transient(ReasonS3Unavailable, err)
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		code := re.HTTPStatusCode()
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchUpload" || ae.ErrorCode() == "NoSuchKey") {
			return psink.Transient(ReasonS3Unavailable, err)
		}
		if code >= 400 && code < 500 && code != 408 && code != 409 && code != 412 && code != 429 {
			return parkNow(ReasonS3Refused, err)
		}
	}
	return psink.Transient(ReasonS3Unavailable, err)
}
