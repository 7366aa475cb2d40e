package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

// refuseBatchesWith makes kfake refuse, with kafkaErr, every produce
// request to topic whose record batch contains marker, as a broker
// enforcing a per-record rule (message.timestamp.*, max.message.bytes)
// refuses the whole batch holding the offending record. It returns a
// function listing the values of each refused request.
func refuseBatchesWith(k *kafkatest.Cluster, topic string, marker []byte, kafkaErr *kerr.Error) func() [][]byte {
	var mu sync.Mutex
	var refused [][]byte
	k.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kafkaErr, Count: -1, When: func(req kmsg.Request) bool {
		for _, t := range req.(*kmsg.ProduceRequest).Topics {
			for _, p := range t.Partitions {
				if t.Topic == topic && bytes.Contains(p.Records, marker) {
					mu.Lock()
					refused = append(refused, bytes.Clone(p.Records))
					mu.Unlock()
					return true
				}
			}
		}
		return false
	}})
	return func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return refused
	}
}

// stallFirstProduce holds the first produce request to topic until the
// returned release is called, so records written meanwhile batch up.
func stallFirstProduce(t *testing.T, k *kafkatest.Cluster, topic string) (stalled <-chan struct{}, release func()) {
	t.Helper()
	ch, rel := make(chan struct{}), make(chan struct{})
	var once, relOnce sync.Once
	release = func() { relOnce.Do(func() { close(rel) }) }
	t.Cleanup(release)
	k.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			if tp.Topic == topic {
				once.Do(func() {
					close(ch)
					k.SleepControl(func() { <-rel })
				})
			}
		}
		return nil, nil, false
	})
	return ch, release
}

// TestRefusedBatchFailsOnlyTheCulprit: three calls' records share one
// Kafka batch; the broker refuses any batch holding the second call's
// second record (INVALID_TIMESTAMP). The producer splits and resends, so
// the other records, the culprit's neighbours included, are acknowledged
// and in Kafka, and only the culprit is reported failed.
func TestRefusedBatchFailsOnlyTheCulprit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  *kerr.Error
	}{
		{"invalid timestamp", kerr.InvalidTimestamp},
		{"message too large", kerr.MessageTooLarge},
		{"record list too large", kerr.RecordListTooLarge},
		{"invalid record", kerr.InvalidRecord},
		{"corrupt message", kerr.CorruptMessage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k := kafkatest.Start(t)
			k.CreateTopic("split", 1, nil)
			p, comp := newTestProducer(t, k, 100, 0)
			refused := refuseBatchesWith(k, "split", []byte("BAD"), c.err)
			stalled, release := stallFirstProduce(t, k, "split")

			ctx := context.Background()
			write := func(values ...string) chan error {
				msgs := make([]kafkago.Message, len(values))
				for i, v := range values {
					msgs[i] = kafkago.Message{Topic: "split", Partition: 0, Value: []byte(v), Time: time.Now()}
				}
				done := make(chan error, 1)
				go func() { done <- p.WriteMessages(ctx, msgs...) }()
				return done
			}
			blocker := write("blocker")
			<-stalled
			calls := [][]string{{"a0", "a1", "a2"}, {"b0", "BAD-b1"}, {"c0", "c1", "c2"}}
			var dones []chan error
			for _, vs := range calls {
				dones = append(dones, write(vs...))
			}
			// All three calls are in the partition's next batch before the
			// blocker is answered.
			pp := p.partition(topicPartition{"split", 0})
			deadline := time.Now().Add(10 * time.Second)
			want := []string{"blocker"} // the order the calls joined the batch in
			for {
				pp.mu.Lock()
				n := 0
				if pp.cur != nil {
					n = len(pp.cur.msgs)
					if n == 8 {
						for _, m := range pp.cur.msgs {
							if v := string(m.Value); v != "BAD-b1" {
								want = append(want, v)
							}
						}
					}
				}
				pp.mu.Unlock()
				if n == 8 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the next batch has %d records, want 8", n)
				}
				time.Sleep(time.Millisecond)
			}
			release()
			for _, d := range append([]chan error{blocker}, dones...) {
				if err := <-d; err != nil {
					t.Fatalf("WriteMessages: %v", err)
				}
			}

			if r := refused(); len(r) == 0 || !bytes.Contains(r[0], []byte("a0")) || !bytes.Contains(r[0], []byte("c2")) || !bytes.Contains(r[0], []byte("b0")) {
				t.Fatalf("the first refused request did not hold all three calls' records: %q", r)
			}
			comp.mu.Lock()
			errs := append([]error(nil), comp.errs...)
			got := len(comp.got)
			comp.mu.Unlock()
			if len(errs) != 1 || !errors.Is(errs[0], kafkago.Error(c.err.Code)) {
				t.Fatalf("completion errors %v, want one %v (for BAD-b1 alone)", errs, c.err)
			}
			if got != 8 {
				t.Fatalf("%d records acknowledged, want 8 (blocker + 7 innocent)", got)
			}
			recs := readAll(t, k, "split", 8)
			var vals []string
			for _, r := range recs {
				vals = append(vals, string(r.Value))
			}
			if fmt.Sprint(vals) != fmt.Sprint(want) {
				t.Fatalf("topic holds %v, want %v (every record but BAD-b1, in batch order)", vals, want)
			}
		})
	}
}

// TestSplitBudgetBoundsAttempts: a call whose every record is refused
// costs a bounded number of produce requests.
func TestSplitBudgetBoundsAttempts(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t)
	k.CreateTopic("bad", 1, nil)
	p, comp := newTestProducer(t, k, 2000, 0)
	p.splitBudget = 6
	refused := refuseBatchesWith(k, "bad", []byte("BAD"), kerr.InvalidTimestamp)
	msgs := make([]kafkago.Message, 1000)
	for i := range msgs {
		msgs[i] = kafkago.Message{Topic: "bad", Value: []byte(fmt.Sprintf("BAD-%d", i)), Time: time.Now()}
	}
	if err := p.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	// One request, then 3 cuts of the budget (2 requests each).
	if n := len(refused()); n != 7 {
		t.Fatalf("%d produce requests for one all-bad call, want 7", n)
	}
	comp.mu.Lock()
	defer comp.mu.Unlock()
	if len(comp.got) != 0 || len(comp.errs) != 4 {
		t.Fatalf("acknowledged %d, errors %d; want 0 and 4 (the parts left when the budget ran out)", len(comp.got), len(comp.errs))
	}
}
