package sink

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/services/s3-sink/internal/upload"
)

// withStatus builds the error the SDK returns for an S3 error response.
func withStatus(status int, code string) error {
	return fmt.Errorf("uploading k: %w", &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "injected"},
		},
	}})
}

func TestS3Failure(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		err    error
		park   bool
		reason Reason
	}{
		{"access denied", withStatus(403, "AccessDenied"), true, ReasonS3Refused},
		{"no such bucket", withStatus(404, "NoSuchBucket"), true, ReasonS3Refused},
		{"key too long", withStatus(400, "KeyTooLongError"), true, ReasonS3Refused},
		{"slow down", withStatus(503, "SlowDown"), false, ReasonS3Unavailable},
		{"internal error", withStatus(500, "InternalError"), false, ReasonS3Unavailable},
		{"throttled 429", withStatus(429, "TooManyRequests"), false, ReasonS3Unavailable},
		{"conflict", withStatus(409, "OperationAborted"), false, ReasonS3Unavailable},
		{"precondition", withStatus(412, "PreconditionFailed"), false, ReasonS3Unavailable},
		{"upload gone", withStatus(404, "NoSuchUpload"), false, ReasonS3Unavailable},
		{"object gone", withStatus(404, "NoSuchKey"), false, ReasonS3Unavailable},
		{"exists", fmt.Errorf("x: %w", upload.ErrExists), false, ReasonS3Unavailable},
		{"network", &net.OpError{Op: "dial", Err: errors.New("refused")}, false, ReasonS3Unavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := s3Failure(c.err)
			var pe *psink.ParkError
			var te *psink.TransientError
			switch {
			case c.park && (!errors.As(err, &pe) || pe.Reason != c.reason):
				t.Fatalf("s3Failure = %#v, want park %s", err, c.reason)
			case !c.park && (!errors.As(err, &te) || te.Reason != c.reason):
				t.Fatalf("s3Failure = %#v, want transient %s", err, c.reason)
			}
			if !errors.Is(err, c.err) {
				t.Fatal("cause lost")
			}
		})
	}
}
