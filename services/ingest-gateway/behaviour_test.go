package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hamba "github.com/hamba/avro/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/pkg/avro"
	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/auth"
)

// TestDeadLetterPolicy parks invalid records in <topic>.dlq with the
// headers DESIGN.md names, and says so in the result.
func TestDeadLetterPolicy(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil, "-gateway-dead-letter-topics", "events")
	e.kafka.CreateTopic("events", 2, nil)
	e.reg.Register(t, "events-value", orderSchema)
	bad := strings.Replace(orderJSON(2), `"qty":`, `"qty":"many","x":`, 1)
	body := []byte(`{"records":[{"value":` + orderJSON(1) + `},{"key":"bk","value":` + bad + `},{"value":` + orderJSON(3) + `}]}`)
	res := post(t, e.httpURL+"/v1/topics/events/records", "application/json", body)
	var out struct {
		Results []struct {
			Topic        string `json:"topic"`
			Partition    *int32 `json:"partition"`
			Offset       *int64 `json:"offset"`
			DeadLettered bool   `json:"dead_lettered"`
			Code         int    `json:"error_code"`
			Field        string `json:"field"`
		} `json:"results"`
	}
	res.json(t, &out)
	if res.status != 200 || !out.Results[1].DeadLettered || out.Results[1].Topic != "events.dlq" || out.Results[1].Code != 42201 || out.Results[1].Field != "value.items[0].qty" || out.Results[1].Offset == nil {
		t.Fatalf("dead-letter result: %d %s", res.status, res.body)
	}
	dlq := readTopic(t, e.kafka.Brokers(), "events.dlq", 1)
	for _, r := range dlq {
		if string(r.Value) != bad || string(r.Key) != `"bk"` {
			t.Errorf("dlq record value %s key %q, want the original bytes %s", r.Value, r.Key, bad)
		}
		want := map[string]string{
			"sluice-stage": "ingest-gateway", "sluice-source-topic": "events", "sluice-source-partition": "-1",
			"sluice-source-offset": "-1", "sluice-error-field": "value.items[0].qty",
		}
		for k, v := range want {
			if r.Headers[k] != v {
				t.Errorf("dlq header %s = %q, want %q", k, r.Headers[k], v)
			}
		}
		if !strings.Contains(r.Headers["sluice-error"], `value.items[0].qty: expected int, got string "many"`) {
			t.Errorf("sluice-error = %q", r.Headers["sluice-error"])
		}
	}
	readTopic(t, e.kafka.Brokers(), "events", 2)

	// Async: the dead letter is reported queued and dead-lettered (202),
	// as the sync answer reports it written and dead-lettered.
	body = []byte(`{"async":true,"records":[{"value":` + orderJSON(4) + `},{"key":"ak","value":` + bad + `}]}`)
	res = post(t, e.httpURL+"/v1/topics/events/records", "application/json", body)
	var queued struct {
		Results []struct {
			Queued       bool   `json:"queued"`
			DeadLettered bool   `json:"dead_lettered"`
			Field        string `json:"field"`
		} `json:"results"`
	}
	res.json(t, &queued)
	if res.status != 202 || len(queued.Results) != 2 || !queued.Results[0].Queued || !queued.Results[1].Queued || !queued.Results[1].DeadLettered || queued.Results[1].Field != "value.items[0].qty" {
		t.Fatalf("async dead-letter answer: %d %s", res.status, res.body)
	}
	found := false
	for _, r := range readTopic(t, e.kafka.Brokers(), "events.dlq", 2) {
		found = found || (string(r.Key) == `"ak"` && string(r.Value) == bad)
	}
	if !found {
		t.Fatal("the async dead letter is not in events.dlq")
	}
}

// TestStreamsAnswerWhileSending proves NDJSON and v3 streams answer each
// record before the request body ends (full duplex, bounded memory).
func TestStreamsAnswerWhileSending(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil)
	e.kafka.CreateTopic("clicks", 1, nil)
	e.reg.Register(t, "clicks-value", orderSchema)

	cases := []struct {
		name, path, contentType string
		record                  func(i int) string
		ok                      func(line string) bool
	}{
		{"ndjson", "/v1/topics/clicks/records", "application/x-ndjson",
			func(i int) string { return `{"value":` + orderJSON(i) + "}\n" },
			func(l string) bool { return strings.Contains(l, `"offset":`) }},
		{"v3", "/v3/clusters/sluice/topics/clicks/records", "application/json",
			func(i int) string { return `{"value":{"type":"JSON","data":` + orderJSON(i) + "}}" },
			func(l string) bool { return strings.Contains(l, `"error_code":200`) }},
	}
	for _, tc := range cases {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, e.httpURL+tc.path, pr)
		req.Header.Set("Content-Type", tc.contentType)
		type answer struct {
			resp *http.Response
			err  error
		}
		ch := make(chan answer, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			ch <- answer{resp, err}
		}()
		if _, err := io.WriteString(pw, tc.record(1)); err != nil {
			t.Fatal(err)
		}
		var a answer
		select {
		case a = <-ch:
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: no response headers while the body is still open", tc.name)
		}
		if a.err != nil || a.resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", tc.name, a.err, a.resp)
		}
		lines := bufio.NewScanner(a.resp.Body)
		for i := 1; i <= 3; i++ {
			if i > 1 {
				rec := tc.record(i)
				if i == 2 {
					rec = strings.Replace(rec, `"status":"PAID"`, `"status":"LOST"`, 1)
				}
				if _, err := io.WriteString(pw, rec); err != nil {
					t.Fatal(err)
				}
			}
			if !lines.Scan() {
				t.Fatalf("%s: no answer for record %d: %v", tc.name, i, lines.Err())
			}
			l := lines.Text()
			if i == 2 {
				if !strings.Contains(l, `\"LOST\" is not a symbol of enum com.acme.Status`) {
					t.Fatalf("%s: record 2 answer %s", tc.name, l)
				}
			} else if !tc.ok(l) {
				t.Fatalf("%s: record %d answer %s", tc.name, i, l)
			}
		}
		pw.Close()
		if lines.Scan() {
			t.Fatalf("%s: extra answer %q", tc.name, lines.Text())
		}
		a.resp.Body.Close()
	}
	readTopic(t, e.kafka.Brokers(), "clicks", 4)
}

// TestInflightBudget429 holds most of the shared budget with a slow
// request (its Content-Length is reserved before the body arrives); a
// second request gets 429 with Retry-After, and succeeds once the first
// finished.
func TestInflightBudget429(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil, "-gateway-max-request-bytes", "65536", "-gateway-inflight-bytes", "65536")
	e.kafka.CreateTopic("budget", 1, nil)
	e.reg.Register(t, "budget-value", orderSchema)

	big := records(150, func(i int) string { return `{"value":` + orderJSON(i) + `}` })
	if len(big) < 40000 || len(big) > 65536 {
		t.Fatalf("slow body is %d bytes", len(big))
	}
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, e.httpURL+"/v1/topics/budget/records", pr)
	req.ContentLength = int64(len(big))
	req.Header.Set("Content-Type", "application/json")
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		done <- resp
	}()
	if _, err := pw.Write(big[:100]); err != nil {
		t.Fatal(err)
	}
	// Probe only once the slow request holds its reservation (its declared
	// length, taken before its body is read): a probe sent earlier could
	// itself hold the budget when the slow request arrives and get that
	// one refused instead (seen on a loaded machine).
	deadline := time.Now().Add(20 * time.Second)
	for inflight := 0.0; inflight < float64(len(big)); inflight = gaugeValue(t, e.httpURL+"/metrics", "sluice_gateway_inflight_bytes") {
		select {
		case resp := <-done:
			t.Fatalf("slow request answered before its body was sent: %v", resp)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("slow request never reserved: in-flight bytes %v, want >= %d", inflight, len(big))
		}
		time.Sleep(10 * time.Millisecond)
	}
	small := []byte(`{"records":[{"value":` + orderJSON(999) + `}]}` + strings.Repeat(" ", 30000))
	if res := post(t, e.httpURL+"/v1/topics/budget/records", "application/json", small); res.status != 429 ||
		res.header.Get("Retry-After") == "" || !strings.Contains(string(res.body), `"error_code":42901`) {
		t.Fatalf("over the in-flight budget: %d %v %s, want 429 with Retry-After and 42901", res.status, res.header, res.body)
	}
	if _, err := pw.Write(big[100:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	resp := <-done
	if resp == nil || resp.StatusCode != 200 {
		t.Fatalf("slow request: %v", resp)
	}
	resp.Body.Close()
	if res := post(t, e.httpURL+"/v1/topics/budget/records", "application/json", small); res.status != 200 {
		t.Fatalf("after budget freed: %d %s", res.status, res.body)
	}
	readTopic(t, e.kafka.Brokers(), "budget", 151)
}

// TestGRPCAuthAndRecordErrors checks API keys in gRPC metadata and
// per-record errors.
func TestGRPCAuthAndRecordErrors(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{"svc": "grpc-secret-1"}
	e := startEnv(t, nil, nil, "-gateway-api-keys-file", keysFile(t, map[string][]string{"svc": {"metrics.*"}}, secrets), "-gateway-topics", "metrics.*,other")
	e.kafka.CreateTopic("metrics.cpu", 1, nil)
	e.kafka.CreateTopic("other", 1, nil)
	e.reg.Register(t, "metrics.cpu-value", orderSchema)
	client := ingestv1.NewIngestServiceClient(grpcConn(t, e.grpc))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := &ingestv1.ProduceRequest{Topic: "metrics.cpu", Records: []*ingestv1.Record{
		{Value: []byte(orderJSON(1))},
		{Value: []byte(strings.Replace(orderJSON(2), `"day":"2024-05-01"`, `"day":"May 1st"`, 1))},
	}}
	check := func(name string, ctx context.Context, topic string, wantCode codes.Code, wantReason string) {
		t.Helper()
		r := &ingestv1.ProduceRequest{Topic: topic, Records: req.Records}
		_, err := client.Produce(ctx, r)
		st := status.Convert(err)
		if st.Code() != wantCode {
			t.Fatalf("%s: code %v, want %v (%v)", name, st.Code(), wantCode, err)
		}
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == wantReason {
				return
			}
		}
		t.Fatalf("%s: no ErrorInfo reason %s in %v", name, wantReason, st.Details())
	}
	check("no key", ctx, "metrics.cpu", codes.Unauthenticated, "40101")
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secrets["svc"])
	check("wrong topic", authed, "other", codes.PermissionDenied, "40301")
	check("unknown topic", authed, "nope", codes.NotFound, "40401")
	resp, err := client.Produce(authed, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Results[0].Error != nil || resp.Results[1].Error == nil || resp.Results[1].Error.Code != 42201 || resp.Results[1].Error.Field != "value.day" {
		t.Fatalf("results: %v", resp.Results)
	}
	readTopic(t, e.kafka.Brokers(), "metrics.cpu", 1)
}

// TestAsyncAccepted answers 202 once records are queued; they land.
func TestAsyncAccepted(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil)
	e.kafka.CreateTopic("async", 1, nil)
	e.reg.Register(t, "async-value", orderSchema)
	res := post(t, e.httpURL+"/v1/topics/async/records?async=true", "application/json", records(5, func(i int) string { return `{"value":` + orderJSON(i) + `}` }))
	if res.status != 202 || strings.Count(string(res.body), `"queued":true`) != 5 {
		t.Fatalf("async: %d %s", res.status, res.body)
	}
	readTopic(t, e.kafka.Brokers(), "async", 5)
}

// TestShutdownUnderLoad cancels run's context (what SIGTERM does) while
// HTTP batches and a gRPC stream are producing: run returns cleanly and
// every record acknowledged with a success is in Kafka.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil)
	e.kafka.CreateTopic("load", 3, nil)
	id := e.reg.Register(t, "load-value", orderSchema)

	var (
		mu    sync.Mutex
		acked []sent
		seq   atomic.Int64
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				base := int(seq.Add(50)) - 50
				body := records(50, func(j int) string { return `{"value":` + orderJSON(base+j) + `}` })
				resp, err := client.Post(e.httpURL+"/v1/topics/load/records", "application/json", strings.NewReader(string(body)))
				if err != nil {
					return // listener closed
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 && resp.StatusCode != 207 {
					continue
				}
				var out struct {
					Results []struct {
						Partition *int32 `json:"partition"`
						Offset    *int64 `json:"offset"`
					} `json:"results"`
				}
				if err := json.Unmarshal(b, &out); err != nil {
					t.Errorf("bad 2xx body: %v", err)
					return
				}
				mu.Lock()
				for j, r := range out.Results {
					if r.Partition != nil {
						acked = append(acked, sent{i: base + j, partition: *r.Partition, offset: *r.Offset})
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := ingestv1.NewIngestServiceClient(grpcConn(t, e.grpc))
		stream, err := client.ProduceStream(context.Background())
		if err != nil {
			return
		}
		pending := map[uint64]int{}
		var pmu sync.Mutex
		go func() {
			for {
				select {
				case <-stop:
					_ = stream.CloseSend()
					return
				default:
				}
				i := int(seq.Add(1)) - 1
				pmu.Lock()
				pending[uint64(i)] = i
				pmu.Unlock()
				if err := stream.Send(&ingestv1.ProduceStreamRequest{Sequence: uint64(i), Topic: "load", Record: &ingestv1.Record{Value: []byte(orderJSON(i))}}); err != nil {
					return
				}
			}
		}()
		for {
			r, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) && status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
					t.Logf("stream ended: %v", err)
				}
				return
			}
			if r.Result.Error == nil {
				mu.Lock()
				acked = append(acked, sent{i: int(r.Sequence), partition: r.Result.Partition, offset: r.Result.Offset})
				mu.Unlock()
			}
		}
	}()

	// Let load build up, then "SIGTERM".
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d records acknowledged before shutdown", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.stop(); err != nil {
		t.Fatalf("run returned %v", err)
	}
	close(stop)
	wg.Wait()

	got := readTopic(t, e.kafka.Brokers(), "load", -1)
	serde := decoder(t, id, orderSchema)
	for _, a := range acked {
		r, ok := got[[2]int64{int64(a.partition), a.offset}]
		if !ok {
			t.Fatalf("record %d acknowledged at %d/%d is not in Kafka", a.i, a.partition, a.offset)
		}
		var o hOrder
		if err := serde.Decode(r.Value, &o); err != nil || o.ID != fmt.Sprintf("o-%d", a.i) {
			t.Fatalf("record at %d/%d is %s (%v), want o-%d", a.partition, a.offset, o.ID, err, a.i)
		}
	}
	t.Logf("%d records acknowledged before shutdown, all in Kafka (%d records in the topic)", len(acked), len(got))
}

// TestKeySubjectAndTLS: with a <topic>-key subject, JSON keys are Avro
// encoded and framed with the key schema id (and validated, errors naming
// key.<field>); both listeners serve TLS when configured.
func TestKeySubjectAndTLS(t *testing.T) {
	t.Parallel()
	pki := kafkatest.NewPKI(t)
	pem, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	e := startEnvTLS(t, nil, nil, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		"-gateway-tls-cert-file", pki.CertFile, "-gateway-tls-key-file", pki.KeyFile)
	e.kafka.CreateTopic("keyed", 2, nil)
	e.reg.Register(t, "keyed-value", orderSchema)
	keySchema := `{"type":"record","name":"K","fields":[{"name":"user","type":"string"}]}`
	keyID := e.reg.Register(t, "keyed-key", keySchema)

	body := []byte(`{"records":[{"key":{"user":"alice"},"value":` + orderJSON(1) + `},{"key":{"usr":"bob"},"value":` + orderJSON(2) + `}]}`)
	req, _ := http.NewRequest(http.MethodPost, e.httpURL+"/v1/topics/keyed/records", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMultiStatus || !strings.Contains(string(b), `"field":"key.user"`) {
		t.Fatalf("keyed: %d %s", resp.StatusCode, b)
	}
	got := readTopic(t, e.kafka.Brokers(), "keyed", 1)
	ks, _ := hamba.Parse(keySchema)
	for _, r := range got {
		id, payload, err := wire.Decode(r.Key)
		if err != nil || int(id) != keyID {
			t.Fatalf("key not framed with key schema %d: % x (%v)", keyID, r.Key, err)
		}
		var k struct {
			User string `avro:"user"`
		}
		if err := hamba.Unmarshal(ks, payload, &k); err != nil || k.User != "alice" {
			t.Fatalf("key decodes to %+v, %v", k, err)
		}
	}

	// gRPC over TLS.
	cc, err := grpc.NewClient(e.grpc, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pr, err := ingestv1.NewIngestServiceClient(cc).Produce(ctx, &ingestv1.ProduceRequest{Topic: "keyed", Records: []*ingestv1.Record{{KeyJson: `{"user":"carol"}`, Value: []byte(orderJSON(3))}}})
	if err != nil || pr.Results[0].Error != nil {
		t.Fatalf("grpc over TLS: %v %v", pr, err)
	}
	readTopic(t, e.kafka.Brokers(), "keyed", 2)
}

// TestRegistryOutage: known subjects keep working from the cache while the
// registry is down; an unknown one gets 503 50302 with Retry-After; after
// the registry is back the gateway recovers without restart.
func TestRegistryOutage(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil)
	e.kafka.CreateTopic("known", 1, nil)
	e.kafka.CreateTopic("unknown", 1, nil)
	e.reg.Register(t, "known-value", orderSchema)
	e.reg.Register(t, "unknown-value", orderSchema)
	one := func(topic string, i int) httpResult {
		return post(t, e.httpURL+"/v1/topics/"+topic+"/records", "application/json", []byte(`{"records":[{"value":`+orderJSON(i)+`}]}`))
	}
	if res := one("known", 1); res.status != 200 {
		t.Fatalf("warm-up: %d %s", res.status, res.body)
	}
	e.reg.Stop()
	if res := one("known", 2); res.status != 200 {
		t.Fatalf("cached subject during outage: %d %s", res.status, res.body)
	}
	res := one("unknown", 3)
	if res.status != 503 || res.header.Get("Retry-After") == "" || !strings.Contains(string(res.body), `"error_code":50302`) {
		t.Fatalf("uncached subject during outage: %d %v %s", res.status, res.header, res.body)
	}
	e.reg.Restart(t)
	if res := one("unknown", 4); res.status != 200 {
		t.Fatalf("after the registry is back: %d %s", res.status, res.body)
	}
	readTopic(t, e.kafka.Brokers(), "known", 2)
	readTopic(t, e.kafka.Brokers(), "unknown", 1)
}

// TestRESTProxyV2AvroAndBinary: v2 avro with inline schemas (registered
// under <topic>-value / -key, ids in the response) and the binary
// embedded format (Avro binary, validated).
func TestRESTProxyV2AvroAndBinary(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil)
	e.kafka.CreateTopic("v2t", 1, nil)
	schemaJSON, _ := json.Marshal(orderSchema)
	i := 7
	avroJSON := strings.Replace(orderJSON(i), `"amount":"7.25"`, `"amount":7.25`, 1)
	avroJSON = strings.Replace(avroJSON, `"email":"c7@example.com"`, `"email":{"string":"c7@example.com"}`, 1)
	avroJSON = strings.Replace(avroJSON, `"ref":"6f1c8a7e-3b2d-4c5e-9f00-112233445507"`, `"ref":{"string":"6f1c8a7e-3b2d-4c5e-9f00-112233445507"}`, 1)
	avroJSON = strings.Replace(avroJSON, `"note":7`, `"note":{"long":7}`, 1)
	avroJSON = strings.Replace(avroJSON, `"created":"2024-05-01T12:00:00.007Z"`, `"created":1714564800007`, 1)
	body := []byte(`{"key_schema":"\"string\"","value_schema":` + string(schemaJSON) + `,"records":[{"key":"k7","value":` + avroJSON + `}]}`)
	res := post(t, e.httpURL+"/topics/v2t", "application/vnd.kafka.avro.v2+json", body)
	var v2 struct {
		KeySchemaID   *int `json:"key_schema_id"`
		ValueSchemaID *int `json:"value_schema_id"`
		Offsets       []struct {
			Partition *int32 `json:"partition"`
			Offset    *int64 `json:"offset"`
			ErrorCode *int   `json:"error_code"`
		} `json:"offsets"`
	}
	res.json(t, &v2)
	if res.status != 200 || v2.KeySchemaID == nil || v2.ValueSchemaID == nil || v2.Offsets[0].ErrorCode != nil || res.header.Get("Content-Type") != "application/vnd.kafka.v2+json" {
		t.Fatalf("v2 avro: %d %v %s", res.status, res.header, res.body)
	}
	// The inline schema is now the subject's latest version in the registry.
	resp, err := http.Get(e.reg.URL() + "/subjects/v2t-value/versions/latest")
	if err != nil {
		t.Fatal(err)
	}
	var latest struct {
		ID int `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&latest)
	resp.Body.Close()
	if latest.ID != *v2.ValueSchemaID {
		t.Fatalf("registry latest id %d, response value_schema_id %d", latest.ID, *v2.ValueSchemaID)
	}

	// Binary embedded format: base64 Avro binary against the latest schema.
	codec, err := avro.NewCodec(latest.ID, orderSchema)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := codec.BinaryFromJSON(nil, []byte(orderJSON(8)), avro.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res = post(t, e.httpURL+"/topics/v2t/partitions/0", "application/vnd.kafka.binary.v2+json",
		[]byte(`{"records":[{"key":"`+base64.StdEncoding.EncodeToString([]byte("k8"))+`","value":"`+base64.StdEncoding.EncodeToString(bin)+`"}]}`))
	if res.status != 200 {
		t.Fatalf("v2 binary: %d %s", res.status, res.body)
	}
	res = post(t, e.httpURL+"/topics/v2t", "application/vnd.kafka.binary.v2+json",
		[]byte(`{"records":[{"value":"`+base64.StdEncoding.EncodeToString(bin[:len(bin)-3])+`"}]}`))
	if res.status != 422 || !strings.Contains(string(res.body), `"error_code":42203`) {
		t.Fatalf("v2 truncated binary: %d %s", res.status, res.body)
	}

	got := readTopic(t, e.kafka.Brokers(), "v2t", 2)
	serde := decoder(t, latest.ID, orderSchema)
	for _, r := range got {
		var o hOrder
		if err := serde.Decode(r.Value, &o); err != nil {
			t.Fatal(err)
		}
		n := 7
		if r.Offset == 1 {
			n = 8
			if string(r.Key) != "k8" {
				t.Errorf("binary key %q", r.Key)
			}
		} else {
			id, payload, err := wire.Decode(r.Key)
			if err != nil || int(id) != *v2.KeySchemaID || string(payload[1:]) != "k7" {
				t.Errorf("avro key % x (%v), want framed string k7 with id %d", r.Key, err, *v2.KeySchemaID)
			}
		}
		checkOrder(t, n, &o)
	}
}

// TestRateLimitPerKey: a key over its records/s limit gets 429 42902 with
// Retry-After; another key is unaffected.
func TestRateLimitPerKey(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "keys.json")
	f := auth.File{Keys: []auth.Key{
		{ID: "slow", SHA256: auth.HashSecret("slow-secret"), Topics: []string{"*"}, RecordsPerSecond: 1},
		{ID: "fast", SHA256: auth.HashSecret("fast-secret"), Topics: []string{"*"}},
	}}
	b, _ := json.Marshal(f)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, nil, nil, "-gateway-api-keys-file", p)
	e.kafka.CreateTopic("limited", 1, nil)
	e.reg.Register(t, "limited-value", orderSchema)
	batch := records(20, func(i int) string { return `{"value":` + orderJSON(i) + `}` })
	if res := post(t, e.httpURL+"/v1/topics/limited/records", "application/json", batch, "Authorization", "Bearer slow-secret"); res.status != 200 {
		t.Fatalf("first batch: %d %s", res.status, res.body)
	}
	res := post(t, e.httpURL+"/v1/topics/limited/records", "application/json", batch, "Authorization", "Bearer slow-secret")
	if res.status != 429 || res.header.Get("Retry-After") == "" || !strings.Contains(string(res.body), `"error_code":42902`) {
		t.Fatalf("over the limit: %d %v %s", res.status, res.header, res.body)
	}
	if res := post(t, e.httpURL+"/v1/topics/limited/records", "application/json", batch, "Authorization", "Bearer fast-secret"); res.status != 200 {
		t.Fatalf("other key: %d %s", res.status, res.body)
	}
	readTopic(t, e.kafka.Brokers(), "limited", 40)
}

// TestTopicCreatedLater: a topic created in Kafka after the gateway
// started (and after a first 404) becomes usable within seconds, without
// a restart.
func TestTopicCreatedLater(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil)
	e.reg.Register(t, "late-value", orderSchema)
	body := []byte(`{"records":[{"value":` + orderJSON(1) + `}]}`)
	if res := post(t, e.httpURL+"/v1/topics/late/records", "application/json", body); res.status != 404 {
		t.Fatalf("before creation: %d %s", res.status, res.body)
	}
	e.kafka.CreateTopic("late", 1, nil)
	deadline := time.Now().Add(15 * time.Second)
	for {
		res := post(t, e.httpURL+"/v1/topics/late/records", "application/json", body)
		if res.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic created 15s ago still refused: %d %s", res.status, res.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	readTopic(t, e.kafka.Brokers(), "late", 1)
}

// TestNDJSONBadLines: a malformed or oversize line fails only itself; the
// stream goes on and every good line is produced.
func TestNDJSONBadLines(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil, "-gateway-max-record-bytes", "4000")
	e.kafka.CreateTopic("lines", 1, nil)
	e.reg.Register(t, "lines-value", orderSchema)
	body := `{"value":` + orderJSON(1) + "}\n" +
		"{bad json\n" +
		`{"value":` + strings.Replace(orderJSON(2), `"c2"`, `"`+strings.Repeat("z", 80000)+`"`, 1) + "}\n" +
		"\n" +
		`{"value":` + orderJSON(3) + `}` // no trailing newline
	res := post(t, e.httpURL+"/v1/topics/lines/records", "application/x-ndjson", []byte(body))
	lines := strings.Split(strings.TrimSpace(string(res.body)), "\n")
	if res.status != 200 || len(lines) != 4 {
		t.Fatalf("%d, %d lines: %s", res.status, len(lines), res.body)
	}
	wants := []string{`"offset":0`, `"error_code":42201,"message":"line 2: malformed record`, `"error_code":42202`, `"offset":1`}
	for i, w := range wants {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s, want %s", i+1, lines[i], w)
		}
	}
	readTopic(t, e.kafka.Brokers(), "lines", 2)
}

// TestProduceStreamMixedTopics: a gRPC stream alternating topics and
// formats is answered in order, each record landing in its topic.
func TestProduceStreamMixedTopics(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil)
	for _, topic := range []string{"mix-a", "mix-b"} {
		e.kafka.CreateTopic(topic, 1, nil)
		e.reg.Register(t, topic+"-value", orderSchema)
	}
	client := ingestv1.NewIngestServiceClient(grpcConn(t, e.grpc))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := client.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	go func() {
		for i := 0; i < n; i++ {
			topic := "mix-a"
			value := orderJSON(i)
			if i%3 == 0 {
				topic = "mix-b"
			}
			if i%7 == 0 {
				value = `{"id":1}` // invalid: answered in place
			}
			if err := stream.Send(&ingestv1.ProduceStreamRequest{Sequence: uint64(i), Topic: topic, Record: &ingestv1.Record{Value: []byte(value)}}); err != nil {
				t.Error(err)
				return
			}
		}
		_ = stream.CloseSend()
	}()
	okA, okB := 0, 0
	for i := 0; i < n; i++ {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if r.Sequence != uint64(i) {
			t.Fatalf("answer %d has sequence %d", i, r.Sequence)
		}
		switch {
		case i%7 == 0:
			if r.Result.Error == nil || r.Result.Error.Code != 42201 {
				t.Fatalf("record %d: want 42201, got %v", i, r.Result)
			}
		case r.Result.Error != nil:
			t.Fatalf("record %d: %v", i, r.Result.Error)
		case i%3 == 0:
			okB++
		default:
			okA++
		}
	}
	readTopic(t, e.kafka.Brokers(), "mix-a", okA)
	readTopic(t, e.kafka.Brokers(), "mix-b", okB)
}

// TestSlowBodyTimesOut: a client that stops sending its body is cut off
// after GATEWAY_BODY_TIMEOUT and its budget reservation is returned.
func TestSlowBodyTimesOut(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil, "-gateway-body-timeout", "300ms", "-gateway-max-request-bytes", "65536", "-gateway-inflight-bytes", "65536")
	e.kafka.CreateTopic("slow", 1, nil)
	e.reg.Register(t, "slow-value", orderSchema)
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, e.httpURL+"/v1/topics/slow/records", pr)
	req.ContentLength = 60000
	req.Header.Set("Content-Type", "application/json")
	go func() { _, _ = pw.Write([]byte(`{"records":[`)) }()
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "reading request body") {
			t.Fatalf("stalled body: %d %s", resp.StatusCode, b)
		}
	}
	// Whether the client saw the 400 or a closed connection, the budget is back.
	big := records(150, func(i int) string { return `{"value":` + orderJSON(i) + `}` })
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := post(t, e.httpURL+"/v1/topics/slow/records", "application/json", big)
		if res.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("budget not returned: %d %s", res.status, res.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSchemaOrFormatAfterRecords: values are encoded while the body is
// parsed, with the latest schema in the content type's format; a
// schema_id or format given after the records must still win.
func TestSchemaOrFormatAfterRecords(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil)
	e.kafka.CreateTopic("late", 1, nil)
	v1 := e.reg.Register(t, "late-value", orderSchema)
	v2 := e.reg.Register(t, "late-value", strings.TrimSuffix(strings.TrimSpace(orderSchema), "]}")+`,{"name":"extra","type":["null","string"],"default":null}]}`)
	if v1 == v2 {
		t.Fatal("the second schema did not get a new id")
	}
	// Avro JSON wraps every union value.
	wrapped := strings.NewReplacer(`"note":7`, `"note":{"long":7}`, `"email":"c7@example.com"`, `"email":{"string":"c7@example.com"}`,
		`"ref":"6f1c8a7e-3b2d-4c5e-9f00-112233445507"`, `"ref":{"string":"6f1c8a7e-3b2d-4c5e-9f00-112233445507"}`).Replace(orderJSON(7))
	for _, c := range []struct {
		name, body string
		id         int
	}{
		{"schema_id after records", `{"records":[{"value":` + orderJSON(5) + `}],"schema_id":` + fmt.Sprint(v1) + `}`, v1},
		{"latest", `{"records":[{"value":` + orderJSON(6) + `}]}`, v2},
		{"format after records", `{"records":[{"value":` + wrapped + `}],"format":"avro_json"}`, v2},
	} {
		res := post(t, e.httpURL+"/v1/topics/late/records", "application/json", []byte(c.body))
		if res.status != 200 || !strings.Contains(string(res.body), fmt.Sprintf(`"schema_id":%d`, c.id)) {
			t.Fatalf("%s: %d %s", c.name, res.status, res.body)
		}
	}
	recs := readTopic(t, e.kafka.Brokers(), "late", 3)
	for off, want := range []int{v1, v2, v2} {
		r, ok := recs[[2]int64{0, int64(off)}]
		if !ok || len(r.Value) < 5 || int(binary.BigEndian.Uint32(r.Value[1:5])) != want {
			t.Fatalf("offset %d: framed with %x, want schema id %d", off, r.Value[:min(5, len(r.Value))], want)
		}
	}
	// The avro_json record's union decoded as the long 7, by franz-go's
	// serde with hamba (independent of the gateway's encoder).
	var o hOrder
	v2Schema := strings.TrimSuffix(strings.TrimSpace(orderSchema), "]}") + `,{"name":"extra","type":["null","string"],"default":null}]}`
	if err := decoder(t, v2, v2Schema).Decode(recs[[2]int64{0, 2}].Value, &o); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(o.Note) != "7" || o.ID != "o-7" {
		t.Fatalf("decoded id %q note %#v", o.ID, o.Note)
	}
}

// TestV3Subject: a v3 record may name the subject its schema comes from
// (Confluent's "subject", optionally with "schema_version") instead of
// <topic>-value; the record is framed with that subject's schema id.
func TestV3Subject(t *testing.T) {
	t.Parallel()
	// The topic may take schemas of other subjects (TestSchemaOwnership
	// covers the default, which refuses them).
	e := startEnv(t, nil, nil, "-gateway-any-schema-topics", "v3subj")
	e.kafka.CreateTopic("v3subj", 1, nil)
	shared := e.reg.Register(t, "shared-orders", orderSchema)
	url := e.httpURL + "/v3/clusters/sluice/topics/v3subj/records"
	for _, value := range []string{
		`{"type":"JSON","subject":"shared-orders","data":` + orderJSON(1) + `}`,
		`{"type":"JSON","subject":"shared-orders","schema_version":1,"data":` + orderJSON(2) + `}`,
	} {
		// A JSON-typed key keeps its JSON text, as Confluent writes it.
		res := post(t, url, "application/json", []byte(`{"key":{"type":"JSON","data":"kj"},"value":`+value+`}`))
		if res.status != 200 || !strings.Contains(string(res.body), `"error_code":200`) {
			t.Fatalf("v3 with subject: %d %s", res.status, res.body)
		}
	}
	// Without the subject the topic's own subject is used, which has no schema.
	res := post(t, url, "application/json", []byte(`{"value":{"type":"JSON","data":`+orderJSON(3)+`}}`))
	if res.status == 200 || !strings.Contains(string(res.body), "v3subj-value") {
		t.Fatalf("v3 without subject: %d %s", res.status, res.body)
	}
	for _, r := range readTopic(t, e.kafka.Brokers(), "v3subj", 2) {
		if len(r.Value) < 5 || int(binary.BigEndian.Uint32(r.Value[1:5])) != shared {
			t.Fatalf("record framed %x, want schema id %d", r.Value[:min(5, len(r.Value))], shared)
		}
		if string(r.Key) != `"kj"` {
			t.Fatalf("v3 JSON key written as %q, want %q", r.Key, `"kj"`)
		}
	}
}

// TestSchemaReferences: a value schema that references a type registered
// under another subject (Confluent schema references) validates and
// encodes records; they decode with the schema written out in full.
func TestSchemaReferences(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil)
	e.kafka.CreateTopic("refs", 1, nil)
	const address = `{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"city","type":"string"}]}`
	const order = `{"type":"record","name":"Shipment","namespace":"com.acme","fields":[{"name":"id","type":"string"},{"name":"to","type":"Address"},{"name":"from","type":["null","Address"],"default":null}]}`
	e.reg.Register(t, "address", address)
	body, _ := json.Marshal(map[string]any{"schema": order, "references": []map[string]any{{"name": "com.acme.Address", "subject": "address", "version": 1}}})
	res := post(t, e.reg.URL()+"/subjects/refs-value/versions", "application/vnd.schemaregistry.v1+json", body)
	if res.status != 200 {
		t.Fatalf("registering a schema with references: %d %s", res.status, res.body)
	}
	res = post(t, e.httpURL+"/v1/topics/refs/records", "application/json",
		[]byte(`{"records":[{"value":{"id":"s1","to":{"city":"Oslo"},"from":{"city":"Rome"}}},{"value":{"id":"s2","to":{"city":7}}}]}`))
	if res.status != 207 || !strings.Contains(string(res.body), `"field":"value.to.city"`) {
		t.Fatalf("produce with a referenced type: %d %s", res.status, res.body)
	}
	full := strings.Replace(order, `"type":"Address"`, `"type":`+address, 1)
	s, err := hamba.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	recs := readTopic(t, e.kafka.Brokers(), "refs", 1)
	var got struct {
		ID string `avro:"id"`
		To struct {
			City string `avro:"city"`
		} `avro:"to"`
		From *struct {
			City string `avro:"city"`
		} `avro:"from"`
	}
	if err := hamba.Unmarshal(s, recs[[2]int64{0, 0}].Value[5:], &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != "s1" || got.To.City != "Oslo" || got.From == nil || got.From.City != "Rome" {
		t.Fatalf("decoded %+v", got)
	}
}

// gaugeValue reads one unlabelled gauge from a Prometheus text page.
func gaugeValue(tb testing.TB, url, name string) float64 {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	tb.Fatalf("no %s in %s", name, url)
	return 0
}
