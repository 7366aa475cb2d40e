package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/auth"
)

// TestGRPCAuthenticatesBeforeReading: an unauthenticated call is refused
// before the gateway reads anything of it: a stream gets Unauthenticated
// without sending a message, a unary call whose message is not even
// protobuf gets Unauthenticated, not a decoding error.
func TestGRPCAuthenticatesBeforeReading(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{"svc": "grpc-limits-secret"}
	e := startEnv(t, nil, nil, "-gateway-api-keys-file", keysFile(t, map[string][]string{"svc": {"*"}}, secrets))
	cc := grpcConn(t, e.grpc)
	client := ingestv1.NewIngestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	st, err := client.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.Unauthenticated || grpcReason(err) != "40101" {
		t.Fatalf("unauthenticated stream, nothing sent: %v, want Unauthenticated 40101", err)
	}
	garbage := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	var out []byte
	err = cc.Invoke(ctx, ingestv1.IngestService_Produce_FullMethodName, &garbage, &out, grpc.ForceCodecV2(rawCodec{}))
	if status.Code(err) != codes.Unauthenticated || grpcReason(err) != "40101" {
		t.Fatalf("unauthenticated garbage: %v, want Unauthenticated 40101", err)
	}
	two := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secrets["svc"], "authorization", "Bearer other")
	if _, err := client.Produce(two, &ingestv1.ProduceRequest{Topic: "x"}); status.Code(err) != codes.Unauthenticated ||
		!strings.Contains(status.Convert(err).Message(), "2 authorization metadata values: send exactly one") {
		t.Fatalf("two authorization values: %v", err)
	}
	res := post(t, e.httpURL+"/v1/topics/x/records", "application/json", []byte(`{"records":[{}]}`), "Authorization", "Bearer "+secrets["svc"])
	_ = res
	req, _ := http.NewRequest(http.MethodPost, e.httpURL+"/v1/topics/x/records", strings.NewReader(`{"records":[{}]}`))
	req.Header.Add("Authorization", "Bearer "+secrets["svc"])
	req.Header.Add("Authorization", "Bearer other")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(b), `"error_code":40101,"message":"2 Authorization headers: send exactly one"`) {
		t.Fatalf("two Authorization headers: %d %s", resp.StatusCode, b)
	}
}

// TestGRPCServerLimits: concurrent streams per connection, response and
// metadata sizes are bounded as configured.
func TestGRPCServerLimits(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil,
		"-gateway-grpc-max-concurrent-streams", "2",
		"-gateway-grpc-max-send-bytes", "65536",
		"-gateway-max-header-bytes", "8192",
	)
	e.kafka.CreateTopic("glimits", 1, nil)
	e.reg.Register(t, "glimits-value", orderSchema)
	cc := grpcConn(t, e.grpc)
	client := ingestv1.NewIngestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	one := &ingestv1.ProduceRequest{Topic: "glimits", Records: []*ingestv1.Record{{Value: []byte(orderJSON(1))}}}

	// Two open streams use the connection's quota: a third call waits.
	for range 2 {
		st, err := client.ProduceStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&ingestv1.ProduceStreamRequest{Sequence: 1, Topic: "glimits", Record: &ingestv1.Record{Value: []byte(orderJSON(2))}}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil { // the stream is open on the server
			t.Fatal(err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := client.Produce(short, one)
	cancelShort()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("third concurrent call on one connection: %v, want it held back (DeadlineExceeded)", err)
	}
	// Another connection has its own quota.
	if _, err := ingestv1.NewIngestServiceClient(grpcConn(t, e.grpc)).Produce(ctx, one); err != nil {
		t.Fatalf("call on a second connection: %v", err)
	}

	// A response over the send limit fails instead of being sent.
	other := ingestv1.NewIngestServiceClient(grpcConn(t, e.grpc))
	big := &ingestv1.ProduceRequest{Topic: "glimits"}
	for i := range 2000 {
		big.Records = append(big.Records, &ingestv1.Record{Value: []byte(`{"id":"` + strings.Repeat("x", 10) + itoa(i) + `"}`)})
	}
	if _, err := other.Produce(ctx, big); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("response over GATEWAY_GRPC_MAX_SEND_BYTES: %v, want ResourceExhausted", err)
	}
	// Metadata over the header limit is refused.
	fat := metadata.AppendToOutgoingContext(ctx, "x-pad", strings.Repeat("p", 16<<10))
	if _, err := other.Produce(fat, one); err == nil {
		t.Fatal("16 KiB of metadata accepted with GATEWAY_MAX_HEADER_BYTES=8192")
	}
}

// TestGRPCKeepaliveEnforcement: pings at the configured pace are allowed,
// a client pinging faster is told to go away (ENHANCE_YOUR_CALM).
func TestGRPCKeepaliveEnforcement(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil, "-gateway-grpc-keepalive-min-time", "100ms")
	pinger := func(t *testing.T, n int, every time.Duration) (goAway http2.ErrCode, acks int) {
		conn, err := net.Dial("tcp", e.grpc)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(conn, conn)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		got := make(chan struct{}, 64)
		code := http2.ErrCode(0)
		go func() {
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					close(got)
					return
				}
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if !f.IsAck() {
						mu.Lock()
						_ = fr.WriteSettingsAck()
						mu.Unlock()
					}
				case *http2.PingFrame:
					if f.IsAck() {
						got <- struct{}{}
					}
				case *http2.GoAwayFrame:
					mu.Lock()
					code = f.ErrCode
					mu.Unlock()
				}
			}
		}()
		for i := range n {
			mu.Lock()
			err := fr.WritePing(false, [8]byte{byte(i)})
			mu.Unlock()
			if err != nil {
				break
			}
			select {
			case _, ok := <-got:
				if ok {
					acks++
				}
			case <-time.After(5 * time.Second):
			}
			if every > 0 {
				time.Sleep(every) // the pace under test, not synchronisation
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return code, acks
	}
	t.Run("at the allowed pace", func(t *testing.T) {
		if code, acks := pinger(t, 6, 150*time.Millisecond); code != 0 || acks != 6 {
			t.Fatalf("pings every 150ms with a 100ms minimum: GOAWAY %v, %d of 6 acked", code, acks)
		}
	})
	t.Run("too fast", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _ := pinger(t, 6, 0)
			if code == http2.ErrCodeEnhanceYourCalm {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("back-to-back pings: GOAWAY %v, want ENHANCE_YOUR_CALM", code)
			}
		}
	})
}

// TestRevokedKeyStreamsStop: a key removed from the keys file stops being
// accepted by its open streams (gRPC ProduceStream, NDJSON) within one
// reload interval; records answered before stay in Kafka.
func TestRevokedKeyStreamsStop(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{"gone": "revoked-secret-1", "stays": "kept-secret-2"}
	kf := keysFile(t, map[string][]string{"gone": {"revoke"}, "stays": {"revoke"}}, secrets)
	e := startEnv(t, nil, nil, "-gateway-api-keys-file", kf, "-gateway-api-keys-reload", "100ms")
	e.kafka.CreateTopic("revoke", 1, nil)
	e.reg.Register(t, "revoke-value", orderSchema)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bearer := "Bearer " + secrets["gone"]

	st, err := ingestv1.NewIngestServiceClient(grpcConn(t, e.grpc)).ProduceStream(metadata.AppendToOutgoingContext(ctx, "authorization", bearer))
	if err != nil {
		t.Fatal(err)
	}
	send := func(seq uint64) (*ingestv1.ProduceStreamResponse, error) {
		if err := st.Send(&ingestv1.ProduceStreamRequest{Sequence: seq, Topic: "revoke", Record: &ingestv1.Record{Value: []byte(orderJSON(int(seq)))}}); err != nil && err != io.EOF {
			return nil, err
		}
		return st.Recv()
	}
	if r, err := send(1); err != nil || r.Result.Error != nil {
		t.Fatalf("before revocation: %v %v", r, err)
	}

	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.httpURL+"/v1/topics/revoke/records", pr)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", bearer)
	respCh := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(respCh)
			return
		}
		respCh <- resp
	}()
	if _, err := pw.Write([]byte(`{"value":` + orderJSON(100) + "}\n")); err != nil {
		t.Fatal(err)
	}
	resp := <-respCh
	if resp == nil {
		t.FailNow()
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	nextLine := func() map[string]any {
		if !lines.Scan() {
			t.Fatalf("NDJSON answer ended: %v", lines.Err())
		}
		var m map[string]any
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := nextLine(); m["error_code"] != nil {
		t.Fatalf("NDJSON before revocation: %v", m)
	}

	// Revoke: the file keeps only the other key.
	f := auth.File{Keys: []auth.Key{{ID: "stays", SHA256: auth.HashSecret(secrets["stays"]), Topics: []string{"revoke"}}}}
	b, _ := json.Marshal(f)
	if err := os.WriteFile(kf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()

	// gRPC: the next request after the reload ends the stream.
	var gerr error
	for seq := uint64(2); ; seq++ {
		r, err := send(seq)
		if err != nil {
			gerr = err
			break
		}
		if r.Result.Error != nil {
			t.Fatalf("stream answered an error instead of ending: %v", r.Result.Error)
		}
		if time.Since(revokedAt) > 5*time.Second {
			t.Fatal("revoked key still accepted on its stream 5s after the keys file changed (reload every 100ms)")
		}
		time.Sleep(20 * time.Millisecond) // pace the probe
	}
	if status.Code(gerr) != codes.Unauthenticated || !strings.Contains(status.Convert(gerr).Message(), "API key revoked") {
		t.Fatalf("stream ended with %v, want Unauthenticated: API key revoked", gerr)
	}

	// NDJSON: the next line after the reload is answered 40101 and the
	// stream ends.
	for i := 101; ; i++ {
		if _, err := pw.Write([]byte(`{"value":` + orderJSON(i) + "}\n")); err != nil {
			break // the gateway stopped reading
		}
		m := nextLine()
		if m["error_code"] == nil {
			if time.Since(revokedAt) > 5*time.Second {
				t.Fatal("revoked key still accepted on its NDJSON stream 5s later")
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if m["error_code"] != float64(40101) || !strings.Contains(m["message"].(string), "API key revoked") {
			t.Fatalf("NDJSON after revocation: %v", m)
		}
		break
	}
	pw.Close()
	if lines.Scan() {
		t.Fatalf("NDJSON stream went on after the revocation: %s", lines.Text())
	}
	// The other key still works.
	if res := post(t, e.httpURL+"/v1/topics/revoke/records", "application/json", []byte(`{"records":[{"value":`+orderJSON(999)+`}]}`), "Authorization", "Bearer "+secrets["stays"]); res.status != 200 {
		t.Fatalf("remaining key: %d %s", res.status, res.body)
	}
}

// TestChunkedBodyBudget: a chunked body (no Content-Length) counts against
// GATEWAY_INFLIGHT_BYTES while it is read: one stalled chunked request
// holds budget, and another is refused with 429 while its body is still
// arriving, not after reading it whole.
func TestChunkedBodyBudget(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil, "-gateway-max-request-bytes", "1048576", "-gateway-inflight-bytes", "1048576", "-gateway-body-timeout", "20s")
	e.kafka.CreateTopic("chunked", 1, nil)
	e.reg.Register(t, "chunked-value", orderSchema)
	url := e.httpURL + "/v1/topics/chunked/records"

	// chunked starts a request whose body is written as the test says;
	// its response arrives on the returned channel.
	chunked := func() (*io.PipeWriter, chan *http.Response) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, url, pr)
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		ch := make(chan *http.Response, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				close(ch)
				return
			}
			ch <- resp
		}()
		return pw, ch
	}
	pad := func(n int) []byte { return bytes.Repeat([]byte(" "), n) }

	// The first request sends 700 KiB and stalls.
	holder, holderResp := chunked()
	if _, err := holder.Write(append([]byte(`{"records":[{"value":`+orderJSON(1)+`}]}`), pad(700<<10)...)); err != nil {
		t.Fatal(err)
	}
	// Wait until the gateway has read (and reserved) the holder's bytes.
	deadline := time.Now().Add(15 * time.Second)
	for inflightBytes(t, e) < 700<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled chunked request holds %d bytes of budget, want at least 700 KiB: chunked bodies must count before they are read", inflightBytes(t, e))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The second keeps sending; the gateway must answer 429 before the
	// body ends (it never does here until the answer came).
	second, secondResp := chunked()
	var written atomic.Int64
	stop := make(chan struct{})
	go func() {
		if _, err := second.Write([]byte(`{"records":[{"value":` + orderJSON(2) + `}]}`)); err != nil {
			return
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, err := second.Write(pad(16 << 10))
			written.Add(int64(n))
			if err != nil || written.Load() > 900<<10 {
				<-stop // hold the body open: it must not end before the answer
				return
			}
		}
	}()
	var resp *http.Response
	select {
	case resp = <-secondResp:
	case <-time.After(15 * time.Second):
		t.Fatalf("no answer while the chunked body was still arriving (%d bytes written)", written.Load())
	}
	close(stop)
	second.CloseWithError(io.ErrClosedPipe)
	if resp == nil {
		t.Fatal("request failed")
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"error_code":42901`) {
		t.Fatalf("second chunked request: %d %s, want 429 42901 with Retry-After", resp.StatusCode, b)
	}

	// The holder finishes and is produced; the budget is free again.
	holder.Close()
	r := <-holderResp
	if r == nil || r.StatusCode != 200 {
		t.Fatalf("holder: %v", r)
	}
	r.Body.Close()
	if res := post(t, url, "application/json", append([]byte(`{"records":[{"value":`+orderJSON(3)+`}]}`), pad(900<<10)...)); res.status != 200 {
		t.Fatalf("after the budget was freed: %d %s", res.status, res.body)
	}
}

// TestParseArenasCountAgainstBudget: a request's reservation covers its
// parse arena (as large as its body), not only the body: with one request
// holding 300 KiB, a 450 KiB request (900 KiB with its arena) does not fit
// a 1 MiB budget.
func TestParseArenasCountAgainstBudget(t *testing.T) {
	t.Parallel()
	e := startEnv(t, nil, nil, "-gateway-max-request-bytes", "600000", "-gateway-inflight-bytes", "1048576")
	e.kafka.CreateTopic("arena", 1, nil)
	e.reg.Register(t, "arena-value", orderSchema)
	url := e.httpURL + "/v1/topics/arena/records"
	holder := records(1, func(int) string { return `{"value":` + orderJSON(1) + `}` })
	holder = append(holder, bytes.Repeat([]byte(" "), 300<<10)...)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, url, pr)
	req.ContentLength = int64(len(holder))
	req.Header.Set("Content-Type", "application/json")
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			close(done)
			return
		}
		done <- resp
	}()
	if _, err := pw.Write(holder[:10]); err != nil {
		t.Fatal(err)
	}
	body := append([]byte(`{"records":[{"value":`+orderJSON(2)+`}]}`), bytes.Repeat([]byte(" "), 450<<10)...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := post(t, url, "application/json", body)
		if res.status == 429 && strings.Contains(string(res.body), "42901") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("450 KiB beside a 300 KiB holder in a 1 MiB budget: %d %s, want 429 (body + arena)", res.status, res.body)
		}
		time.Sleep(10 * time.Millisecond) // the holder may not have reserved yet
	}
	if _, err := pw.Write(holder[10:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if r := <-done; r == nil || r.StatusCode != 200 {
		t.Fatalf("holder: %v", r)
	} else {
		r.Body.Close()
	}
	if res := post(t, url, "application/json", body); res.status != 200 {
		t.Fatalf("alone: %d %s", res.status, res.body)
	}
}

// TestTopicPatternsNeverReachDeadLetters: wildcard grants (GATEWAY_TOPICS
// and API keys) never reach dead-letter or internal topics; an explicit
// name does.
func TestTopicPatternsNeverReachDeadLetters(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{"glob": "glob-secret-1", "explicit": "explicit-secret-2"}
	kf := keysFile(t, map[string][]string{"glob": {"orders.*", "*alerts*", "*"}, "explicit": {"orders.dlq"}}, secrets)
	e := startEnv(t, nil, nil, "-gateway-api-keys-file", kf, "-gateway-topics", "*,orders.dlq")
	for _, topic := range []string{"orders.eu", "orders.dlq", "orders.eu.dlq", "_sluice-alerts", "fraud-alerts"} {
		e.kafka.CreateTopic(topic, 1, nil)
	}
	for _, subject := range []string{"orders.eu-value", "orders.dlq-value", "fraud-alerts-value"} {
		e.reg.Register(t, subject, orderSchema)
	}
	body := []byte(`{"records":[{"value":` + orderJSON(1) + `}]}`)
	cases := []struct {
		name, key, topic string
		status           int
		want             string
	}{
		{"glob key on a data topic", "glob", "orders.eu", 200, ""},
		{"glob key on an alerts data topic", "glob", "fraud-alerts", 200, ""},
		{"glob key on an explicitly configured dlq", "glob", "orders.dlq", 403, `"error_code":40301,"message":"API key glob may not produce to topic orders.dlq"`},
		{"configured glob on another dlq", "glob", "orders.eu.dlq", 404, `"error_code":40401,"message":"Topic orders.eu.dlq not found."`},
		{"configured glob on the alerts topic", "glob", "_sluice-alerts", 404, `"Topic _sluice-alerts not found."`},
		{"explicit key on its dlq", "explicit", "orders.dlq", 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := post(t, e.httpURL+"/v1/topics/"+c.topic+"/records", "application/json", body, "Authorization", "Bearer "+secrets[c.key])
			if res.status != c.status || !strings.Contains(string(res.body), c.want) {
				t.Fatalf("%d %s, want %d %s", res.status, res.body, c.status, c.want)
			}
		})
	}
}

// TestMetricTopicLabelsBounded: topic labels stop growing at
// GATEWAY_METRIC_TOPICS; later topics are counted under "_other".
func TestMetricTopicLabelsBounded(t *testing.T) {
	t.Parallel()
	k, reg := startKafkaAndRegistry(t)
	for i := range 6 {
		k.CreateTopic(fmt.Sprintf("m%d", i), 1, nil)
	}
	e := startEnv(t, k, reg, "-gateway-metric-topics", "3")
	for i := range 6 {
		topic := fmt.Sprintf("m%d", i)
		e.reg.Register(t, topic+"-value", orderSchema)
		if res := post(t, e.httpURL+"/v1/topics/"+topic+"/records", "application/json", []byte(`{"records":[{"value":`+orderJSON(i)+`},{"value":{}}]}`)); res.status != 207 {
			t.Fatalf("%s: %d %s", topic, res.status, res.body)
		}
	}
	resp, err := http.Get(e.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	topics := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "sluice_gateway_record") {
			continue
		}
		if i := strings.Index(line, `topic="`); i >= 0 {
			topics[strings.SplitN(line[i+7:], `"`, 2)[0]] = true
		}
	}
	if len(topics) != 4 || !topics["_other"] {
		t.Fatalf("topic labels %v, want 3 topics and _other", topics)
	}
	if !strings.Contains(string(b), "sluice_gateway_metric_label_overflow_total") || strings.Contains(string(b), "sluice_gateway_metric_label_overflow_total 0\n") {
		t.Fatal("overflow not counted")
	}
}

// TestNeighbourRequestsSurviveARefusedBatch: two HTTP requests whose
// records share one Kafka batch; the broker refuses any batch holding one
// record of the second (INVALID_TIMESTAMP, as a topic with stricter
// message.timestamp.* bounds would). The first request is acknowledged in
// full and in Kafka; only the culprit fails, with a record error.
func TestNeighbourRequestsSurviveARefusedBatch(t *testing.T) {
	t.Parallel()
	// A 1s linger makes both requests' records one batch.
	e := startEnv(t, nil, nil, "-gateway-batch-timeout", "1s")
	e.kafka.CreateTopic("neighbours", 1, nil)
	e.reg.Register(t, "neighbours-value", orderSchema)
	var mu sync.Mutex
	var refusedBatches [][]byte
	e.kafka.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "neighbours", Err: kerr.InvalidTimestamp, Count: -1, When: func(req kmsg.Request) bool {
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			for _, p := range tp.Partitions {
				if bytes.Contains(p.Records, []byte("CULPRIT")) {
					mu.Lock()
					refusedBatches = append(refusedBatches, bytes.Clone(p.Records))
					mu.Unlock()
					return true
				}
			}
		}
		return false
	}})
	innocent := records(3, func(i int) string { return `{"value":` + orderJSON(10+i) + `}` })
	culprit := records(2, func(i int) string {
		v := orderJSON(20 + i)
		if i == 1 {
			v = strings.Replace(v, `"id":"o-21"`, `"id":"CULPRIT"`, 1)
		}
		return `{"value":` + v + `}`
	})
	var wg sync.WaitGroup
	var resA, resB httpResult
	wg.Add(2)
	go func() {
		defer wg.Done()
		resA = post(t, e.httpURL+"/v1/topics/neighbours/records", "application/json", innocent)
	}()
	go func() {
		defer wg.Done()
		resB = post(t, e.httpURL+"/v1/topics/neighbours/records", "application/json", culprit)
	}()
	wg.Wait()

	mu.Lock()
	first := refusedBatches
	mu.Unlock()
	if len(first) == 0 || !bytes.Contains(first[0], []byte("o-10")) || !bytes.Contains(first[0], []byte("o-20")) {
		t.Fatalf("the two requests were not batched together (refused batches %d)", len(first))
	}
	if resA.status != 200 {
		t.Fatalf("innocent neighbour: %d %s", resA.status, resA.body)
	}
	rb := nativeResults(t, resB)
	if resB.status != 207 || rb[0]["error_code"] != nil || rb[1]["error_code"] != float64(42207) || rb[1]["field"] != "timestamp" ||
		!strings.Contains(rb[1]["message"].(string), "Kafka refused the record's timestamp") {
		t.Fatalf("culprit's request: %d %s", resB.status, resB.body)
	}
	recs := readTopic(t, e.kafka.Brokers(), "neighbours", 4)
	for _, r := range recs {
		if bytes.Contains(r.Value, []byte("CULPRIT")) {
			t.Fatal("the refused record is in Kafka")
		}
	}
}

// inflightBytes scrapes sluice_gateway_inflight_bytes.
func inflightBytes(tb testing.TB, e *env) int64 {
	tb.Helper()
	resp, err := http.Get(e.httpURL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "sluice_gateway_inflight_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	tb.Fatal("sluice_gateway_inflight_bytes not exported")
	return 0
}
