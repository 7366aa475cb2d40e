package sink

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pkg/backoff"
	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/pkg/testkit/estest"
	"github.com/sluicehq/sluice/pkg/testkit/sinktest"
	"github.com/sluicehq/sluice/pkg/wire"
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
	"github.com/sluicehq/sluice/services/search-sink/internal/es"
	"github.com/sluicehq/sluice/services/search-sink/internal/target"
)

// TestConformance runs the pkg/sink conformance suite against the search
// Writer, indexing into the Elasticsearch double (documents keyed by
// topic+partition+offset: a replay overwrites, so the destination reads
// back at least once).
func TestConformance(t *testing.T) {
	t.Parallel()
	sinktest.Run(t, sinktest.Suite{
		New:       func(tb testing.TB, env sinktest.Env) sinktest.Destination { return newSearchDest(tb, env) },
		Semantics: psink.AtLeastOnce,
		// Schema id 1 with a body that ends before its first field: the
		// runtime resolves the schema, the builder cannot decode it.
		Poison:      wire.Encode(sinktest.SchemaID, []byte{0x02}),
		PoisonStage: "decode",
	})
}

// searchDest is one test's Elasticsearch double.
type searchDest struct {
	env sinktest.Env
	es  *estest.Server
	url string
}

// bulkLatency is how long the double takes to answer a bulk request: a
// real cluster's latency keeps documents in flight long enough that a
// Writer reporting them durable before the answer is caught by the suite.
const bulkLatency = 30 * time.Millisecond

func newSearchDest(tb testing.TB, env sinktest.Env) *searchDest {
	double := estest.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_bulk") {
			time.Sleep(bulkLatency) // the cluster's latency, not synchronisation
		}
		double.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	return &searchDest{env: env, es: double, url: srv.URL}
}

// envCodecs adapts the suite's schemas to the document builder.
type envCodecs struct{ c psink.Codecs }

func (e envCodecs) Codec(ctx context.Context, id int) (*document.Codec, error) {
	c, err := e.c.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return &document.Codec{ID: c.ID, Schema: c.Schema.Schema, Codec: c}, nil
}

// Writer builds the search Writer as run.go does, as a fresh process: its
// own bulk indexer, retry loop and flusher.
func (d *searchDest) Writer(tb testing.TB) psink.Writer {
	tb.Helper()
	c, err := es.New(es.Options{URLs: []string{d.url}, Timeout: 10 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := NewMetrics(prometheus.NewRegistry(), nil)
	pl, err := NewPipeline(c, PipelineOptions{Workers: 2, FlushBytes: 1 << 20, FlushInterval: 20 * time.Millisecond,
		MaxBufferedDocs: 1000, MaxBufferedBytes: 8 << 20, Retry: backoff.Policy{Base: 10 * time.Millisecond, Max: 100 * time.Millisecond, Attempts: 5}}, m, log)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = pl.RunRetries(ctx); done <- struct{}{} }()
	go func() { _ = pl.RunFlusher(ctx); done <- struct{}{} }()
	tb.Cleanup(func() {
		cancel()
		<-done
		<-done
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_ = pl.Close(cctx)
	})
	docNamer, err := document.NewNamer(document.ModeIndex, "<topic>", "", "")
	if err != nil {
		tb.Fatal(err)
	}
	return NewWriter(Options{
		Builder:  document.NewBuilder(envCodecs{d.env.Codecs}, document.Options{Namer: docNamer, IDMode: document.IDOffset}),
		Pipeline: pl, Metrics: m, Log: log, Namer: target.NewNamer(docNamer),
	})
}

// Landed reads every document back; ids are topic+partition+offset.
func (d *searchDest) Landed(_ context.Context, tb testing.TB) []sinktest.Landed {
	tb.Helper()
	var out []sinktest.Landed
	for _, index := range d.es.Indices() {
		for id := range d.es.Docs(index) {
			parts := strings.Split(id, "+")
			if len(parts) != 3 {
				tb.Fatalf("document id %q in %s is not topic+partition+offset", id, index)
			}
			p, err1 := strconv.Atoi(parts[1])
			o, err2 := strconv.ParseInt(parts[2], 10, 64)
			if err1 != nil || err2 != nil {
				tb.Fatalf("document id %q in %s is not topic+partition+offset", id, index)
			}
			out = append(out, sinktest.Landed{Topic: parts[0], Partition: p, Offset: o})
		}
	}
	return out
}
