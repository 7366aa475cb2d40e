package jsonscan

import (
	"testing"
	"time"
)

func naiveSpan(b []byte) (int, bool) {
	ascii := true
	for i, c := range b {
		if c == '"' || c == '\\' || c < 0x20 {
			return i, ascii
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return len(b), ascii
}

func TestStringSpan(t *testing.T) {
	cases := []string{
		"", "a", `abc"`, "abcdefgh", `abcdefgh"`, "abcdefghijklmnop\\x", "é", "abcdefgé\"", "abcdefg\x1f",
		"\x7f\x80\x20\x21\x23\x5b\x5d\xff", "1234567\"", "12345678\"", "ü1234567890\x00", "\x00", "a\tb",
		"aaaaaaaaaaaaaaa\x21\x22", "\x5c", "aaaaaaa\x5c",
	}
	for _, c := range cases {
		gn, ga := StringSpan([]byte(c))
		wn, wa := naiveSpan([]byte(c))
		if gn != wn || ga != wa {
			t.Errorf("StringSpan(%q) = %d,%v; want %d,%v", c, gn, ga, wn, wa)
		}
	}
}

func FuzzStringSpan(f *testing.F) {
	f.Add([]byte(`hello "world"`))
	f.Add([]byte("ab\x80cdefgh\\"))
	f.Fuzz(func(t *testing.T, b []byte) {
		gn, ga := StringSpan(b)
		wn, wa := naiveSpan(b)
		if gn != wn || ga != wa {
			t.Fatalf("StringSpan(%q) = %d,%v; want %d,%v", b, gn, ga, wn, wa)
		}
	})
}

func TestRFC3339(t *testing.T) {
	cases := []string{
		"2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123Z", "2024-05-01T12:00:00.123456789Z", "2024-05-01T12:00:00.1234567891Z",
		"2024-05-01T12:00:00+02:00", "2024-05-01T12:00:00.5-07:30", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z",
		"2024-13-01T00:00:00Z", "2024-05-01t12:00:00z", "2024-05-01T24:00:00Z", "2024-05-01T23:60:00Z", "2024-05-01T23:59:60Z",
		"2024-05-01T12:00:00+24:00", "2024-05-01T12:00:00.Z", "2024-05-01 12:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999+23:59",
		"2024-05-01T12:00:00", "2024-05-01T12:00:00+0200", "2024-04-31T00:00:00Z", "+024-05-01T12:00:00Z",
	}
	for _, c := range cases {
		checkRFC3339(t, c)
	}
}

func checkRFC3339(t *testing.T, s string) {
	t.Helper()
	got, ok := RFC3339([]byte(s))
	if !ok {
		return // the caller falls back to time.Parse
	}
	want, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("RFC3339(%q) accepted what time.Parse rejects: %v", s, err)
	}
	if !got.Equal(want) {
		t.Fatalf("RFC3339(%q) = %v, time.Parse = %v", s, got, want)
	}
}

func FuzzRFC3339(f *testing.F) {
	f.Add("2024-05-01T12:00:00.123Z")
	f.Add("2024-05-01T12:00:00+02:00")
	f.Fuzz(func(t *testing.T, s string) { checkRFC3339(t, s) })
}
