package deadletter

import (
	"testing"
	"time"

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
