package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
)

// paySchema is a second value schema, registered for another topic.
const paySchema = `{"type":"record","name":"Payment","namespace":"com.acme","fields":[{"name":"id","type":"string"},{"name":"cents","type":"long"}]}`

func payJSON(i int) string { return fmt.Sprintf(`{"id":"p-%d","cents":%d}`, i, i*100) }

// nativeResults decodes a native batch answer.
func nativeResults(tb testing.TB, res httpResult) []map[string]any {
	tb.Helper()
	var out struct {
		Results []map[string]any `json:"results"`
	}
	res.json(tb, &out)
	return out.Results
}

// grpcReason returns the ErrorInfo reason of a gRPC error ("" if none).
func grpcReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return ""
}

// TestSchemaOwnership: a producer-chosen schema (an id, or another
// subject) must be a version of the topic's own subject, on every API;
// refusals are per record, 422-class, naming the id, topic and subject.
func TestSchemaOwnership(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil, "-gateway-any-schema-topics", "anything.*", "-registry-negative-ttl", "500ms")
	for _, topic := range []string{"orders", "payments", "late", "anything.x"} {
		e.kafka.CreateTopic(topic, 1, nil)
	}
	orders := e.reg.Register(t, "orders-value", orderSchema)
	pay := e.reg.Register(t, "payments-value", paySchema)
	e.reg.Register(t, "anything.x-value", orderSchema)
	refusal := fmt.Sprintf("schema id %d is not a version of subject orders-value: topic orders takes only schemas registered under its own subject", pay)

	type httpCase struct {
		name, path, ct string
		body           string
		status         int
		want           string // substring of the body
	}
	cases := []httpCase{
		{name: "native own id", path: "/v1/topics/orders/records", ct: "application/json",
			body: `{"schema_id":` + itoa(orders) + `,"records":[{"value":` + orderJSON(1) + `}]}`, status: 200, want: `"schema_id":` + itoa(orders)},
		{name: "native foreign id", path: "/v1/topics/orders/records", ct: "application/json",
			body: `{"schema_id":` + itoa(pay) + `,"records":[{"value":` + payJSON(1) + `},{"value":` + payJSON(2) + `}]}`, status: 422,
			want: `{"error_code":42206,"message":"` + refusal + `","field":"schema_id"}`},
		{name: "ndjson foreign id", path: "/v1/topics/orders/records?schema_id=" + itoa(pay), ct: "application/x-ndjson",
			body: `{"value":` + payJSON(3) + "}\n", status: 200, want: `"error_code":42206,"message":"` + refusal},
		{name: "v2 foreign value id", path: "/topics/orders", ct: "application/vnd.kafka.avro.v2+json",
			body: `{"value_schema_id":` + itoa(pay) + `,"records":[{"value":` + payJSON(4) + `}]}`, status: 422,
			want: `{"error_code":42202,"message":"` + refusal + `"}`},
		{name: "v2 json format honours its id", path: "/topics/orders", ct: "application/vnd.kafka.json.v2+json",
			body: `{"value_schema_id":` + itoa(pay) + `,"records":[{"value":` + payJSON(5) + `}]}`, status: 422, want: `"error_code":42202`},
		{name: "v2 foreign key id", path: "/topics/orders", ct: "application/vnd.kafka.avro.v2+json",
			body: `{"key_schema_id":` + itoa(pay) + `,"value_schema_id":` + itoa(orders) + `,"records":[{"key":` + payJSON(6) + `,"value":` + orderJSON(6) + `}]}`, status: 422,
			want: fmt.Sprintf(`{"error_code":42201,"message":"schema id %d is not a version of subject orders-key`, pay)},
		{name: "v3 foreign id", path: "/v3/clusters/sluice/topics/orders/records", ct: "application/json",
			body: `{"value":{"type":"JSON","schema_id":` + itoa(pay) + `,"data":` + payJSON(7) + `}}`, status: 422,
			want: `{"error_code":422,"message":"` + refusal + `"}`},
		{name: "v3 foreign subject", path: "/v3/clusters/sluice/topics/orders/records", ct: "application/json",
			body: `{"value":{"type":"JSON","subject":"payments-value","data":` + payJSON(8) + `}}`, status: 422,
			want: `"message":"` + refusal + `"`},
		{name: "any-schema topic takes a foreign id", path: "/v1/topics/anything.x/records", ct: "application/json",
			body: `{"schema_id":` + itoa(pay) + `,"records":[{"value":` + payJSON(9) + `}]}`, status: 200, want: `"schema_id":` + itoa(pay)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := post(t, e.httpURL+c.path, c.ct, []byte(c.body))
			if res.status != c.status || !strings.Contains(string(res.body), c.want) {
				t.Fatalf("%d %s\nwant %d containing %s", res.status, res.body, c.status, c.want)
			}
		})
	}

	// gRPC, batch and stream: per-record error 42206.
	client := ingestv1.NewIngestServiceClient(grpcConn(t, e.grpc))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := client.Produce(ctx, &ingestv1.ProduceRequest{Topic: "orders", SchemaId: int32(pay), Records: []*ingestv1.Record{{Value: []byte(payJSON(10))}}})
	if err != nil || len(resp.Results) != 1 || resp.Results[0].Error.GetCode() != 42206 || resp.Results[0].Error.GetMessage() != refusal {
		t.Fatalf("gRPC Produce: %v %v", resp, err)
	}
	st, err := client.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&ingestv1.ProduceStreamRequest{Sequence: 1, Topic: "orders", SchemaId: int32(pay), Record: &ingestv1.Record{Value: []byte(payJSON(11))}}); err != nil {
		t.Fatal(err)
	}
	if r, err := st.Recv(); err != nil || r.Result.Error.GetCode() != 42206 {
		t.Fatalf("gRPC ProduceStream: %v %v", r, err)
	}
	_ = st.CloseSend()

	// A subject gaining the id later is seen once the negative answer
	// expires (REGISTRY_NEGATIVE_TTL).
	lateSchema := strings.Replace(paySchema, "Payment", "Refund", 1)
	other := e.reg.Register(t, "other-value", lateSchema)
	body := []byte(`{"schema_id":` + itoa(other) + `,"records":[{"value":` + payJSON(12) + `}]}`)
	if res := post(t, e.httpURL+"/v1/topics/late/records", "application/json", body); res.status != 422 || !strings.Contains(string(res.body), "42206") {
		t.Fatalf("late before registration: %d %s", res.status, res.body)
	}
	if id := e.reg.Register(t, "late-value", lateSchema); id != other {
		t.Fatalf("same schema under late-value got id %d, want %d", id, other)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := post(t, e.httpURL+"/v1/topics/late/records", "application/json", body)
		if res.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("late subject never accepted: %d %s", res.status, res.body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Only the accepted records are in Kafka, framed with their ids.
	for topic, want := range map[string]int{"orders": orders, "anything.x": pay, "late": other} {
		for _, r := range readTopic(t, e.kafka.Brokers(), topic, 1) {
			if id := int(binary.BigEndian.Uint32(r.Value[1:5])); id != want {
				t.Fatalf("%s holds a record framed with id %d, want %d", topic, id, want)
			}
		}
	}
}

// TestNoSilentlyIgnoredParameters: every query parameter, id and
// partition that does not parse is refused, naming it, instead of
// falling back to a default.
func TestNoSilentlyIgnoredParameters(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil)
	e.kafka.CreateTopic("params", 2, nil)
	id := e.reg.Register(t, "params-value", orderSchema)
	line := `{"value":` + orderJSON(1) + "}\n"
	batch := `{"records":[{"value":` + orderJSON(2) + `}]}`
	cases := []struct {
		name, path, ct, body string
		status               int
		want                 string
	}{
		{"ndjson schema_id not a number", "/v1/topics/params/records?schema_id=abc", "application/x-ndjson", line, 400,
			`{"error_code":40001,"message":"query parameter schema_id: want a positive integer schema id, got \"abc\""}`},
		{"ndjson schema_id negative", "/v1/topics/params/records?schema_id=-3", "application/x-ndjson", line, 400, `query parameter schema_id: want a positive integer schema id, got \"-3\"`},
		{"ndjson schema_id twice", "/v1/topics/params/records?schema_id=1&schema_id=2", "application/x-ndjson", line, 400, `query parameter schema_id: given 2 times`},
		{"ndjson schema_version not a number", "/v1/topics/params/records?schema_version=v1", "application/x-ndjson", line, 400,
			`query parameter schema_version: want a positive version or -1 (latest), got \"v1\"`},
		{"ndjson schema_version zero", "/v1/topics/params/records?schema_version=0", "application/x-ndjson", line, 400, `query parameter schema_version`},
		{"ndjson unknown format", "/v1/topics/params/records?format=xml", "application/x-ndjson", line, 400, `query parameter format: unknown format \"xml\"`},
		{"ndjson async", "/v1/topics/params/records?async=true", "application/x-ndjson", line, 400, `query parameter async: not supported for NDJSON streams`},
		{"ndjson latest as -1", "/v1/topics/params/records?schema_version=-1", "application/x-ndjson", line, 200, `"schema_id":` + itoa(id)},
		{"batch async not a bool", "/v1/topics/params/records?async=yes", "application/json", batch, 400, `query parameter async: want true or false, got \"yes\"`},
		{"batch schema_id in query", "/v1/topics/params/records?schema_id=" + itoa(id), "application/json", batch, 400,
			`query parameter schema_id: read only for NDJSON streams; put \"schema_id\" in the JSON request body`},
		{"batch negative schema_id", "/v1/topics/params/records", "application/json", `{"schema_id":-1,"records":[{"value":` + orderJSON(3) + `}]}`, 400,
			`schema_id: want a positive integer schema id, got -1`},
		{"batch schema_version below -1", "/v1/topics/params/records", "application/json", `{"schema_version":-2,"records":[{"value":` + orderJSON(4) + `}]}`, 400,
			`schema_version: want a positive version or -1 (latest), got -2`},
		{"batch schema_version -1 is latest", "/v1/topics/params/records", "application/json", `{"schema_version":-1,"records":[{"value":` + orderJSON(5) + `}]}`, 200, `"schema_id":` + itoa(id)},
		{"v2 negative value_schema_id", "/topics/params", "application/vnd.kafka.json.v2+json", `{"value_schema_id":-1,"records":[{"value":` + orderJSON(6) + `}]}`, 400,
			`{"error_code":40001,"message":"value_schema_id: want a positive integer schema id, got -1"}`},
		{"v2 inline schema with json format", "/topics/params", "application/vnd.kafka.json.v2+json", `{"value_schema":"\"string\"","records":[{"value":"x"}]}`, 400,
			`value_schema and key_schema are read only with the avro embedded format`},
		{"v2 key id with binary format", "/topics/params", "application/vnd.kafka.binary.v2+json", `{"key_schema_id":` + itoa(id) + `,"records":[{"value":null}]}`, 400,
			`key_schema_id is not read with the binary embedded format`},
		{"v2 negative record partition", "/topics/params", "application/vnd.kafka.json.v2+json", `{"records":[{"value":` + orderJSON(7) + `,"partition":-1}]}`, 422,
			`{"error_code":42203,"message":"Conversion of JSON to Avro failed: records[0]: partition: must be a non-negative integer, got -1"}`},
		{"v2 json honours value_schema_id", "/topics/params", "application/vnd.kafka.json.v2+json", `{"value_schema_id":` + itoa(id) + `,"records":[{"value":` + orderJSON(8) + `}]}`, 200,
			`"value_schema_id":` + itoa(id)},
		{"v3 negative partition_id", "/v3/clusters/sluice/topics/params/records", "application/json", `{"partition_id":-1,"value":{"data":` + orderJSON(9) + `}}`, 400,
			`{"error_code":400,"message":"partition_id: must be a non-negative integer, got -1"}`},
		{"v3 negative schema_id", "/v3/clusters/sluice/topics/params/records", "application/json", `{"value":{"schema_id":-4,"data":` + orderJSON(10) + `}}`, 400,
			`value.schema_id: want a positive integer schema id, got -4`},
		{"v3 key schema on a JSON key", "/v3/clusters/sluice/topics/params/records", "application/json", `{"key":{"type":"JSON","schema_id":` + itoa(id) + `,"data":"k"},"value":{"data":` + orderJSON(11) + `}}`, 400,
			`key.schema_id, key.schema_version and key.subject are read only for AVRO keys`},
		{"invalid topic name", "/v1/topics/a$b/records", "application/json", batch, 400,
			`{"error_code":40001,"message":"invalid topic name: \"a$b\": byte 1 ('$') is not one of [a-zA-Z0-9._-]"}`},
		{"topic without room for .dlq", "/v1/topics/" + strings.Repeat("t", 246) + "/records", "application/json", batch, 400,
			`invalid topic name: 246 bytes, more than 245 (Kafka's 249 minus the \".dlq\" dead-letter suffix)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := post(t, e.httpURL+c.path, c.ct, []byte(c.body))
			if res.status != c.status || !strings.Contains(string(res.body), c.want) {
				t.Fatalf("%d %s\nwant %d containing %s", res.status, res.body, c.status, c.want)
			}
		})
	}

	client := ingestv1.NewIngestServiceClient(grpcConn(t, e.grpc))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := func() []*ingestv1.Record { return []*ingestv1.Record{{Value: []byte(orderJSON(20))}} }
	for _, c := range []struct {
		name string
		req  *ingestv1.ProduceRequest
		want string
	}{
		{"unknown format", &ingestv1.ProduceRequest{Topic: "params", Format: 99, Records: rec()}, "format: unknown value format 99"},
		{"negative schema id", &ingestv1.ProduceRequest{Topic: "params", SchemaId: -1, Records: rec()}, "schema_id: want a positive schema id, got -1"},
		{"version below -1", &ingestv1.ProduceRequest{Topic: "params", SchemaVersion: -5, Records: rec()}, "schema_version: want a positive version or -1 (latest), got -5"},
		{"invalid topic", &ingestv1.ProduceRequest{Topic: "no/slash", Records: rec()}, `invalid topic name: "no/slash": byte 2 ('/')`},
	} {
		_, err := client.Produce(ctx, c.req)
		if status.Code(err) != codes.InvalidArgument || grpcReason(err) != "40001" || !strings.Contains(status.Convert(err).Message(), c.want) {
			t.Errorf("gRPC %s: %v (reason %s), want InvalidArgument 40001 %q", c.name, err, grpcReason(err), c.want)
		}
	}
	neg := int32(-2)
	resp, err := client.Produce(ctx, &ingestv1.ProduceRequest{Topic: "params", Records: []*ingestv1.Record{
		{Value: []byte(orderJSON(21)), Partition: &neg},
		{Value: []byte(orderJSON(22)), Timestamp: &timestamppb.Timestamp{Seconds: 1, Nanos: 2e9}},
		{Value: []byte(orderJSON(23))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"partition: must be a non-negative integer, got -2", "timestamp: ", ""}
	for i, r := range resp.Results {
		if got := r.Error.GetMessage(); (want[i] == "") != (got == "") || !strings.Contains(got, want[i]) {
			t.Errorf("gRPC record %d: %v, want %q", i, r.Error, want[i])
		}
	}
}

// TestTimestampBounds: producer timestamps outside the configured skew
// and age are refused per record, naming the field and the limit, or
// dead-lettered (stamped now, the original in a header) by the topic's
// policy.
func TestTimestampBounds(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil, "-gateway-dead-letter-topics", "ts-dlq")
	for _, topic := range []string{"ts", "ts-dlq"} {
		e.kafka.CreateTopic(topic, 1, nil)
		e.reg.Register(t, topic+"-value", orderSchema)
	}
	now := time.Now().UTC()
	future := now.AddDate(5, 0, 3)
	old := now.Add(-30 * 24 * time.Hour)
	rec := func(ts string) string { return `{"value":` + orderJSON(1) + `,"timestamp":` + ts + `}` }
	q := func(t time.Time) string { return `"` + t.Format(time.RFC3339Nano) + `"` }
	body := `{"records":[` + strings.Join([]string{rec(q(future)), rec(q(old)), rec("-5"), rec(q(now.Add(-time.Minute))), rec(strconv.FormatInt(now.Add(30*time.Minute).UnixMilli(), 10))}, ",") + `]}`
	want := []string{
		`timestamp: ` + future.Format(time.RFC3339Nano) + ` is 5y`,
		`timestamp: ` + old.Format(time.RFC3339Nano) + ` is 30d old, more than GATEWAY_MAX_TIMESTAMP_AGE=168h`,
		`timestamp: 1969-12-31T23:59:59.995Z is before 1970-01-01T00:00:00Z (Kafka timestamps are non-negative epoch milliseconds)`,
		"", "",
	}
	res := post(t, e.httpURL+"/v1/topics/ts/records", "application/json", []byte(body))
	results := nativeResults(t, res)
	if res.status != 207 || len(results) != 5 {
		t.Fatalf("%d %s", res.status, res.body)
	}
	for i, r := range results {
		msg, _ := r["message"].(string)
		if want[i] == "" {
			if r["error_code"] != nil {
				t.Errorf("record %d refused: %v", i, r)
			}
			continue
		}
		if r["error_code"] != float64(42207) || r["field"] != "timestamp" || !strings.Contains(msg, want[i]) {
			t.Errorf("record %d: %v, want 42207 on timestamp containing %q", i, r, want[i])
		}
	}
	if !strings.Contains(results[0]["message"].(string), "in the future, more than GATEWAY_MAX_TIMESTAMP_SKEW=1h") {
		t.Errorf("future: %v", results[0])
	}
	readTopic(t, e.kafka.Brokers(), "ts", 2)

	// gRPC too.
	client := ingestv1.NewIngestServiceClient(grpcConn(t, e.grpc))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := client.Produce(ctx, &ingestv1.ProduceRequest{Topic: "ts", Records: []*ingestv1.Record{{Value: []byte(orderJSON(2)), Timestamp: timestamppb.New(future)}}})
	if err != nil || resp.Results[0].Error.GetCode() != 42207 || resp.Results[0].Error.GetField() != "timestamp" {
		t.Fatalf("gRPC future timestamp: %v %v", resp, err)
	}

	// A dead-lettering topic parks the record, stamped now.
	res = post(t, e.httpURL+"/v1/topics/ts-dlq/records", "application/json", []byte(`{"records":[`+rec(q(future))+`]}`))
	results = nativeResults(t, res)
	if res.status != 200 || results[0]["dead_lettered"] != true || results[0]["error_code"] != float64(42207) {
		t.Fatalf("dead letter: %d %s", res.status, res.body)
	}
	for _, r := range readTopic(t, e.kafka.Brokers(), "ts-dlq.dlq", 1) {
		if r.Headers["sluice-original-timestamp"] != strconv.FormatInt(future.UnixMilli(), 10) || r.Time.After(time.Now()) || time.Since(r.Time) > time.Minute {
			t.Fatalf("dead letter time %v, headers %v", r.Time, r.Headers)
		}
		if !strings.Contains(r.Headers["sluice-error"], "GATEWAY_MAX_TIMESTAMP_SKEW") || r.Headers["sluice-error-field"] != "timestamp" {
			t.Fatalf("dead letter headers %v", r.Headers)
		}
	}
}

// ndjsonLines posts an NDJSON body and returns the answer lines.
func ndjsonLines(tb testing.TB, url string, body string) (int, []map[string]any) {
	tb.Helper()
	res := post(tb, url, "application/x-ndjson", []byte(body))
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(res.body))
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			tb.Fatalf("answer %q: %v", res.body, err)
		}
		out = append(out, m)
	}
	return res.status, out
}

var _ = http.MethodPost
