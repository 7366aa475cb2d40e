package main

import (
	"bytes"
	"context"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	hamba "github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
)

// hOrder is orderSchema as hamba/avro decodes it: the independent decoder.
type hOrder struct {
	ID       string `avro:"id"`
	Customer struct {
		Name  string  `avro:"name"`
		Email *string `avro:"email"`
	} `avro:"customer"`
	Items []struct {
		SKU   string  `avro:"sku"`
		Qty   int     `avro:"qty"`
		Price float64 `avro:"price"`
	} `avro:"items"`
	Tags    map[string]string `avro:"tags"`
	Status  string            `avro:"status"`
	Created time.Time         `avro:"created"`
	Day     time.Time         `avro:"day"`
	Amount  *big.Rat          `avro:"amount"`
	Ref     *string           `avro:"ref"`
	Note    any               `avro:"note"`
}

// checkOrder compares a decoded record with orderJSON(i).
func checkOrder(t *testing.T, i int, o *hOrder) {
	t.Helper()
	want := func(field string, got, exp any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Errorf("order %d: %s = %v, want %v", i, field, got, exp)
		}
	}
	want("id", o.ID, fmt.Sprintf("o-%d", i))
	want("customer.name", o.Customer.Name, fmt.Sprintf("c%d", i))
	if o.Customer.Email == nil || *o.Customer.Email != fmt.Sprintf("c%d@example.com", i) {
		t.Errorf("order %d: email = %v", i, o.Customer.Email)
	}
	if len(o.Items) != 1 {
		t.Fatalf("order %d: items = %v", i, o.Items)
	}
	want("items[0].sku", o.Items[0].SKU, fmt.Sprintf("s%d", i))
	want("items[0].qty", o.Items[0].Qty, i%7+1)
	want("items[0].price", o.Items[0].Price, float64(i)+0.5)
	want("tags", o.Tags["k"], fmt.Sprintf("v%d", i))
	want("status", o.Status, "PAID")
	want("created", o.Created.UTC().Format(time.RFC3339Nano), time.Date(2024, 5, 1, 12, 0, 0, (i%1000)*1e6, time.UTC).Format(time.RFC3339Nano))
	want("day", o.Day.UTC().Format(time.DateOnly), "2024-05-01")
	if o.Amount == nil || o.Amount.Cmp(big.NewRat(int64(i)*100+25, 100)) != 0 {
		t.Errorf("order %d: amount = %v", i, o.Amount)
	}
	if o.Ref == nil || *o.Ref != fmt.Sprintf("6f1c8a7e-3b2d-4c5e-9f00-1122334455%02d", i%100) {
		t.Errorf("order %d: ref = %v", i, o.Ref)
	}
	switch n := o.Note.(type) {
	case map[string]any:
		want("note", n["long"], int64(i))
	default:
		want("note", n, int64(i))
	}
}

// decoder is franz-go's sr.Serde with hamba/avro: it reads the Confluent
// framing and schema id itself.
func decoder(t *testing.T, id int, schema string) *sr.Serde {
	t.Helper()
	s, err := hamba.Parse(schema)
	if err != nil {
		t.Fatal(err)
	}
	var serde sr.Serde
	serde.Register(id, &hOrder{}, sr.DecodeFn(func(b []byte, v any) error { return hamba.Unmarshal(s, b, v) }))
	return &serde
}

type sent struct {
	i         int
	key       string
	partition int32
	offset    int64
}

func grpcConn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestValidRecordsLandFramed sends valid records over every API and checks
// that each acknowledged record is in Kafka, Confluent-framed, and decodes
// with an independent decoder to the values sent.
// recordTime is the producer timestamp the native records carry: an hour
// ago, with milliseconds, inside the gateway's timestamp bounds.
var recordTime = time.Now().Add(-time.Hour).Truncate(time.Millisecond).Add(678 * time.Millisecond).UTC()

func TestValidRecordsLandFramed(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil)
	e.kafka.CreateTopic("orders", 3, nil)
	id := e.reg.Register(t, "orders-value", orderSchema)
	var all []sent
	next := 0
	take := func(n int) []int {
		out := make([]int, n)
		for j := range out {
			out[j] = next
			next++
		}
		return out
	}

	// Native JSON batch.
	idx := take(20)
	body := records(len(idx), func(j int) string {
		if j == 0 {
			// Explicit partition and producer timestamp.
			return fmt.Sprintf(`{"key":"k%d","value":%s,"headers":{"h":"v"},"partition":2,"timestamp":"%s"}`, idx[j], orderJSON(idx[j]), recordTime.Format(time.RFC3339Nano))
		}
		return fmt.Sprintf(`{"key":"k%d","value":%s,"headers":{"h":"v"}}`, idx[j], orderJSON(idx[j]))
	})
	res := post(t, e.httpURL+"/v1/topics/orders/records", "application/json", body)
	if res.status != 200 {
		t.Fatalf("native: %d %s", res.status, res.body)
	}
	var nr struct {
		Results []struct {
			Partition *int32 `json:"partition"`
			Offset    *int64 `json:"offset"`
			SchemaID  int    `json:"schema_id"`
			ErrorCode int    `json:"error_code"`
		} `json:"results"`
	}
	res.json(t, &nr)
	if len(nr.Results) != len(idx) {
		t.Fatalf("native: %d results for %d records", len(nr.Results), len(idx))
	}
	for j, r := range nr.Results {
		if r.Partition == nil || r.Offset == nil || r.SchemaID != id {
			t.Fatalf("native result %d = %+v", j, r)
		}
		all = append(all, sent{idx[j], fmt.Sprintf("k%d", idx[j]), *r.Partition, *r.Offset})
	}
	if *nr.Results[0].Partition != 2 {
		t.Fatalf("explicit partition 2 landed in %d", *nr.Results[0].Partition)
	}
	explicit := all[0]

	// NDJSON stream.
	idx = take(30)
	var nd bytes.Buffer
	for _, i := range idx {
		fmt.Fprintf(&nd, `{"key":"k%d","value":%s}`+"\n", i, orderJSON(i))
	}
	res = post(t, e.httpURL+"/v1/topics/orders/records", "application/x-ndjson", nd.Bytes())
	lines := strings.Split(strings.TrimSpace(string(res.body)), "\n")
	if res.status != 200 || len(lines) != len(idx) {
		t.Fatalf("ndjson: %d, %d lines: %s", res.status, len(lines), res.body)
	}
	for j, l := range lines {
		var r struct {
			Partition *int32 `json:"partition"`
			Offset    *int64 `json:"offset"`
		}
		httpResult{body: []byte(l)}.json(t, &r)
		if r.Partition == nil {
			t.Fatalf("ndjson line %d: %s", j, l)
		}
		all = append(all, sent{idx[j], fmt.Sprintf("k%d", idx[j]), *r.Partition, *r.Offset})
	}

	// Avro JSON (wrapped unions) by content type.
	i := take(1)[0]
	avroJSON := strings.Replace(orderJSON(i), fmt.Sprintf(`"note":%d`, i), fmt.Sprintf(`"note":{"long":%d}`, i), 1)
	avroJSON = strings.Replace(avroJSON, fmt.Sprintf(`"email":"c%d@example.com"`, i), fmt.Sprintf(`"email":{"string":"c%d@example.com"}`, i), 1)
	avroJSON = strings.Replace(avroJSON, `"ref":"`, `"ref":{"string":"`, 1)
	avroJSON = strings.Replace(avroJSON, `","note"`, `"},"note"`, 1)
	avroJSON = strings.Replace(avroJSON, `"created":"2024-05-01T12:00:00.`+fmt.Sprintf("%03d", i)+`Z"`, fmt.Sprintf(`"created":%d`, time.Date(2024, 5, 1, 12, 0, 0, i*1e6, time.UTC).UnixMilli()), 1)
	// Avro JSON has decimals as raw bytes strings; a JSON number is unambiguous.
	avroJSON = strings.Replace(avroJSON, fmt.Sprintf(`"amount":"%d.25"`, i), fmt.Sprintf(`"amount":%d.25`, i), 1)
	res = post(t, e.httpURL+"/v1/topics/orders/records", "application/vnd.sluice.avro+json", []byte(`{"records":[{"key":"k`+itoa(i)+`","value":`+avroJSON+`}]}`))
	res.json(t, &nr)
	if res.status != 200 || nr.Results[0].Partition == nil {
		t.Fatalf("avro json: %d %s", res.status, res.body)
	}
	all = append(all, sent{i, "k" + itoa(i), *nr.Results[0].Partition, *nr.Results[0].Offset})

	// Confluent REST Proxy v2, JSON embedded format (latest schema).
	idx = take(3)
	v2body := records(len(idx), func(j int) string { return fmt.Sprintf(`{"key":"k%d","value":%s}`, idx[j], orderJSON(idx[j])) })
	res = post(t, e.httpURL+"/topics/orders", "application/vnd.kafka.json.v2+json", v2body)
	var v2 struct {
		ValueSchemaID *int `json:"value_schema_id"`
		Offsets       []struct {
			Partition *int32 `json:"partition"`
			Offset    *int64 `json:"offset"`
			ErrorCode *int   `json:"error_code"`
		} `json:"offsets"`
	}
	res.json(t, &v2)
	if res.status != 200 || v2.ValueSchemaID == nil || *v2.ValueSchemaID != id || len(v2.Offsets) != 3 {
		t.Fatalf("v2: %d %s", res.status, res.body)
	}
	for j, o := range v2.Offsets {
		if o.ErrorCode != nil || o.Partition == nil {
			t.Fatalf("v2 offset %d: %s", j, res.body)
		}
		// As Confluent's JSON embedded format: the key's JSON text, quotes kept.
		all = append(all, sent{idx[j], fmt.Sprintf(`"k%d"`, idx[j]), *o.Partition, *o.Offset})
	}

	// v3 single record.
	i = take(1)[0]
	res = post(t, e.httpURL+"/v3/clusters/sluice/topics/orders/records", "application/json",
		[]byte(fmt.Sprintf(`{"key":{"type":"STRING","data":"k%d"},"value":{"type":"JSON","data":%s}}`, i, orderJSON(i))))
	var v3 struct {
		ErrorCode   int    `json:"error_code"`
		PartitionID *int32 `json:"partition_id"`
		Offset      *int64 `json:"offset"`
	}
	res.json(t, &v3)
	if res.status != 200 || v3.ErrorCode != 200 || v3.PartitionID == nil {
		t.Fatalf("v3: %d %s", res.status, res.body)
	}
	all = append(all, sent{i, "k" + itoa(i), *v3.PartitionID, *v3.Offset})

	// gRPC Produce and ProduceStream.
	cc := grpcConn(t, e.grpc)
	client := ingestv1.NewIngestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	idx = take(10)
	preq := &ingestv1.ProduceRequest{Topic: "orders"}
	for _, i := range idx {
		preq.Records = append(preq.Records, &ingestv1.Record{Key: []byte("k" + itoa(i)), Value: []byte(orderJSON(i)), Timestamp: timestamppb.Now()})
	}
	presp, err := client.Produce(ctx, preq)
	if err != nil || len(presp.Results) != len(idx) {
		t.Fatalf("grpc Produce: %v %v", presp, err)
	}
	for j, r := range presp.Results {
		if r.Error != nil || r.SchemaId != int32(id) {
			t.Fatalf("grpc result %d: %v", j, r)
		}
		all = append(all, sent{idx[j], "k" + itoa(idx[j]), r.Partition, r.Offset})
	}
	idx = take(10)
	stream, err := client.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for j, i := range idx {
		if err := stream.Send(&ingestv1.ProduceStreamRequest{Sequence: uint64(100 + j), Topic: "orders", Record: &ingestv1.Record{Key: []byte("k" + itoa(i)), Value: []byte(orderJSON(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for j := range idx {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("stream recv %d: %v", j, err)
		}
		if r.Sequence != uint64(100+j) || r.Result.Error != nil {
			t.Fatalf("stream answer %d out of order or failed: %v", j, r)
		}
		all = append(all, sent{idx[j], "k" + itoa(idx[j]), r.Result.Partition, r.Result.Offset})
	}

	// Everything acknowledged is in Kafka, framed, and decodes to what was sent.
	got := readTopic(t, e.kafka.Brokers(), "orders", len(all))
	first := got[[2]int64{int64(explicit.partition), explicit.offset}]
	if first.Headers["h"] != "v" || !first.Time.Equal(recordTime) {
		t.Errorf("headers %v / timestamp %v not kept", first.Headers, first.Time)
	}
	serde := decoder(t, id, orderSchema)
	for _, s := range all {
		rec, ok := got[[2]int64{int64(s.partition), s.offset}]
		if !ok {
			t.Fatalf("record %d acknowledged at %d/%d is not in Kafka", s.i, s.partition, s.offset)
		}
		if string(rec.Key) != s.key {
			t.Errorf("record %d: key %q, want %q", s.i, rec.Key, s.key)
		}
		if rec.Value[0] != 0 {
			t.Fatalf("record %d: not Confluent-framed: % x", s.i, rec.Value[:5])
		}
		var o hOrder
		if err := serde.Decode(rec.Value, &o); err != nil {
			t.Fatalf("record %d: independent decode: %v", s.i, err)
		}
		checkOrder(t, s.i, &o)
	}

	// gRPC health and reflection are served.
	hc, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "sluice.ingest.v1.IngestService"})
	if err != nil || hc.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", hc, err)
	}
	rs, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, sv := range rr.GetListServicesResponse().GetService() {
		services = append(services, sv.GetName())
	}
	if !strings.Contains(strings.Join(services, ","), "sluice.ingest.v1.IngestService") {
		t.Fatalf("reflection lists %v", services)
	}
}
