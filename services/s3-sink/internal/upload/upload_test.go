package upload_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/pkg/testkit/s3test"
	"github.com/sluicehq/sluice/services/s3-sink/internal/upload"
)

const (
	partSize = 5 << 20
	bucket   = "sink-test"
)

// countingAPI records which calls reached S3 and can fail the n-th part.
type countingAPI struct {
	upload.API
	mu       sync.Mutex
	calls    []string
	failPart int32
}

func (c *countingAPI) note(s string) {
	c.mu.Lock()
	c.calls = append(c.calls, s)
	c.mu.Unlock()
}

func (c *countingAPI) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	c.note("put")
	return c.API.PutObject(ctx, in, o...)
}

func (c *countingAPI) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, o ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	c.note("create")
	return c.API.CreateMultipartUpload(ctx, in, o...)
}

func (c *countingAPI) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	c.note("part")
	if aws.ToInt32(in.PartNumber) == c.failPart {
		return nil, errors.New("injected part failure")
	}
	return c.API.UploadPart(ctx, in, o...)
}

func (c *countingAPI) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, o ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	c.note("complete")
	return c.API.CompleteMultipartUpload(ctx, in, o...)
}

func (c *countingAPI) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, o ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	c.note("abort")
	return c.API.AbortMultipartUpload(ctx, in, o...)
}

type bufObserver struct {
	mu       sync.Mutex
	cur, max int64
}

func (b *bufObserver) Request(string, time.Duration, error) {}
func (b *bufObserver) Buffered(d int64) {
	b.mu.Lock()
	b.cur += d
	b.max = max(b.max, b.cur)
	b.mu.Unlock()
}

func get(t *testing.T, c *s3.Client, key string) []byte {
	t.Helper()
	out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUpload runs against versitygw: a small object is one PutObject, a
// large one a multipart upload whose buffer never exceeds about one part,
// and a failed part aborts the upload and leaves no object.
func TestUpload(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(bucket)
	cl := srv.Client()
	ctx := t.Context()

	t.Run("small object is one put", func(t *testing.T) {
		api := &countingAPI{API: cl}
		u := upload.New(api, bucket, "small.bin", "application/octet-stream", partSize, nil)
		data := []byte("hello, s3")
		_, _ = u.Write(data)
		if err := u.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := u.Complete(ctx); err != nil {
			t.Fatal(err)
		}
		if got := get(t, cl, "small.bin"); !bytes.Equal(got, data) {
			t.Fatalf("got %q", got)
		}
		if len(api.calls) != 1 || api.calls[0] != "put" {
			t.Fatalf("calls = %v, want [put]", api.calls)
		}
		if err := u.Complete(ctx); !errors.Is(err, upload.ErrDone) {
			t.Fatalf("second Complete: %v", err)
		}
	})

	t.Run("large object streams parts from a bounded buffer", func(t *testing.T) {
		api := &countingAPI{API: cl}
		obs := &bufObserver{}
		u := upload.New(api, bucket, "large.bin", "application/octet-stream", partSize, obs)
		var all bytes.Buffer
		chunk := make([]byte, 256<<10)
		for all.Len() < 12<<20+12345 {
			_, _ = rand.Read(chunk)
			_, _ = u.Write(chunk)
			all.Write(chunk)
			if err := u.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if u.Buffered() >= partSize {
				t.Fatalf("buffered %d bytes after Flush, a full part should have gone up", u.Buffered())
			}
		}
		if err := u.Complete(ctx); err != nil {
			t.Fatal(err)
		}
		if got := get(t, cl, "large.bin"); !bytes.Equal(got, all.Bytes()) {
			t.Fatalf("object differs: %d bytes, want %d", len(got), all.Len())
		}
		want := []string{"create", "part", "part", "part", "complete"}
		if len(api.calls) != len(want) {
			t.Fatalf("calls = %v, want %v", api.calls, want)
		}
		if obs.max > partSize+upload.ChunkSize {
			t.Fatalf("peak buffer capacity %d, want <= %d", obs.max, partSize+upload.ChunkSize)
		}
		if obs.cur != 0 {
			t.Fatalf("buffer not released: %d", obs.cur)
		}
	})

	t.Run("conditional writes do not replace", func(t *testing.T) {
		for _, size := range []int{10, 2*partSize + 10} {
			key := fmt.Sprintf("cond-%d.bin", size)
			first := upload.New(cl, bucket, key, "x", partSize, nil)
			first.IfNoneMatch()
			_, _ = first.Write(bytes.Repeat([]byte{1}, size))
			if err := first.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := first.Complete(ctx); err != nil {
				t.Fatalf("first conditional write of %d bytes: %v", size, err)
			}
			second := upload.New(cl, bucket, key, "x", partSize, nil)
			second.IfNoneMatch()
			_, _ = second.Write(bytes.Repeat([]byte{2}, size))
			if err := second.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := second.Complete(ctx); !errors.Is(err, upload.ErrExists) {
				t.Fatalf("second conditional write of %d bytes: %v, want ErrExists", size, err)
			}
			if got := get(t, cl, key); got[0] != 1 || len(got) != size {
				t.Fatalf("object of %d bytes was replaced", size)
			}
		}
	})

	t.Run("failed part aborts", func(t *testing.T) {
		api := &countingAPI{API: cl, failPart: 2}
		u := upload.New(api, bucket, "failed.bin", "application/octet-stream", partSize, nil)
		_, _ = u.Write(make([]byte, 2*partSize+10))
		err := u.Flush(ctx)
		if err == nil {
			t.Fatal("flush succeeded with a failing part")
		}
		u.Abort(ctx)
		if api.calls[len(api.calls)-1] != "abort" {
			t.Fatalf("calls = %v, want a final abort", api.calls)
		}
		mp, err := cl.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		if len(mp.Uploads) != 0 {
			t.Fatalf("%d multipart uploads left", len(mp.Uploads))
		}
		if _, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("failed.bin")}); err == nil {
			t.Fatal("object exists after a failed upload")
		}
	})
}

// TestChunkReader reads and seeks across chunk boundaries like bytes.Reader.
func TestChunkReaderMatchesBytes(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{}
	for _, n := range []int{0, 1, upload.ChunkSize - 1, upload.ChunkSize, upload.ChunkSize + 1, 3*upload.ChunkSize + 77} {
		data := make([]byte, n)
		_, _ = rand.Read(data)
		u := upload.New(api, "b", "k", "x", partSize, nil)
		_, _ = u.Write(data[:n/2])
		_, _ = u.Write(data[n/2:])
		if err := u.Complete(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(api.body, data) || api.reads < 2 {
			t.Fatalf("n=%d: body differs (%d bytes) or was not re-read after seeking (%d reads)", n, len(api.body), api.reads)
		}
	}
}

// fakeAPI reads the body twice (as SigV4 hashing then sending does).
type fakeAPI struct {
	upload.API
	body  []byte
	reads int
}

func (f *fakeAPI) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.reads = 0
	rs := in.Body.(io.ReadSeeker)
	first, err := io.ReadAll(rs)
	if err != nil {
		return nil, err
	}
	f.reads++
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	second, err := io.ReadAll(rs)
	if err != nil {
		return nil, err
	}
	f.reads++
	if !bytes.Equal(first, second) {
		return nil, errors.New("re-read differs")
	}
	f.body = second
	return &s3.PutObjectOutput{}, nil
}
