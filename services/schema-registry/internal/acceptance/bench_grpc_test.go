package acceptance_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	registryv1 "github.com/sluicehq/sluice/pkg/gen/sluice/registry/v1"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/services/schema-registry/internal/srtest"
)

// BenchmarkLookupByIDGRPC measures GetSchemaByID over one gRPC connection
// with 32 concurrent callers: the path pkg/registry takes on a cache miss
// when REGISTRY_GRPC_ADDR is set.
func BenchmarkLookupByIDGRPC(b *testing.B) {
	kc := kafkatest.Start(b)
	in := srtest.Start(b, kc.Config(), srtest.Options{})
	const schemas = 100
	for i := 0; i < schemas; i++ {
		if _, _, err := register(in.URL, "bench-"+strconv.Itoa(i), avroRecord("R"+strconv.Itoa(i), "a", "b", "c")); err != nil {
			b.Fatal(err)
		}
	}
	conn, err := grpc.NewClient(in.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	cl := registryv1.NewRegistryServiceClient(conn)
	ctx := context.Background()
	lat := make([]time.Duration, lookupsPerOp*b.N)
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < lookupConc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(lat) {
					return
				}
				t0 := time.Now()
				if _, err := cl.GetSchemaByID(ctx, &registryv1.GetSchemaByIDRequest{Id: int32(1 + i%schemas)}); err != nil {
					failed.Add(1)
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d lookups failed", failed.Load())
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "lookups/s")
	b.ReportMetric(float64(p99(lat).Microseconds())/1000, "p99_ms")
	b.ReportMetric(0, "ns/op")
}
