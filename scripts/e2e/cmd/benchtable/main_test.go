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
`
	rows, err := parse(strings.NewReader(in))
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows = %+v, %v", rows, err)
	}
	var out bytes.Buffer
	render(&out, rows)
	for _, want := range []string{"ingest-gateway Produce/http/batch=500-2", "120.0k/s", "24", "3.10 ms", "9.50 ms", "0.81x", "s3-sink Memory100Partitions-2", "180 MiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
