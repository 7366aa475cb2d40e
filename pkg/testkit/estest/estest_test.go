package estest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/elastic/go-elasticsearch/v8/esutil"

	"github.com/sluicehq/sluice/pkg/testkit/estest"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, url string, mod func(*elasticsearch.Config)) *elasticsearch.Client {
	t.Helper()
	cfg := elasticsearch.Config{Addresses: []string{url}}
	if mod != nil {
		mod(&cfg)
	}
	es, err := elasticsearch.NewClient(cfg)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return es
}

// do runs an esapi request and decodes the JSON body.
func do(ctx context.Context, t *testing.T, es *elasticsearch.Client, req esapi.Request) (int, map[string]any) {
	t.Helper()
	res, err := req.Do(ctx, es)
	if err != nil {
		t.Fatalf("%T: %v", req, err)
	}
	defer res.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(res.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("%T: decoding %q: %v", req, b, err)
		}
	}
	return res.StatusCode, body
}

func TestInfoAndProductCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     []estest.Option
		compat   bool
		wantErr  string
		wantType string
	}{
		{name: "genuine", wantType: "application/json"},
		{name: "compatible-with=8", compat: true, wantType: "application/vnd.elasticsearch+json;compatible-with=8"},
		{name: "no product header", opts: []estest.Option{estest.WithoutProductHeader()}, wantErr: "not Elasticsearch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := estest.Start(t, tc.opts...)
			es := newClient(t, srv.URL(), func(c *elasticsearch.Config) { c.EnableCompatibilityMode = tc.compat })
			res, err := es.Info(es.Info.WithContext(testCtx(t)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Info error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Info: %v", err)
			}
			defer res.Body.Close()
			if got := res.Header.Get("Content-Type"); got != tc.wantType {
				t.Errorf("content type = %q, want %q", got, tc.wantType)
			}
			var info struct {
				Version struct{ Number string } `json:"version"`
				Tagline string                  `json:"tagline"`
			}
			if err := json.NewDecoder(res.Body).Decode(&info); err != nil {
				t.Fatal(err)
			}
			if info.Version.Number != "8.15.0" || info.Tagline != "You Know, for Search" {
				t.Errorf("info = %+v", info)
			}
		})
	}
}

func TestBulkItemsPerAction(t *testing.T) {
	t.Parallel()
	srv := estest.Start(t, estest.WithItemFailures(func(_, _, id string, _ json.RawMessage) *estest.Error {
		switch id {
		case "bad":
			return estest.MapperParsing("failed to parse field [amount] of type [long]")
		case "busy":
			return estest.Rejected()
		}
		return nil
	}))
	es := newClient(t, srv.URL(), nil)
	ctx := testCtx(t)

	type want struct {
		op      string
		status  int
		result  string
		errType string
	}
	tests := []struct {
		name      string
		body      string
		wantErrs  bool
		wantItems []want
	}{
		{
			name: "writes, conflicts and injected failures",
			body: `{"index":{"_index":"orders","_id":"1"}}
{"amount":1}
{"index":{"_index":"orders","_id":"1"}}
{"amount":2}
{"create":{"_index":"orders","_id":"1"}}
{"amount":3}
{"delete":{"_index":"orders","_id":"nope"}}
{"index":{"_index":"orders","_id":"2","version":5,"version_type":"external"}}
{"amount":5}
{"index":{"_index":"orders","_id":"2","version":3,"version_type":"external"}}
{"amount":3}
{"update":{"_index":"orders","_id":"2"}}
{"doc":{"note":"x"}}
{"update":{"_index":"orders","_id":"ghost"}}
{"doc":{"note":"x"}}
{"index":{"_index":"orders","_id":"bad"}}
{"amount":"NaN"}
{"create":{"_index":"orders","_id":"busy"}}
{"amount":9}
{"delete":{"_index":"orders","_id":"1"}}
{"index":{"_index":"Orders","_id":"9"}}
{}
`,
			wantErrs: true,
			wantItems: []want{
				{"index", 201, "created", ""},
				{"index", 200, "updated", ""},
				{"create", 409, "", "version_conflict_engine_exception"},
				{"delete", 404, "not_found", ""},
				{"index", 201, "created", ""},
				{"index", 409, "", "version_conflict_engine_exception"},
				{"update", 200, "updated", ""},
				{"update", 404, "", "document_missing_exception"},
				{"index", 400, "", "mapper_parsing_exception"},
				{"create", 429, "", "es_rejected_execution_exception"},
				{"delete", 200, "deleted", ""},
				{"index", 400, "", "invalid_index_name_exception"},
			},
		},
		{
			name: "not_found delete is not an error",
			body: "{\"delete\":{\"_index\":\"orders\",\"_id\":\"never\"}}\n{\"index\":{\"_index\":\"orders\"}}\n{\"a\":1}\n",
			wantItems: []want{
				{"delete", 404, "not_found", ""},
				{"index", 201, "created", ""},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(ctx, t, es, esapi.BulkRequest{Body: strings.NewReader(tc.body)})
			if status != http.StatusOK {
				t.Fatalf("status %d: %v", status, body)
			}
			if body["errors"] != tc.wantErrs {
				t.Errorf("errors = %v, want %v", body["errors"], tc.wantErrs)
			}
			items := body["items"].([]any)
			if len(items) != len(tc.wantItems) {
				t.Fatalf("got %d items, want %d", len(items), len(tc.wantItems))
			}
			for i, w := range tc.wantItems {
				item := items[i].(map[string]any)[w.op].(map[string]any)
				if int(item["status"].(float64)) != w.status || (w.result != "" && item["result"] != w.result) {
					t.Errorf("item %d = %v, want %+v", i, item, w)
				}
				if w.errType != "" {
					e, _ := item["error"].(map[string]any)
					if e["type"] != w.errType || e["reason"] == "" {
						t.Errorf("item %d error = %v, want type %s", i, e, w.errType)
					}
				}
			}
		})
	}
	if got := srv.Docs("orders")["2"]; string(got) != `{"amount":5,"note":"x"}` {
		t.Errorf("doc 2 after partial update = %s", got)
	}
	if srv.BulkCalls() != len(tests) {
		t.Errorf("BulkCalls = %d, want %d", srv.BulkCalls(), len(tests))
	}
}

func TestBulkIndexerReportsEachItem(t *testing.T) {
	t.Parallel()
	srv := estest.Start(t, estest.WithItemFailures(func(_, _, id string, _ json.RawMessage) *estest.Error {
		if strings.HasPrefix(id, "reject-") {
			return estest.Rejected()
		}
		return nil
	}))
	es := newClient(t, srv.URL(), nil)
	ctx := testCtx(t)

	bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: es, Index: "events", NumWorkers: 1, FlushBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	record := func(_ context.Context, item esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem) {
		mu.Lock()
		defer mu.Unlock()
		got[item.DocumentID] = res.Status
	}
	add := func(action, id string, version *int64) {
		t.Helper()
		err := bi.Add(ctx, esutil.BulkIndexerItem{
			Action: action, DocumentID: id, Version: version, VersionType: map[bool]string{true: "external"}[version != nil],
			Body:      strings.NewReader(`{"id":"` + id + `"}`),
			OnSuccess: record,
			OnFailure: func(ctx context.Context, item esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, _ error) {
				record(ctx, item, res)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	v := func(n int64) *int64 { return &n }
	add("index", "a", nil)
	add("create", "a-dup", nil)
	add("index", "reject-1", nil)
	add("index", "ext", v(10))
	if err := bi.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Second batch: conflicts against the first.
	bi2, _ := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: es, Index: "events", NumWorkers: 1})
	bi = bi2
	add("create", "a", nil)
	add("index", "ext", v(9))
	if err := bi.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}

	want := map[string]int{"a": 409, "a-dup": 201, "reject-1": 429, "ext": 409}
	for id, status := range want {
		if got[id] != status {
			t.Errorf("item %s status = %d, want %d", id, got[id], status)
		}
	}
	if docs := srv.Docs("events"); len(docs) != 3 {
		t.Errorf("stored %d docs, want 3: %v", len(docs), docs)
	}
	if st := bi.Stats(); st.NumFailed != 2 {
		t.Errorf("second indexer stats = %+v", st)
	}
}

func TestInjectedRequestFailure(t *testing.T) {
	t.Parallel()
	unavailable := estest.Error{Status: http.StatusServiceUnavailable, Type: "unavailable_shards_exception", Reason: "[orders][0] primary shard is not active"}
	tests := []struct {
		name         string
		disableRetry bool
		wantStatuses []int // of successive client calls
		wantCalls    int   // bulk requests the server saw
	}{
		{name: "client retries 503", wantStatuses: []int{200}, wantCalls: 2},
		{name: "no retry sees 503 then success", disableRetry: true, wantStatuses: []int{503, 200}, wantCalls: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := estest.Start(t)
			es := newClient(t, srv.URL(), func(c *elasticsearch.Config) { c.DisableRetry = tc.disableRetry })
			ctx := testCtx(t)
			srv.FailNext("/orders/_bulk", 1, unavailable)
			for i, want := range tc.wantStatuses {
				status, body := do(ctx, t, es, esapi.BulkRequest{Index: "orders", Body: strings.NewReader("{\"index\":{\"_id\":\"1\"}}\n{\"a\":1}\n")})
				if status != want {
					t.Fatalf("call %d: status %d, want %d (%v)", i, status, want, body)
				}
				if status == http.StatusServiceUnavailable {
					e := body["error"].(map[string]any)
					if e["type"] != unavailable.Type || int(body["status"].(float64)) != 503 {
						t.Errorf("error body = %v", body)
					}
				}
			}
			if srv.BulkCalls() != tc.wantCalls {
				t.Errorf("BulkCalls = %d, want %d", srv.BulkCalls(), tc.wantCalls)
			}
			if len(srv.Docs("orders")) != 1 {
				t.Errorf("docs = %v", srv.Docs("orders"))
			}
		})
	}
}

func TestCountAndSearchPatterns(t *testing.T) {
	t.Parallel()
	srv := estest.Start(t)
	es := newClient(t, srv.URL(), nil)
	ctx := testCtx(t)
	bulk := `{"index":{"_index":"orders-2026.01","_id":"1"}}
{"customer":{"id":"c1"},"status":"paid"}
{"index":{"_index":"orders-2026.01","_id":"2"}}
{"customer":{"id":"c2"},"status":"open"}
{"index":{"_index":"orders-2026.02","_id":"3"}}
{"customer":{"id":"c1"},"status":"paid","qty":3}
{"index":{"_index":"payments","_id":"p1"}}
{"customer":{"id":"c1"}}
`
	if status, body := do(ctx, t, es, esapi.BulkRequest{Body: strings.NewReader(bulk), Refresh: "true"}); status != 200 || body["errors"] != false {
		t.Fatalf("bulk: %d %v", status, body)
	}
	if status, _ := do(ctx, t, es, esapi.IndicesRefreshRequest{Index: []string{"orders*"}}); status != 200 {
		t.Fatalf("refresh: %d", status)
	}

	tests := []struct {
		name       string
		index      []string
		query      string
		wantStatus int
		wantCount  int
	}{
		{name: "wildcard", index: []string{"orders*"}, wantStatus: 200, wantCount: 3},
		{name: "comma list", index: []string{"orders-2026.02", "payments"}, wantStatus: 200, wantCount: 2},
		{name: "all", wantStatus: 200, wantCount: 4},
		{name: "term on nested field", index: []string{"orders*"}, query: `{"query":{"term":{"customer.id":"c1"}}}`, wantStatus: 200, wantCount: 2},
		{name: "term keyword with value", index: []string{"orders*"}, query: `{"query":{"term":{"status.keyword":{"value":"open"}}}}`, wantStatus: 200, wantCount: 1},
		{name: "term number", index: []string{"orders*"}, query: `{"query":{"term":{"qty":3}}}`, wantStatus: 200, wantCount: 1},
		{name: "match_all", index: []string{"payments"}, query: `{"query":{"match_all":{}}}`, wantStatus: 200, wantCount: 1},
		{name: "wildcard matching nothing", index: []string{"nothing*"}, wantStatus: 200, wantCount: 0},
		{name: "missing concrete index", index: []string{"nothing"}, wantStatus: 404},
		{name: "unsupported query", index: []string{"orders*"}, query: `{"query":{"match":{"status":"paid"}}}`, wantStatus: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := esapi.CountRequest{Index: tc.index}
			if tc.query != "" {
				req.Body = strings.NewReader(tc.query)
			}
			status, body := do(ctx, t, es, req)
			if status != tc.wantStatus {
				t.Fatalf("count status %d, want %d: %v", status, tc.wantStatus, body)
			}
			if status == 200 && int(body["count"].(float64)) != tc.wantCount {
				t.Errorf("count = %v, want %d", body["count"], tc.wantCount)
			}
			if status != 200 {
				return
			}
			sreq := esapi.SearchRequest{Index: tc.index, Size: esapi.IntPtr(1)}
			if tc.query != "" {
				sreq.Body = strings.NewReader(tc.query)
			}
			_, sbody := do(ctx, t, es, sreq)
			hits := sbody["hits"].(map[string]any)
			if total := int(hits["total"].(map[string]any)["value"].(float64)); total != tc.wantCount {
				t.Errorf("search total = %d, want %d", total, tc.wantCount)
			}
			if n := len(hits["hits"].([]any)); n != min(1, tc.wantCount) {
				t.Errorf("search returned %d hits with size=1", n)
			}
		})
	}

	status, doc := do(ctx, t, es, esapi.GetRequest{Index: "orders-2026.02", DocumentID: "3"})
	if status != 200 || doc["found"] != true || doc["_source"].(map[string]any)["qty"].(float64) != 3 {
		t.Errorf("get doc: %d %v", status, doc)
	}
	if status, doc := do(ctx, t, es, esapi.GetRequest{Index: "orders-2026.02", DocumentID: "nope"}); status != 404 || doc["found"] != false {
		t.Errorf("get missing doc: %d %v", status, doc)
	}
}

func TestTemplatesPoliciesDataStreams(t *testing.T) {
	t.Parallel()
	srv := estest.Start(t)
	es := newClient(t, srv.URL(), nil)
	ctx := testCtx(t)

	steps := []struct {
		name       string
		req        esapi.Request
		wantStatus int
		check      func(map[string]any) bool
	}{
		{"put ilm policy", esapi.ILMPutLifecycleRequest{Policy: "sluice", Body: strings.NewReader(`{"policy":{"phases":{"delete":{"min_age":"7d","actions":{"delete":{}}}}}}`)}, 200, nil},
		{"get ilm policy", esapi.ILMGetLifecycleRequest{Policy: "sluice"}, 200, func(b map[string]any) bool { return b["sluice"] != nil }},
		{"missing ilm policy", esapi.ILMGetLifecycleRequest{Policy: "nope"}, 404, nil},
		{"put template", esapi.IndicesPutIndexTemplateRequest{Name: "logs", Body: strings.NewReader(`{"index_patterns":["logs-*"],"data_stream":{},"priority":200,"template":{"settings":{"index.lifecycle.name":"sluice"}}}`)}, 200, nil},
		{"put plain template", esapi.IndicesPutIndexTemplateRequest{Name: "orders", Body: strings.NewReader(`{"index_patterns":["orders-*"],"template":{"mappings":{"properties":{"id":{"type":"keyword"}}}}}`)}, 200, nil},
		{"template exists", esapi.IndicesExistsIndexTemplateRequest{Name: "logs"}, 200, nil},
		{"template missing", esapi.IndicesExistsIndexTemplateRequest{Name: "nope"}, 404, nil},
		{"get template", esapi.IndicesGetIndexTemplateRequest{Name: "orders"}, 200, func(b map[string]any) bool { return len(b["index_templates"].([]any)) == 1 }},
		{"create data stream", esapi.IndicesCreateDataStreamRequest{Name: "logs-app"}, 200, nil},
		{"data stream without template", esapi.IndicesCreateDataStreamRequest{Name: "metrics-app"}, 400, nil},
		{"create index", esapi.IndicesCreateRequest{Index: "orders-1"}, 200, nil},
		{"create existing index", esapi.IndicesCreateRequest{Index: "orders-1"}, 400, func(b map[string]any) bool {
			return b["error"].(map[string]any)["type"] == "resource_already_exists_exception"
		}},
		{"index exists", esapi.IndicesExistsRequest{Index: []string{"orders-1"}}, 200, nil},
		{"get index has template mappings", esapi.IndicesGetRequest{Index: []string{"orders-1"}}, 200, func(b map[string]any) bool {
			m := b["orders-1"].(map[string]any)["mappings"].(map[string]any)
			return m["properties"] != nil
		}},
		{"delete index", esapi.IndicesDeleteRequest{Index: []string{"orders-1"}}, 200, nil},
		{"index gone", esapi.IndicesExistsRequest{Index: []string{"orders-1"}}, 404, nil},
		{"bulk into data stream", esapi.BulkRequest{Body: strings.NewReader(`{"create":{"_index":"logs-app"}}
{"@timestamp":"2026-01-02T03:04:05Z","msg":"hi"}
{"index":{"_index":"logs-app"}}
{"@timestamp":"2026-01-02T03:04:05Z"}
{"create":{"_index":"logs-auto"}}
{"msg":"no timestamp"}
`)}, 200, func(b map[string]any) bool {
			items := b["items"].([]any)
			first := items[0].(map[string]any)["create"].(map[string]any)
			second := items[1].(map[string]any)["index"].(map[string]any)
			third := items[2].(map[string]any)["create"].(map[string]any)
			return first["status"].(float64) == 201 && strings.HasPrefix(first["_index"].(string), ".ds-logs-app-") &&
				second["status"].(float64) == 400 && third["status"].(float64) == 400 && b["errors"] == true
		}},
		{"get data stream", esapi.IndicesGetDataStreamRequest{Name: []string{"logs-*"}}, 200, func(b map[string]any) bool {
			return len(b["data_streams"].([]any)) == 2 // logs-app and the auto-created logs-auto
		}},
	}
	for _, st := range steps {
		status, body := do(ctx, t, es, st.req)
		if status != st.wantStatus {
			t.Fatalf("%s: status %d, want %d: %v", st.name, status, st.wantStatus, body)
		}
		if st.check != nil && !st.check(body) {
			t.Fatalf("%s: unexpected body %v", st.name, body)
		}
	}
	if docs := srv.Docs("logs-app"); len(docs) != 1 {
		t.Errorf("data stream docs = %v", docs)
	}
}

func TestRecordsRequestsAndServesFromNew(t *testing.T) {
	t.Parallel()
	srv := estest.New()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	es := newClient(t, hs.URL, nil)
	ctx := testCtx(t)

	tests := []struct {
		name       string
		req        esapi.Request
		wantStatus int
		wantPath   string
	}{
		{"bulk", esapi.BulkRequest{Index: "a", Body: strings.NewReader("{\"index\":{\"_id\":\"1\"}}\n{\"x\":1}\n")}, 200, "/a/_bulk"},
		{"unterminated bulk", esapi.BulkRequest{Index: "a", Body: strings.NewReader(`{"index":{"_id":"1"}}`)}, 400, "/a/_bulk"},
		{"unknown endpoint", esapi.CatIndicesRequest{}, 400, "/_cat/indices"},
	}
	for _, tc := range tests {
		status, body := do(ctx, t, es, tc.req)
		if status != tc.wantStatus {
			t.Errorf("%s: status %d, want %d: %v", tc.name, status, tc.wantStatus, body)
		}
		reqs := srv.Requests()
		last := reqs[len(reqs)-1]
		if last.Path != tc.wantPath || last.Header.Get("X-Elastic-Client-Meta") == "" {
			t.Errorf("%s: recorded %s %s headers %v", tc.name, last.Method, last.Path, last.Header)
		}
	}
	if got := string(srv.Requests()[0].Body); got != "{\"index\":{\"_id\":\"1\"}}\n{\"x\":1}\n" {
		t.Errorf("recorded body %q", got)
	}
	if srv.Docs("a")["1"] == nil || srv.Docs("missing") != nil {
		t.Errorf("Docs: %v", srv.Docs("a"))
	}
}

// TestExternalVersioningLikeES8: version_type=external writes only a newer
// version (a tombstone's version counts), a conflict is a 409
// version_conflict_engine_exception naming both versions, and what ES 8
// refuses at validation (negative versions, ids over 512 bytes) fails the
// whole request with 400 action_request_validation_exception.
func TestExternalVersioningLikeES8(t *testing.T) {
	t.Parallel()
	srv := estest.Start(t)
	es := newClient(t, srv.URL(), nil)
	ctx := testCtx(t)
	steps := []struct {
		name, line, src string
		status          int
		result, reason  string
	}{
		{"first write", `{"index":{"_index":"k","_id":"a","version":10,"version_type":"external"}}`, `{"v":10}`, 201, "created", ""},
		{"same version", `{"index":{"_index":"k","_id":"a","version":10,"version_type":"external"}}`, `{"v":10}`, 409, "", "[a]: version conflict, current version [10] is higher or equal to the one provided [10]"},
		{"older version", `{"index":{"_index":"k","_id":"a","version":7,"version_type":"external"}}`, `{"v":7}`, 409, "", "[a]: version conflict, current version [10] is higher or equal to the one provided [7]"},
		{"newer version", `{"index":{"_index":"k","_id":"a","version":11,"version_type":"external"}}`, `{"v":11}`, 200, "updated", ""},
		{"older delete", `{"delete":{"_index":"k","_id":"a","version":5,"version_type":"external"}}`, "", 409, "", "[a]: version conflict, current version [11] is higher or equal to the one provided [5]"},
		{"newer delete", `{"delete":{"_index":"k","_id":"a","version":12,"version_type":"external"}}`, "", 200, "deleted", ""},
		{"write older than the tombstone", `{"index":{"_index":"k","_id":"a","version":12,"version_type":"external"}}`, `{"v":12}`, 409, "", "[a]: version conflict, current version [12] is higher or equal to the one provided [12]"},
		{"delete of a missing id", `{"delete":{"_index":"k","_id":"never","version":3,"version_type":"external"}}`, "", 404, "not_found", ""},
	}
	for _, st := range steps {
		body := st.line + "\n"
		if st.src != "" {
			body += st.src + "\n"
		}
		status, res := do(ctx, t, es, esapi.BulkRequest{Body: strings.NewReader(body)})
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %v", st.name, status, res)
		}
		for _, v := range res["items"].([]any)[0].(map[string]any) {
			item := v.(map[string]any)
			e, _ := item["error"].(map[string]any)
			if int(item["status"].(float64)) != st.status || (st.result != "" && item["result"] != st.result) ||
				(st.reason != "" && (e["type"] != "version_conflict_engine_exception" || e["reason"] != st.reason)) {
				t.Errorf("%s: item = %v, want status %d result %q reason %q", st.name, item, st.status, st.result, st.reason)
			}
		}
	}
	if got := string(srv.Docs("k")["a"]); got != "" {
		t.Errorf("deleted document came back: %s", got)
	}
	invalid := []struct{ name, body, reason string }{
		{"negative external version", `{"index":{"_index":"k","_id":"b","version":-1,"version_type":"external"}}` + "\n{}\n", "illegal version value [-1] for version type [EXTERNAL]"},
		{"id over 512 bytes", `{"index":{"_index":"k","_id":"` + strings.Repeat("x", 513) + `"}}` + "\n{}\n", "is too long, must be no longer than 512 bytes but was: 513"},
	}
	for _, tc := range invalid {
		status, res := do(ctx, t, es, esapi.BulkRequest{Body: strings.NewReader(tc.body)})
		e, _ := res["error"].(map[string]any)
		if status != http.StatusBadRequest || e["type"] != "action_request_validation_exception" || !strings.Contains(fmt.Sprint(e["reason"]), tc.reason) {
			t.Errorf("%s: %d %v, want 400 action_request_validation_exception with %q", tc.name, status, res, tc.reason)
		}
	}
}

// A document with a metadata field at its top level is refused item by
// item, as Elasticsearch 8 does; nested, the name is an ordinary field.
func TestMetadataFieldInDocumentRefused(t *testing.T) {
	t.Parallel()
	s := estest.Start(t)
	body := "{\"index\":{\"_index\":\"m\",\"_id\":\"1\"}}\n{\"_id\":\"x\",\"a\":1}\n" +
		"{\"index\":{\"_index\":\"m\",\"_id\":\"2\"}}\n{\"nested\":{\"_id\":\"x\"}}\n"
	resp, err := http.Post(s.URL()+"/_bulk", "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status int `json:"status"`
			Error  struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Items) != 2 {
		t.Fatalf("bulk answer: %v %+v", err, out)
	}
	first, second := out.Items[0]["index"], out.Items[1]["index"]
	if !out.Errors || first.Status != 400 || first.Error.Type != "document_parsing_exception" || !strings.Contains(first.Error.Reason, "Field [_id] is a metadata field") {
		t.Fatalf("top-level _id: %+v", first)
	}
	if second.Status != 201 {
		t.Fatalf("nested _id: %+v", second)
	}
}
