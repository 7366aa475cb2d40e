package acceptance_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/services/schema-registry/internal/srtest"
)

const (
	lookupsPerOp = 20000
	lookupConc   = 32
	regsPerOp    = 200
)

func p99(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)*99/100]
}

// hammer runs n GETs of url(i) from conc goroutines over one keep-alive
// client and returns the elapsed time and every request's latency.
func hammer(b *testing.B, n, conc int, url func(i int) string) (time.Duration, []time.Duration) {
	b.Helper()
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				resp, err := cl.Get(url(i))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d requests failed", f, n)
	}
	return time.Since(start), lat
}

// BenchmarkLookupByID measures GET /schemas/ids/{id} over loopback with 32
// concurrent clients, against a bare net/http handler serving the same
// bytes (the loopback HTTP ceiling of this machine) measured in the same
// run.
func BenchmarkLookupByID(b *testing.B) {
	kc := kafkatest.Start(b)
	in := srtest.Start(b, kc.Config(), srtest.Options{})
	const schemas = 100
	for i := 0; i < schemas; i++ {
		if _, _, err := register(in.URL, "bench-"+strconv.Itoa(i), avroRecord("R"+strconv.Itoa(i), "a", "b", "c")); err != nil {
			b.Fatal(err)
		}
	}
	body := []byte(`{"schema":"` + avroRecord("R0", "a", "b", "c") + `"}`)
	raw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		_, _ = w.Write(body)
	}))
	defer raw.Close()
	b.ResetTimer()
	var regDur, rawDur time.Duration
	var lats []time.Duration
	for i := 0; i < b.N; i++ {
		d, l := hammer(b, lookupsPerOp, lookupConc, func(j int) string { return in.URL + "/schemas/ids/" + strconv.Itoa(1+j%schemas) })
		regDur += d
		lats = append(lats, l...)
		d, _ = hammer(b, lookupsPerOp, lookupConc, func(int) string { return raw.URL + "/schemas/ids/1" })
		rawDur += d
	}
	b.StopTimer()
	perSec := float64(lookupsPerOp*b.N) / regDur.Seconds()
	rawPerSec := float64(lookupsPerOp*b.N) / rawDur.Seconds()
	b.ReportMetric(perSec, "lookups/s")
	b.ReportMetric(float64(p99(lats).Microseconds())/1000, "p99_ms")
	b.ReportMetric(rawPerSec, "baseline_lookups/s")
	b.ReportMetric(perSec/rawPerSec, "ratio_vs_bare_http")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRegister measures registration latency (produce with acks=all,
// wait until applied locally, answer) for new schemas from 4 concurrent
// clients on one replica.
func BenchmarkRegister(b *testing.B) {
	kc := kafkatest.Start(b)
	in := srtest.Start(b, kc.Config(), srtest.Options{})
	if _, err := in.Registry.SetConfig(kafkatest.Context(b, 10*time.Second), "", "NONE"); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	var lats []time.Duration
	var mu sync.Mutex
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < regsPerOp/4; j++ {
					n := seq.Add(1)
					t0 := time.Now()
					if _, _, err := register(in.URL, "reg-"+strconv.Itoa(int(n%8)), avroRecord("R"+strconv.FormatInt(n, 10), "a")); err != nil {
						b.Error(err)
						return
					}
					d := time.Since(t0)
					mu.Lock()
					lats = append(lats, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lats) == 0 {
		b.Fatal("no registrations")
	}
	b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "registrations/s")
	b.ReportMetric(float64(p99(lats).Microseconds())/1000, "p99_ms")
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(0, "ns/op")
}
