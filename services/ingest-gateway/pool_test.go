package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hamba "github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
)

// The native API recycles request bodies, record tables and produce
// scratch buffers once a batch is settled. Kafka message keys and
// dead-letter values point straight into the request body and encoded
// values into the produce arena, so recycling too early shows up as
// records carrying another request's bytes. These tests fire many
// requests that differ in every byte and check each record read back.

// poolInvalid says how a record of a pool test request is broken.
type poolInvalid int

const (
	poolValid        poolInvalid = iota
	poolBadEnum                  // value.status not a symbol: 42201, dead-lettered where enabled
	poolBadDay                   // value.day not a date: 42201, dead-lettered where enabled
	poolBadTimestamp             // envelope timestamp: 42201, never dead-lettered
	poolBadPartition             // partition 99 of 3: 40402, never dead-lettered
)

// poolRecord is one record sent, and what the gateway answered for it.
type poolRecord struct {
	i         int    // unique across the test: value id o-<i>
	key       string // "" sends no key
	value     string // the value's JSON text exactly as sent
	partition int32  // explicit partition, -1 for the key hash
	header    bool   // sends headers {"n":"<i>"}
	ts        int64  // explicit timestamp (epoch ms), 0 for none
	invalid   poolInvalid

	// From the response.
	deadLettered bool
	gotPartition int32
	gotOffset    int64 // -1: no place in the answer (async, timed out)
}

// poolRequest is one native HTTP request.
type poolRequest struct {
	n          int
	topic      string
	async      bool
	asyncQuery bool // async via ?async=true instead of the body field
	malformed  bool // body cut short: 400 for the whole request
	recs       []*poolRecord
	status     int
	body       []byte // the response
	err        error
}

// poolValue is orderJSON(i) made unique in length and layout: a tag padded
// to a length that depends on i, and for odd i the id moved last, so a
// string ends right before the value's closing brace.
func poolValue(i int) string {
	v := strings.Replace(orderJSON(i), fmt.Sprintf(`"tags":{"k":"v%d"}`, i), fmt.Sprintf(`"tags":{"k":"v%d","pad":"%s"}`, i, poolPad(i)), 1)
	if i%2 == 1 {
		id := fmt.Sprintf(`"id":"o-%d",`, i)
		v = "{" + strings.TrimPrefix(v, "{"+id) // drop the leading id
		v = strings.TrimSuffix(v, "}") + "," + strings.TrimSuffix(id, ",") + "}"
	}
	return v
}

// poolPad is the tags.pad of poolValue(i).
func poolPad(i int) string { return strings.Repeat(string(rune('a'+i%26)), (i*7)%97) }

// json renders the record as a native API record object.
func (r *poolRecord) json() string {
	var b strings.Builder
	b.WriteString(`{`)
	if r.key != "" {
		b.WriteString(`"key":"` + r.key + `",`)
	}
	if r.partition >= 0 {
		fmt.Fprintf(&b, `"partition":%d,`, r.partition)
	}
	if r.header {
		fmt.Fprintf(&b, `"headers":{"n":"%d"},`, r.i)
	}
	switch {
	case r.invalid == poolBadTimestamp:
		b.WriteString(`"timestamp":"yesterday",`)
	case r.ts != 0:
		fmt.Fprintf(&b, `"timestamp":%d,`, r.ts)
	}
	b.WriteString(`"value":` + r.value + `}`)
	return b.String()
}

func (q *poolRequest) requestBody() []byte {
	b := records(len(q.recs), func(j int) string { return q.recs[j].json() })
	if q.async && !q.asyncQuery {
		b = append([]byte(`{"async":true,`), b[1:]...)
	}
	if q.malformed {
		b = b[:len(b)*2/3]
	}
	return b
}

// dlqable reports whether the record is dead-lettered rather than refused
// when sent to topic.
func (r *poolRecord) dlqable(topic string) bool {
	return topic == "pooldl" && (r.invalid == poolBadEnum || r.invalid == poolBadDay)
}

// wantStatus is the batch status the gateway must answer.
func (q *poolRequest) wantStatus() int {
	if q.malformed {
		return http.StatusBadRequest
	}
	ok := 0
	for _, r := range q.recs {
		if r.invalid == poolValid || r.dlqable(q.topic) {
			ok++
		}
	}
	switch {
	case ok == len(q.recs) && q.async:
		return http.StatusAccepted
	case ok == len(q.recs):
		return http.StatusOK
	case ok > 0:
		return http.StatusMultiStatus
	}
	if q.recs[0].invalid == poolBadPartition { // none made it: the first failure's status
		return http.StatusNotFound
	}
	return http.StatusUnprocessableEntity
}

// poolClient is an HTTP client for 40 concurrent requests (the default
// transport keeps 2 idle connections per host) whose connections are
// closed before the gateway stops.
func poolClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}
}

// postPool sends q from any goroutine (post() fails the test, which only
// the test goroutine may do).
func postPool(client *http.Client, base string, q *poolRequest) {
	url := base + "/v1/topics/" + q.topic + "/records"
	if q.asyncQuery {
		url += "?async=true"
	}
	resp, err := client.Post(url, "application/json", bytes.NewReader(q.requestBody()))
	if err != nil {
		q.err = err
		return
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, q.err = buf.ReadFrom(resp.Body)
	q.status, q.body = resp.StatusCode, buf.Bytes()
}

// checkAnswer compares q's response with what was sent and records each
// record's outcome.
func (q *poolRequest) checkAnswer(t *testing.T) {
	t.Helper()
	if q.err != nil {
		t.Fatalf("request %d: %v", q.n, q.err)
	}
	if want := q.wantStatus(); q.status != want {
		t.Fatalf("request %d (%s, async %v, %d records): status %d, want %d: %.500s", q.n, q.topic, q.async, len(q.recs), q.status, want, q.body)
	}
	if q.malformed {
		return
	}
	var out struct {
		Results []struct {
			Topic        string `json:"topic"`
			Partition    *int32 `json:"partition"`
			Offset       *int64 `json:"offset"`
			Queued       bool   `json:"queued"`
			DeadLettered bool   `json:"dead_lettered"`
			ErrorCode    int    `json:"error_code"`
		} `json:"results"`
	}
	httpResult{status: q.status, body: q.body}.json(t, &out)
	if len(out.Results) != len(q.recs) {
		t.Fatalf("request %d: %d results for %d records", q.n, len(out.Results), len(q.recs))
	}
	for j, res := range out.Results {
		r := q.recs[j]
		r.deadLettered = res.DeadLettered
		bad := func(why string) {
			t.Helper()
			b, _ := json.Marshal(res)
			t.Fatalf("request %d record %d (o-%d, invalid kind %d): %s: %s", q.n, j, r.i, r.invalid, why, b)
		}
		switch {
		case r.invalid != poolValid && !r.dlqable(q.topic):
			want := 42201
			if r.invalid == poolBadPartition {
				want = 40402
			}
			if res.ErrorCode != want || res.Partition != nil || res.Queued {
				bad(fmt.Sprintf("want refused with %d", want))
			}
		case q.async:
			if !res.Queued || res.DeadLettered != r.dlqable(q.topic) || res.Partition != nil {
				bad("want queued")
			}
		default:
			if res.Partition == nil || res.Offset == nil || res.DeadLettered != r.dlqable(q.topic) {
				bad("want produced with partition and offset")
			}
			if r.deadLettered && res.Topic != "pooldl.dlq" {
				bad("want dead-lettered to pooldl.dlq")
			}
			if !r.deadLettered && (res.ErrorCode != 0 || (r.partition >= 0 && *res.Partition != r.partition)) {
				bad(fmt.Sprintf("want produced to partition %d without error", r.partition))
			}
			r.gotPartition, r.gotOffset = *res.Partition, *res.Offset
		}
	}
}

// poolExpect is what must be in one topic after the requests.
type poolExpect struct {
	byID map[int]*poolRecord // records that must be there, by value id
	dlq  bool                // values are the original JSON, not Avro
}

// checkPoolTopic reads topic and checks it holds exactly the expected
// records, each with its own key, value, headers, timestamp and (when the
// answer named one) place.
func checkPoolTopic(t *testing.T, e *env, serde *sr.Serde, topic string, want poolExpect) {
	t.Helper()
	got := readTopic(t, e.kafka.Brokers(), topic, len(want.byID))
	seen := map[int]bool{}
	fails := 0
	for at, c := range got {
		if fails > 20 {
			t.Fatalf("%s: too many wrong records", topic)
		}
		var i int
		if want.dlq {
			var v struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(c.Value, &v); err != nil || !strings.HasPrefix(v.ID, "o-") {
				fails++
				t.Errorf("%s %d/%d: dead letter is not a sent value (%v): %.200q", topic, at[0], at[1], err, c.Value)
				continue
			}
			fmt.Sscanf(v.ID, "o-%d", &i)
		} else {
			var o hOrder
			if err := serde.Decode(c.Value, &o); err != nil {
				fails++
				t.Errorf("%s %d/%d: does not decode (%v): % x", topic, at[0], at[1], err, c.Value)
				continue
			}
			fmt.Sscanf(o.ID, "o-%d", &i)
			failed := t.Failed()
			checkOrder(t, i, &o)
			if o.Tags["pad"] != poolPad(i) {
				t.Errorf("%s o-%d: tags.pad = %q, want %q", topic, i, o.Tags["pad"], poolPad(i))
			}
			if !failed && t.Failed() {
				fails++
			}
		}
		r, ok := want.byID[i]
		if !ok {
			fails++
			t.Errorf("%s %d/%d: o-%d was not acknowledged for this topic (invalid, refused or another topic's)", topic, at[0], at[1], i)
			continue
		}
		if seen[i] {
			fails++
			t.Errorf("%s: o-%d is there twice", topic, i)
		}
		seen[i] = true
		wantKey := r.key
		if want.dlq && r.key != "" {
			wantKey = `"` + r.key + `"` // dead letters keep the key's JSON text
		}
		if string(c.Key) != wantKey {
			fails++
			t.Errorf("%s o-%d: key %q, want %q", topic, i, c.Key, wantKey)
		}
		if want.dlq {
			if string(c.Value) != r.value {
				fails++
				t.Errorf("%s o-%d: dead letter value\n%s\nwant the bytes sent\n%s", topic, i, c.Value, r.value)
			}
			if c.Headers["sluice-source-topic"] != "pooldl" {
				t.Errorf("%s o-%d: sluice-source-topic %q", topic, i, c.Headers["sluice-source-topic"])
			}
		}
		if r.header && c.Headers["n"] != itoa(i) {
			fails++
			t.Errorf("%s o-%d: header n = %q, want %d", topic, i, c.Headers["n"], i)
		}
		if r.ts != 0 && c.Time.UnixMilli() != r.ts {
			fails++
			t.Errorf("%s o-%d: timestamp %d, want %d", topic, i, c.Time.UnixMilli(), r.ts)
		}
		if r.gotOffset >= 0 && (int64(r.gotPartition) != at[0] || r.gotOffset != at[1]) {
			fails++
			t.Errorf("%s o-%d: at %d/%d, but acknowledged at %d/%d", topic, i, at[0], at[1], r.gotPartition, r.gotOffset)
		}
	}
	for i := range want.byID {
		if !seen[i] {
			t.Errorf("%s: acknowledged o-%d is missing", topic, i)
		}
	}
}

// TestPooledBuffersKeepRecordsApart fires concurrent native requests
// (sync and async, 1..300 records, some invalid, some malformed, some to a
// topic with dead letters) whose records all differ, and checks that every
// acknowledged record is in Kafka exactly once with its own key, value,
// headers and timestamp, and that nothing refused is.
func TestPooledBuffersKeepRecordsApart(t *testing.T) {
	t.Parallel()
	// Schemas are registered before the first request; a long latest TTL
	// keeps the registry out of these requests' way.
	e := startEnv(t, nil, nil, "-gateway-dead-letter-topics", "pooldl", "-gateway-produce-timeout", "10s", "-registry-latest-ttl", "1m",
		"-gateway-max-timestamp-age", "0") // the records carry fixed 2020 timestamps
	e.kafka.CreateTopic("pool", 3, nil)
	e.kafka.CreateTopic("pooldl", 3, nil)
	id := e.reg.Register(t, "pool-value", orderSchema)
	if dlID := e.reg.Register(t, "pooldl-value", orderSchema); dlID != id {
		t.Fatalf("same schema got ids %d and %d", id, dlID)
	}

	client := poolClient(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var reqs []*poolRequest
	total := 0
	for n := 0; n < 140; n++ {
		size := 1 + rng.IntN(20)
		switch p := rng.IntN(100); {
		case p < 5:
			size = 200 + rng.IntN(101)
		case p < 30:
			size = 20 + rng.IntN(80)
		}
		q := &poolRequest{n: n, topic: "pool"}
		if rng.IntN(5) == 0 {
			q.topic = "pooldl"
		}
		kind := rng.IntN(100) // 0-59 valid, 60-84 mixed, 85-92 all invalid, 93-99 malformed
		// Async only to pool: this test is about bytes, not about how an
		// async answer reports dead letters.
		q.async = q.topic == "pool" && kind < 85 && rng.IntN(3) == 0
		q.asyncQuery = q.async && rng.IntN(2) == 0
		q.malformed = kind >= 93
		for j := 0; j < size; j++ {
			i := n*1000 + j
			r := &poolRecord{i: i, value: poolValue(i), partition: -1, gotOffset: -1, header: i%4 == 0}
			if i%5 != 0 {
				r.key = fmt.Sprintf("k%d-%d-%s", n, j, strings.Repeat("x", i%13))
			}
			if i%7 == 0 {
				r.partition = int32(i % 3)
			}
			if i%6 == 0 {
				r.ts = 1_600_000_000_000 + int64(i)
			}
			switch {
			case kind >= 85 && kind < 93:
				r.invalid = poolBadEnum + poolInvalid(j%2)
			case kind >= 60 && kind < 85 && rng.IntN(4) == 0:
				r.invalid = poolBadEnum + poolInvalid(rng.IntN(4))
			}
			switch r.invalid {
			case poolBadEnum:
				r.value = strings.Replace(r.value, `"status":"PAID"`, `"status":"LOST"`, 1)
			case poolBadDay:
				r.value = strings.Replace(r.value, `"day":"2024-05-01"`, `"day":"May 1st"`, 1)
			case poolBadPartition:
				r.partition = 99
			}
			q.recs = append(q.recs, r)
		}
		total += size
		reqs = append(reqs, q)
	}

	start := time.Now()
	work := make(chan *poolRequest)
	var wg sync.WaitGroup
	for w := 0; w < 40; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := range work {
				postPool(client, e.httpURL, q)
			}
		}()
	}
	for _, q := range reqs {
		work <- q
	}
	close(work)
	wg.Wait()
	t.Logf("%d requests, %d records, answered in %v", len(reqs), total, time.Since(start).Round(time.Millisecond))

	want := map[string]poolExpect{
		"pool":       {byID: map[int]*poolRecord{}},
		"pooldl":     {byID: map[int]*poolRecord{}},
		"pooldl.dlq": {byID: map[int]*poolRecord{}, dlq: true},
	}
	statuses := map[int]int{}
	for _, q := range reqs {
		q.checkAnswer(t)
		statuses[q.status]++
		if q.malformed {
			continue
		}
		for _, r := range q.recs {
			switch {
			case r.invalid == poolValid:
				want[q.topic].byID[r.i] = r
			case r.dlqable(q.topic):
				want["pooldl.dlq"].byID[r.i] = r
			}
		}
	}
	t.Logf("statuses %v; expecting %d + %d records and %d dead letters", statuses, len(want["pool"].byID), len(want["pooldl"].byID), len(want["pooldl.dlq"].byID))
	for _, s := range []int{200, 202, 207, 400, 422} {
		if statuses[s] == 0 {
			t.Errorf("no request answered %d: the mix does not cover it", s)
		}
	}
	serde := decoder(t, id, orderSchema)
	for topic, w := range want {
		checkPoolTopic(t, e, serde, topic, w)
	}
}

// TestPooledBuffersTimedOutWritesKeepTheirBytes stalls Kafka's answer to
// the first produce for one topic until the gateway has answered 503 to
// the requests waiting on it, then runs requests that take and scribble
// over pooled buffers (malformed bodies, invalid records, valid records to
// another topic), then lets Kafka answer: the timed-out records written
// late must still carry their own bytes.
func TestPooledBuffersTimedOutWritesKeepTheirBytes(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil, "-gateway-produce-timeout", "3s", "-registry-latest-ttl", "1m",
		"-gateway-max-timestamp-age", "0") // the records carry fixed 2020 timestamps
	e.kafka.CreateTopic("stall", 1, nil)
	e.kafka.CreateTopic("busy", 1, nil)
	id := e.reg.Register(t, "stall-value", orderSchema)
	e.reg.Register(t, "busy-value", orderSchema)

	client := poolClient(t)
	mk := func(n int, topic string, size int, invalid poolInvalid) *poolRequest {
		q := &poolRequest{n: n, topic: topic}
		for j := 0; j < size; j++ {
			i := n*1000 + j
			r := &poolRecord{i: i, key: fmt.Sprintf("k%d-%d-%s", n, j, strings.Repeat("y", i%17)), value: poolValue(i), partition: -1, gotOffset: -1, header: true, invalid: invalid}
			if invalid == poolBadEnum {
				r.value = strings.Replace(r.value, `"status":"PAID"`, `"status":"LOST"`, 1)
			}
			q.recs = append(q.recs, r)
		}
		return q
	}
	stallWant := poolExpect{byID: map[int]*poolRecord{}}
	busyWant := poolExpect{byID: map[int]*poolRecord{}}
	// Warm the topic and schema caches before stalling.
	for n, topic := range []string{"stall", "busy"} {
		q := mk(n, topic, 3, poolValid)
		postPool(client, e.httpURL, q)
		q.checkAnswer(t)
		for _, r := range q.recs {
			map[string]poolExpect{"stall": stallWant, "busy": busyWant}[topic].byID[r.i] = r
		}
	}

	var stalled atomic.Bool
	stalledCh, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	wake := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(wake)
	e.kafka.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.KeepControl()
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			if tp.Topic == "stall" && stalled.CompareAndSwap(false, true) {
				close(stalledCh)
				e.kafka.SleepControl(func() { <-release })
				break
			}
		}
		return nil, nil, false
	})

	// Requests whose writes time out: 503, records "may still be written".
	// Here they all are, once released: the stall is far shorter than the
	// producer's own request timeout, so nothing is retried or duplicated.
	var timedOut []*poolRequest
	var wg sync.WaitGroup
	for n := 10; n < 16; n++ {
		q := mk(n, "stall", 40+(n*37)%160, poolValid)
		timedOut = append(timedOut, q)
		wg.Add(1)
		go func() { defer wg.Done(); postPool(client, e.httpURL, q) }()
	}
	wg.Wait()
	select {
	case <-stalledCh:
	default:
		t.Fatal("no produce for topic stall reached the broker")
	}
	for _, q := range timedOut {
		if q.err != nil || q.status != http.StatusServiceUnavailable || !strings.Contains(string(q.body), "may still be written") {
			t.Fatalf("request %d while Kafka stalls: %d %v %.300s", q.n, q.status, q.err, q.body)
		}
		for _, r := range q.recs {
			stallWant.byID[r.i] = r
		}
	}

	// Requests that take pooled buffers and write over them while the
	// writer still holds the timed-out records.
	var pressure []*poolRequest
	for n := 100; n < 160; n++ {
		size := 40 + (n*53)%160
		var q *poolRequest
		switch n % 3 {
		case 0:
			q = mk(n, "stall", size, poolValid)
			q.malformed = true
		case 1:
			q = mk(n, "stall", size, poolBadEnum)
		default:
			q = mk(n, "busy", size, poolValid)
		}
		pressure = append(pressure, q)
	}
	work := make(chan *poolRequest)
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := range work {
				postPool(client, e.httpURL, q)
			}
		}()
	}
	for _, q := range pressure {
		work <- q
	}
	close(work)
	wg.Wait()
	for _, q := range pressure {
		q.checkAnswer(t)
		if q.topic == "busy" {
			for _, r := range q.recs {
				busyWant.byID[r.i] = r
			}
		}
	}

	wake() // Kafka answers the stalled produce now
	serde := decoder(t, id, orderSchema)
	checkPoolTopic(t, e, serde, "stall", stallWant)
	checkPoolTopic(t, e, serde, "busy", busyWant)
}

// The gRPC API pools too: a Produce request is decoded into a pooled copy
// of the received message, every record's key and value pointing into it,
// freed once the batch is settled; the per-request record table is
// reused at once. Raw keys and dead-letter values go to the Kafka writer
// as those pointers, so freeing too early shows up as records carrying
// another call's bytes.

// gpoolInvalid says how a record of a gRPC pool test call is broken.
type gpoolInvalid int

const (
	gpoolValid        gpoolInvalid = iota
	gpoolWrongType                 // JSON items[0].qty a string; binary status written as a string: 42201, dead-lettered where enabled
	gpoolBadValue                  // JSON status not a symbol; binary one byte after the datum: 42201, dead-lettered where enabled
	gpoolBadPartition              // partition 99 of 3: 40402, never dead-lettered
)

// gpoolRecord is one record sent over gRPC, and what the gateway answered.
type gpoolRecord struct {
	i         int    // unique across the test: value id o-<i>
	key       []byte // raw key, nil for none
	value     []byte // as sent: JSON text or Avro binary
	binary    bool   // value is Avro binary
	partition int32  // explicit partition, -1 for the key hash
	header    bool   // sends header n=<i> (takes the copying decoder)
	ts        int64  // explicit timestamp (epoch ms, takes the copying decoder), 0 for none
	invalid   gpoolInvalid

	gotPartition int32 // from a sync answer
	gotOffset    int64 // -1: no place in the answer (async, timed out)
}

// gpoolCall is one Produce call.
type gpoolCall struct {
	n         int
	topic     string
	async     bool
	binary    bool  // VALUE_FORMAT_AVRO_BINARY, else VALUE_FORMAT_JSON
	schemaID  int32 // sent as schema_id when set
	malformed bool  // the message ends in a record longer than what is left: Internal, nothing produced
	recs      []*gpoolRecord
	resp      *ingestv1.ProduceResponse
	err       error
}

// gpoolAvro encodes poolValue(i)'s order with hamba/avro (the independent
// encoder); twin is orderSchema with status a string, for values of the
// wrong type.
type gpoolAvro struct{ schema, twin hamba.Schema }

func newGPoolAvro(t testing.TB) *gpoolAvro {
	t.Helper()
	s, err := hamba.Parse(orderSchema)
	if err != nil {
		t.Fatal(err)
	}
	enum := `{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED"]}`
	if !strings.Contains(orderSchema, enum) {
		t.Fatal("orderSchema's status is not the enum the twin schema replaces")
	}
	twin, err := hamba.Parse(strings.Replace(orderSchema, enum, `"string"`, 1))
	if err != nil {
		t.Fatal(err)
	}
	return &gpoolAvro{schema: s, twin: twin}
}

// gpoolOrder is poolValue(i) as hamba's Go value.
func gpoolOrder(i int) *hOrder {
	o := &hOrder{
		ID:      fmt.Sprintf("o-%d", i),
		Tags:    map[string]string{"k": fmt.Sprintf("v%d", i), "pad": poolPad(i)},
		Status:  "PAID",
		Created: time.Date(2024, 5, 1, 12, 0, 0, (i%1000)*1e6, time.UTC),
		Day:     time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		Amount:  big.NewRat(int64(i)*100+25, 100),
		Note:    int64(i),
	}
	email, ref := fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("6f1c8a7e-3b2d-4c5e-9f00-1122334455%02d", i%100)
	o.Customer.Name, o.Customer.Email, o.Ref = fmt.Sprintf("c%d", i), &email, &ref
	o.Items = append(o.Items, struct {
		SKU   string  `avro:"sku"`
		Qty   int     `avro:"qty"`
		Price float64 `avro:"price"`
	}{fmt.Sprintf("s%d", i), i%7 + 1, float64(i) + 0.5})
	return o
}

func (a *gpoolAvro) encode(t testing.TB, s hamba.Schema, i int) []byte {
	b, err := hamba.Marshal(s, gpoolOrder(i))
	if err != nil {
		t.Fatalf("hamba encoding order %d: %v", i, err)
	}
	return b
}

// value is record r's value, Avro binary or JSON, broken as r.invalid says.
func (a *gpoolAvro) value(t testing.TB, r *gpoolRecord, binary bool) []byte {
	r.binary = binary
	if !binary {
		v := poolValue(r.i)
		switch r.invalid {
		case gpoolWrongType:
			v = strings.Replace(v, fmt.Sprintf(`"qty":%d,`, r.i%7+1), `"qty":"many",`, 1)
		case gpoolBadValue:
			v = strings.Replace(v, `"status":"PAID"`, `"status":"LOST"`, 1)
		}
		return []byte(v)
	}
	switch r.invalid {
	case gpoolWrongType:
		return a.encode(t, a.twin, r.i) // "PAID" where an enum index belongs: index 4 of 3
	case gpoolBadValue:
		return append(a.encode(t, a.schema, r.i), byte(r.i))
	}
	return a.encode(t, a.schema, r.i)
}

// gpoolDeadLetterTopics are the gRPC pool tests' topics with dead letters.
var gpoolDeadLetterTopics = map[string]bool{"gpooldl": true, "gstall": true}

// dlqable reports whether the record is dead-lettered rather than refused
// when sent to topic.
func (r *gpoolRecord) dlqable(topic string) bool {
	return gpoolDeadLetterTopics[topic] && (r.invalid == gpoolWrongType || r.invalid == gpoolBadValue)
}

// field is the error field the answer must name for an invalid record.
func (r *gpoolRecord) field(binary bool) string {
	switch {
	case r.invalid == gpoolBadPartition:
		return "partition"
	case binary:
		return "value"
	case r.invalid == gpoolWrongType:
		return "value.items[0].qty"
	}
	return "value.status"
}

func (q *gpoolCall) request() *ingestv1.ProduceRequest {
	req := &ingestv1.ProduceRequest{Topic: q.topic, SchemaId: q.schemaID, Async: q.async, Format: ingestv1.ValueFormat_VALUE_FORMAT_JSON}
	if q.binary {
		req.Format = ingestv1.ValueFormat_VALUE_FORMAT_AVRO_BINARY
	}
	for _, r := range q.recs {
		rec := &ingestv1.Record{Key: r.key, Value: r.value}
		if r.partition >= 0 {
			rec.Partition = proto.Int32(r.partition)
		}
		if r.header {
			rec.Headers = map[string][]byte{"n": []byte(itoa(r.i))}
		}
		if r.ts != 0 {
			rec.Timestamp = timestamppb.New(time.UnixMilli(r.ts))
		}
		req.Records = append(req.Records, rec)
	}
	return req
}

// rawCodec sends and receives messages as they are, for malformed calls.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// call sends q from any goroutine.
func (q *gpoolCall) call(cc *grpc.ClientConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if q.malformed {
		b, err := proto.Marshal(q.request())
		if err != nil {
			q.err = err
			return
		}
		// A record field longer than what is left of the message.
		b = append(b, 0x2a, 0xff, 0xff, 0x03)
		var out []byte
		q.err = cc.Invoke(ctx, ingestv1.IngestService_Produce_FullMethodName, &b, &out, grpc.ForceCodecV2(rawCodec{}))
		return
	}
	q.resp, q.err = ingestv1.NewIngestServiceClient(cc).Produce(ctx, q.request())
}

// gpoolTally counts the answers a mix covered.
type gpoolTally map[string]int

// checkAnswer compares q's response with what was sent and records each
// record's place.
func (q *gpoolCall) checkAnswer(t *testing.T, schemaID int32, tally gpoolTally) {
	t.Helper()
	if q.malformed {
		if status.Code(q.err) != codes.Internal {
			t.Fatalf("call %d (malformed): %v, want Internal", q.n, q.err)
		}
		tally["malformed"]++
		return
	}
	if q.err != nil {
		t.Fatalf("call %d (%s, async %v, binary %v, %d records): %v", q.n, q.topic, q.async, q.binary, len(q.recs), q.err)
	}
	if len(q.resp.Results) != len(q.recs) {
		t.Fatalf("call %d: %d results for %d records", q.n, len(q.resp.Results), len(q.recs))
	}
	for j, res := range q.resp.Results {
		r := q.recs[j]
		bad := func(why string) {
			t.Helper()
			t.Fatalf("call %d (%s, async %v, binary %v) record %d (o-%d, invalid kind %d): %s: %v", q.n, q.topic, q.async, q.binary, j, r.i, r.invalid, why, res)
		}
		if res.SchemaId != schemaID {
			bad(fmt.Sprintf("want schema id %d", schemaID))
		}
		placed := res.Partition != 0 || res.Offset != 0 || res.Timestamp != nil
		switch {
		case r.invalid != gpoolValid:
			code := int32(42201)
			if r.invalid == gpoolBadPartition {
				code = 40402
			}
			if res.Error == nil || res.Error.Code != code || res.Error.Field != r.field(q.binary) {
				bad(fmt.Sprintf("want error %d at %s", code, r.field(q.binary)))
			}
			if res.DeadLettered != r.dlqable(q.topic) {
				bad(fmt.Sprintf("want dead_lettered %v", r.dlqable(q.topic)))
			}
			if !res.DeadLettered || q.async {
				if placed {
					bad("want no place")
				}
				if res.DeadLettered {
					tally["async dead letter"]++
				} else {
					tally["refused"]++
				}
				continue
			}
			if res.Timestamp == nil {
				bad("want the dead letter's place")
			}
			tally["dead letter"]++
		case res.Error != nil || res.DeadLettered:
			bad("want produced")
		case q.async:
			if placed {
				bad("want queued, with no place")
			}
			tally["queued"]++
			continue
		default:
			if res.Timestamp == nil || (r.partition >= 0 && res.Partition != r.partition) {
				bad(fmt.Sprintf("want produced to partition %d", r.partition))
			}
			tally["produced"]++
		}
		if r.ts != 0 && !res.Timestamp.AsTime().Equal(time.UnixMilli(r.ts)) {
			bad(fmt.Sprintf("want timestamp %d", r.ts))
		}
		r.gotPartition, r.gotOffset = res.Partition, res.Offset
	}
}

// checkGPoolTopic reads topic and checks it holds exactly the records of
// byID, each with its own key, value, headers, timestamp and (when the
// answer named one) place; records sent without a timestamp must carry a
// receive time after start. Dead letters (dlq) must be the bytes sent.
func checkGPoolTopic(t *testing.T, e *env, serde *sr.Serde, topic string, byID map[int]*gpoolRecord, dlq bool, start time.Time) {
	t.Helper()
	got := readTopic(t, e.kafka.Brokers(), topic, len(byID))
	byValue := map[string]*gpoolRecord{}
	for _, r := range byID {
		byValue[string(r.value)] = r
	}
	seen := map[int]bool{}
	fails := 0
	for at, c := range got {
		if fails > 20 {
			t.Fatalf("%s: too many wrong records", topic)
		}
		var r *gpoolRecord
		if dlq {
			if r = byValue[string(c.Value)]; r == nil {
				fails++
				t.Errorf("%s %d/%d: dead letter is not a value sent to %s as dead letter: %.200q", topic, at[0], at[1], topic, c.Value)
				continue
			}
			if want := strings.TrimSuffix(topic, ".dlq"); c.Headers["sluice-source-topic"] != want {
				t.Errorf("%s o-%d: sluice-source-topic %q, want %q", topic, r.i, c.Headers["sluice-source-topic"], want)
			}
		} else {
			var o hOrder
			if err := serde.Decode(c.Value, &o); err != nil {
				fails++
				t.Errorf("%s %d/%d: does not decode (%v): % x", topic, at[0], at[1], err, c.Value)
				continue
			}
			var i int
			fmt.Sscanf(o.ID, "o-%d", &i)
			failed := t.Failed()
			checkOrder(t, i, &o)
			if o.Tags["pad"] != poolPad(i) {
				t.Errorf("%s o-%d: tags.pad = %q, want %q", topic, i, o.Tags["pad"], poolPad(i))
			}
			if !failed && t.Failed() {
				fails++
			}
			if r = byID[i]; r == nil {
				fails++
				t.Errorf("%s %d/%d: o-%d was not acknowledged for this topic (invalid, refused or another topic's)", topic, at[0], at[1], i)
				continue
			}
			// Binary values are written as sent, after the framing.
			if r.binary && !bytes.Equal(c.Value[5:], r.value) {
				fails++
				t.Errorf("%s o-%d: Avro binary\n% x\nwant the bytes sent\n% x", topic, i, c.Value[5:], r.value)
			}
		}
		if seen[r.i] {
			fails++
			t.Errorf("%s: o-%d is there twice", topic, r.i)
		}
		seen[r.i] = true
		if !bytes.Equal(c.Key, r.key) {
			fails++
			t.Errorf("%s o-%d: key %q, want %q", topic, r.i, c.Key, r.key)
		}
		if r.header && c.Headers["n"] != itoa(r.i) {
			fails++
			t.Errorf("%s o-%d: header n = %q, want %d", topic, r.i, c.Headers["n"], r.i)
		}
		if !r.header && !dlq && len(c.Headers) != 0 {
			fails++
			t.Errorf("%s o-%d: headers %v, want none", topic, r.i, c.Headers)
		}
		if r.ts != 0 && c.Time.UnixMilli() != r.ts {
			fails++
			t.Errorf("%s o-%d: timestamp %d, want %d", topic, r.i, c.Time.UnixMilli(), r.ts)
		}
		if r.ts == 0 && c.Time.Before(start.Truncate(time.Millisecond)) {
			fails++
			t.Errorf("%s o-%d: timestamp %v, want the receive time (sent without one after %v)", topic, r.i, c.Time, start)
		}
		if r.gotOffset >= 0 && (int64(r.gotPartition) != at[0] || r.gotOffset != at[1]) {
			fails++
			t.Errorf("%s o-%d: at %d/%d, but acknowledged at %d/%d", topic, r.i, at[0], at[1], r.gotPartition, r.gotOffset)
		}
	}
	for i := range byID {
		if !seen[i] {
			t.Errorf("%s: acknowledged o-%d is missing", topic, i)
		}
	}
}

// gpoolKey is a raw key unique to record j of call n, of a length that
// varies with i, ending in bytes that are not UTF-8.
func gpoolKey(n, j, i int) []byte {
	return append([]byte(fmt.Sprintf("g%d-%d-%s", n, j, strings.Repeat(string(rune('A'+i%26)), i%31))), byte(i), 0xfe)
}

// gpoolConns opens n connections to the gateway's gRPC port.
func gpoolConns(t *testing.T, e *env, n int) []*grpc.ClientConn {
	conns := make([]*grpc.ClientConn, n)
	for c := range conns {
		conns[c] = grpcConn(t, e.grpc)
	}
	return conns
}

// runGPool sends calls over conns from workers goroutines.
func runGPool(conns []*grpc.ClientConn, workers int, calls []*gpoolCall) {
	work := make(chan *gpoolCall)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := range work {
				q.call(conns[w%len(conns)])
			}
		}()
	}
	for _, q := range calls {
		work <- q
	}
	close(work)
	wg.Wait()
}

// TestPooledGRPCBuffersKeepRecordsApart fires concurrent gRPC Produce
// calls over several connections (sync and async, JSON and Avro binary,
// 1..300 records, most on the pooled decoder and some with headers or
// timestamps on the copying one, some invalid, some malformed, some to a
// topic with dead letters) whose records all differ, and checks every
// answer and that every acknowledged record is in Kafka exactly once with
// its own key, value, headers and timestamp, and that nothing refused is.
func TestPooledGRPCBuffersKeepRecordsApart(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil, "-gateway-dead-letter-topics", "gpooldl", "-gateway-produce-timeout", "10s", "-registry-latest-ttl", "1m",
		"-gateway-max-timestamp-age", "0") // the records carry fixed 2020 timestamps
	e.kafka.CreateTopic("gpool", 3, nil)
	e.kafka.CreateTopic("gpooldl", 3, nil)
	id := e.reg.Register(t, "gpool-value", orderSchema)
	if dlID := e.reg.Register(t, "gpooldl-value", orderSchema); dlID != id {
		t.Fatalf("same schema got ids %d and %d", id, dlID)
	}
	enc := newGPoolAvro(t)

	rng := rand.New(rand.NewPCG(3, 4))
	var calls []*gpoolCall
	total := 0
	for n := 0; n < 140; n++ {
		size := 1 + rng.IntN(20)
		switch p := rng.IntN(100); {
		case p < 5:
			size = 200 + rng.IntN(101)
		case p < 30:
			size = 20 + rng.IntN(80)
		}
		q := &gpoolCall{n: n, topic: "gpool", binary: rng.IntN(2) == 0}
		if rng.IntN(4) == 0 {
			q.topic = "gpooldl"
		}
		if rng.IntN(4) == 0 {
			q.schemaID = int32(id)
		}
		kind := rng.IntN(100) // 0-59 valid, 60-84 mixed, 85-92 all invalid, 93-99 malformed
		q.malformed = kind >= 93
		q.async = !q.malformed && rng.IntN(3) == 0
		rich := rng.IntN(10) < 3 // headers and timestamps: the copying decoder
		for j := 0; j < size; j++ {
			i := n*1000 + j
			r := &gpoolRecord{i: i, partition: -1, gotOffset: -1}
			if i%9 != 0 {
				r.key = gpoolKey(n, j, i)
			}
			if i%7 == 0 {
				r.partition = int32(i % 3)
			}
			if rich {
				r.header = i%3 == 0
				if i%4 == 0 {
					r.ts = 1_600_000_000_000 + int64(i)
				}
			}
			switch {
			case kind >= 85 && kind < 93:
				r.invalid = gpoolWrongType + gpoolInvalid(j%2)
			case kind >= 60 && kind < 85 && rng.IntN(4) == 0:
				r.invalid = gpoolWrongType + gpoolInvalid(rng.IntN(3))
			}
			if r.invalid == gpoolBadPartition {
				r.partition = 99
			}
			r.value = enc.value(t, r, q.binary)
			q.recs = append(q.recs, r)
		}
		total += size
		calls = append(calls, q)
	}

	start := time.Now()
	runGPool(gpoolConns(t, e, 6), 40, calls)
	t.Logf("%d calls, %d records, answered in %v", len(calls), total, time.Since(start).Round(time.Millisecond))

	want := map[string]map[int]*gpoolRecord{"gpool": {}, "gpooldl": {}, "gpooldl.dlq": {}}
	tally := gpoolTally{}
	for _, q := range calls {
		q.checkAnswer(t, int32(id), tally)
		if q.malformed {
			continue
		}
		for _, r := range q.recs {
			switch {
			case r.invalid == gpoolValid:
				want[q.topic][r.i] = r
			case r.dlqable(q.topic):
				want["gpooldl.dlq"][r.i] = r
				if q.binary {
					tally["binary dead letter"]++
				}
			}
		}
	}
	t.Logf("answers %v; expecting %d + %d records and %d dead letters", tally, len(want["gpool"]), len(want["gpooldl"]), len(want["gpooldl.dlq"]))
	for _, k := range []string{"produced", "queued", "dead letter", "async dead letter", "binary dead letter", "refused", "malformed"} {
		if tally[k] == 0 {
			t.Errorf("no %s answer: the mix does not cover it", k)
		}
	}
	serde := decoder(t, id, orderSchema)
	for topic, w := range want {
		checkGPoolTopic(t, e, serde, topic, w, strings.HasSuffix(topic, ".dlq"), start)
	}
}

// TestPooledGRPCTimedOutWritesKeepTheirBytes stalls Kafka's answer to the
// first produce for one topic until the gateway has answered the gRPC
// calls waiting on it (per-record 50301, "may still be written"), then
// runs calls that take and scribble over pooled buffers (malformed
// messages, refused records, valid records to another topic on the pooled
// and the copying decoder), then lets Kafka answer: the timed-out records
// and dead letters written late must still carry their own bytes.
func TestPooledGRPCTimedOutWritesKeepTheirBytes(t *testing.T) {
	t.Parallel()
	start := time.Now()
	e := startEnv(t, nil, nil, "-gateway-produce-timeout", "3s", "-registry-latest-ttl", "1m", "-gateway-dead-letter-topics", "gstall",
		"-gateway-max-timestamp-age", "0") // the records carry fixed 2020 timestamps
	e.kafka.CreateTopic("gstall", 1, nil)
	e.kafka.CreateTopic("gbusy", 1, nil)
	id := e.reg.Register(t, "gstall-value", orderSchema)
	e.reg.Register(t, "gbusy-value", orderSchema)
	enc := newGPoolAvro(t)
	conns := gpoolConns(t, e, 4)

	// mk builds call n; every invalidEvery-th record (0: none) is invalid,
	// rich records have headers and timestamps.
	mk := func(n int, topic string, size, invalidEvery int, rich bool) *gpoolCall {
		q := &gpoolCall{n: n, topic: topic, binary: n%2 == 0}
		for j := 0; j < size; j++ {
			i := n*1000 + j
			r := &gpoolRecord{i: i, key: gpoolKey(n, j, i), partition: -1, gotOffset: -1, header: rich && j%2 == 0}
			if rich && j%3 == 0 {
				r.ts = 1_600_000_000_000 + int64(i)
			}
			if invalidEvery > 0 && j%invalidEvery == 0 {
				r.invalid = gpoolWrongType + gpoolInvalid(j/invalidEvery%2)
			}
			r.value = enc.value(t, r, q.binary)
			q.recs = append(q.recs, r)
		}
		return q
	}
	want := map[string]map[int]*gpoolRecord{"gstall": {}, "gstall.dlq": {}, "gbusy": {}}
	expect := func(q *gpoolCall) {
		for _, r := range q.recs {
			switch {
			case r.invalid == gpoolValid:
				want[q.topic][r.i] = r
			case r.dlqable(q.topic):
				want[q.topic+".dlq"][r.i] = r
			}
		}
	}
	tally := gpoolTally{}
	// Warm the topic, dead-letter topic and schema caches before stalling.
	for n, topic := range []string{"gstall", "gbusy"} {
		q := mk(n, topic, 3, 3, false)
		q.call(conns[0])
		q.checkAnswer(t, int32(id), tally)
		expect(q)
	}

	// The calls run while the writer holds timed-out records, built
	// beforehand: a garbage collection between the timed-out answers and
	// these calls would empty the pools.
	var pressure []*gpoolCall
	for n := 100; n < 220; n++ {
		size := 40 + (n*53)%160
		var q *gpoolCall
		switch n % 4 {
		case 0:
			q = mk(n, "gstall", size, 0, false)
			q.malformed = true
		case 1:
			q = mk(n, "gbusy", size, 1, false) // all refused: nothing written, freed at once
		case 2:
			q = mk(n, "gbusy", size, 0, false)
		default:
			q = mk(n, "gbusy", size, 0, true) // the copying decoder
		}
		pressure = append(pressure, q)
	}

	var stalled atomic.Bool
	stalledCh, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	wake := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(wake)
	e.kafka.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.kafka.KeepControl()
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			if tp.Topic == "gstall" && stalled.CompareAndSwap(false, true) {
				close(stalledCh)
				e.kafka.SleepControl(func() { <-release })
				break
			}
		}
		return nil, nil, false
	})

	// Calls whose writes time out: every record answered 50301 "may still
	// be written" (a dead letter may have been acknowledged already, on
	// its own topic). Here they all are written once released: the stall
	// is far shorter than the writer's own timeout, so nothing is retried.
	// The first call's records are in the stalled produce, already
	// encoded; the others' wait in the writer, pointing into their calls'
	// buffers (or, for the calls with headers, into copies), until Kafka
	// answers.
	var timedOut []*gpoolCall
	for n := 10; n < 16; n++ {
		q := mk(n, "gstall", 40+(n*37)%160, 10, n%3 == 0)
		timedOut = append(timedOut, q)
		expect(q)
	}
	first := make(chan struct{})
	go func() { defer close(first); timedOut[0].call(conns[0]) }()
	select {
	case <-stalledCh:
	case <-first:
		t.Fatal("the first call to gstall was answered before its produce reached the broker")
	case <-time.After(10 * time.Second):
		t.Fatal("no produce for topic gstall reached the broker within 10s")
	}
	runGPool(conns, len(timedOut)-1, timedOut[1:])
	<-first
	for _, q := range timedOut {
		if q.err != nil || len(q.resp.GetResults()) != len(q.recs) {
			t.Fatalf("call %d while Kafka stalls: %v, %d results for %d records", q.n, q.err, len(q.resp.GetResults()), len(q.recs))
		}
		for j, res := range q.resp.Results {
			r := q.recs[j]
			switch {
			case res.Error != nil && res.Error.Code == 50301 && strings.Contains(res.Error.Message, "may still be written") && !res.DeadLettered && res.Timestamp == nil:
				tally["timed out"]++
			case r.invalid != gpoolValid && res.DeadLettered && res.Error.GetCode() == 42201 && res.Timestamp != nil:
				r.gotPartition, r.gotOffset = res.Partition, res.Offset
				tally["dead letter"]++
			default:
				t.Fatalf("call %d record %d (o-%d, invalid kind %d) while Kafka stalls: %v", q.n, j, r.i, r.invalid, res)
			}
		}
	}

	// Calls that take pooled buffers and write over them while the
	// writer still holds the timed-out records.
	runGPool(conns, 20, pressure)
	for _, q := range pressure {
		q.checkAnswer(t, int32(id), tally)
		if !q.malformed {
			expect(q)
		}
	}
	t.Logf("answers %v", tally)
	for _, k := range []string{"timed out", "produced", "refused", "malformed"} {
		if tally[k] == 0 {
			t.Errorf("no %s answer: the mix does not cover it", k)
		}
	}

	wake() // Kafka answers the stalled produce now
	serde := decoder(t, id, orderSchema)
	for topic, w := range want {
		checkGPoolTopic(t, e, serde, topic, w, strings.HasSuffix(topic, ".dlq"), start)
	}
}
