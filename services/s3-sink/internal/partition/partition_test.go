package partition

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	t.Parallel()
	got, err := Default{}.Path(Record{Partition: 7})
	if err != nil || got != "partition=7" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestField(t *testing.T) {
	t.Parallel()
	rec := map[string]any{
		"country": "DE",
		"n":       int64(42),
		"ok":      true,
		"odd":     "a/b c",
		"empty":   "",
		"dots":    "..",
		"opt":     map[string]any{"string": "x"},
		"none":    nil,
		"nested":  map[string]any{"region": map[string]any{"string": "eu"}},
		"long":    strings.Repeat("x", 5000),
		"colon":   "12:30",
		"inunion": map[string]any{"sluice.Address": map[string]any{"city": "Oslo"}},
	}
	cases := []struct {
		field, want string
		err         error
	}{
		{"country", "country=DE", nil},
		{"n", "n=42", nil},
		{"ok", "ok=true", nil},
		{"odd", "odd=a%2Fb%20c", nil},
		{"empty", "empty=__empty__", nil},
		{"dots", "dots=%2E%2E", nil},
		{"long", "long=" + strings.Repeat("x", 217) + "!0dcd08472f64d019f4c9c3abbc1a7a78", nil},
		{"colon", "colon=12%3A30", nil},
		{"opt", "opt=x", nil},
		{"none", "none=null", nil},
		{"nested.region", "region=eu", nil},
		{"inunion.city", "city=Oslo", nil},
		{"missing", "", ErrNoField},
		{"country.sub", "", ErrNoField},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			f, err := NewField(c.field, 255)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Path(Record{Value: rec})
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestTime(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 3, 9, 23, 30, 5, 0, time.UTC)
	cases := []struct {
		name, format, zone, field string
		value                     any
		want                      string
	}{
		{"hourly utc", "hourly", "UTC", "", nil, "year=2026/month=03/day=09/hour=23"},
		{"daily", "daily", "UTC", "", nil, "year=2026/month=03/day=09"},
		{"zone moves the day", "hourly", "Europe/Berlin", "", nil, "year=2026/month=03/day=10/hour=00"},
		{"custom", "dt=YYYY-MM-dd/HHmm", "UTC", "", nil, "dt=2026-03-09/2330"},
		{"field millis", "hourly", "UTC", "ts", map[string]any{"ts": int64(0)}, "year=1970/month=01/day=01/hour=00"},
		{"field logical", "daily", "UTC", "ts", map[string]any{"ts": time.Date(2024, 2, 29, 1, 0, 0, 0, time.UTC)}, "year=2024/month=02/day=29"},
		{"field string", "daily", "UTC", "ts", map[string]any{"ts": "2025-12-31T23:00:00-02:00"}, "year=2026/month=01/day=01"},
		{"field union", "daily", "UTC", "ts", map[string]any{"ts": map[string]any{"long.timestamp-millis": time.UnixMilli(86400000)}}, "year=1970/month=01/day=02"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewTime(c.format, c.zone, c.field)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Path(Record{Timestamp: ts, Value: c.value})
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestTimeFieldErrors(t *testing.T) {
	t.Parallel()
	p, err := NewTime("hourly", "UTC", "ts")
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{
		"missing":    map[string]any{},
		"bad string": map[string]any{"ts": "yesterday"},
		"bool":       map[string]any{"ts": true},
	} {
		if _, err := p.Path(Record{Value: v}); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "ts") {
			t.Errorf("%s: error %q does not name the field", name, err)
		}
	}
}

func TestParseFormatRejects(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"", "/YYYY", "YYYY/", "YYYY//MM", "nothing", "../YYYY", "a\\YYYY", "./YYYY", "YYYY/.", "HH:mm", "d YYYY", "YYYY%2F", "YYYY!", "a\x00YYYY", "é=YYYY"} {
		if _, err := ParseFormat(f); err == nil {
			t.Errorf("ParseFormat(%q) accepted", f)
		}
	}
	if _, err := NewTime("hourly", "Mars/Olympus", ""); err == nil {
		t.Error("unknown zone accepted")
	}
}

// FuzzParseFormat checks that accepted formats render paths without
// leading/trailing or doubled slashes and without "..".
func FuzzParseFormat(f *testing.F) {
	for _, s := range []string{"hourly", "daily", Hourly, "dt=YYYY-MM-dd", "YYYY/MM/dd/HH/mm", "a..YYYY", "YYYYYYYY"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, format string) {
		p, err := NewTime(format, "UTC", "")
		if err != nil {
			return
		}
		got := p.Render(time.Unix(1700000000, 0))
		if strings.HasPrefix(got, "/") || strings.HasSuffix(got, "/") || strings.Contains(got, "//") || strings.Contains(got, "..") || strings.HasPrefix(got, "./") || strings.Contains(got, "/./") || strings.HasSuffix(got, "/.") || got == "." {
			t.Fatalf("format %q rendered unsafe path %q", format, got)
		}
	})
}

// FuzzFieldPath checks that any string field value stays one path segment.
func FuzzFieldPath(f *testing.F) {
	for _, s := range []string{"DE", "a/b", "..", ".", "", "%2F", "x\x00y"} {
		f.Add(s)
	}
	p, _ := NewField("k", 255)
	f.Fuzz(func(t *testing.T, v string) {
		got, err := p.Path(Record{Value: map[string]any{"k": v}})
		if err != nil {
			t.Fatal(err)
		}
		seg := strings.TrimPrefix(got, "k=")
		if strings.Contains(seg, "/") || seg == "" || seg == "." || seg == ".." {
			t.Fatalf("value %q gave unsafe segment %q", v, got)
		}
	})
}
