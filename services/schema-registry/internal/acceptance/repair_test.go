package acceptance_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/services/schema-registry/internal/srtest"
	"github.com/sluicehq/sluice/services/schema-registry/internal/store"
)

// TestCrashedLoserIsRepaired: a record that lost a race for a subject
// version and whose writer died before re-writing the winner is fixed by a
// live replica, so the last record for the key (what compaction keeps) is
// the winner again.
func TestCrashedLoserIsRepaired(t *testing.T) {
	t.Parallel()
	kc := kafkatest.Start(t)
	in := srtest.Start(t, kc.Config(), srtest.Options{RepairAfter: 200 * time.Millisecond})
	winner := avroRecord("W", "a")
	if _, _, err := register(in.URL, "race-value", winner); err != nil {
		t.Fatal(err)
	}
	// A "crashed replica" wrote a losing record for race-value/1.
	loser := store.SchemaValue{Subject: "race-value", Version: 1, ID: 2, Schema: avroRecord("L", "b")}
	w := kc.Clients().NewWriter(skafka.WriterOptions{Topic: "_schemas"})
	defer w.Close()
	key := store.SchemaKey("race-value", 1)
	if err := w.WriteMessages(context.Background(), kafkago.Message{Key: key, Value: loser.Encode()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the winner re-written after the loser", func() (bool, string) {
		last := lastValueFor(t, kc, key)
		v, err := store.ParseSchemaValue(last)
		if err != nil {
			return false, err.Error()
		}
		return v.ID == 1 && v.Schema == winner, "last record has id " + strconv.Itoa(v.ID)
	})
	if v, _ := in.Store.State().Version("race-value", 1); v.ID != 1 {
		t.Fatalf("state holds id %d for race-value/1", v.ID)
	}
}

// lastValueFor reads _schemas from the start and returns the last value
// written under key.
func lastValueFor(t *testing.T, kc *kafkatest.Cluster, key []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := kafkago.DialLeader(ctx, "tcp", kc.Brokers()[0], "_schemas", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	end, err := conn.ReadLastOffset()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Seek(0, kafkago.SeekAbsolute); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var last []byte
	for off := int64(0); off < end; {
		m, err := conn.ReadMessage(1 << 20)
		if err != nil {
			t.Fatalf("reading _schemas at %d: %v", off, err)
		}
		off = m.Offset + 1
		if bytes.Equal(m.Key, key) {
			last = m.Value
		}
	}
	return last
}
