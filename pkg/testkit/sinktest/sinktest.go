// Package sinktest is the conformance suite every sink Writer (pkg/sink)
// must pass, run against an in-process Kafka (kfake): open/close, commit
// only after durable, dead letters for poison records, rebalances without
// loss or duplicates, crashes at any point without loss, and parking a
// failing topic while the others flow. A sink provides a Destination: new
// Writers over it and a read-back of what it holds.
package sinktest

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/deadletter"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/wire"
)

// SchemaID is the id records of the suite are framed with.
const SchemaID = 1

// Schema is the schema of the suite's records.
const Schema = `{"type":"record","name":"Event","namespace":"sluice.sinktest","fields":[{"name":"id","type":"long"},{"name":"body","type":"string"}]}`

// Landed is one record as the destination holds it. A destination that
// does not keep offsets (object files holding records) sets Offset to -1
// and Body to the record's "body" field; the suite knows which record
// carried each body.
type Landed struct {
	Topic     string
	Partition int
	Offset    int64
	Body      string
}

func (l Landed) String() string { return kafkaKey(l.Topic, l.Partition, l.Offset) }

func kafkaKey(topic string, partition int, offset int64) string {
	return topic + "+" + strconv.Itoa(partition) + "+" + strconv.FormatInt(offset, 10)
}

// Destination is one test's destination.
type Destination interface {
	// Writer returns a new Writer over the destination, as a freshly
	// started process would build it (no state shared with earlier
	// Writers but the destination itself).
	Writer(tb testing.TB) sink.Writer
	// Landed returns the records the destination holds, each as often as
	// it holds it.
	Landed(ctx context.Context, tb testing.TB) []Landed
}

// Env is what a Destination may use: the suite's Kafka and schemas.
type Env struct {
	Kafka  *kafkatest.Cluster
	Codecs sink.Codecs // resolves SchemaID to Schema
}

// Suite describes the sink under test.
type Suite struct {
	// New creates a destination for one test.
	New func(tb testing.TB, env Env) Destination
	// Semantics is what the Writer promises: ExactlyOnce also fails on
	// records the destination holds twice.
	Semantics sink.Semantics
	// Poison, if set, is a record value (Confluent-framed with SchemaID)
	// the Writer itself refuses for good; it must be dead-lettered with
	// PoisonStage. The runtime's own framing check is always tested.
	Poison      []byte
	PoisonStage string
	// Options adjusts the runtime options.
	Options func(*sink.Options)
}

// Case is one conformance check.
type Case struct {
	Name string
	Run  func(tb testing.TB, s Suite)
}

// Cases are the suite's checks.
func Cases() []Case {
	return []Case{
		{"OpenClose", openClose},
		{"CommitOnlyAfterDurable", commitAfterDurable},
		{"DeadLetterOnPoison", deadLetterOnPoison},
		{"RebalanceWithoutLoss", rebalance},
		{"CrashWithoutLoss", crash},
		{"ParkFailingTopic", parkTopic},
	}
}

// Run runs every case as a subtest.
func Run(t *testing.T, s Suite) {
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) { c.Run(t, s) })
	}
}

// codecs is an in-memory schema source holding the suite's schema.
type codecs struct{ c *avro.Codec }

func (c codecs) ByID(_ context.Context, id int) (*avro.Codec, error) {
	if id != SchemaID {
		return nil, &registry.Error{Status: 404, Code: 40403, Message: "Schema " + strconv.Itoa(id) + " not found"}
	}
	return c.c, nil
}

// Value returns a Confluent-framed record of the suite's schema.
func Value(tb testing.TB, id int64, body string) []byte {
	tb.Helper()
	c, err := avro.NewCodec(SchemaID, Schema)
	if err != nil {
		tb.Fatalf("sinktest schema: %v", err)
	}
	bin, err := c.Codec.BinaryFromNative(nil, map[string]any{"id": id, "body": body})
	if err != nil {
		tb.Fatalf("encoding: %v", err)
	}
	return wire.Encode(SchemaID, bin)
}

// env is one test's world.
type env struct {
	tb     testing.TB
	s      Suite
	env    Env
	dest   Destination
	kc     *kgo.Client
	group  string
	opened *counter
	codec  *avro.Codec
	bodyMu sync.Mutex
	bodies map[string]string // record body -> topic+partition+offset
}

func setup(tb testing.TB, s Suite) *env {
	tb.Helper()
	cluster := kafkatest.Start(tb)
	c, err := avro.NewCodec(SchemaID, Schema)
	if err != nil {
		tb.Fatalf("sinktest schema: %v", err)
	}
	e := &env{tb: tb, s: s, env: Env{Kafka: cluster, Codecs: codecs{c}}, group: "sinktest", opened: &counter{}, codec: c, bodies: map[string]string{}}
	kc, err := kgo.NewClient(kgo.SeedBrokers(cluster.Brokers()...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		tb.Fatalf("kafka client: %v", err)
	}
	tb.Cleanup(kc.Close)
	e.kc = kc
	e.dest = s.New(tb, e.env)
	return e
}

// produced is what the test wrote: expected landings and dead letters.
type produced struct {
	mu     sync.Mutex
	good   map[string]bool
	poison map[string]string // key -> expected stage
}

func (e *env) produce(p *produced, topic string, partition int, values ...[]byte) []int64 {
	e.tb.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(partition), Value: v, Key: []byte("k" + strconv.Itoa(i))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := e.kc.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		e.tb.Fatalf("producing to %s: %v", topic, err)
	}
	offs := make([]int64, len(recs))
	for i, r := range res {
		offs[i] = r.Record.Offset
		if id, body, err := wire.Decode(values[i]); err == nil && id == SchemaID {
			if v, _, err := e.codec.Codec.NativeFromBinary(body); err == nil {
				if b, ok := v.(map[string]any)["body"].(string); ok {
					e.bodyMu.Lock()
					e.bodies[b] = kafkaKey(topic, partition, offs[i])
					e.bodyMu.Unlock()
				}
			}
		}
	}
	if p != nil {
		p.mu.Lock()
		if p.good == nil {
			p.good, p.poison = map[string]bool{}, map[string]string{}
		}
		for _, o := range offs {
			p.good[kafkaKey(topic, partition, o)] = true
		}
		p.mu.Unlock()
	}
	return offs
}

// goods produces n good records to every partition of topic.
func (e *env) goods(p *produced, topic string, partitions, n int, tag string) {
	for part := range partitions {
		vals := make([][]byte, n)
		for i := range vals {
			vals[i] = Value(e.tb, int64(i), fmt.Sprintf("%s-%d-%d", tag, part, i))
		}
		e.produce(p, topic, part, vals...)
	}
}

// running is one runtime (one "process").
type running struct {
	opened *counter // this runtime's partition writers
	rt     *sink.Runtime
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
}

func (e *env) start(mutate func(*sink.Options)) *running {
	e.tb.Helper()
	kcl := e.env.Kafka.Clients()
	reg := prometheus.NewRegistry()
	own := &counter{}
	w := &countingWriter{w: e.dest.Writer(e.tb), c: e.opened, own: own}
	o := sink.Options{
		Name:               "sinktest",
		GroupID:            e.group,
		TopicRefresh:       200 * time.Millisecond,
		Brokers:            kcl.Brokers(),
		Dialer:             kcl.Dialer,
		Admin:              sink.NewKafkaAdmin(kcl, 200*time.Millisecond),
		DLQ:                kcl.NewWriter(skafkaWriterOptions()),
		SessionTimeout:     3 * time.Second,
		RebalanceTimeout:   3 * time.Second,
		Heartbeat:          200 * time.Millisecond,
		FetchMaxWait:       50 * time.Millisecond,
		CommitInterval:     50 * time.Millisecond,
		DrainTimeout:       10 * time.Second,
		FlushOnStop:        true,
		Retry:              backoffPolicy(10*time.Millisecond, 100*time.Millisecond, 3),
		Park:               backoffPolicy(100*time.Millisecond, 500*time.Millisecond, 0),
		Schemas:            e.env.Codecs,
		UnknownSchemaGrace: 0,
		Writer:             w,
		Metrics:            sink.NewMetrics(reg, "sinktest", 100),
		Log:                logger(e.tb),
	}
	if e.s.Options != nil {
		e.s.Options(&o)
	}
	if mutate != nil {
		mutate(&o)
	}
	rt, err := sink.New(o)
	if err != nil {
		e.tb.Fatalf("sink.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{opened: own, rt: rt, cancel: cancel, done: make(chan error, 1), reg: reg}
	go func() { r.done <- rt.Run(ctx) }()
	e.tb.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// stop drains the runtime gracefully.
func (e *env) stop(r *running) {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.rt.Stop(ctx); err != nil {
		e.tb.Fatalf("stopping the runtime: %v", err)
	}
	if err := <-r.done; err != nil {
		e.tb.Fatalf("runtime ended with %v", err)
	}
	r.done <- nil // for the cleanup
	r.cancel()
}

// crash ends the runtime without a drain (as SIGKILL would: the writer
// is closed, nothing is flushed or committed).
func (e *env) crash(r *running) {
	r.cancel()
	err := <-r.done
	r.done <- err
}

// committed returns the group's committed offsets of topic's partitions
// (-1 for none).
func (e *env) committed(topic string, partitions int) []int64 {
	e.tb.Helper()
	cl := &kafkago.Client{Addr: kafkago.TCP(e.env.Kafka.Brokers()...), Timeout: 10 * time.Second}
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: e.group, Topics: map[string][]int{topic: ps}})
	out := make([]int64, partitions)
	for i := range out {
		out[i] = -1
	}
	if err != nil {
		return out
	}
	for _, p := range res.Topics[topic] {
		if p.Error == nil && p.Partition < partitions {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out
}

// landed reads the destination back as counts per record.
func (e *env) landed() map[string]int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[string]int{}
	e.bodyMu.Lock()
	defer e.bodyMu.Unlock()
	for _, l := range e.dest.Landed(ctx, e.tb) {
		k := l.String()
		if l.Offset < 0 {
			if k = e.bodies[l.Body]; k == "" {
				k = l.Topic + "+" + strconv.Itoa(l.Partition) + "+?" + l.Body
			}
		}
		out[k]++
	}
	return out
}

// checkCommitted fails when a committed offset is above a record that is
// neither landed nor dead-lettered: read the commit first, then the
// destination, so a record made durable in between only helps.
func (e *env) checkCommitted(topic string, partitions int, dead map[string]bool) bool {
	e.tb.Helper()
	com := e.committed(topic, partitions)
	got := e.landed()
	ok := true
	for part, c := range com {
		for off := int64(0); off < c; off++ {
			k := kafkaKey(topic, part, off)
			if got[k] == 0 && !dead[k] {
				e.tb.Errorf("offset %d of %s/%d is committed (committed offset %d) but the record is neither in the destination nor dead-lettered", off, topic, part, c)
				ok = false
				break
			}
		}
	}
	return ok
}

// waitCommitted polls until every partition's commit reaches want.
func (e *env) waitCommitted(topic string, want []int64, d time.Duration) {
	e.tb.Helper()
	deadline := time.Now().Add(d)
	for {
		got := e.committed(topic, len(want))
		done := true
		for i := range want {
			if got[i] < want[i] {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			e.tb.Fatalf("topic %s: committed offsets %v, want %v after %v", topic, got, want, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkLanded compares the destination with what was produced.
func (e *env) checkLanded(p *produced) {
	e.tb.Helper()
	got := e.landed()
	var missing, dup, extra []string
	for k := range p.good {
		switch n := got[k]; {
		case n == 0:
			missing = append(missing, k)
		case n > 1 && e.s.Semantics == sink.ExactlyOnce:
			dup = append(dup, fmt.Sprintf("%s x%d", k, n))
		}
	}
	for k := range got {
		if !p.good[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(dup)
	sort.Strings(extra)
	if len(missing) > 0 {
		e.tb.Errorf("%d records lost, e.g. %v", len(missing), head(missing))
	}
	if len(dup) > 0 {
		e.tb.Errorf("%d records held more than once by an exactly-once writer, e.g. %v", len(dup), head(dup))
	}
	if len(extra) > 0 {
		e.tb.Errorf("%d records in the destination that are not good records produced, e.g. %v", len(extra), head(extra))
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// deadLetters reads topic's DLQ: source key -> stage.
func (e *env) deadLetters(topic string, want int) map[string]string {
	e.tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.env.Kafka.Brokers()...), kgo.ConsumeTopics(deadletter.Topic(topic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.tb.Fatalf("dlq client: %v", err)
	}
	defer cl.Close()
	out := map[string]string{}
	deadline := time.Now().Add(15 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			part, _ := strconv.Atoi(h[deadletter.HeaderSourcePartition])
			off, _ := strconv.ParseInt(h[deadletter.HeaderSourceOffset], 10, 64)
			out[kafkaKey(h[deadletter.HeaderSourceTopic], part, off)] = h[deadletter.HeaderStage]
		})
	}
	return out
}
