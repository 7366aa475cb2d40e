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
func Render(s *collector.Snapshot) (plain, gzipped []byte) {
	w := &writer{}
	for _, f := range families {
		f(w, s)
	}
	plain = w.buf.Bytes()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	_, _ = zw.Write(plain)
	_ = zw.Close()
	return plain, gz.Bytes()
}
