package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		id      uint32
		payload []byte
		want    []byte
	}{
		{"empty payload", 1, nil, []byte{0, 0, 0, 0, 1}},
		{"big id", 0xDEADBEEF, []byte{7}, []byte{0, 0xDE, 0xAD, 0xBE, 0xEF, 7}},
		{"zero id", 0, []byte("abc"), []byte{0, 0, 0, 0, 0, 'a', 'b', 'c'}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Encode(tc.id, tc.payload)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Encode = %x, want %x", got, tc.want)
			}
			id, p, err := Decode(got)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if id != tc.id || !bytes.Equal(p, tc.payload) {
				t.Fatalf("Decode = (%d, %x), want (%d, %x)", id, p, tc.id, tc.payload)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   []byte
		is   error
		msg  string
	}{
		{"nil", nil, ErrShortBuffer, "buffer of 0 bytes"},
		{"four bytes", []byte{0, 0, 0, 1}, ErrShortBuffer, "buffer of 4 bytes"},
		{"bad magic", []byte{1, 0, 0, 0, 1}, ErrUnknownMagic, "0x01"},
		{"json text", []byte(`{"a":1}`), ErrUnknownMagic, "0x7b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := Decode(tc.in)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want errors.Is %v", err, tc.is)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tc.msg)) {
				t.Fatalf("err %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 2, 3})
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, p, err := Decode(b)
		if err != nil {
			if len(b) >= HeaderSize && b[0] == MagicByte {
				t.Fatalf("valid header rejected: %v", err)
			}
			return
		}
		if re := Encode(id, p); !bytes.Equal(re, b) {
			t.Fatalf("re-encode = %x, want %x", re, b)
		}
	})
}
