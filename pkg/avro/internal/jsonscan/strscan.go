package jsonscan

import (
	"encoding/binary"
	"math/bits"
	"time"
)

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// StringSpan returns the index in b of the first byte that ends the plain
// part of a JSON string's content (a quote, a backslash or a control
// character), or len(b), and whether every byte before it is ASCII. It
// looks at eight bytes per step: strings are most of the bytes of a
// typical event, so this loop is the gateway's hottest.
func StringSpan(b []byte) (int, bool) {
	var seen uint64 // OR of the words passed, for the ASCII answer
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ (lsb * '"')
		s := x ^ (lsb * '\\')
		// High bit of a byte set when it is < 0x20, '"' or '\\' (the
		// classic has-zero/has-less tricks; borrows can only flag bytes
		// above a real hit, so the lowest flag is exact). Bytes >= 0x80
		// are masked out by ^x and never match.
		m := ((x - lsb*0x20) | (q - lsb) | (s - lsb)) &^ x & msb
		if m != 0 {
			n := bits.TrailingZeros64(m) / 8
			seen |= x & (1<<(8*n) - 1)
			return i + n, seen&msb == 0
		}
		seen |= x
	}
	ascii := seen&msb == 0
	for ; i < len(b); i++ {
		c := b[i]
		if c == '"' || c == '\\' || c < 0x20 {
			return i, ascii
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return len(b), ascii
}

// RFC3339 parses the common strict form of an RFC 3339 timestamp,
// YYYY-MM-DDTHH:MM:SS[.fraction of 1-9 digits](Z|±HH:MM), without
// allocating. ok is false for anything else, including forms
// time.Parse(time.RFC3339Nano, ...) would accept, which callers then hand
// to time.Parse: the fast path only ever accepts a subset, with the same
// result.
func RFC3339(s []byte) (t time.Time, ok bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return t, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return t, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return t, false
	}
	rest := s[19:]
	nsec := 0
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && n <= 10 && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 { // no digits, or more than nine
			return t, false
		}
		frac, _ := digits(rest[1:n])
		for k := n - 1; k < 9; k++ {
			frac *= 10
		}
		nsec = frac
		rest = rest[n:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return t, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return t, false
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
