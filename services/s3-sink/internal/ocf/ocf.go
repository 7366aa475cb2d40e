// Package ocf writes one Avro object container file into an upload stream
// with goavro's OCFWriter, batching records into blocks and deriving the
// sync marker from the object key so a replay produces identical bytes.
package ocf

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/services/s3-sink/internal/upload"
)

// Block limits: a block is encoded and handed to the upload buffer when it
// holds this many records or this many (uncompressed) bytes. Both are
// deterministic functions of the records, so replays cut blocks at the same
// places.
const (
	BlockRecords = 2000
	BlockBytes   = 256 << 10
)

// File is an open OCF object.
type File struct {
	up           *upload.Upload
	w            *goavro.OCFWriter
	pending      []any
	pendingBytes int
	records      int
	rawBytes     int64
}

// SyncMarker derives the 16-byte OCF sync marker from the object key.
func SyncMarker(key string) [16]byte {
	sum := sha256.Sum256([]byte("sluice-s3-sink/" + key))
	var m [16]byte
	copy(m[:], sum[:16])
	return m
}

// Create writes the OCF header (schema of codec, compression) into up.
func Create(up *upload.Upload, codec *goavro.Codec, compression string) (*File, error) {
	w, err := goavro.NewOCFWriter(goavro.OCFConfig{
		W: up, Codec: codec, CompressionName: compression, SyncMarker: SyncMarker(up.Key()),
	})
	if err != nil {
		return nil, fmt.Errorf("starting OCF %s: %w", up.Key(), err)
	}
	return &File{up: up, w: w}, nil
}

// Append adds one decoded record; rawLen is its binary Avro size, used for
// block and rotation sizes. It encodes a block when one is full and uploads
// full parts.
func (f *File) Append(ctx context.Context, native any, rawLen int) error {
	f.pending = append(f.pending, native)
	f.pendingBytes += rawLen
	f.records++
	f.rawBytes += int64(rawLen)
	if len(f.pending) >= BlockRecords || f.pendingBytes >= BlockBytes {
		return f.flushBlock(ctx)
	}
	return nil
}

func (f *File) flushBlock(ctx context.Context) error {
	if len(f.pending) == 0 {
		return nil
	}
	if err := f.w.Append(f.pending); err != nil {
		return fmt.Errorf("encoding OCF block of %s: %w", f.up.Key(), err)
	}
	clear(f.pending)
	f.pending = f.pending[:0]
	f.pendingBytes = 0
	return f.up.Flush(ctx)
}

// Records is the number of records appended.
func (f *File) Records() int { return f.records }

// RawBytes is the sum of the records' binary Avro sizes: deterministic,
// unlike the compressed size, so rotation by bytes uses it.
func (f *File) RawBytes() int64 { return f.rawBytes }

// Size is the number of OCF bytes produced so far (header and encoded blocks).
func (f *File) Size() int64 { return f.up.Size() }

// Key is the object key.
func (f *File) Key() string { return f.up.Key() }

// Buffered is the bytes held in memory for the upload.
func (f *File) Buffered() int { return f.up.Buffered() }

// Close writes the last block and completes the upload.
func (f *File) Close(ctx context.Context) error {
	if err := f.flushBlock(ctx); err != nil {
		f.up.Abort(ctx)
		return err
	}
	return f.up.Complete(ctx)
}

// Abort drops the file and aborts its upload.
func (f *File) Abort(ctx context.Context) {
	f.pending = nil
	f.up.Abort(ctx)
}
