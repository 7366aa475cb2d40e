package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	t.Parallel()
	in := `goos: linux
pkg: github.com/sluicehq/sluice/services/ingest-gateway
BenchmarkProduce/http/batch=500-2   	       1	1234 ns/op	  120000 records/s	  24.0 MB/s	  3.1 p50_ms	  9.5 p99_ms	  0.81 x_raw
BenchmarkProduce logs something
pkg: github.com/sluicehq/sluice/services/s3-sink
BenchmarkMemory100Partitions-2   	       1	1 ns/op	  180 peak-RSS-MiB
pkg: github.com/sluicehq/sluice/services/schema-registry/internal/acceptance
BenchmarkRegister-2         	       1	         0.2600 p50_ms	         1.543 p99_ms	     10858 registrations/s
pkg: github.com/sluicehq/sluice/services/kafka-exporter
BenchmarkExporter-2   	       1	  5 ns/op	 9.008 scrape_gzip_p99_ms	 3.344 scrape_inproc_p99_ms	 2.524 scrape_p99_ms	 128.5 process_rss_MiB	 66.38 exporter_peak_rss_MiB
`
	rows, err := parse(strings.NewReader(in))
	if err != nil || len(rows) != 4 {
		t.Fatalf("rows = %+v, %v", rows, err)
	}
	var out bytes.Buffer
	render(&out, rows)
	for _, want := range []string{"ingest-gateway Produce/http/batch=500-2", "120.0k/s", "24", "3.10 ms", "9.50 ms", "0.81x", "s3-sink Memory100Partitions-2", "180 MiB", "10.9k/s |", "2.52 ms", "66 MiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	for _, bad := range []string{"9.01 ms", "128 MiB", "10.9k/s | 10.9k/s"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("table shows %q (a secondary metric or a rate as a ratio):\n%s", bad, out.String())
		}
	}
}
