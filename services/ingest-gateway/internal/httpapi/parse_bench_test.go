package httpapi

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParseBatch measures envelope parsing of a 500-record request.
func BenchmarkParseBatch(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"records":[`)
	for i := 0; i < 500; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"key":"u%d","value":{"id":"6f1c8a7e-3b2d-4c5e-9f00-%012d","user":"user-%08d","event":"CLICK","ts":"2024-05-01T12:00:00.000Z","url":"https://shop.example.com/catalog/category-0001/product-000001?utm=newsletter","referrer":"https://search.example.org/?q=item1","duration_ms":12,"amount":3.25,"tags":{"region":"eu-west-1","ab":"variant-b"}}}`, i, i, i)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req, err := parseBatch(body, 1000, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, rerr := range req.Errs {
			if rerr != nil {
				b.Fatal(rerr)
			}
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "records/s")
}
