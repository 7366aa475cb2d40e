package rules

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const benchRules = `
defaults: {allowed_lateness: 30s, realert: 10m}
rules:
  - {name: slow, topic: orders, type: threshold, field: latency_ms, op: ">", value: 1000, group_by: [region]}
  - {name: busy, topic: orders, type: threshold, agg: count, window: 1m, op: ">", value: 100000, group_by: [region]}
  - {name: big-sum, topic: orders, type: threshold, agg: sum, field: amount, window: 1m, op: ">", value: 1e12}
  - {name: rate-spike, topic: orders, type: spike, window: 1m, factor: 3, group_by: [region]}
  - {name: rate-drop, topic: orders, type: drop, window: 1m, factor: 3, group_by: [region, shop]}
  - {name: quiet, topic: orders, type: flatline, window: 1m, min_count: 1, group_by: [region]}
  - {name: latency-outlier, topic: orders, type: outlier, field: latency_ms, z: 6, warmup: 50, group_by: [region]}
  - {name: new-country, topic: orders, type: new_term, field: country, warmup: 1000}
  - {name: users, topic: orders, type: cardinality, field: user, window: 1m, op: ">", value: 100000}
  - {name: avg-latency, topic: orders, type: threshold, agg: avg, field: latency_ms, window: 1m, op: ">", value: 5000, group_by: [shop]}
`

// BenchmarkRules measures records/s through 10 rules of every type on one
// core (one goroutine), with group-by keys and advancing record time.
func BenchmarkRules(b *testing.B) {
	f, err := Parse([]byte(benchRules))
	if err != nil {
		b.Fatal(err)
	}
	if len(f.Rules) != 10 {
		b.Fatalf("%d rules", len(f.Rules))
	}
	fired := 0
	e := NewEngine(f, func(Alert) { fired++ }, nil)
	const distinct = 4096
	recs := make([]map[string]any, distinct)
	for i := range recs {
		recs[i] = map[string]any{
			"region": []string{"eu", "us", "ap", "sa"}[i%4], "shop": fmt.Sprintf("shop-%d", i%16),
			"country": []string{"de", "fr", "us", "jp", "br"}[i%5], "user": fmt.Sprintf("u%d", i%1000),
			"latency_ms": float64(100 + i%50), "amount": int64(i % 1000),
		}
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	// Each iteration is a batch, so `-benchtime 1x` (make bench) still
	// measures something meaningful.
	const batch = 500000
	n := 0
	for it := 0; it < b.N; it++ {
		for j := 0; j < batch; j++ {
			// 1000 records per second of record time, slightly out of order.
			at := base.Add(time.Duration(n)*time.Millisecond - time.Duration(n%7)*time.Millisecond)
			e.Observe("orders", at, recs[n%distinct])
			n++
		}
	}
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(n)/el.Seconds(), "records/s")
	// The machine is shared: records per CPU-second of this process (GC
	// included) is the per-core rate, independent of other load.
	b.ReportMetric(float64(n)/cpu.Seconds(), "records/cpu_s")
	_ = fired
}
