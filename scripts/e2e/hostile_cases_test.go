package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/pkg/avro/avrogen"
	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/scripts/loadgen/load"
)

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// nestedArrays is an array of arrays ... of int, n levels deep.
func nestedArrays(n int) string {
	return strings.Repeat(`{"type":"array","items":`, n) + `"int"` + strings.Repeat("}", n)
}

// grpcClient dials the gateway's gRPC API.
func (h *hostile) grpcClient(t *testing.T) ingestv1.IngestServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(h.gwGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return ingestv1.NewIngestServiceClient(conn)
}

func withKey(ctx context.Context, secret string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)
}

// hostileCases are the named cases; class is the issue 13 section.
var hostileCases = []hostileCase{
	// 1. Bounded work for any schema and any record: the registry.
	{"registry/shared-named-types-refused", "1 bounded work", func(t *testing.T, h *hostile) {
		start := time.Now()
		a := h.registerSchema(t, "deep-value", avrogen.SharedChain(22, `{"name":"x","type":"int"}`))
		wantJSONError(t, a, http.StatusUnprocessableEntity, 42201, "schema expands to 12582911 types", "SCHEMA_REGISTRY_MAX_SCHEMA_TYPES")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("refusing the probe took %s", d)
		}
	}},
	{"registry/nesting-depth-refused", "1 bounded work", func(t *testing.T, h *hostile) {
		wantJSONError(t, h.registerSchema(t, "nested-value", nestedArrays(65)), http.StatusUnprocessableEntity, 42201,
			"nests 65 levels deep", "SCHEMA_REGISTRY_MAX_SCHEMA_DEPTH")
		if a := h.registerSchema(t, "nested-ok-value", nestedArrays(63)); a.status != http.StatusOK {
			t.Fatalf("63 nested arrays (depth 64) refused: %s", a)
		}
	}},
	{"registry/references-over-limit-refused", "1 bounded work", func(t *testing.T, h *hostile) {
		// lib0 holds an int; lib_k uses lib_{k-1} twice through a reference.
		if a := h.registerSchema(t, "lib0", `{"type":"record","name":"Lib0","namespace":"com.x","fields":[{"name":"v","type":"int"}]}`); a.status != http.StatusOK {
			t.Fatalf("lib0: %s", a)
		}
		for k := 1; k <= 16; k++ {
			prev := fmt.Sprintf("com.x.Lib%d", k-1)
			schema := fmt.Sprintf(`{"type":"record","name":"Lib%d","namespace":"com.x","fields":[{"name":"a","type":%q},{"name":"b","type":%q}]}`, k, prev, prev)
			a := h.registerSchema(t, "lib"+strconv.Itoa(k), schema, map[string]any{"name": prev, "subject": "lib" + strconv.Itoa(k-1), "version": 1})
			if k < 16 {
				if a.status != http.StatusOK {
					t.Fatalf("lib%d (under the limit) refused: %s", k, a)
				}
				continue
			}
			wantJSONError(t, a, http.StatusUnprocessableEntity, 42201, "SCHEMA_REGISTRY_MAX_SCHEMA_TYPES")
		}
	}},
	// 2. A record's schema belongs to its topic: the registry's IMPORT ids.
	{"registry/import-id-outside-wire-range", "2 schema ownership", func(t *testing.T, h *hostile) {
		a := h.do(t, http.MethodPut, h.reg.URL()+"/mode/imported-value", "application/json", strings.NewReader(`{"mode":"IMPORT"}`))
		if a.status != http.StatusOK {
			t.Fatalf("setting IMPORT mode: %s", a)
		}
		body := `{"schema":"\"string\"","id":2147483648,"version":1}`
		wantJSONError(t, h.do(t, http.MethodPost, h.reg.URL()+"/subjects/imported-value/versions", "application/json", strings.NewReader(body)),
			http.StatusUnprocessableEntity, 42205, "outside the range 1..2147483647")
	}},
	// 2. The gateway: schema ownership and parameters.
	{"gateway/foreign-schema-id", "2 schema ownership", func(t *testing.T, h *hostile) {
		h.schemaID(t, "own-value", load.Schema)
		foreign := h.schemaID(t, "foreign-value", strings.Replace(load.Schema, `"LoadRecord"`, `"Foreign"`, 1))
		a, res := h.produceBody(t, "own", map[string]any{"schema_id": foreign, "records": []map[string]any{{"value": loadRecord("f-1", 1, "x")}}}, "")
		if a.status != http.StatusUnprocessableEntity || len(res) != 1 {
			t.Fatalf("foreign schema id: %s", a)
		}
		wantRecordError(t, res[0], 42206, "schema_id", fmt.Sprintf("schema id %d is not a version of subject own-value", foreign))
	}},
	{"gateway/unparsable-query-parameter", "2 schema ownership", func(t *testing.T, h *hostile) {
		a := h.do(t, http.MethodPost, h.gwHTTP+"/v1/topics/own/records?schema_id=abc", "application/x-ndjson", strings.NewReader(`{"value":{}}`+"\n"))
		wantJSONError(t, a, http.StatusBadRequest, 40001, "query parameter schema_id")
		a = h.do(t, http.MethodPost, h.gwHTTP+"/v1/topics/own/records?schema_version=latest!", "application/x-ndjson", strings.NewReader(`{"value":{}}`+"\n"))
		wantJSONError(t, a, http.StatusBadRequest, 40001, "schema_version")
	}},
	// 3. Time limits at the gateway.
	{"gateway/future-timestamp-rejected", "3 time and cardinality", func(t *testing.T, h *hostile) {
		future := time.Now().AddDate(5, 0, 0).UnixMilli()
		a, res := h.produce(t, neighbour, []map[string]any{
			{"timestamp": future, "value": loadRecord("future-1", 1, "x")},
		}, "")
		if a.status != http.StatusUnprocessableEntity || len(res) != 1 {
			t.Fatalf("future timestamp: %s", a)
		}
		wantRecordError(t, res[0], 42207, "timestamp", "in the future", "GATEWAY_MAX_TIMESTAMP_SKEW")
	}},
	{"gateway/old-timestamp-dead-lettered", "3 time and cardinality", func(t *testing.T, h *hostile) {
		h.schemaID(t, "dl-times-value", load.Schema)
		old := time.Now().AddDate(0, 0, -30).UnixMilli()
		a, res := h.produce(t, "dl-times", []map[string]any{{"timestamp": old, "value": loadRecord("old-1", 1, "x")}}, "")
		if len(res) != 1 || !res[0].DeadLettered {
			t.Fatalf("old timestamp on a dead-letter topic: %s", a)
		}
		h.wantDeadLetter(t, "dl-times", "ingest-gateway", "GATEWAY_MAX_TIMESTAMP_AGE")
	}},
	{"gateway/one-bad-timestamp-does-not-fail-the-batch", "3 time and cardinality", func(t *testing.T, h *hostile) {
		a, res := h.produce(t, neighbour, []map[string]any{
			{"value": loadRecord("mixed-ok-1", 1, "x")},
			{"timestamp": -5, "value": loadRecord("mixed-bad", 1, "x")},
			{"value": loadRecord("mixed-ok-2", 1, "x")},
		}, "")
		if a.status != http.StatusMultiStatus || len(res) != 3 || res[0].Offset == nil || res[2].Offset == nil {
			t.Fatalf("mixed batch: %s", a)
		}
		wantRecordError(t, res[1], 42207, "timestamp")
		h.noteAcked(res[0], "mixed-ok-1")
		h.noteAcked(res[2], "mixed-ok-2")
	}},
	// 5. The gateway's own limits.
	{"gateway/invalid-topic-name", "5 gateway limits", func(t *testing.T, h *hostile) {
		a := h.do(t, http.MethodPost, h.gwHTTP+"/v1/topics/a%24b/records", "application/json", strings.NewReader(`{"records":[{"value":{}}]}`))
		wantJSONError(t, a, http.StatusBadRequest, 40001, "invalid topic name")
	}},
	{"gateway/topic-name-too-long-for-its-dlq", "5 gateway limits", func(t *testing.T, h *hostile) {
		a := h.do(t, http.MethodPost, h.gwHTTP+"/v1/topics/"+strings.Repeat("t", 246)+"/records", "application/json", strings.NewReader(`{"records":[{"value":{}}]}`))
		wantJSONError(t, a, http.StatusBadRequest, 40001, "246 bytes, more than 245")
	}},
	{"gateway/glob-never-reaches-dead-letters-or-alerts", "5 gateway limits", func(t *testing.T, h *hostile) {
		for _, topic := range []string{neighbour + ".dlq", "_sluice-alerts", "_schemas"} {
			a, _ := h.produce(t, topic, []map[string]any{{"value": loadRecord("forged", 1, "x")}}, "")
			if a.status != http.StatusForbidden && a.status != http.StatusNotFound {
				t.Fatalf("wildcard key producing to %s: %s, want 403 or 404", topic, a)
			}
		}
		if n := h.endOffset(context.Background(), neighbour+".dlq", 0); n != 0 {
			t.Fatalf("%s.dlq holds %d records", neighbour, n)
		}
	}},
	{"gateway/chunked-bodies-over-the-memory-budget", "5 gateway limits", func(t *testing.T, h *hostile) {
		// Three bodies streamed without a length, 3 MiB each so far, against
		// an 8 MiB in-flight budget: the budget is taken as bytes arrive
		// (and for the parse arenas), so one is refused while all three
		// are still arriving.
		h.schemaID(t, "chunky-value", load.Schema)
		record := []byte(`{"value":{"id":"c","seq":1,"worker":0,"amount":1,"payload":"` + strings.Repeat("p", 60000) + `","sent_at":1}},`)
		release := make(chan struct{})
		answers := make(chan answer, 3)
		for i := 0; i < 3; i++ {
			pr, pw := io.Pipe()
			go func() {
				_, _ = pw.Write([]byte(`{"records":[`))
				for sent := 0; sent < 3<<20; sent += len(record) {
					if _, err := pw.Write(record); err != nil {
						return
					}
				}
				<-release
				_, _ = pw.Write([]byte(`{}]}`))
				_ = pw.Close()
			}()
			go func() {
				a, err := h.send(http.MethodPost, h.gwHTTP+"/v1/topics/chunky/records", "application/json", pr)
				if err != nil {
					a = answer{status: -1, body: []byte(err.Error())}
				}
				_ = pr.Close()
				answers <- a
			}()
		}
		var first answer
		select {
		case first = <-answers:
		case <-time.After(30 * time.Second):
			close(release)
			t.Fatal("no request was refused while three 3 MiB bodies held an 8 MiB budget")
		}
		close(release)
		wantJSONError(t, first, http.StatusTooManyRequests, 42901)
		if first.header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		for i := 0; i < 2; i++ {
			if a := <-answers; a.status >= 500 || a.status < 0 {
				t.Fatalf("another chunked request: %s", a)
			}
		}
	}},
	{"gateway/two-authorization-headers", "5 gateway limits", func(t *testing.T, h *hostile) {
		a := h.do(t, http.MethodPost, h.gwHTTP+"/v1/topics/"+neighbour+"/records", "application/json", strings.NewReader(`{"records":[]}`),
			"Authorization", "Bearer "+neighbourKey, "Authorization", "Bearer "+wildKey)
		wantJSONError(t, a, http.StatusUnauthorized, 0, "Authorization headers")
	}},
	{"gateway/grpc-unauthenticated-stream", "5 gateway limits", func(t *testing.T, h *hostile) {
		cl := h.grpcClient(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := cl.ProduceStream(ctx)
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("stream without a key: %v, want Unauthenticated", err)
		}
	}},
	{"gateway/grpc-message-over-limit", "5 gateway limits", func(t *testing.T, h *hostile) {
		cl := h.grpcClient(t)
		ctx, cancel := context.WithTimeout(withKey(context.Background(), wildKey), 30*time.Second)
		defer cancel()
		big := bytes.Repeat([]byte("x"), 17<<20)
		_, err := cl.Produce(ctx, &ingestv1.ProduceRequest{Topic: neighbour, Records: []*ingestv1.Record{{Value: big}}})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("17 MiB message: %v, want ResourceExhausted", err)
		}
	}},
	{"gateway/revoked-key-stream-stops", "5 gateway limits", func(t *testing.T, h *hostile) {
		const temp = "temporary-secret"
		h.writeKeys(t, map[string][]string{wildKey: {"*"}, neighbourKey: {neighbour}, temp: {neighbour}})
		time.Sleep(2500 * time.Millisecond) // two reloads
		cl := h.grpcClient(t)
		ctx, cancel := context.WithTimeout(withKey(context.Background(), temp), 30*time.Second)
		defer cancel()
		st, err := cl.ProduceStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		send := func(seq uint64, id string) error {
			v, _ := json.Marshal(loadRecord(id, 1, "stream"))
			if err := st.Send(&ingestv1.ProduceStreamRequest{Sequence: seq, Topic: neighbour, Format: ingestv1.ValueFormat_VALUE_FORMAT_JSON, Record: &ingestv1.Record{Value: v}}); err != nil {
				return err
			}
			r, err := st.Recv()
			if err != nil {
				return err
			}
			if e := r.GetResult().GetError(); e != nil {
				return fmt.Errorf("record error %d: %s", e.GetCode(), e.GetMessage())
			}
			h.mu.Lock()
			h.acked[id] = Loc{neighbour, int(r.GetResult().GetPartition()), r.GetResult().GetOffset()}
			h.ackAt[id] = time.Now()
			h.mu.Unlock()
			return nil
		}
		if err := send(1, "stream-1"); err != nil {
			t.Fatalf("first record on a valid key: %v", err)
		}
		h.writeKeys(t, map[string][]string{wildKey: {"*"}, neighbourKey: {neighbour}})
		deadline := time.Now().Add(10 * time.Second)
		for seq := uint64(2); ; seq++ {
			err := send(seq, "stream-"+strconv.FormatUint(seq, 10))
			if status.Code(err) == codes.Unauthenticated {
				return
			}
			if err != nil && !strings.Contains(err.Error(), "40101") {
				t.Fatalf("after revocation: %v, want Unauthenticated", err)
			}
			if err != nil || time.Now().After(deadline) {
				if time.Now().After(deadline) {
					t.Fatal("a revoked key's stream was still accepted 10 s after the keys file changed")
				}
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}},
	{"gateway/oversized-record-alone-refused", "5 gateway limits", func(t *testing.T, h *hostile) {
		a, res := h.produce(t, neighbour, []map[string]any{
			{"value": loadRecord("size-ok", 1, "x")},
			{"value": loadRecord("size-big", 1, strings.Repeat("p", 1_100_000))},
		}, "")
		if len(res) != 2 || res[0].Offset == nil || res[1].Offset != nil || res[1].ErrorCode == 0 {
			t.Fatalf("a batch with one oversized record: %s", a)
		}
		h.noteAcked(res[0], "size-ok")
	}},
	// 6. Deployment defaults, as the chart runs the gateway.
	{"deploy/metrics-and-health-not-on-the-api-port", "6 deployment defaults", func(t *testing.T, h *hostile) {
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			if a := h.do(t, http.MethodGet, h.gwHTTP+path, "", nil); a.status != http.StatusNotFound {
				t.Fatalf("GET %s on the API port: %s, want 404", path, a)
			}
			if a := h.do(t, http.MethodGet, h.gwAdmin+path, "", nil); a.status != http.StatusOK {
				t.Fatalf("GET %s on the admin port: %s", path, a)
			}
		}
		if a := h.do(t, http.MethodPost, h.gwAdmin+"/v1/topics/"+neighbour+"/records", "application/json", strings.NewReader(`{"records":[]}`)); a.status != http.StatusNotFound {
			t.Fatalf("the produce API on the admin port: %s, want 404", a)
		}
		if !strings.Contains(string(h.do(t, http.MethodGet, h.gwAdmin+"/metrics", "", nil).body), "sluice_gateway_records_total") {
			t.Fatal("the admin port's /metrics lacks the gateway's series")
		}
	}},
	// 3./4. The s3-sink: keys, open files and a topic it cannot serve.
	{"s3/hostile-field-value-key-bounded", "3 time and cardinality", func(t *testing.T, h *hostile) {
		h.schemaID(t, "Klong-value", load.Schema)
		value := strings.Repeat("../a/b%\x00é", 500) // 5 KB of path tricks
		a, res := h.produce(t, "Klong", []map[string]any{{"value": loadRecord("long-1", 1, value)}}, "")
		if a.status != http.StatusOK || res[0].Offset == nil {
			t.Fatalf("producing: %s", a)
		}
		keys := h.waitObjects(t, "by-field/Klong/", 1)
		for _, k := range keys {
			if len(k) > 1024 || strings.Contains(k, "/../") || strings.Contains(k, "//") {
				t.Fatalf("object key %q (%d bytes)", k, len(k))
			}
			for _, seg := range strings.Split(k, "/") {
				if len(seg) > 255 {
					t.Fatalf("key segment of %d bytes in %q", len(seg), k)
				}
			}
		}
		if got := h.objectIDs(t, keys); len(got) != 1 || got[0] != "long-1" {
			t.Fatalf("objects hold %v, want [long-1]", got)
		}
	}},
	{"s3/distinct-field-values-open-files-capped", "3 time and cardinality", func(t *testing.T, h *hostile) {
		h.schemaID(t, "Kmany-value", load.Schema)
		const n = 300
		var recs []map[string]any
		for i := 0; i < n; i++ {
			recs = append(recs, map[string]any{"value": loadRecord("many-"+strconv.Itoa(i), 1, "v"+strconv.Itoa(i))})
		}
		if a, _ := h.produce(t, "Kmany", recs, ""); a.status != http.StatusOK {
			t.Fatalf("producing: %s", a)
		}
		keys := h.waitObjects(t, "by-field/Kmany/", n)
		ids := h.objectIDs(t, keys)
		seen := map[string]int{}
		for _, id := range ids {
			seen[id]++
		}
		if len(seen) != n || len(ids) != n {
			t.Fatalf("%d distinct of %d records in S3, want each of %d exactly once", len(seen), len(ids), n)
		}
		if early := metric(h.s3Field, "sluice_s3sink_early_rotations_total", "topic", "Kmany"); early <= 0 {
			t.Fatalf("no early rotations for %d distinct values: the open-files cap did not act", n)
		}
	}},
	{"s3/topic-without-the-partition-field-parked", "4 isolation", func(t *testing.T, h *hostile) {
		noField := `{"type":"record","name":"NoPayload","fields":[{"name":"id","type":"string"}]}`
		h.schemaID(t, "Kpark-value", noField)
		if a, _ := h.produce(t, "Kpark", []map[string]any{{"value": map[string]any{"id": "park-1"}}}, ""); a.status != http.StatusOK {
			t.Fatalf("producing: %s", a)
		}
		if !waitUntil(nil, 30*time.Second, func() bool {
			return metric(h.s3Field, "sluice_sink_topics_parked", "topic", "Kpark") == 1
		}) {
			t.Fatal("the s3-sink did not park a topic whose schema lacks the partition field")
		}
	}},
	// 3./4. The search-sink: time window, index budget, parking, names, alerts.
	{"search/records-outside-the-time-window-dead-lettered", "3 time and cardinality", func(t *testing.T, h *hostile) {
		id := h.schemaID(t, "years-value", load.Schema)
		codec, err := goavro.NewCodec(load.Schema)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		var msgs []kafkago.Message
		add := func(at time.Time, rid string) {
			bin, err := codec.BinaryFromNative(nil, map[string]any{"id": rid, "seq": int64(1), "worker": int32(0), "amount": 1.0, "payload": "y", "sent_at": at})
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, kafkago.Message{Key: []byte(rid), Value: framed(id, bin), Time: at})
		}
		for i := 1; i <= 60; i++ { // one every ~36 days over 6 years
			add(now.Add(-time.Duration(i)*876*time.Hour), "old-"+strconv.Itoa(i))
		}
		for i := 1; i <= 3; i++ {
			add(now.AddDate(1, 0, i), "future-"+strconv.Itoa(i))
		}
		add(now.Add(-time.Minute), "recent")
		h.kc.CreateTopic("years", 1, nil)
		h.writeRaw(t, "years", msgs...)
		dls := h.deadLetters(t, "years", 63, 60*time.Second)
		old, future := 0, 0
		for _, m := range dls {
			r := header(m, "sluice-error")
			switch {
			case header(m, "sluice-stage") == "limits" && strings.Contains(r, "older than the retention window"):
				old++
			case header(m, "sluice-stage") == "limits" && strings.Contains(r, "ahead of the clock"):
				future++
			}
		}
		if old != 60 || future != 3 {
			t.Fatalf("dead letters: %d too old, %d too new, want 60 and 3; reasons %q", old, future, reasonsOf(dls)[:3])
		}
		// The record inside the window is indexed (its flush may trail the
		// dead letters), and it is the only index of the topic.
		if !waitUntil(nil, 30*time.Second, func() bool { return h.indexCount(t, "years-*") >= 1 }) {
			t.Fatal("the record inside the window was never indexed")
		}
		if n := h.indexCount(t, "years-*"); n != 1 {
			t.Fatalf("%d indices for topic years, want 1 (the record inside the window)", n)
		}
	}},
	{"search/new-index-budget-parks-the-topic", "3 time and cardinality", func(t *testing.T, h *hostile) {
		id := h.schemaID(t, "backfill-value", load.Schema)
		codec, _ := goavro.NewCodec(load.Schema)
		var msgs []kafkago.Message
		for d := 1; d <= 28; d++ { // 28 daily indices, all inside the 30-day window
			at := time.Now().AddDate(0, 0, -d)
			bin, _ := codec.BinaryFromNative(nil, map[string]any{"id": "bf-" + strconv.Itoa(d), "seq": int64(d), "worker": int32(0), "amount": 1.0, "payload": "b", "sent_at": at})
			msgs = append(msgs, kafkago.Message{Value: framed(id, bin), Time: at})
		}
		h.kc.CreateTopic("backfill", 1, nil)
		h.writeRaw(t, "backfill", msgs...)
		if !waitUntil(nil, 60*time.Second, func() bool {
			return metric(h.esMetrics, "sluice_sink_topics_parked", "topic", "backfill") == 1
		}) {
			t.Fatal("a topic creating 28 daily indices at once was not parked at its hourly budget")
		}
		if n := h.indexCount(t, "backfill-*"); n > 24 {
			t.Fatalf("%d indices for topic backfill, budget 24 an hour", n)
		}
	}},
	{"search/refused-template-parks-only-its-topic", "4 isolation", func(t *testing.T, h *hostile) {
		h.es.FailNext("/_index_template/sluice-tmplbad", 1000, estest.Error{Status: http.StatusBadRequest, Type: "mapper_parsing_exception", Reason: "Failed to parse mapping: injected refusal"})
		h.schemaID(t, "tmplbad-value", load.Schema)
		if a, _ := h.produce(t, "tmplbad", []map[string]any{{"value": loadRecord("tb-1", 1, "x")}}, ""); a.status != http.StatusOK {
			t.Fatalf("producing: %s", a)
		}
		if !waitUntil(nil, 30*time.Second, func() bool {
			return metric(h.esMetrics, "sluice_sink_topics_parked", "topic", "tmplbad") == 1
		}) {
			t.Fatal("a topic whose template is refused was not parked")
		}
		if n := h.indexCount(t, "tmplbad-*"); n != 0 {
			t.Fatalf("a parked topic created %d indices", n)
		}
	}},
	{"search/topic-names-never-share-an-index", "4 isolation", func(t *testing.T, h *hostile) {
		for _, topic := range []string{"collide", "Collide", "COLLIDE"} {
			h.schemaID(t, topic+"-value", load.Schema)
			if a, _ := h.produce(t, topic, []map[string]any{{"value": loadRecord("c-"+topic, 1, topic)}}, ""); a.status != http.StatusOK {
				t.Fatalf("producing to %s: %s", topic, a)
			}
		}
		var names []string
		if !waitUntil(nil, 30*time.Second, func() bool { names = h.indexNames(t, "collide*"); return len(names) == 3 }) {
			t.Fatalf("indices for collide, Collide, COLLIDE: %v, want 3 distinct", names)
		}
		for _, n := range names {
			if docs := h.docsIn(n); len(docs) != 1 {
				t.Fatalf("index %s holds %d documents, want 1 (topics merged)", n, len(docs))
			}
		}
	}},
	{"search/alert-text-escapes-record-data", "5 gateway limits", func(t *testing.T, h *hostile) {
		h.schemaID(t, "alerty-value", load.Schema)
		hostileText := "<!channel> <http://evil.example|click here> & <@U123> " + strings.Repeat("x", 5000)
		if a, _ := h.produce(t, "alerty", []map[string]any{{"value": loadRecord("al-1", 1000, hostileText)}}, ""); a.status != http.StatusOK {
			t.Fatalf("producing: %s", a)
		}
		var post []byte
		if !waitUntil(nil, 30*time.Second, func() bool {
			for _, b := range h.slack.posts() {
				if strings.Contains(string(b), "big-amount") {
					post = b
					return true
				}
			}
			return false
		}) {
			t.Fatal("no Slack alert for the big amount")
		}
		text := strings.Join(jsonStrings(post), "\n") // what Slack renders, JSON escapes undone
		for _, bad := range []string{"<!channel>", "<http://evil", "<@U123>"} {
			if strings.Contains(text, bad) {
				t.Fatalf("Slack body carries %q unescaped: %s", bad, post)
			}
		}
		if !strings.Contains(text, "&lt;!channel&gt;") {
			t.Fatalf("Slack body lacks the escaped text: %s", post)
		}
		var msg struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(post, &msg); err != nil || len([]rune(msg.Text)) > 3000 {
			t.Fatalf("Slack notification text of %d characters (limit 3000): %v", len([]rune(msg.Text)), err)
		}
	}},
	// 1. Bounded work per record, in both sinks, for schemas the registry
	// would refuse today but that arrive anyway (registered before the
	// limits, or by a Confluent registry sharing _schemas).
	{"decode/zero-byte-records-of-shared-types", "1 bounded work", func(t *testing.T, h *hostile) {
		const id = 800000 // seeded ids sit below the registry's next (max+1) ids
		h.seedSchema(t, "deep0-value", id, avrogen.SharedChain(22, ""))
		h.kc.CreateTopic("deep0", 1, nil)
		h.writeRaw(t, "deep0", kafkago.Message{Value: framed(id, nil)}, kafkago.Message{Value: framed(id, nil)})
		h.wantDeadLetter(t, "deep0", "s3-sink", "decode budget exceeded", "a record of 0 bytes", "AVRO_DECODE_BASE_STEPS")
		h.wantDeadLetter(t, "deep0", "decode", "decode budget exceeded", "a record of 0 bytes")
	}},
	{"decode/null-array-with-a-million-items", "1 bounded work", func(t *testing.T, h *hostile) {
		id := h.schemaID(t, "nulls-value", `{"type":"record","name":"Nulls","fields":[{"name":"items","type":{"type":"array","items":"null"}}]}`)
		h.kc.CreateTopic("nulls", 1, nil)
		// zigzag(2^20) = 2^21 as a varint, then the end of the array: 5 bytes.
		h.writeRaw(t, "nulls", kafkago.Message{Value: framed(id, []byte{0x80, 0x80, 0x80, 0x01, 0x00})})
		h.wantDeadLetter(t, "nulls", "s3-sink", "decode budget exceeded", "a record of 5 bytes")
		h.wantDeadLetter(t, "nulls", "decode", "decode budget exceeded", "a record of 5 bytes")
	}},
	{"decode/required-self-reference", "1 bounded work", func(t *testing.T, h *hostile) {
		// A record that must contain itself: every value is infinite, and a
		// decoder without a depth bound recurses on 0 bytes until it dies.
		const id = 700000
		h.seedSchema(t, "loop-value", id, `{"type":"record","name":"Loop","fields":[{"name":"next","type":"Loop"}]}`)
		h.kc.CreateTopic("loop", 1, nil)
		h.writeRaw(t, "loop", kafkago.Message{Value: framed(id, nil)})
		h.wantDeadLetter(t, "loop", "s3-sink", "AVRO_MAX_DEPTH")
		h.wantDeadLetter(t, "loop", "decode", "AVRO_MAX_DEPTH")
	}},
	{"decode/not-framed-and-unknown-ids", "4 isolation", func(t *testing.T, h *hostile) {
		h.kc.CreateTopic("garbage", 1, nil)
		h.writeRaw(t, "garbage", kafkago.Message{Value: []byte("plain text, no framing")}, kafkago.Message{Value: framed(777777, []byte{2})})
		h.wantDeadLetter(t, "garbage", "s3-sink", "framing")
		h.wantDeadLetter(t, "garbage", "decode", "framing")
		h.wantDeadLetter(t, "garbage", "decode", "schema id 777777")
	}},
}

// seedSchema writes a schema straight into the registry's _schemas log in
// Confluent's record format, bypassing the registration limits, and waits
// until the registry serves it.
func (h *hostile) seedSchema(t *testing.T, subject string, id int, schema string) {
	t.Helper()
	key, _ := json.Marshal(map[string]any{"keytype": "SCHEMA", "subject": subject, "version": 1, "magic": 1})
	val, _ := json.Marshal(map[string]any{"subject": subject, "version": 1, "id": id, "schema": schema, "deleted": false})
	h.writeRaw(t, "_schemas", kafkago.Message{Key: key, Value: val})
	if !waitUntil(nil, 30*time.Second, func() bool {
		a, err := h.send(http.MethodGet, h.reg.URL()+"/schemas/ids/"+strconv.Itoa(id), "", nil)
		return err == nil && a.status == http.StatusOK
	}) {
		t.Fatalf("the registry does not serve seeded schema id %d", id)
	}
}

// jsonStrings returns every string value in a JSON document.
func jsonStrings(doc []byte) []string {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// indexNames lists the indices matching a pattern in the ES double.
func (h *hostile) indexNames(t *testing.T, pattern string) []string {
	t.Helper()
	a := h.do(t, http.MethodGet, h.es.URL()+"/"+pattern, "", nil)
	if a.status == http.StatusNotFound {
		return nil
	}
	var m map[string]json.RawMessage
	if a.status != http.StatusOK || json.Unmarshal(a.body, &m) != nil {
		t.Fatalf("GET /%s: %s", pattern, a)
	}
	var out []string
	for name := range m {
		out = append(out, name)
	}
	return out
}

func (h *hostile) indexCount(t *testing.T, pattern string) int { return len(h.indexNames(t, pattern)) }

func (h *hostile) docsIn(index string) map[string]json.RawMessage { return h.es.Docs(index) }

// waitObjects waits until at least n objects exist under prefix and
// returns their keys.
func (h *hostile) waitObjects(t *testing.T, prefix string, n int) []string {
	t.Helper()
	var keys []string
	ok := waitUntil(nil, 60*time.Second, func() bool {
		keys = keys[:0]
		pager := s3.NewListObjectsV2Paginator(h.s3.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(hostileBucket), Prefix: aws.String(prefix)})
		for pager.HasMorePages() {
			page, err := pager.NextPage(context.Background())
			if err != nil {
				return false
			}
			for _, o := range page.Contents {
				keys = append(keys, aws.ToString(o.Key))
			}
		}
		return len(keys) >= n
	})
	if !ok {
		t.Fatalf("%d objects under %s after 60 s, want %d", len(keys), prefix, n)
	}
	return keys
}

// objectIDs decodes the ids of every record in the objects.
func (h *hostile) objectIDs(t *testing.T, keys []string) []string {
	t.Helper()
	var ids []string
	for _, k := range keys {
		obj, err := h.s3.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(hostileBucket), Key: aws.String(k)})
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		rd, err := goavro.NewOCFReader(obj.Body)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		for rd.Scan() {
			rec, err := rd.Read()
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			ids = append(ids, rec.(map[string]any)["id"].(string))
		}
		_ = obj.Body.Close()
	}
	return ids
}

// noteAcked records a neighbour record a case produced (checked like the
// flow's).
func (h *hostile) noteAcked(r nativeResult, id string) {
	if r.Offset == nil || r.Partition == nil {
		return
	}
	h.mu.Lock()
	h.acked[id] = Loc{neighbour, int(*r.Partition), *r.Offset}
	h.ackAt[id] = time.Now()
	h.mu.Unlock()
}
