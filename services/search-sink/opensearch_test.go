package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/testkit/estest"
)

// openSearchFront answers like OpenSearch 2: GET / with
// version.distribution=opensearch and no X-Elastic-Product header on any
// response, an ISM policy API, and everything else served by the estest
// double.
type openSearchFront struct {
	double *estest.Server
	mu     sync.Mutex
	ism    map[string]json.RawMessage
}

func (o *openSearchFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/":
		_, _ = io.WriteString(w, `{"name":"os-node","cluster_name":"os","version":{"distribution":"opensearch","number":"2.17.1","lucene_version":"9.11.1"},"tagline":"The OpenSearch Project: https://opensearch.org/"}`)
		return
	case strings.HasPrefix(r.URL.Path, "/_plugins/_ism/policies/"):
		name := strings.TrimPrefix(r.URL.Path, "/_plugins/_ism/policies/")
		o.mu.Lock()
		defer o.mu.Unlock()
		if r.Method == http.MethodPut {
			b, _ := io.ReadAll(r.Body)
			o.ism[name] = b
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"_id":"`+name+`","_seq_no":0,"_primary_term":1}`)
			return
		}
		if _, ok := o.ism[name]; !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"type":"status_exception","reason":"Policy not found"},"status":404}`)
			return
		}
		_, _ = io.WriteString(w, `{"_id":"`+name+`","_seq_no":0,"_primary_term":1,"policy":`+string(o.ism[name])[len(`{"policy":`):])
		return
	}
	rec := httptest.NewRecorder()
	o.double.ServeHTTP(rec, r)
	for k, vs := range rec.Header() {
		if k != "X-Elastic-Product" {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func TestOpenSearchFlavorEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	front := &openSearchFront{double: estest.New(), ism: map[string]json.RawMessage{}}
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	e.es = front.double
	e.produce(t, 0, 30)
	// Configured for Elasticsearch, the sink refuses OpenSearch at start.
	err := run(t.Context(), e.args(t, "-es-url", srv.URL))
	if err == nil || !strings.Contains(err.Error(), "set ES_FLAVOR=opensearch") {
		t.Fatalf("run against OpenSearch with ES_FLAVOR=elasticsearch = %v", err)
	}
	startSink(t, e.args(t, "-es-url", srv.URL, "-es-flavor", "opensearch", "-search-sink-group-id", "os"))
	eventually(t, 30*time.Second, "documents indexed through the OpenSearch path", func() bool {
		return len(e.docs(dayIndex("orders", 0))) == 30
	})
	eventually(t, 10*time.Second, "offsets", func() bool { return sum(e.committed(t, "os")) == 30 })
	front.mu.Lock()
	policy := string(front.ism["sluice-search-sink"])
	front.mu.Unlock()
	if !strings.Contains(policy, `"min_index_age":"30d"`) || !strings.Contains(policy, `"index_patterns":["orders-*"]`) {
		t.Fatalf("ISM policy = %s", policy)
	}
	var tmpl map[string]any
	for _, r := range front.double.Requests() {
		if r.Method == http.MethodPut && r.Path == "/_index_template/sluice-orders" {
			_ = json.Unmarshal(r.Body, &tmpl)
		}
	}
	if settings := tmpl["template"].(map[string]any)["settings"].(map[string]any); settings["index.lifecycle.name"] != nil {
		t.Fatalf("OpenSearch template carries an ILM setting: %v", settings)
	}
}
