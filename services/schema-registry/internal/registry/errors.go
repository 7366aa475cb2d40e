package registry

import (
	"fmt"
	"net/http"
)

// Error is an API error with Confluent's error code and HTTP status.
type Error struct {
	Status  int
	Code    int
	Message string
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

func newErr(status, code int, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Confluent's error codes.
const (
	CodeSubjectNotFound        = 40401
	CodeVersionNotFound        = 40402
	CodeSchemaNotFound         = 40403
	CodeSubjectSoftDeleted     = 40404
	CodeSubjectNotSoftDeleted  = 40405
	CodeVersionSoftDeleted     = 40406
	CodeVersionNotSoftDeleted  = 40407
	CodeSubjectConfigNotFound  = 40408
	CodeSubjectModeNotFound    = 40409
	CodeIncompatible           = 409
	CodeInvalidSchema          = 42201
	CodeInvalidVersion         = 42202
	CodeInvalidCompatibility   = 42203
	CodeInvalidMode            = 42204
	CodeOperationNotPermitted  = 42205
	CodeReferenceExists        = 42206
	CodeSchemaTooLarge         = 42209
	CodeStoreError             = 50001
	CodeOperationTimeout       = 50002
	CodeForwardingError        = 50003
	CodeUnauthorized           = 40101
	CodeForbidden              = 40301
	CodeBadRequest             = 400
	CodeRouteNotFound          = 404
	CodeMethodNotAllowed       = 405
	CodeUnsupportedMediaType   = 415
	CodeRequestEntityTooLarge  = 413
	CodeInvalidRequestEncoding = 42200
)

// ErrSubjectNotFound is 40401.
func ErrSubjectNotFound(s string) *Error {
	return newErr(http.StatusNotFound, CodeSubjectNotFound, "Subject '%s' not found.", s)
}

// ErrVersionNotFound is 40402.
func ErrVersionNotFound(v string) *Error {
	return newErr(http.StatusNotFound, CodeVersionNotFound, "Version %s not found.", v)
}

// ErrSchemaNotFound is 40403.
func ErrSchemaNotFound(what string) *Error {
	return newErr(http.StatusNotFound, CodeSchemaNotFound, "Schema %s not found.", what)
}

// ErrInvalidSchema is 42201.
func ErrInvalidSchema(format string, args ...any) *Error {
	return newErr(http.StatusUnprocessableEntity, CodeInvalidSchema, "Invalid schema: "+format, args...)
}

// ErrInvalidVersion is 42202.
func ErrInvalidVersion(v string) *Error {
	return newErr(http.StatusUnprocessableEntity, CodeInvalidVersion, "The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", v)
}

// ErrNotPermitted is 42205.
func ErrNotPermitted(format string, args ...any) *Error {
	return newErr(http.StatusUnprocessableEntity, CodeOperationNotPermitted, format, args...)
}

// ErrStore is 50001.
func ErrStore(err error) *Error {
	return newErr(http.StatusInternalServerError, CodeStoreError, "Error in the backend data store: %v", err)
}

// ErrTimeout is 50002.
func ErrTimeout(err error) *Error {
	return newErr(http.StatusInternalServerError, CodeOperationTimeout, "Operation timed out: %v", err)
}

// ErrBadRequest is a malformed request (body or parameter), naming the field.
func ErrBadRequest(format string, args ...any) *Error {
	return newErr(http.StatusBadRequest, CodeBadRequest, format, args...)
}
