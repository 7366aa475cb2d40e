// Package upload streams one object to S3 from a bounded buffer: bytes
// collect in memory until a part is full, full parts go up as a multipart
// upload, and a small object is a single PutObject. Memory per object is
// bounded by the part size, not the object size.
//
// The buffer is a list of fixed 256 KiB chunks from a process-wide pool:
// no doubling slack, no copying when it grows, and chunks freed by one
// object are reused by the next.
package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// API is the subset of *s3.Client an Upload uses.
type API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// Observer is told about every request's latency (op is put, create, part,
// complete or abort) and about buffer growth and release.
type Observer interface {
	Request(op string, d time.Duration, err error)
	Buffered(delta int64)
}

type nopObserver struct{}

func (nopObserver) Request(string, time.Duration, error) {}
func (nopObserver) Buffered(int64)                       {}

// Upload is one object being written. Write only appends to memory; Flush
// and Complete do the I/O, so callers decide when to block. Not safe for
// concurrent use.
type Upload struct {
	api         API
	bucket, key string
	contentType string
	partSize    int
	obs         Observer

	chunks   [][]byte // full chunks, then one being filled
	buffered int
	uploadID *string
	parts    []types.CompletedPart
	size     int64
	done     bool

	ifNoneMatch bool
}

// ErrExists is returned by Complete when the upload was conditional
// (IfNoneMatch) and the key already holds an object.
var ErrExists = errors.New("object already exists")

// IfNoneMatch makes Complete conditional: it fails with ErrExists instead
// of replacing an existing object.
func (u *Upload) IfNoneMatch() { u.ifNoneMatch = true }

func (u *Upload) condition() *string {
	if u.ifNoneMatch {
		return aws.String("*")
	}
	return nil
}

// preconditionFailed reports an HTTP 412 (or S3's PreconditionFailed).
func preconditionFailed(err error) bool {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() == 412 {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict")
}

// ChunkSize is the unit the buffer grows and shrinks by.
const ChunkSize = 256 << 10

var chunkPool = sync.Pool{New: func() any { return new([ChunkSize]byte) }}

// New starts an object. partSize must be at least S3's 5 MiB minimum for
// real S3 and is rounded down to a multiple of ChunkSize; nothing is sent
// until a part fills or Complete is called.
func New(api API, bucket, key, contentType string, partSize int, obs Observer) *Upload {
	if obs == nil {
		obs = nopObserver{}
	}
	partSize = max(partSize/ChunkSize, 1) * ChunkSize
	return &Upload{api: api, bucket: bucket, key: key, contentType: contentType, partSize: partSize, obs: obs}
}

// Key is the object key.
func (u *Upload) Key() string { return u.key }

// Size is the number of bytes written so far.
func (u *Upload) Size() int64 { return u.size }

// Buffered is the number of bytes held in memory.
func (u *Upload) Buffered() int { return u.buffered }

// Write appends p to the in-memory buffer. It never fails; it lets an
// Upload be an io.Writer for encoders.
func (u *Upload) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		last := len(u.chunks) - 1
		if last < 0 || len(u.chunks[last]) == ChunkSize {
			c := chunkPool.Get().(*[ChunkSize]byte)
			u.chunks = append(u.chunks, c[:0])
			u.obs.Buffered(ChunkSize)
			last++
		}
		c := u.chunks[last]
		k := copy(c[len(c):ChunkSize], p)
		u.chunks[last] = c[:len(c)+k]
		p = p[k:]
	}
	u.buffered += n
	u.size += int64(n)
	return n, nil
}

// Flush uploads every full part in the buffer, starting the multipart
// upload on the first one.
func (u *Upload) Flush(ctx context.Context) error {
	for u.buffered >= u.partSize {
		k := u.partSize / ChunkSize
		if err := u.uploadPart(ctx, u.chunks[:k], int64(u.partSize)); err != nil {
			return err
		}
		u.freeChunks(u.chunks[:k])
		u.chunks = append(u.chunks[:0], u.chunks[k:]...)
		u.buffered -= u.partSize
	}
	return nil
}

func (u *Upload) freeChunks(cs [][]byte) {
	for i, c := range cs {
		chunkPool.Put((*[ChunkSize]byte)(c[:ChunkSize]))
		cs[i] = nil
		u.obs.Buffered(-ChunkSize)
	}
}

func (u *Upload) uploadPart(ctx context.Context, chunks [][]byte, n int64) error {
	if u.uploadID == nil {
		start := time.Now()
		out, err := u.api.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket: &u.bucket, Key: &u.key, ContentType: aws.String(u.contentType),
		})
		u.obs.Request("create", time.Since(start), err)
		if err != nil {
			return fmt.Errorf("starting multipart upload of %s: %w", u.key, err)
		}
		u.uploadID = out.UploadId
	}
	num := int32(len(u.parts) + 1)
	start := time.Now()
	out, err := u.api.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &u.bucket, Key: &u.key, UploadId: u.uploadID, PartNumber: &num,
		Body: newChunkReader(chunks, n), ContentLength: aws.Int64(n),
	})
	u.obs.Request("part", time.Since(start), err)
	if err != nil {
		return fmt.Errorf("uploading part %d of %s: %w", num, u.key, err)
	}
	u.parts = append(u.parts, types.CompletedPart{ETag: out.ETag, PartNumber: &num})
	return nil
}

// ErrDone is returned when an Upload is used after Complete or Abort.
var ErrDone = errors.New("upload already completed or aborted")

// Complete makes the object visible: a PutObject when everything fit in one
// buffer, else the last part and CompleteMultipartUpload. On failure the
// multipart upload is aborted and the error returned; the caller must not
// commit offsets the object covers.
func (u *Upload) Complete(ctx context.Context) error {
	if u.done {
		return ErrDone
	}
	defer u.release()
	if u.uploadID == nil {
		start := time.Now()
		_, err := u.api.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &u.bucket, Key: &u.key, ContentType: aws.String(u.contentType),
			Body: newChunkReader(u.chunks, int64(u.buffered)), ContentLength: aws.Int64(int64(u.buffered)),
			IfNoneMatch: u.condition(),
		})
		u.obs.Request("put", time.Since(start), err)
		if err != nil && preconditionFailed(err) {
			return fmt.Errorf("putting %s: %w", u.key, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("putting %s: %w", u.key, err)
		}
		return nil
	}
	if u.buffered > 0 {
		if err := u.uploadPart(ctx, u.chunks, int64(u.buffered)); err != nil {
			u.abort(ctx)
			return err
		}
	}
	start := time.Now()
	_, err := u.api.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &u.bucket, Key: &u.key, UploadId: u.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
		IfNoneMatch:     u.condition(),
	})
	u.obs.Request("complete", time.Since(start), err)
	if err != nil {
		u.abort(ctx)
		if preconditionFailed(err) {
			return fmt.Errorf("completing multipart upload of %s: %w", u.key, ErrExists)
		}
		return fmt.Errorf("completing multipart upload of %s: %w", u.key, err)
	}
	return nil
}

// Abort drops the object: buffered bytes are released and a started
// multipart upload is aborted (best effort; the bucket's lifecycle rule
// cleans up what an abort could not reach).
func (u *Upload) Abort(ctx context.Context) {
	if u.done {
		return
	}
	defer u.release()
	u.abort(ctx)
}

func (u *Upload) abort(ctx context.Context) {
	if u.uploadID == nil {
		return
	}
	// The caller's context may be the one that just ended; aborting must
	// still reach S3.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := u.api.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &u.bucket, Key: &u.key, UploadId: u.uploadID})
	u.obs.Request("abort", time.Since(start), err)
	u.uploadID = nil
}

func (u *Upload) release() {
	u.done = true
	u.freeChunks(u.chunks)
	u.chunks = nil
	u.buffered = 0
}

// chunkReader reads a list of chunks as one seekable body, so the SDK can
// hash and retry it without a contiguous copy.
type chunkReader struct {
	chunks [][]byte
	size   int64
	off    int64
}

func newChunkReader(chunks [][]byte, size int64) *chunkReader {
	return &chunkReader{chunks: chunks, size: size}
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.off < r.size {
		ci, co := r.off/ChunkSize, r.off%ChunkSize
		c := r.chunks[ci]
		end := min(int64(len(c)), r.size-ci*ChunkSize)
		k := copy(p[n:], c[co:end])
		n += k
		r.off += int64(k)
	}
	return n, nil
}

func (r *chunkReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, fmt.Errorf("chunk reader: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("chunk reader: negative offset %d", offset)
	}
	r.off = offset
	return offset, nil
}
