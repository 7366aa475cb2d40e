package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sr"
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
	e := startEnv(t, nil, nil, "-gateway-dead-letter-topics", "pooldl", "-gateway-produce-timeout", "10s", "-registry-latest-ttl", "1m")
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
	e := startEnv(t, nil, nil, "-gateway-produce-timeout", "500ms", "-registry-latest-ttl", "1m")
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
