package prom

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/sluicehq/sluice/services/kafka-exporter/internal/collector"
)

// contentType is the text exposition format every scrape gets.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the latest snapshot's pre-rendered bytes followed by the
// process registry (exporter, probe, Go and process metrics). It never
// queries Kafka.
type Handler struct {
	Snapshot func() *collector.Snapshot
	Gatherer prometheus.Gatherer
	// MaxAge stops serving Kafka metrics from a snapshot older than this
	// (0: always serve), so a dead cluster does not look healthy forever;
	// sluice_exporter_up and the snapshot age keep reporting.
	MaxAge time.Duration
	Now    func() time.Time
	Log    *slog.Logger

	zw sync.Pool // *gzip.Writer for the registry part
}

// ServeHTTP writes the snapshot and the registry, gzipped when accepted.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var own bytes.Buffer
	if h.Gatherer != nil {
		mfs, err := h.Gatherer.Gather()
		if err != nil && h.Log != nil {
			h.Log.Warn("gathering process metrics", "err", err)
		}
		enc := expfmt.NewEncoder(&own, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil && h.Log != nil {
				h.Log.Warn("encoding metric family", "family", mf.GetName(), "err", err)
			}
		}
	}
	s := h.Snapshot()
	if s != nil && h.MaxAge > 0 {
		now := time.Now
		if h.Now != nil {
			now = h.Now
		}
		if now().Sub(s.Time) > h.MaxAge {
			s = nil
		}
	}
	w.Header().Set("Content-Type", contentType)
	var snapBytes, ownBytes []byte
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		if s != nil {
			snapBytes = s.Gzipped
		}
		// A second gzip member; readers decode concatenated members as one
		// stream.
		var zb bytes.Buffer
		zw, _ := h.zw.Get().(*gzip.Writer)
		if zw == nil {
			zw, _ = gzip.NewWriterLevel(&zb, gzip.BestSpeed)
		} else {
			zw.Reset(&zb)
		}
		_, _ = zw.Write(own.Bytes())
		_ = zw.Close()
		zw.Reset(io.Discard)
		h.zw.Put(zw)
		ownBytes = zb.Bytes()
	} else {
		if s != nil {
			snapBytes = s.Rendered
		}
		ownBytes = own.Bytes()
	}
	// A known length lets the server write the snapshot in one piece
	// rather than as chunks.
	w.Header().Set("Content-Length", strconv.Itoa(len(snapBytes)+len(ownBytes)))
	_, _ = w.Write(snapBytes)
	_, _ = w.Write(ownBytes)
}
