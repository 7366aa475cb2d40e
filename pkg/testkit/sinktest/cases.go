package sinktest

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/sink"
)

// openClose: every partition writer opened is closed, and a graceful stop
// commits everything.
func openClose(tb testing.TB, s Suite) {
	e := setup(tb, s)
	e.env.Kafka.CreateTopic("oc", 2, nil)
	p := &produced{}
	e.goods(p, "oc", 2, 20, "oc")
	r := e.start(nil)
	e.waitCommitted("oc", []int64{20, 20}, 60*time.Second)
	e.stop(r)
	if o, c := e.opened.opens.Load(), e.opened.closes.Load(); o < 2 || o != c {
		tb.Errorf("partition writers opened %d, closed %d: want every one opened (at least 2) closed", o, c)
	}
	e.checkLanded(p)
}

// commitAfterDurable: while records stream in, a committed offset is never
// above a record the destination does not hold.
func commitAfterDurable(tb testing.TB, s Suite) {
	e := setup(tb, s)
	e.env.Kafka.CreateTopic("cad", 2, nil)
	p := &produced{}
	r := e.start(nil)
	for round := range 10 {
		e.goods(p, "cad", 2, 25, "cad"+string(rune('a'+round)))
		if !e.checkCommitted("cad", 2, nil) {
			return
		}
		time.Sleep(30 * time.Millisecond) // pacing the producer, not synchronisation
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if !e.checkCommitted("cad", 2, nil) {
			return
		}
		c := e.committed("cad", 2)
		if c[0] >= 250 && c[1] >= 250 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("committed offsets %v, want 250 each", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.stop(r)
	e.checkCommitted("cad", 2, nil)
	e.checkLanded(p)
}

// deadLetterOnPoison: records that cannot be decoded (bad framing, unknown
// schema id) or that the writer refuses go to <topic>.dlq with their stage;
// the commit passes them only once the dead letter is written, and the
// good records around them land.
func deadLetterOnPoison(tb testing.TB, s Suite) {
	e := setup(tb, s)
	e.env.Kafka.CreateTopic("dl", 1, nil)
	p := &produced{good: map[string]bool{}}
	e.produce(p, "dl", 0, Value(tb, 1, "before"))
	dead := map[string]string{}
	offs := e.produce(nil, "dl", 0, []byte("not framed"), append([]byte{0, 0, 0, 0, 99}, 2, 'x'))
	dead[kafkaKey("dl", 0, offs[0])] = "sinktest-sink"
	dead[kafkaKey("dl", 0, offs[1])] = "sinktest-sink"
	if s.Poison != nil {
		offs = e.produce(nil, "dl", 0, s.Poison)
		dead[kafkaKey("dl", 0, offs[0])] = s.PoisonStage
	}
	e.produce(p, "dl", 0, Value(tb, 2, "after"))
	total := int64(len(dead) + 2) // the good record before and after, and the poison ones
	r := e.start(nil)
	e.waitCommitted("dl", []int64{total}, 60*time.Second)
	got := e.deadLetters("dl", len(dead))
	for k, stage := range dead {
		if gs, ok := got[k]; !ok {
			tb.Errorf("record %s is committed but not in the DLQ (dead letters: %v)", k, got)
		} else if stage != "" && gs != stage {
			tb.Errorf("dead letter of %s has stage %q, want %q", k, gs, stage)
		}
	}
	e.stop(r)
	e.checkLanded(p)
}

// rebalance: two runtimes share the group while records stream in; one
// leaves gracefully. Every record lands (exactly once for ExactlyOnce).
func rebalance(tb testing.TB, s Suite) {
	e := setup(tb, s)
	const parts = 4
	e.env.Kafka.CreateTopic("rb", parts, nil)
	p := &produced{}
	a := e.start(nil)
	e.goods(p, "rb", parts, 30, "rb1")
	e.waitCommitted("rb", []int64{1, 1, 1, 1}, 60*time.Second)
	b := e.start(nil)
	// A rebalance hands b some partitions: wait until it writes one.
	deadline := time.Now().Add(60 * time.Second)
	for b.opened.opens.Load() == 0 {
		if time.Now().After(deadline) {
			tb.Fatalf("the second runtime got no partition")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.goods(p, "rb", parts, 30, "rb2")
	e.waitCommitted("rb", []int64{60, 60, 60, 60}, 60*time.Second)
	e.stop(a)
	e.goods(p, "rb", parts, 30, "rb3")
	e.waitCommitted("rb", []int64{90, 90, 90, 90}, 60*time.Second)
	e.stop(b)
	if !e.checkCommitted("rb", parts, nil) {
		return
	}
	e.checkLanded(p)
}

// crash: runtimes are killed (no drain) at random points while consuming;
// after a last clean run every record is in the destination.
func crash(tb testing.TB, s Suite) {
	e := setup(tb, s)
	e.env.Kafka.CreateTopic("cr", 2, nil)
	p := &produced{}
	e.goods(p, "cr", 2, 150, "cr")
	for round := range 5 {
		r := e.start(nil)
		// Wait until it consumes, then kill it at a random moment while
		// more records stream in.
		deadline := time.Now().Add(30 * time.Second)
		for r.opened.opens.Load() < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		e.goods(p, "cr", 2, 30, "cr"+string(rune('a'+round)))
		time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond) // the crash point, not synchronisation
		e.crash(r)
		if !e.checkCommitted("cr", 2, nil) {
			return
		}
	}
	r := e.start(nil)
	e.waitCommitted("cr", []int64{300, 300}, 60*time.Second)
	e.stop(r)
	e.checkLanded(p)
}

// parkTopic: a topic whose writes keep failing is parked while another
// topic flows; once the destination takes it again it lands completely.
func parkTopic(tb testing.TB, s Suite) {
	e := setup(tb, s)
	e.env.Kafka.CreateTopic("bad", 1, nil)
	e.env.Kafka.CreateTopic("good", 1, nil)
	fw := &faultyWriter{broken: map[string]bool{"bad": true}}
	p := &produced{}
	e.goods(p, "bad", 1, 20, "bad")
	e.goods(p, "good", 1, 20, "good")
	r := e.start(func(o *sink.Options) {
		fw.w = o.Writer
		o.Writer = fw
	})
	e.waitCommitted("good", []int64{20}, 60*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for !r.rt.Parked("bad") {
		if time.Now().After(deadline) {
			tb.Fatalf("topic bad is not parked while its writes fail")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.goods(p, "good", 1, 20, "good2")
	e.waitCommitted("good", []int64{40}, 60*time.Second)
	if c := e.committed("bad", 1); c[0] > 0 {
		tb.Errorf("topic bad committed %d while every write of it failed", c[0])
	}
	fw.setBroken("bad", false)
	e.waitCommitted("bad", []int64{20}, 60*time.Second)
	e.stop(r)
	e.checkLanded(p)
}
