package deadletter

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	kafkago "github.com/segmentio/kafka-go"
)

func TestNaming(t *testing.T) {
	t.Parallel()
	cases := []struct {
		topic  string
		is     bool
		source string
	}{
		{"orders.dlq", true, "orders"},
		{"orders", false, ""},
		{"orders.dlq.dlq", true, "orders.dlq"},
		{".dlq", true, ""},
	}
	for _, tc := range cases {
		if Is(tc.topic) != tc.is || Source(tc.topic) != tc.source {
			t.Errorf("%s: Is=%v Source=%q, want %v %q", tc.topic, Is(tc.topic), Source(tc.topic), tc.is, tc.source)
		}
	}
	if Topic("payments") != "payments.dlq" {
		t.Fatal(Topic("payments"))
	}
}

func TestMessageKeepsRecordAndReplacesStaleHeaders(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0)
	m := &kafkago.Message{Topic: "orders", Partition: 4, Offset: 99, Key: []byte("k"), Value: []byte{0, 1, 2}, Time: at,
		Headers: []kafkago.Header{{Key: "trace", Value: []byte("t1")}, {Key: HeaderError, Value: []byte("old reason")}}}
	d := Message(m, "s3-sink", "unknown schema id 7")
	if d.Topic != "orders.dlq" || string(d.Key) != "k" || string(d.Value) != "\x00\x01\x02" || !d.Time.Equal(at) {
		t.Fatalf("dead letter = %+v", d)
	}
	got := map[string][]string{}
	for _, h := range d.Headers {
		got[h.Key] = append(got[h.Key], string(h.Value))
	}
	want := map[string]string{"trace": "t1", HeaderError: "unknown schema id 7", HeaderStage: "s3-sink",
		HeaderSourceTopic: "orders", HeaderSourcePartition: "4", HeaderSourceOffset: "99"}
	for k, v := range want {
		if len(got[k]) != 1 || got[k][0] != v {
			t.Errorf("header %s = %q, want exactly [%q]", k, got[k], v)
		}
	}
}

func TestReasonBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", MaxReasonBytes) // 2 bytes a rune
	got := Reason(long)
	if len(got) > MaxReasonBytes || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
		t.Fatalf("Reason: %d bytes, valid UTF-8 %v, tail %q", len(got), utf8.ValidString(got), got[len(got)-5:])
	}
	if Reason("short") != "short" {
		t.Fatal("a short reason changed")
	}
	m := &kafkago.Message{Topic: "t", Value: []byte("v")}
	for _, h := range Message(m, "s", long).Headers {
		if h.Key == HeaderError && len(h.Value) > MaxReasonBytes {
			t.Fatalf("sluice-error header is %d bytes", len(h.Value))
		}
	}
}

func TestFit(t *testing.T) {
	t.Parallel()
	contract := Headers(nil, "s3-sink", "too large", "orders", 1, 7)
	cases := []struct {
		name      string
		key, val  int
		producer  int // bytes of one producer header value
		limit     int
		truncated string
		keepKey   bool
	}{
		{name: "fits unchanged", key: 10, val: 1000, limit: 4096},
		{name: "value cut", key: 10, val: 10000, limit: 4096, truncated: "value", keepKey: true},
		{name: "value cut, producer headers kept", key: 10, val: 10000, producer: 100, limit: 4096, truncated: "value", keepKey: true},
		{name: "huge header dropped", key: 10, val: 10, producer: 10000, limit: 4096, truncated: "headers", keepKey: true},
		{name: "huge key cut", key: 10000, val: 10000, limit: 4096, truncated: "key,value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hs := append([]kafkago.Header(nil), contract...)
			if tc.producer > 0 {
				hs = append([]kafkago.Header{{Key: "trace", Value: bytes.Repeat([]byte("t"), tc.producer)}}, hs...)
			}
			m := kafkago.Message{Topic: "orders.dlq", Key: bytes.Repeat([]byte("k"), tc.key), Value: bytes.Repeat([]byte("v"), tc.val), Headers: hs}
			orig := Size(&m)
			got := Fit(m, tc.limit)
			if Size(&got) > tc.limit {
				t.Fatalf("Fit left %d bytes, limit %d", Size(&got), tc.limit)
			}
			hv := map[string]string{}
			for _, h := range got.Headers {
				hv[h.Key] = string(h.Value)
			}
			if hv[HeaderError] != "too large" || hv[HeaderSourceOffset] != "7" {
				t.Fatalf("contract headers lost: %v", hv)
			}
			if tc.truncated == "" {
				if Size(&got) != orig || len(got.Headers) != len(hs) {
					t.Fatal("a message that fits was changed")
				}
				return
			}
			if hv[HeaderTruncated] != tc.truncated || hv[HeaderOriginalSize] != strconv.Itoa(orig) {
				t.Fatalf("truncated=%q original-size=%q, want %q %d", hv[HeaderTruncated], hv[HeaderOriginalSize], tc.truncated, orig)
			}
			if tc.keepKey != (len(got.Key) == tc.key) {
				t.Fatalf("key is %d bytes of %d (keep=%v)", len(got.Key), tc.key, tc.keepKey)
			}
			if tc.producer > 0 && tc.truncated == "value" && hv["trace"] == "" {
				t.Fatal("a small producer header was dropped although cutting the value was enough")
			}
		})
	}
}
