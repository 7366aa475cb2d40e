package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
)

// registryRequests sums the registry's request-latency histogram counts
// (sluice_schema_registry_{grpc,http}_request_duration_seconds_count)
// whose series line contains every fragment, e.g. `method="/sluice.registry.v1.RegistryService/GetLatestSchema"`.
// -1 when the registry does not answer.
func registryRequests(tb testing.TB, base, family string, fragments ...string) float64 {
	tb.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, family+"_count{") {
			continue
		}
		match := true
		for _, f := range fragments {
			match = match && strings.Contains(line, f)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			tb.Fatalf("registry metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

const (
	grpcFamily = "sluice_schema_registry_grpc_request_duration_seconds"
	httpFamily = "sluice_schema_registry_http_request_duration_seconds"
	getLatest  = `method="/sluice.registry.v1.RegistryService/GetLatestSchema"`
)

// TestRegistryOverGRPCOutage runs the gateway against the real registry
// with REGISTRY_GRPC_ADDR (-registry-grpc-addr): lookups go over gRPC (the
// registry's gRPC request metrics grow, its REST lookup routes do not);
// while the registry is stopped, a cached subject keeps serving and an
// uncached one gets the retryable 503 50302 (HTTP) / UNAVAILABLE with
// reason 50302 (gRPC) without the gateway exiting; after the registry is
// started again on the same _schemas topic, the new subject is served over
// gRPC again and every acknowledged record is in Kafka.
func TestRegistryOverGRPCOutage(t *testing.T) {
	t.Parallel()
	k, reg := startKafkaAndRegistry(t)
	e := startEnv(t, k, reg, "-registry-grpc-addr", reg.GRPCAddr())
	e.kafka.CreateTopic("known", 1, nil)
	e.kafka.CreateTopic("unknown", 1, nil)
	e.reg.Register(t, "known-value", orderSchema)
	e.reg.Register(t, "unknown-value", orderSchema)
	one := func(topic string, i int) httpResult {
		return post(t, e.httpURL+"/v1/topics/"+topic+"/records", "application/json", []byte(`{"records":[{"value":`+orderJSON(i)+`}]}`))
	}
	restLookups := func() float64 { return registryRequests(t, reg.URL(), httpFamily, `method="GET"`, `route="/subjects/`) }

	restBefore := restLookups()
	if res := one("known", 1); res.status != 200 {
		t.Fatalf("warm-up: %d %s", res.status, res.body)
	}
	if n := registryRequests(t, reg.URL(), grpcFamily, getLatest, `code="OK"`); n < 1 {
		t.Fatalf("gateway looked known-value up without gRPC: %v GetLatestSchema calls on the registry's gRPC API", n)
	}
	if after := restLookups(); after != restBefore {
		t.Fatalf("gateway fell back to REST with gRPC up: subject lookups over REST %v -> %v", restBefore, after)
	}

	reg.Stop()
	if res := one("known", 2); res.status != 200 {
		t.Fatalf("cached subject during outage: %d %s", res.status, res.body)
	}
	res := one("unknown", 3)
	if res.status != 503 || res.header.Get("Retry-After") == "" || !strings.Contains(string(res.body), `"error_code":50302`) {
		t.Fatalf("uncached subject during outage: %d %v %s", res.status, res.header, res.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := ingestv1.NewIngestServiceClient(grpcConn(t, e.grpc)).Produce(ctx, &ingestv1.ProduceRequest{Topic: "unknown", Records: []*ingestv1.Record{{Value: []byte(orderJSON(4))}}})
	st := status.Convert(err)
	reason := ""
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason = info.GetReason()
		}
	}
	if st.Code() != codes.Unavailable || reason != "50302" {
		t.Fatalf("uncached subject over the gateway's gRPC during outage: %v (reason %q), want UNAVAILABLE 50302", err, reason)
	}
	select {
	case err := <-e.done:
		t.Fatalf("gateway exited while the registry was down: %v", err)
	default:
	}

	reg.Restart(t) // same ports, same _schemas topic: state replayed from Kafka
	// The gRPC connection reconnects with backoff; until it does the client
	// may use REST. Recovery means the new subject is served and lookups
	// are on gRPC again (the restarted registry's counters start at 0).
	deadline := time.Now().Add(30 * time.Second)
	acked := 0
	for i := 5; ; i++ {
		res := one("unknown", i)
		if res.status == 200 {
			acked++
		}
		if res.status == 200 && registryRequests(t, reg.URL(), grpcFamily, getLatest, `code="OK"`) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the registry is back: %d %s; GetLatestSchema over gRPC %v", res.status, res.body,
				registryRequests(t, reg.URL(), grpcFamily, getLatest, `code="OK"`))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Nothing acknowledged is lost: two known, every acknowledged unknown.
	readTopic(t, e.kafka.Brokers(), "known", 2)
	readTopic(t, e.kafka.Brokers(), "unknown", acked)
}
