package target

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/services/search-sink/internal/document"
)

// validIndexName applies Elasticsearch's index name rules.
func validIndexName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= MaxIndexBytes && strings.ToLower(s) == s &&
		!strings.ContainsAny(s[:1], "-_+.") && !strings.ContainsAny(s, "\\/*?\"<>| ,#:")
}

func dailyNamer(t testing.TB) *Namer {
	t.Helper()
	n, err := document.NewNamer(document.ModeIndex, "<topic>-{yyyy.MM.dd}", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return NewNamer(n, "sluice-alerts")
}

func TestSegment(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, topic string
		want        string // exact, or a prefix when changed is set
		changed     bool
	}{
		{"plain lowercase keeps its name", "orders", "orders", false},
		{"plain with dots, dashes, underscores", "shop.orders-eu_v2", "shop.orders-eu_v2", false},
		{"trailing dot is plain", "orders.", "orders.", false},
		{"uppercase", "Orders", "orders+", true},
		{"leading dash", "-orders", "orders+", true},
		{"leading underscore", "_orders", "orders+", true},
		{"leading plus", "+orders", "orders+", true},
		{"leading dot", ".orders", "orders+", true},
		{"forbidden characters", `a b/c\d*e?f"g<h>i|j,k#l:m`, "a_b_c_d_e_f_g_h_i_j_k_l_m+", true},
		{"only symbols", "...", "t+", true},
		{"non-ASCII", "bestellungen-ü", "bestellungen-__+", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Segment(tc.topic, 200)
			if !tc.changed && got != tc.want {
				t.Fatalf("Segment(%q) = %q, want %q", tc.topic, got, tc.want)
			}
			if tc.changed && (!strings.HasPrefix(got, tc.want) || len(got) != len(tc.want)+hashChars) {
				t.Fatalf("Segment(%q) = %q, want %q + 8 hex digits", tc.topic, got, tc.want)
			}
			if !validIndexName(got + "-2026.03.01") {
				t.Fatalf("Segment(%q) = %q is not a valid index name prefix", tc.topic, got)
			}
		})
	}
}

// TestSegmentsDoNotCollide: the topics the issue names, and variants,
// all get distinct index names and templates.
func TestSegmentsDoNotCollide(t *testing.T) {
	t.Parallel()
	n := dailyNamer(t)
	day := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	topics := []string{"orders", "Orders", "ORDERS", "-orders", "_orders", "+orders", ".orders", "orders.", "orders_", "oRders", "orders-", "orders+x"}
	seen := map[string]string{}
	for _, topic := range topics {
		idx, err := n.Index(topic, day)
		if err != nil {
			t.Fatalf("%q: %v", topic, err)
		}
		tmpl, err := n.Template(topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{idx, tmpl} {
			if other, dup := seen[name]; dup {
				t.Fatalf("%q and %q share %s", topic, other, name)
			}
			seen[name] = topic
		}
		if !validIndexName(idx) {
			t.Fatalf("%q -> invalid index %q", topic, idx)
		}
	}
	if idx, _ := n.Index("orders", day); idx != "orders-2026.03.01" {
		t.Fatalf("plain topic index = %q, want the name it always had", idx)
	}
}

func TestLongTopicsFitIndexAndStreamNames(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 249) // Kafka's longest topic name
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, mode := range []document.IndexMode{document.ModeIndex, document.ModeDataStream} {
		dn, err := document.NewNamer(mode, "<topic>-{yyyy.MM.dd}", "logs", "default")
		if err != nil {
			t.Fatal(err)
		}
		n := NewNamer(dn)
		a, err1 := n.Index(long, day)
		b, err2 := n.Index(long[:248]+"b", day)
		if err1 != nil || err2 != nil || a == b {
			t.Fatalf("%s: %q %q %v %v", mode, a, b, err1, err2)
		}
		limit := MaxIndexBytes
		if mode == document.ModeDataStream {
			limit -= backingOverhead // its backing index must fit too
		}
		tmpl, _ := n.Template(long)
		if len(a) > limit || !validIndexName(a) || len(tmpl) > MaxIndexBytes {
			t.Fatalf("%s: %d-byte name %q (limit %d), template %d bytes", mode, len(a), a, limit, len(tmpl))
		}
	}
}

func TestNamerRefusesCollisions(t *testing.T) {
	t.Parallel()
	n := dailyNamer(t)
	n.hash = func(string) string { return "00000000" } // force a hash collision
	if _, err := n.Segment("Orders"); err != nil {
		t.Fatal(err)
	}
	_, err := n.Segment("ORDERS")
	if !IsCollision(err) || !strings.Contains(err.Error(), `topic "ORDERS" and topic "Orders" both map to`) {
		t.Fatalf("err = %v, want a collision naming both topics", err)
	}
	n.Forget("Orders") // the topic was deleted: its names are free again
	if _, err := n.Segment("ORDERS"); err != nil {
		t.Fatalf("after Forget: %v", err)
	}

	// A topic whose template pattern would capture the alerts index.
	dn, _ := document.NewNamer(document.ModeIndex, "<topic>", "", "")
	n2 := NewNamer(dn, "sluice-alerts")
	if _, err := n2.Index("sluice-alerts", time.Now()); !IsCollision(err) || !strings.Contains(err.Error(), "reserves") {
		t.Fatalf("err = %v, want a reserved-name collision", err)
	}
}

func TestKeyID(t *testing.T) {
	t.Parallel()
	long := bytes.Repeat([]byte("k"), 600)
	cases := []struct {
		name string
		key  []byte
		want string
	}{
		{"plain key is its own id", []byte("user-42"), "user-42"},
		{"unicode key", []byte("kunde-müller"), "kunde-müller"},
		{"invalid UTF-8", []byte{0xff, 0xfe}, "b64:__4"},
		{"binary with NUL", []byte{'a', 0, 'b'}, "b64:YQBi"},
		{"control character", []byte("a\nb"), "b64:YQpi"},
		{"looks like an encoded id", []byte("b64:__4"), "b64:YjY0Ol9fNA"},
		{"looks like a hashed id", []byte("sha256:x"), "b64:c2hhMjU2Ong"},
		{"exactly 512 bytes", bytes.Repeat([]byte("x"), 512), strings.Repeat("x", 512)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := KeyID(tc.key); got != tc.want {
				t.Fatalf("KeyID(%q) = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
	id := KeyID(long)
	if !strings.HasPrefix(id, IDHashPrefix) || len(id) != len(IDHashPrefix)+64 {
		t.Fatalf("long key id = %q", id)
	}
	// The longest key that is still base64: 4 + ceil(4n/3) <= 512.
	bin := bytes.Repeat([]byte{0xff}, 381)
	if id := KeyID(bin); !strings.HasPrefix(id, IDBase64Prefix) || len(id) > MaxIDBytes {
		t.Fatalf("381-byte binary key id = %d bytes %q...", len(id), id[:10])
	}
	if id := KeyID(append(bin, 0xff)); !strings.HasPrefix(id, IDHashPrefix) {
		t.Fatalf("382-byte binary key id = %q", id)
	}
}

// FuzzKeyID: ids are valid (non-empty UTF-8, at most 512 bytes) and
// distinct keys get distinct ids unless both are hashed.
func FuzzKeyID(f *testing.F) {
	for _, s := range [][2]string{{"a", "b"}, {"\xff\xfe", "//4="}, {"b64:__4", "\xff\xfe"}, {"", "x"}, {"sha256:ab", "b64:x"}} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if len(a) == 0 || len(b) == 0 {
			return // empty keys use offset ids
		}
		ia, ib := KeyID(a), KeyID(b)
		for _, id := range []string{ia, ib} {
			if id == "" || len(id) > MaxIDBytes || !utf8.ValidString(id) {
				t.Fatalf("invalid id %q", id)
			}
		}
		if bytes.Equal(a, b) != (ia == ib) && !(strings.HasPrefix(ia, IDHashPrefix) && strings.HasPrefix(ib, IDHashPrefix)) {
			t.Fatalf("keys %q and %q -> ids %q and %q", a, b, ia, ib)
		}
		if strings.HasPrefix(ia, IDBase64Prefix) {
			dec, err := base64.RawURLEncoding.DecodeString(ia[len(IDBase64Prefix):])
			if err != nil || !bytes.Equal(dec, a) {
				t.Fatalf("b64 id %q does not decode to the key %q", ia, a)
			}
		}
	})
}

// FuzzSegment: every segment makes a valid index name, and two topics
// share a segment only if both were changed and their hashes collide
// (which Namer refuses).
func FuzzSegment(f *testing.F) {
	for _, s := range [][2]string{{"orders", "Orders"}, {"-orders", "_orders"}, {"orders.", "orders"}, {"a+b", "a_b"}, {"", "."}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == "" || b == "" {
			return
		}
		sa, sb := Segment(a, 200), Segment(b, 200)
		for _, s := range []string{sa, sb} {
			if !validIndexName(s+"-2026.03.01") || len(s) > 200 {
				t.Fatalf("invalid segment %q", s)
			}
		}
		if a != b && sa == sb {
			t.Fatalf("topics %q and %q share segment %q", a, b, sa)
		}
		if plainSegment(a) && len(a) <= 200 && sa != a {
			t.Fatalf("plain topic %q changed to %q", a, sa)
		}
	})
}

func TestVersionOrdersByTimeThenOffset(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name         string
		older, newer [2]int64 // ms after t0, offset
	}{
		{"same partition, later offset, same ms", [2]int64{0, 5}, [2]int64{0, 6}},
		{"other partition after a repartition: small offset, later time", [2]int64{0, 1_000_000}, [2]int64{1, 3}},
		{"a second later beats any offset", [2]int64{0, 1<<20 - 1}, [2]int64{1000, 0}},
	}
	for _, tc := range cases {
		o := Version(t0.Add(time.Duration(tc.older[0])*time.Millisecond), tc.older[1])
		n := Version(t0.Add(time.Duration(tc.newer[0])*time.Millisecond), tc.newer[1])
		if !(n > o) || o < 0 {
			t.Errorf("%s: newer version %d is not above older %d", tc.name, n, o)
		}
	}
	if v := Version(time.Time{}, 7); v != 7 {
		t.Errorf("no timestamp: version %d, want the offset bits only", v)
	}
	if v := Version(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), 0); v < 0 {
		t.Errorf("far future version %d overflowed", v)
	}
	// Versions of today's records are above any offset-only version an
	// earlier release wrote, so the first write after an upgrade wins.
	if Version(t0, 0) <= 1<<40 {
		t.Error("time-based versions must exceed old offset versions")
	}
}
