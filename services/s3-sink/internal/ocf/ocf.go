// Package ocf writes one Avro object container file into an upload stream,
// byte-for-byte reproducibly: the header's metadata entries are written in
// sorted order and the sync marker is derived from the object key, so a
// replay produces an identical object. (goavro's OCFWriter writes the
// metadata map in Go's random map order and so cannot be used for this.)
// Data blocks are the records' binary encodings, which the Confluent
// payload already is, copied verbatim after the caller validated them
// against the same writer schema: no decode-to-native/encode round trip
// per record, and pending blocks stay compact bytes, not Go maps.
package ocf

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/golang/snappy"
	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/services/s3-sink/internal/upload"
)

// Block limits: a block is compressed and handed to the upload buffer when
// it holds this many records or this many (uncompressed) bytes. Both are
// deterministic functions of the records, so replays cut blocks at the
// same places.
const (
	BlockRecords = 4000
	BlockBytes   = 128 << 10
)

// File is an open OCF object.
type File struct {
	up          *upload.Upload
	compression string
	sync        [16]byte
	block       []byte // pending records, binary encoded
	blockCount  int
	records     int
	rawBytes    int64
	scratch     []byte
}

// SyncMarker derives the 16-byte OCF sync marker from the object key.
func SyncMarker(key string) [16]byte {
	sum := sha256.Sum256([]byte("sluice-s3-sink/" + key))
	var m [16]byte
	copy(m[:], sum[:16])
	return m
}

// Create writes the OCF header (the codec's schema, the compression and
// the sync marker) into up.
func Create(up *upload.Upload, codec *goavro.Codec, compression string) (*File, error) {
	switch compression {
	case goavro.CompressionNullLabel, goavro.CompressionDeflateLabel, goavro.CompressionSnappyLabel:
	default:
		return nil, fmt.Errorf("OCF compression %q: want null, deflate or snappy", compression)
	}
	sm := SyncMarker(up.Key())
	_, _ = up.Write(Header(codec.Schema(), compression, sm))
	return &File{up: up, compression: compression, sync: sm}, nil
}

// Header encodes an OCF header: magic, the metadata map with avro.codec
// and avro.schema (in that, sorted, order) as one block, and the sync
// marker.
func Header(schema, compression string, sync [16]byte) []byte {
	b := make([]byte, 0, len(schema)+64)
	b = append(b, 'O', 'b', 'j', 1)
	b = binary.AppendVarint(b, 2) // one block of two entries
	for _, kv := range [2][2]string{{"avro.codec", compression}, {"avro.schema", schema}} {
		for _, s := range kv {
			b = binary.AppendVarint(b, int64(len(s)))
			b = append(b, s...)
		}
	}
	b = binary.AppendVarint(b, 0) // end of map
	return append(b, sync[:]...)
}

// Append adds one record's binary Avro encoding, which must be valid for
// the file's schema (the caller decoded it with the same codec). It
// compresses a block when one is full and uploads full parts.
func (f *File) Append(ctx context.Context, record []byte) error {
	f.block = append(f.block, record...)
	f.blockCount++
	f.records++
	f.rawBytes += int64(len(record))
	if f.blockCount >= BlockRecords || len(f.block) >= BlockBytes {
		return f.flushBlock(ctx)
	}
	return nil
}

var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.DefaultCompression)
	return w
}}

func (f *File) compress() ([]byte, error) {
	switch f.compression {
	case goavro.CompressionDeflateLabel:
		var bb bytes.Buffer
		bb.Grow(len(f.block) / 2)
		w := deflaters.Get().(*flate.Writer)
		defer deflaters.Put(w)
		w.Reset(&bb)
		if _, err := w.Write(f.block); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return bb.Bytes(), nil
	case goavro.CompressionSnappyLabel:
		// Avro's snappy codec: the snappy block, then the CRC-32 (IEEE,
		// big-endian) of the uncompressed data.
		f.scratch = snappy.Encode(f.scratch[:cap(f.scratch)], f.block)
		return binary.BigEndian.AppendUint32(f.scratch, crc32.ChecksumIEEE(f.block)), nil
	default:
		return f.block, nil
	}
}

func (f *File) flushBlock(ctx context.Context) error {
	if f.blockCount == 0 {
		return nil
	}
	data, err := f.compress()
	if err != nil {
		return fmt.Errorf("compressing OCF block of %s: %w", f.up.Key(), err)
	}
	var hdr [2 * binary.MaxVarintLen64]byte
	n := binary.PutVarint(hdr[:], int64(f.blockCount)) // Avro longs are zig-zag varints
	n += binary.PutVarint(hdr[n:], int64(len(data)))
	_, _ = f.up.Write(hdr[:n])
	_, _ = f.up.Write(data)
	_, _ = f.up.Write(f.sync[:])
	f.block = f.block[:0]
	f.blockCount = 0
	return f.up.Flush(ctx)
}

// Records is the number of records appended.
func (f *File) Records() int { return f.records }

// RawBytes is the sum of the records' binary Avro sizes: deterministic,
// unlike the compressed size, so rotation by bytes uses it.
func (f *File) RawBytes() int64 { return f.rawBytes }

// Size is the number of OCF bytes produced so far (header and blocks).
func (f *File) Size() int64 { return f.up.Size() }

// Key is the object key.
func (f *File) Key() string { return f.up.Key() }

// Buffered is the bytes held in memory for the upload.
func (f *File) Buffered() int { return f.up.Buffered() + cap(f.block) }

// Close writes the last block and completes the upload.
func (f *File) Close(ctx context.Context) error {
	if err := f.flushBlock(ctx); err != nil {
		f.up.Abort(ctx)
		return err
	}
	f.block, f.scratch = nil, nil
	return f.up.Complete(ctx)
}

// Abort drops the file and aborts its upload.
func (f *File) Abort(ctx context.Context) {
	f.block, f.scratch = nil, nil
	f.up.Abort(ctx)
}

// CountRecords reads an OCF stream and returns how many records its
// blocks hold, skipping the data itself.
func CountRecords(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var magic [4]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil {
		return 0, fmt.Errorf("reading OCF magic: %w", err)
	}
	if magic != [4]byte{'O', 'b', 'j', 1} {
		return 0, errors.New("not an Avro object container file")
	}
	// Metadata map: blocks of string keys and bytes values.
	for {
		n, err := binary.ReadVarint(br)
		if err != nil {
			return 0, fmt.Errorf("reading OCF metadata: %w", err)
		}
		if n == 0 {
			break
		}
		if n < 0 {
			n = -n
			if _, err := binary.ReadVarint(br); err != nil {
				return 0, fmt.Errorf("reading OCF metadata: %w", err)
			}
		}
		for i := int64(0); i < 2*n; i++ {
			l, err := binary.ReadVarint(br)
			if err != nil || l < 0 {
				return 0, fmt.Errorf("reading OCF metadata entry: %v", err)
			}
			if _, err := br.Discard(int(l)); err != nil {
				return 0, fmt.Errorf("reading OCF metadata entry: %w", err)
			}
		}
	}
	if _, err := br.Discard(16); err != nil {
		return 0, fmt.Errorf("reading OCF sync marker: %w", err)
	}
	var total int64
	for {
		count, err := binary.ReadVarint(br)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return 0, fmt.Errorf("reading OCF block header: %w", err)
		}
		size, err := binary.ReadVarint(br)
		if err != nil || count < 0 || size < 0 {
			return 0, fmt.Errorf("reading OCF block header: bad count %d or size %d (%v)", count, size, err)
		}
		if _, err := br.Discard(int(size) + 16); err != nil {
			return 0, fmt.Errorf("reading OCF block: %w", err)
		}
		total += count
	}
}
