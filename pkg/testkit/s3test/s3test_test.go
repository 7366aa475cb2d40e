package s3test_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/sluicehq/sluice/pkg/testkit/s3test"
)

// The tests do not call t.Parallel: one s3test server runs per process (see
// the package comment), so they would only queue on each other.

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func putObject(ctx context.Context, t *testing.T, c *s3.Client, bucket, key string, body []byte) {
	t.Helper()
	_, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/octet-stream"),
	})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func getObject(ctx context.Context, t *testing.T, c *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("reading %s/%s: %v", bucket, key, err)
	}
	return b
}

func TestPutGetRoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testCtx(t)
	srv.CreateBucket("events")
	c := srv.Client()

	tests := []struct {
		name, key string
		body      []byte
	}{
		{name: "small", key: "a.txt", body: []byte("hello sluice")},
		{name: "empty", key: "empty", body: []byte{}},
		{name: "nested key", key: "topic=orders/2026/01/02/orders+0+00000000000000000042.avro", body: bytes.Repeat([]byte{0, 1, 2, 3}, 1<<16)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			putObject(ctx, t, c, "events", tc.key, tc.body)
			if got := getObject(ctx, t, c, "events", tc.key); !bytes.Equal(got, tc.body) {
				t.Fatalf("read back %d bytes, want %d", len(got), len(tc.body))
			}
		})
	}

	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("events")})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if got := len(list.Contents); got != len(tests) {
		t.Fatalf("listed %d objects, want %d", got, len(tests))
	}
}

func TestMultipartUpload(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testCtx(t)
	srv.CreateBucket("multipart")
	c := srv.Client()

	const partSize = 5 << 20
	var want []byte
	create, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("multipart"), Key: aws.String("big")})
	if err != nil {
		t.Fatalf("create multipart upload: %v", err)
	}
	var parts []types.CompletedPart
	for n := int32(1); n <= 3; n++ {
		body := bytes.Repeat([]byte{byte('a' + n)}, partSize)
		want = append(want, body...)
		up, err := c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String("multipart"), Key: aws.String("big"), UploadId: create.UploadId,
			PartNumber: aws.Int32(n), Body: bytes.NewReader(body),
		})
		if err != nil {
			t.Fatalf("upload part %d: %v", n, err)
		}
		parts = append(parts, types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(n)})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("multipart"), Key: aws.String("big"), UploadId: create.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		t.Fatalf("complete multipart upload: %v", err)
	}
	if got := getObject(ctx, t, c, "multipart", "big"); !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, want %d identical bytes", len(got), len(want))
	}
}

func TestRejectsBadCredentials(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testCtx(t)
	srv.CreateBucket("guarded")

	tests := []struct {
		name           string
		access, secret string
		wantCode       string
	}{
		{name: "wrong secret", access: srv.AccessKey(), secret: "not-the-secret", wantCode: "SignatureDoesNotMatch"},
		{name: "unknown access key", access: "nobody", secret: srv.SecretKey(), wantCode: "InvalidAccessKeyId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := srv.AWSConfig()
			cfg.Credentials = credentials.NewStaticCredentialsProvider(tc.access, tc.secret, "")
			cfg.RetryMaxAttempts = 1
			c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
			_, err := c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("guarded"), Key: aws.String("x"), Body: bytes.NewReader([]byte("x")),
			})
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("put with bad credentials: got %v, want API error %s", err, tc.wantCode)
			}
			if apiErr.ErrorCode() != tc.wantCode {
				t.Errorf("error code = %s, want %s", apiErr.ErrorCode(), tc.wantCode)
			}
			var respErr *awshttp.ResponseError
			if !errors.As(err, &respErr) || respErr.HTTPStatusCode() != http.StatusForbidden {
				t.Errorf("want HTTP 403, got %v", err)
			}
		})
	}
}

func TestDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)

	first := s3test.Start(t, s3test.WithDir(dir), s3test.WithRegion("eu-west-1"))
	first.CreateBucket("durable")
	putObject(ctx, t, first.Client(), "durable", "k", []byte("still here"))
	if err := first.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	second := s3test.Start(t, s3test.WithDir(dir), s3test.WithRegion("eu-west-1"))
	if got := getObject(ctx, t, second.Client(), "durable", "k"); string(got) != "still here" {
		t.Fatalf("after restart read %q", got)
	}
	if second.Region() != "eu-west-1" {
		t.Errorf("region = %s", second.Region())
	}
}

func TestRunWithoutTB(t *testing.T) {
	ctx := testCtx(t)
	srv, err := s3test.Run(ctx, "127.0.0.1:0", t.TempDir(), "dev", "dev-secret-123", "")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := srv.MakeBucket(ctx, "dev-bucket"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("dev-bucket")}); err != nil {
		t.Fatalf("head bucket: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("wait after close: %v", err)
	}
}

// The posix backend chdirs into its root; Close must give the directory back
// so later tests can still read testdata/.
func TestWorkingDirectoryRestored(t *testing.T) {
	before, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := s3test.Run(testCtx(t), "127.0.0.1:0", t.TempDir(), "dev", "dev-secret-123", "")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	during, _ := os.Getwd()
	if !sameDir(during, srv.Dir()) {
		t.Errorf("while running, working dir = %s, want data dir %s", during, srv.Dir())
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if after, _ := os.Getwd(); !sameDir(after, before) {
		t.Errorf("after Close, working dir = %s, want %s", after, before)
	}
}

// sameDir compares paths after resolving symlinks (macOS's /var is one).
func sameDir(a, b string) bool {
	ra, errA := filepath.EvalSymlinks(a)
	rb, errB := filepath.EvalSymlinks(b)
	return errA == nil && errB == nil && ra == rb
}
