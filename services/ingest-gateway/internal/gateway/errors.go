package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Kind classifies an error; each API surface maps it to its status and code.
type Kind uint8

// Error kinds.
const (
	KindInvalidRecord       Kind = iota + 1 // the record does not fit the schema
	KindRecordTooLarge                      // one encoded record exceeds GATEWAY_MAX_RECORD_BYTES
	KindBadRequest                          // malformed request (not a record problem)
	KindRequestTooLarge                     // request body or record count over the limit
	KindUnknownTopic                        // not allowed or not existing
	KindUnknownPartition                    // explicit partition out of range
	KindNoSchema                            // the subject has no schema / unknown schema id or version
	KindInvalidSchema                       // an inline schema (REST Proxy v2) is not valid Avro
	KindUnauthorized                        // missing or bad API key
	KindForbidden                           // key not allowed for the topic
	KindBusy                                // in-flight byte budget exhausted
	KindUnavailable                         // Kafka did not acknowledge in time, or is down
	KindRegistryUnavailable                 // the schema registry did not answer
	KindShuttingDown                        // the gateway is stopping
	KindRateLimited                         // the API key is over its records/s limit
	KindSchemaNotOfTopic                    // a chosen schema id is not a version of the topic's subject
	KindInvalidTimestamp                    // a record timestamp outside GATEWAY_MAX_TIMESTAMP_SKEW / _AGE
)

// Error is a gateway error with a stable kind and, for record errors, the
// path of the offending field.
type Error struct {
	Kind    Kind
	Message string
	Field   string
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as *Error, wrapping unknown errors as unavailable.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindUnavailable, Message: err.Error()}
}

// Native API codes (also used over gRPC), Confluent style: HTTP status
// times 100 plus a sequence number.
const (
	CodeBadRequest          = 40001
	CodeUnauthorized        = 40101
	CodeForbidden           = 40301
	CodeUnknownTopic        = 40401
	CodeUnknownPartition    = 40402
	CodeNoSchema            = 40403
	CodeRequestTooLarge     = 41301
	CodeInvalidRecord       = 42201
	CodeRecordTooLarge      = 42202
	CodeInvalidSchema       = 42205
	CodeSchemaNotOfTopic    = 42206
	CodeInvalidTimestamp    = 42207
	CodeBusy                = 42901
	CodeRateLimited         = 42902
	CodeKafkaUnavailable    = 50301
	CodeRegistryUnavailable = 50302
	CodeShuttingDown        = 50303
)

// Status returns the HTTP status of a request-level error of this kind.
func (k Kind) Status() int {
	switch k {
	case KindInvalidRecord, KindRecordTooLarge, KindInvalidSchema, KindSchemaNotOfTopic, KindInvalidTimestamp:
		return http.StatusUnprocessableEntity
	case KindBadRequest:
		return http.StatusBadRequest
	case KindRequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindUnknownTopic, KindUnknownPartition, KindNoSchema:
		return http.StatusNotFound
	case KindUnauthorized:
		return http.StatusUnauthorized
	case KindForbidden:
		return http.StatusForbidden
	case KindBusy, KindRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}

// Code returns the native API error code of this kind.
func (k Kind) Code() int {
	switch k {
	case KindInvalidRecord:
		return CodeInvalidRecord
	case KindRecordTooLarge:
		return CodeRecordTooLarge
	case KindBadRequest:
		return CodeBadRequest
	case KindRequestTooLarge:
		return CodeRequestTooLarge
	case KindUnknownTopic:
		return CodeUnknownTopic
	case KindUnknownPartition:
		return CodeUnknownPartition
	case KindNoSchema:
		return CodeNoSchema
	case KindInvalidSchema:
		return CodeInvalidSchema
	case KindSchemaNotOfTopic:
		return CodeSchemaNotOfTopic
	case KindInvalidTimestamp:
		return CodeInvalidTimestamp
	case KindUnauthorized:
		return CodeUnauthorized
	case KindForbidden:
		return CodeForbidden
	case KindBusy:
		return CodeBusy
	case KindRateLimited:
		return CodeRateLimited
	case KindRegistryUnavailable:
		return CodeRegistryUnavailable
	case KindShuttingDown:
		return CodeShuttingDown
	}
	return CodeKafkaUnavailable
}

// DeadLetterable reports whether a record failing with this kind goes to
// the topic's dead-letter topic when its policy says so: problems of the
// record itself, not of the request or of Kafka.
func (k Kind) DeadLetterable() bool { return k == KindInvalidRecord || k == KindInvalidTimestamp }

// Retryable reports whether the client should retry later (429/503).
func (k Kind) Retryable() bool {
	switch k {
	case KindBusy, KindRateLimited, KindUnavailable, KindRegistryUnavailable, KindShuttingDown:
		return true
	}
	return false
}

// reason is the metric label of a record error: a fixed set, whatever
// producers send.
func (k Kind) reason() string {
	switch k {
	case KindInvalidRecord:
		return "invalid"
	case KindInvalidTimestamp:
		return "timestamp"
	case KindSchemaNotOfTopic:
		return "schema_not_of_topic"
	case KindBusy:
		return "busy"
	case KindRecordTooLarge:
		return "too_large"
	case KindUnknownPartition:
		return "unknown_partition"
	case KindUnavailable:
		return "kafka_unavailable"
	}
	return "other"
}

// RetryAfterSeconds renders a Retry-After value.
func RetryAfterSeconds(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s < 1 {
		s = 1
	}
	return fmt.Sprint(s)
}
