package prom

import (
	"bytes"
	"compress/gzip"

	"github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"
)

// families lists every family group in output order.
var families = []func(*writer, *collector.Snapshot){
	collectBrokers,
	collectTopics,
	collectReplicas,
	collectTopicConfig,
	collectGroups,
	collectLagSeconds,
	collectGroupStatus,
}

// Render writes the snapshot in the text exposition format, plain and
// gzipped (one gzip member, so the handler can append another).
func Render(s *collector.Snapshot) (plain, gzipped []byte) { return new(Renderer).Render(s) }

// Renderer renders snapshots, sizing its buffers from the previous one so
// a large exposition is not built by repeated growth. Not safe for
// concurrent use; the collector renders one snapshot at a time.
type Renderer struct{ last int }

// Render is the package Render with buffer sizing.
func (r *Renderer) Render(s *collector.Snapshot) (plain, gzipped []byte) {
	w := &writer{}
	w.buf.Grow(r.last + r.last/8)
	for _, f := range families {
		f(w, s)
	}
	plain = w.buf.Bytes()
	r.last = len(plain)
	var gz bytes.Buffer
	gz.Grow(len(plain) / 6)
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	_, _ = zw.Write(plain)
	_ = zw.Close()
	return plain, gz.Bytes()
}
