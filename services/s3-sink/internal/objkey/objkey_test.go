package objkey

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

var defaults = Limits{MaxKey: S3MaxKeyBytes, MaxSegment: NameMax}

func TestEscape(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in, want string }{
		{"plain", "DE", "DE"},
		{"safe punctuation", "a.b_c-d", "a.b_c-d"},
		{"slash and space", "a/b c", "a%2Fb%20c"},
		{"empty", "", "__empty__"},
		{"the empty placeholder itself", "__empty__", "%5F_empty__"},
		{"dot", ".", "%2E"},
		{"dotdot", "..", "%2E%2E"},
		{"three dots stay", "...", "..."},
		{"percent", "100%", "100%25"},
		{"marker and plus", "a!b+c", "a%21b%2Bc"},
		{"hive and shell specials", `:=*'"?#~$&;,@()`, "%3A%3D%2A%27%22%3F%23%7E%24%26%3B%2C%40%28%29"},
		{"control characters", "a\x00\n\x7f", "a%00%0A%7F"},
		{"utf-8", "é", "%C3%A9"},
		{"invalid utf-8", "\xff\xfe", "%FF%FE"},
		{"backslash", `a\b`, "a%5Cb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := Escape(c.in); got != c.want {
				t.Fatalf("Escape(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestFit(t *testing.T) {
	t.Parallel()
	long := "country=" + strings.Repeat("x", 5000)
	cases := []struct {
		name string
		in   string
		max  int
	}{
		{"fits", "country=DE", 255},
		{"exactly the limit", strings.Repeat("a", 255), 255},
		{"long", long, 255},
		{"escapes not split", "v=" + strings.Repeat("%2F", 200), 255},
		{"escape at cut-1", strings.Repeat("a", 221) + strings.Repeat("%2F", 20), 255},
		{"escape at cut-2", strings.Repeat("a", 220) + strings.Repeat("%2F", 20), 255},
		{"smallest budget", long, 33},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := Fit(c.in, c.max)
			if len(got) > c.max {
				t.Fatalf("Fit gave %d bytes, limit %d", len(got), c.max)
			}
			if len(c.in) <= c.max {
				if got != c.in {
					t.Fatalf("Fit changed a fitting segment: %q", got)
				}
				return
			}
			if !Shortened(got) || Fit(c.in, c.max) != got {
				t.Fatalf("shortened %q has no marker or is not deterministic", got)
			}
			kept := got[:strings.Index(got, Marker)]
			if !strings.HasPrefix(c.in, kept) {
				t.Fatalf("kept part %q is not a prefix", kept)
			}
			if i := strings.LastIndexByte(kept, '%'); i >= 0 && i > len(kept)-3 {
				t.Fatalf("kept part %q splits an escape", kept)
			}
		})
	}
	a, b := long+"a", long+"b"
	if Fit(a, 255) == Fit(b, 255) {
		t.Fatal("two long values sharing a 5 KB prefix collide")
	}
}

func TestValidTopic(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		topic string
		ok    bool
	}{
		"plain":    {"orders.v1_eu-west", true},
		"longest":  {strings.Repeat("t", 249), true},
		"too long": {strings.Repeat("t", 250), false},
		"empty":    {"", false},
		"dot":      {".", false},
		"dotdot":   {"..", false},
		"slash":    {"a/b", false},
		"plus":     {"a+b", false},
		"bang":     {"a!b", false},
		"space":    {"a b", false},
	} {
		if err := ValidTopic(c.topic); (err == nil) != c.ok {
			t.Errorf("%s: ValidTopic(%q) = %v", name, c.topic, err)
		}
	}
}

func TestValidLiteral(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		s  string
		ok bool
	}{
		"empty":           {"", true},
		"nested":          {"archive/v1/topics", true},
		"equals":          {"env=prod", true},
		"leading slash":   {"/a", false},
		"trailing slash":  {"a/", false},
		"doubled slash":   {"a//b", false},
		"dotdot":          {"a/../b", false},
		"colon":           {"a:b", false},
		"percent":         {"a%2F", false},
		"marker":          {"a!b", false},
		"space":           {"a b", false},
		"control":         {"a\nb", false},
		"long segment":    {strings.Repeat("s", 256), false},
		"longest segment": {strings.Repeat("s", 255), true},
	} {
		if err := ValidLiteral(c.s, NameMax); (err == nil) != c.ok {
			t.Errorf("%s: ValidLiteral(%q) = %v", name, c.s, err)
		}
	}
}

func TestKey(t *testing.T) {
	t.Parallel()
	l, err := NewLayout("topics", defaults)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := l.Topic("orders")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tk.Key("partition=3", 3, 42)
	if want := "topics/orders/partition=3/orders+3+00000000000000000042.avro"; err != nil || got != want {
		t.Fatalf("got %q, %v; want %s", got, err, want)
	}
	nl, _ := NewLayout("", defaults)
	ntk, _ := nl.Topic("o")
	if got, _ := ntk.Key("p", 0, 0); got != "o/p/o+0+00000000000000000000.avro" {
		t.Fatalf("no prefix: %s", got)
	}

	long := strings.Repeat("t", 249)
	cases := []struct {
		name, prefix, topic, path string
		lim                       Limits
	}{
		{"long field value", "topics", "orders", "country=" + Escape(strings.Repeat("\xff/", 3000)), defaults},
		{"longest topic", "topics", long, "country=" + Escape(strings.Repeat("v", 1000)), defaults},
		{"longest prefix and topic", strings.Repeat("p", 200) + "/" + strings.Repeat("q", 55), long, "k=" + strings.Repeat("v", 400), defaults},
		{"time path", "topics", long, "year=2026/month=01/day=02/hour=03", defaults},
		{"small limits", "p", long, "k=" + strings.Repeat("v", 400), Limits{MaxKey: 512, MaxSegment: 100}},
		{"tombstones", "topics", long, "_tombstones/partition=2147483647", Limits{MaxKey: 600, MaxSegment: 100}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l, err := NewLayout(c.prefix, c.lim)
			if err != nil {
				t.Fatal(err)
			}
			tk, err := l.Topic(c.topic)
			if err != nil {
				t.Fatal(err)
			}
			key, err := tk.Key(c.path, 2147483647, 1<<62)
			if err != nil {
				t.Fatal(err)
			}
			checkKey(t, key, c.lim)
			again, _ := tk.Key(c.path, 2147483647, 1<<62)
			if again != key {
				t.Fatal("Key is not deterministic")
			}
			name := key[strings.LastIndexByte(key, '/')+1:]
			if len(name)+FileNameReserve > c.lim.MaxSegment {
				t.Fatalf("file name of %d bytes leaves no room for a store's temporary name", len(name))
			}
			if parts := strings.Split(strings.TrimSuffix(name, ".avro"), "+"); len(parts) != 3 || parts[1] != "2147483647" || len(parts[2]) != OffsetWidth {
				t.Fatalf("file name %q is not <topic>+<partition>+<offset>.avro", name)
			}
		})
	}
}

func checkKey(t *testing.T, key string, lim Limits) {
	t.Helper()
	if len(key) > lim.MaxKey {
		t.Fatalf("key of %d bytes > %d: %s", len(key), lim.MaxKey, key)
	}
	if !utf8.ValidString(key) {
		t.Fatalf("key is not UTF-8: %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if len(seg) > lim.MaxSegment || seg == "" || seg == "." || seg == ".." {
			t.Fatalf("segment %q (%d bytes) of %s", seg, len(seg), key)
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !plain(c) && !strings.ContainsRune("%=+!", rune(c)) {
				t.Fatalf("byte %q in key %s", c, key)
			}
		}
	}
}

func TestTopicTooLongForLimits(t *testing.T) {
	t.Parallel()
	l, err := NewLayout(strings.Repeat("p", 64), Limits{MaxKey: 256, MaxSegment: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Topic(strings.Repeat("t", 249)); !errors.Is(err, ErrKeyTooLong) {
		t.Fatalf("err = %v, want ErrKeyTooLong", err)
	}
	if _, err := l.Topic("a+b"); err == nil {
		t.Fatal("bad topic name accepted")
	}
	tk, err := l.Topic("t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Key(strings.Repeat("seg/", 60)+"x", 0, 0); !errors.Is(err, ErrKeyTooLong) {
		t.Fatalf("long multi-segment path: %v", err)
	}
}

func TestNewLayoutRejects(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		prefix string
		lim    Limits
	}{
		"key limit above S3": {"p", Limits{MaxKey: 2048, MaxSegment: 255}},
		"key limit tiny":     {"p", Limits{MaxKey: 100, MaxSegment: 64}},
		"segment tiny":       {"p", Limits{MaxKey: 1024, MaxSegment: 10}},
		"prefix too long":    {strings.Repeat("p/", 130) + "p", defaults},
		"prefix bad char":    {"a b", defaults},
	} {
		if _, err := NewLayout(c.prefix, c.lim); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzKey: any field value gives a key within the limits, made of safe
// bytes, the same every time, and different values give different keys.
func FuzzKey(f *testing.F) {
	for _, s := range []string{"DE", "", ".", "..", "a/b", "%2F", "x\x00y", "\xff", strings.Repeat("é", 300), strings.Repeat("/", 600)} {
		f.Add(s, s+"x")
	}
	l, _ := NewLayout("topics", defaults)
	tk, _ := l.Topic("orders")
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, err := tk.Key("k="+Escape(a), 5, 77)
		if err != nil {
			t.Fatal(err)
		}
		checkKey(t, ka, defaults)
		if again, _ := tk.Key("k="+Escape(a), 5, 77); again != ka {
			t.Fatal("not deterministic")
		}
		kb, _ := tk.Key("k="+Escape(b), 5, 77)
		if a != b && ka == kb {
			t.Fatalf("values %q and %q share key %s", a, b, ka)
		}
	})
}
