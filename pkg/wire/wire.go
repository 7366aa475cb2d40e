package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MagicByte is the first byte of every Confluent-framed value.
const MagicByte byte = 0x00

// HeaderSize is the length of the frame header: magic byte plus schema id.
const HeaderSize = 5

// ErrShortBuffer is returned when a buffer is too short to hold a frame header.
var ErrShortBuffer = errors.New("wire: buffer shorter than the 5-byte Confluent header")

// ErrUnknownMagic is returned when the first byte is not MagicByte.
var ErrUnknownMagic = errors.New("wire: unknown magic byte")

// MagicError reports the magic byte that was found; it unwraps to ErrUnknownMagic.
type MagicError struct{ Got byte }

func (e *MagicError) Error() string {
	return fmt.Sprintf("wire: unknown magic byte 0x%02x (want 0x00)", e.Got)
}

// Unwrap lets errors.Is match ErrUnknownMagic.
func (e *MagicError) Unwrap() error { return ErrUnknownMagic }

// ShortError reports how many bytes were present; it unwraps to ErrShortBuffer.
type ShortError struct{ Len int }

func (e *ShortError) Error() string {
	return fmt.Sprintf("wire: buffer of %d bytes is shorter than the 5-byte Confluent header", e.Len)
}

// Unwrap lets errors.Is match ErrShortBuffer.
func (e *ShortError) Unwrap() error { return ErrShortBuffer }

// Append appends the frame header for schemaID and then payload to dst.
func Append(dst []byte, schemaID uint32, payload []byte) []byte {
	dst = AppendHeader(dst, schemaID)
	return append(dst, payload...)
}

// AppendHeader appends only the 5-byte header, for callers that encode the
// payload straight into the same buffer.
func AppendHeader(dst []byte, schemaID uint32) []byte {
	dst = append(dst, MagicByte)
	return binary.BigEndian.AppendUint32(dst, schemaID)
}

// Encode returns a new framed buffer.
func Encode(schemaID uint32, payload []byte) []byte {
	return Append(make([]byte, 0, HeaderSize+len(payload)), schemaID, payload)
}

// Decode splits a framed buffer into its schema id and payload. The payload
// aliases b.
func Decode(b []byte) (schemaID uint32, payload []byte, err error) {
	if len(b) < HeaderSize {
		return 0, nil, &ShortError{Len: len(b)}
	}
	if b[0] != MagicByte {
		return 0, nil, &MagicError{Got: b[0]}
	}
	return binary.BigEndian.Uint32(b[1:HeaderSize]), b[HeaderSize:], nil
}
