package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/services/schema-registry/internal/api"
	"github.com/sluicehq/sluice/services/schema-registry/internal/srtest"
)

const (
	orderV1 = `{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"long"}]}`
	// orderV1Spaced is orderV1 with other whitespace and key order.
	orderV1Spaced = "{ \"namespace\": \"com.acme\", \"fields\": [ { \"type\": \"long\", \"name\": \"id\" } ],\n \"name\": \"Order\", \"type\": \"record\" }"
	orderV2       = `{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null}]}`
	orderBad      = `{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"long"},{"name":"qty","type":"int"}]}`
	addressV1     = `{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"city","type":"string"}]}`
	customerV1    = `{"type":"record","name":"Customer","namespace":"com.acme","fields":[{"name":"addr","type":"com.acme.Address"}]}`
)

type client struct {
	t    *testing.T
	base string
	auth func(*http.Request)
}

type result struct {
	status int
	body   []byte
}

func (r result) json(t *testing.T, into any) {
	t.Helper()
	if err := json.Unmarshal(r.body, into); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
}

func (r result) code(t *testing.T) int {
	t.Helper()
	var e struct {
		Code    int    `json:"error_code"`
		Message string `json:"message"`
	}
	r.json(t, &e)
	if e.Message == "" {
		t.Fatalf("error without message: %s", r.body)
	}
	return e.Code
}

func (c *client) do(method, path string, body any, contentType string) result {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.auth != nil {
		c.auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != api.ContentType {
		c.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return result{resp.StatusCode, b}
}

func (c *client) get(path string) result { c.t.Helper(); return c.do(http.MethodGet, path, nil, "") }
func (c *client) del(path string) result { c.t.Helper(); return c.do(http.MethodDelete, path, nil, "") }
func (c *client) post(path string, body any) result {
	c.t.Helper()
	return c.do(http.MethodPost, path, body, "application/vnd.schemaregistry.v1+json")
}
func (c *client) put(path string, body any) result {
	c.t.Helper()
	return c.do(http.MethodPut, path, body, "application/json")
}

func (c *client) register(subject, schema string) int {
	c.t.Helper()
	r := c.post("/subjects/"+subject+"/versions", map[string]any{"schema": schema})
	if r.status != http.StatusOK {
		c.t.Fatalf("registering under %s: %d %s", subject, r.status, r.body)
	}
	var out struct {
		ID int `json:"id"`
	}
	r.json(c.t, &out)
	return out.ID
}

// expectErr asserts an error answer's status and Confluent code.
func (c *client) expectErr(r result, status, code int) {
	c.t.Helper()
	if r.status != status {
		c.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if got := r.code(c.t); got != code {
		c.t.Fatalf("error_code %d, want %d: %s", got, code, r.body)
	}
}

func start(t *testing.T, opts srtest.Options) (*client, *kafkatest.Cluster, *srtest.Instance) {
	t.Helper()
	kc := kafkatest.Start(t)
	in := srtest.Start(t, kc.Config(), opts)
	return &client{t: t, base: in.URL}, kc, in
}

func TestRegisterAndRead(t *testing.T) {
	t.Parallel()
	c, _, _ := start(t, srtest.Options{})
	id := c.register("orders-value", orderV1)
	if id != 1 {
		t.Fatalf("first id = %d, want 1", id)
	}
	if again := c.register("orders-value", orderV1); again != id {
		t.Fatalf("idempotent registration gave id %d, want %d", again, id)
	}
	if spaced := c.register("orders-value", orderV1Spaced); spaced != id {
		t.Fatalf("whitespace/key-order variant got id %d, want %d", spaced, id)
	}
	if other := c.register("payments-value", orderV1); other != id {
		t.Fatalf("same schema under another subject got id %d, want %d", other, id)
	}
	id2 := c.register("orders-value", orderV2)
	if id2 != 2 {
		t.Fatalf("second schema id = %d, want 2", id2)
	}

	var byID struct {
		Schema     string `json:"schema"`
		SchemaType string `json:"schemaType"`
	}
	r := c.get("/schemas/ids/1")
	if r.status != http.StatusOK {
		t.Fatalf("GET /schemas/ids/1: %d %s", r.status, r.body)
	}
	r.json(t, &byID)
	if byID.Schema != orderV1 || byID.SchemaType != "" {
		t.Fatalf("by id = %+v", byID)
	}
	if r := c.get("/schemas/ids/1?subject=payments-value"); r.status != http.StatusOK {
		t.Fatalf("by id with subject: %d %s", r.status, r.body)
	}
	if r := c.get("/schemas/ids/1?subject=other-value&fetchMaxId=false"); r.status != http.StatusOK {
		t.Fatalf("by id with another subject (a context hint in Confluent): %d %s", r.status, r.body)
	}
	if r := c.get("/schemas/ids/2/schema"); r.status != http.StatusOK || string(r.body) != orderV2 {
		t.Fatalf("raw schema by id: %d %s", r.status, r.body)
	}
	var subjects []string
	c.get("/schemas/ids/1/subjects").json(t, &subjects)
	if strings.Join(subjects, ",") != "orders-value,payments-value" {
		t.Fatalf("subjects of id 1 = %v", subjects)
	}
	var svs []struct {
		Subject string `json:"subject"`
		Version int    `json:"version"`
	}
	c.get("/schemas/ids/1/versions").json(t, &svs)
	if len(svs) != 2 || svs[0].Subject != "orders-value" || svs[0].Version != 1 || svs[1].Subject != "payments-value" {
		t.Fatalf("versions of id 1 = %+v", svs)
	}
	c.get("/subjects").json(t, &subjects)
	if strings.Join(subjects, ",") != "orders-value,payments-value" {
		t.Fatalf("subjects = %v", subjects)
	}
	c.get("/subjects?subjectPrefix=pay").json(t, &subjects)
	if strings.Join(subjects, ",") != "payments-value" {
		t.Fatalf("subjects with prefix = %v", subjects)
	}
	var versions []int
	c.get("/subjects/orders-value/versions").json(t, &versions)
	if len(versions) != 2 || versions[0] != 1 || versions[1] != 2 {
		t.Fatalf("versions = %v", versions)
	}
	var sv struct {
		Subject string `json:"subject"`
		Version int    `json:"version"`
		ID      int    `json:"id"`
		Schema  string `json:"schema"`
	}
	c.get("/subjects/orders-value/versions/latest").json(t, &sv)
	if sv.Subject != "orders-value" || sv.Version != 2 || sv.ID != 2 || sv.Schema != orderV2 {
		t.Fatalf("latest = %+v", sv)
	}
	c.get("/subjects/orders-value/versions/-1").json(t, &sv)
	if sv.Version != 2 {
		t.Fatalf("version -1 = %+v", sv)
	}
	c.get("/subjects/orders-value/versions/1").json(t, &sv)
	if sv.Version != 1 || sv.ID != 1 {
		t.Fatalf("version 1 = %+v", sv)
	}
	if r := c.get("/subjects/orders-value/versions/1/schema"); string(r.body) != orderV1 {
		t.Fatalf("raw schema of version 1 = %s", r.body)
	}
	var all []map[string]any
	c.get("/schemas").json(t, &all)
	if len(all) != 3 {
		t.Fatalf("GET /schemas = %d entries, want 3", len(all))
	}
	c.get("/schemas?latestOnly=true&subjectPrefix=orders").json(t, &all)
	if len(all) != 1 || all[0]["version"].(float64) != 2 {
		t.Fatalf("GET /schemas latestOnly = %v", all)
	}
	var types []string
	c.get("/schemas/types").json(t, &types)
	if len(types) != 1 || types[0] != "AVRO" {
		t.Fatalf("types = %v", types)
	}
	// Lookup.
	r = c.post("/subjects/orders-value", map[string]any{"schema": orderV1Spaced})
	if r.status != http.StatusOK {
		t.Fatalf("lookup: %d %s", r.status, r.body)
	}
	r.json(t, &sv)
	if sv.ID != 1 || sv.Version != 1 || sv.Subject != "orders-value" {
		t.Fatalf("lookup = %+v", sv)
	}
	c.expectErr(c.post("/subjects/orders-value", map[string]any{"schema": `"string"`}), http.StatusNotFound, 40403)
	c.expectErr(c.post("/subjects/nope", map[string]any{"schema": orderV1}), http.StatusNotFound, 40401)
	// normalize stores the canonical form.
	c.post("/subjects/norm-value/versions?normalize=true", map[string]any{"schema": "{\"type\": \"record\", \"namespace\": \"com.acme\", \"name\": \"Norm\", \"fields\": [{\"type\": {\"type\": \"long\"}, \"name\": \"id\"}]}"})
	var norm struct {
		Schema string `json:"schema"`
	}
	c.get("/subjects/norm-value/versions/1").json(t, &norm)
	if norm.Schema != `{"fields":[{"name":"id","type":"long"}],"name":"com.acme.Norm","type":"record"}` {
		t.Fatalf("normalized schema = %s", norm.Schema)
	}
	if r := c.get("/"); r.status != http.StatusOK {
		t.Fatalf("GET / = %d", r.status)
	}
}

func TestErrorCodes(t *testing.T) {
	t.Parallel()
	c, _, _ := start(t, srtest.Options{MaxSchema: 4096, MaxRequest: 8192})
	c.register("orders-value", orderV1)
	cases := []struct {
		name   string
		r      func() result
		status int
		code   int
	}{
		{"40401 unknown subject versions", func() result { return c.get("/subjects/nope/versions") }, 404, 40401},
		{"40401 unknown subject version", func() result { return c.get("/subjects/nope/versions/1") }, 404, 40401},
		{"40402 unknown version", func() result { return c.get("/subjects/orders-value/versions/99") }, 404, 40402},
		{"40403 unknown id", func() result { return c.get("/schemas/ids/999") }, 404, 40403},
		{"40403 non-numeric id", func() result { return c.get("/schemas/ids/abc") }, 404, 40403},
		{"42201 unparsable schema", func() result {
			return c.post("/subjects/x/versions", map[string]any{"schema": `{"type":"record","name":"R","fields":[{"name":"a","type":"integer"}]}`})
		}, 422, 42201},
		{"42201 not JSON", func() result { return c.post("/subjects/x/versions", map[string]any{"schema": `{"type":`}) }, 422, 42201},
		{"42201 missing schema field", func() result { return c.post("/subjects/x/versions", map[string]any{}) }, 422, 42201},
		{"42201 unsupported schema type", func() result {
			return c.post("/subjects/x/versions", map[string]any{"schema": `{}`, "schemaType": "PROTOBUF"})
		}, 422, 42201},
		{"42201 duplicate field", func() result {
			return c.post("/subjects/x/versions", map[string]any{"schema": `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}`})
		}, 422, 42201},
		{"42202 non-numeric version", func() result { return c.get("/subjects/orders-value/versions/abc") }, 422, 42202},
		{"42202 version zero", func() result { return c.get("/subjects/orders-value/versions/0") }, 422, 42202},
		{"42203 bad compatibility", func() result { return c.put("/config", map[string]any{"compatibility": "SIDEWAYS"}) }, 422, 42203},
		{"42204 bad mode", func() result { return c.put("/mode", map[string]any{"mode": "WRITEONLY"}) }, 422, 42204},
		{"42205 id outside import mode", func() result {
			return c.post("/subjects/x/versions", map[string]any{"schema": `"int"`, "id": 77})
		}, 422, 42205},
		{"409 incompatible", func() result { return c.post("/subjects/orders-value/versions", map[string]any{"schema": orderBad}) }, 409, 409},
		{"42209 schema too large", func() result {
			return c.post("/subjects/x/versions", map[string]any{"schema": `"` + strings.Repeat("x", 5000) + `"`})
		}, 422, 42209},
		{"413 body too large", func() result {
			return c.post("/subjects/x/versions", map[string]any{"schema": strings.Repeat("x", 9000)})
		}, 413, 413},
		{"415 content type", func() result {
			return c.do(http.MethodPost, "/subjects/x/versions", `{"schema":"\"int\""}`, "text/plain")
		}, 415, 415},
		{"422 malformed body", func() result { return c.post("/subjects/x/versions", `{"schema":`) }, 422, 42200},
		{"400 bad boolean parameter", func() result { return c.get("/subjects?deleted=maybe") }, 400, 400},
		{"404 unknown route", func() result { return c.get("/nothing/here") }, 404, 404},
		{"405 wrong method", func() result { return c.put("/schemas/types", map[string]any{}) }, 405, 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &client{t: t, base: c.base}
			c.expectErr(tc.r(), tc.status, tc.code)
		})
	}
	// The parser's reason reaches the client.
	r := c.post("/subjects/x/versions", map[string]any{"schema": `{"type":"record","name":"R","fields":[{"name":"a","type":"integer"}]}`})
	var e struct {
		Message string `json:"message"`
	}
	r.json(t, &e)
	if !strings.Contains(e.Message, "integer") {
		t.Fatalf("42201 message does not carry the parser's reason: %q", e.Message)
	}
	// 409 names the problem.
	c.post("/subjects/orders-value/versions", map[string]any{"schema": orderBad}).json(t, &e)
	if !strings.Contains(e.Message, "READER_FIELD_MISSING_DEFAULT_VALUE") || !strings.Contains(e.Message, "qty") {
		t.Fatalf("409 message = %q", e.Message)
	}
}

func TestDeletes(t *testing.T) {
	t.Parallel()
	c, _, _ := start(t, srtest.Options{})
	c.register("orders-value", orderV1)
	c.register("orders-value", orderV2)
	c.expectErr(c.del("/subjects/orders-value/versions/1?permanent=true"), 404, 40407)
	if r := c.del("/subjects/orders-value/versions/1"); r.status != 200 || string(bytes.TrimSpace(r.body)) != "1" {
		t.Fatalf("soft delete version: %d %s", r.status, r.body)
	}
	c.expectErr(c.del("/subjects/orders-value/versions/1"), 404, 40406)
	c.expectErr(c.get("/subjects/orders-value/versions/1"), 404, 40402)
	if r := c.get("/subjects/orders-value/versions/1?deleted=true"); r.status != 200 {
		t.Fatalf("soft-deleted version with deleted=true: %d %s", r.status, r.body)
	}
	var versions []int
	c.get("/subjects/orders-value/versions").json(t, &versions)
	if len(versions) != 1 || versions[0] != 2 {
		t.Fatalf("versions after soft delete = %v", versions)
	}
	c.get("/subjects/orders-value/versions?deleted=true").json(t, &versions)
	if len(versions) != 2 {
		t.Fatalf("versions incl. deleted = %v", versions)
	}
	// The id stays resolvable after a soft delete.
	if r := c.get("/schemas/ids/1"); r.status != 200 {
		t.Fatalf("id 1 after soft delete: %d", r.status)
	}
	if r := c.del("/subjects/orders-value/versions/1?permanent=true"); r.status != 200 {
		t.Fatalf("hard delete version: %d %s", r.status, r.body)
	}
	c.expectErr(c.get("/subjects/orders-value/versions/1?deleted=true"), 404, 40402)
	c.expectErr(c.get("/schemas/ids/1"), 404, 40403)

	c.expectErr(c.del("/subjects/orders-value?permanent=true"), 404, 40405)
	if r := c.del("/subjects/orders-value"); r.status != 200 || string(bytes.TrimSpace(r.body)) != "[2]" {
		t.Fatalf("soft delete subject: %d %s", r.status, r.body)
	}
	c.expectErr(c.del("/subjects/orders-value"), 404, 40404)
	c.expectErr(c.get("/subjects/orders-value/versions"), 404, 40401)
	var subjects []string
	c.get("/subjects?deleted=true").json(t, &subjects)
	if len(subjects) != 1 {
		t.Fatalf("subjects incl. deleted = %v", subjects)
	}
	// Re-registering after a soft delete gets a new version, same id.
	if id := c.register("orders-value", orderV2); id != 2 {
		t.Fatalf("re-registration id = %d, want 2", id)
	}
	c.get("/subjects/orders-value/versions").json(t, &versions)
	if len(versions) != 1 || versions[0] != 3 {
		t.Fatalf("versions after re-registration = %v, want [3]", versions)
	}
	c.del("/subjects/orders-value")
	if r := c.del("/subjects/orders-value?permanent=true"); r.status != 200 {
		t.Fatalf("hard delete subject: %d %s", r.status, r.body)
	}
	c.expectErr(c.del("/subjects/orders-value"), 404, 40401)
	c.get("/subjects?deleted=true").json(t, &subjects)
	if len(subjects) != 0 {
		t.Fatalf("subjects after hard delete = %v", subjects)
	}
	// Ids are never reused, not even after a permanent delete.
	if id := c.register("other-value", `"string"`); id != 3 {
		t.Fatalf("next id after permanent deletes = %d, want 3", id)
	}
	c.expectErr(c.del("/subjects/other-value/versions/abc"), 422, 42202)
	c.expectErr(c.del("/subjects/other-value/versions/9"), 404, 40402)
}

func TestConfigAndMode(t *testing.T) {
	t.Parallel()
	c, _, _ := start(t, srtest.Options{})
	var cfg map[string]string
	c.get("/config").json(t, &cfg)
	if cfg["compatibilityLevel"] != "BACKWARD" {
		t.Fatalf("default config = %v", cfg)
	}
	c.put("/config", map[string]any{"compatibility": "full"}).json(t, &cfg)
	if cfg["compatibility"] != "FULL" {
		t.Fatalf("PUT /config = %v", cfg)
	}
	c.get("/config").json(t, &cfg)
	if cfg["compatibilityLevel"] != "FULL" {
		t.Fatalf("config after PUT = %v", cfg)
	}
	c.register("orders-value", orderV1)
	c.expectErr(c.get("/config/orders-value"), 404, 40408)
	c.get("/config/orders-value?defaultToGlobal=true").json(t, &cfg)
	if cfg["compatibilityLevel"] != "FULL" {
		t.Fatalf("defaultToGlobal = %v", cfg)
	}
	c.put("/config/orders-value", map[string]any{"compatibility": "NONE"})
	c.get("/config/orders-value").json(t, &cfg)
	if cfg["compatibilityLevel"] != "NONE" {
		t.Fatalf("subject config = %v", cfg)
	}
	// NONE lets an incompatible schema in.
	if id := c.register("orders-value", orderBad); id == 0 {
		t.Fatal("incompatible schema refused under NONE")
	}
	c.del("/config/orders-value").json(t, &cfg)
	if cfg["compatibilityLevel"] != "NONE" {
		t.Fatalf("DELETE /config/orders-value returned %v, want the previous level", cfg)
	}
	c.expectErr(c.del("/config/orders-value"), 404, 40408)
	c.expectErr(c.del("/config/never-seen"), 404, 40401)
	c.del("/config")
	c.get("/config").json(t, &cfg)
	if cfg["compatibilityLevel"] != "BACKWARD" {
		t.Fatalf("config after DELETE = %v", cfg)
	}

	var mode map[string]string
	c.get("/mode").json(t, &mode)
	if mode["mode"] != "READWRITE" {
		t.Fatalf("default mode = %v", mode)
	}
	c.expectErr(c.get("/mode/orders-value"), 404, 40409)
	c.get("/mode/orders-value?defaultToGlobal=true").json(t, &mode)
	if mode["mode"] != "READWRITE" {
		t.Fatalf("mode defaultToGlobal = %v", mode)
	}
	c.put("/mode/orders-value", map[string]any{"mode": "READONLY"}).json(t, &mode)
	if mode["mode"] != "READONLY" {
		t.Fatalf("PUT mode = %v", mode)
	}
	c.expectErr(c.post("/subjects/orders-value/versions", map[string]any{"schema": orderV2}), 422, 42205)
	c.expectErr(c.del("/subjects/orders-value/versions/1"), 422, 42205)
	if id := c.register("payments-value", orderV2); id == 0 {
		t.Fatal("other subject blocked by a subject-level READONLY")
	}
	c.del("/mode/orders-value")
	c.expectErr(c.get("/mode/orders-value"), 404, 40409)
	c.expectErr(c.put("/mode", map[string]any{"mode": "IMPORT"}), 422, 42205)
	c.put("/mode?force=true", map[string]any{"mode": "IMPORT"})
	r := c.post("/subjects/imported-value/versions", map[string]any{"schema": `"bytes"`, "id": 100, "version": 7})
	if r.status != 200 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	var sv struct {
		ID      int `json:"id"`
		Version int `json:"version"`
	}
	c.get("/subjects/imported-value/versions/latest").json(t, &sv)
	if sv.ID != 100 || sv.Version != 7 {
		t.Fatalf("imported = %+v, want id 100 version 7", sv)
	}
	c.expectErr(c.post("/subjects/imported-value/versions", map[string]any{"schema": `"string"`, "id": 100}), 422, 42205)
	c.put("/mode", map[string]any{"mode": "READWRITE"})
	// New ids continue above imported ones.
	if id := c.register("fresh-value", `"float"`); id != 101 {
		t.Fatalf("id after import = %d, want 101", id)
	}
}

func TestCompatibilityEndpoint(t *testing.T) {
	t.Parallel()
	c, _, _ := start(t, srtest.Options{})
	c.register("orders-value", orderV1)
	c.register("orders-value", orderV2)
	var res struct {
		Is       bool     `json:"is_compatible"`
		Messages []string `json:"messages"`
	}
	c.post("/compatibility/subjects/orders-value/versions/latest", map[string]any{"schema": orderV2}).json(t, &res)
	if !res.Is {
		t.Fatalf("same schema incompatible: %+v", res)
	}
	c.post("/compatibility/subjects/orders-value/versions/latest?verbose=true", map[string]any{"schema": orderBad}).json(t, &res)
	if res.Is || len(res.Messages) == 0 || !strings.Contains(res.Messages[0], "qty") {
		t.Fatalf("verbose incompatible = %+v", res)
	}
	c.post("/compatibility/subjects/orders-value/versions/1", map[string]any{"schema": orderV2}).json(t, &res)
	if !res.Is {
		t.Fatalf("v2 vs v1: %+v", res)
	}
	c.put("/config/orders-value", map[string]any{"compatibility": "FORWARD_TRANSITIVE"})
	c.post("/compatibility/subjects/orders-value/versions", map[string]any{"schema": `{"type":"record","name":"Order","namespace":"com.acme","fields":[]}`}).json(t, &res)
	if res.Is {
		t.Fatal("dropping a field without default passes FORWARD_TRANSITIVE")
	}
	c.post("/compatibility/subjects/new-value/versions", map[string]any{"schema": orderV1}).json(t, &res)
	if !res.Is {
		t.Fatal("a subject without versions must accept anything")
	}
	c.expectErr(c.post("/compatibility/subjects/new-value/versions/latest", map[string]any{"schema": orderV1}), 404, 40401)
	c.expectErr(c.post("/compatibility/subjects/orders-value/versions/9", map[string]any{"schema": orderV1}), 404, 40402)
	c.expectErr(c.post("/compatibility/subjects/orders-value/versions/x", map[string]any{"schema": orderV1}), 422, 42202)
	c.expectErr(c.post("/compatibility/subjects/orders-value/versions/latest", map[string]any{"schema": `{"type":"nope"}`}), 422, 42201)
}

func TestReferences(t *testing.T) {
	t.Parallel()
	c, _, _ := start(t, srtest.Options{})
	addrID := c.register("address-value", addressV1)
	ref := []map[string]any{{"name": "com.acme.Address", "subject": "address-value", "version": 1}}
	r := c.post("/subjects/customers-value/versions", map[string]any{"schema": customerV1, "references": ref})
	if r.status != 200 {
		t.Fatalf("register with reference: %d %s", r.status, r.body)
	}
	var out struct {
		ID int `json:"id"`
	}
	r.json(t, &out)
	if out.ID == addrID {
		t.Fatal("referencing schema got the referenced id")
	}
	c.expectErr(c.post("/subjects/customers2-value/versions", map[string]any{"schema": customerV1}), 422, 42201)
	c.expectErr(c.post("/subjects/customers2-value/versions", map[string]any{"schema": customerV1, "references": []map[string]any{{"name": "com.acme.Address", "subject": "address-value", "version": 9}}}), 422, 42201)
	var ids []int
	c.get("/subjects/address-value/versions/1/referencedby").json(t, &ids)
	if len(ids) != 1 || ids[0] != out.ID {
		t.Fatalf("referencedby = %v, want [%d]", ids, out.ID)
	}
	var byID struct {
		References []map[string]any `json:"references"`
	}
	c.get("/schemas/ids/"+strconv.Itoa(out.ID)).json(t, &byID)
	if len(byID.References) != 1 || byID.References[0]["subject"] != "address-value" {
		t.Fatalf("references by id = %v", byID.References)
	}
	c.expectErr(c.del("/subjects/address-value/versions/1"), 422, 42206)
	c.expectErr(c.del("/subjects/address-value"), 422, 42206)
	if r := c.post("/subjects/customers-value", map[string]any{"schema": customerV1, "references": ref}); r.status != 200 {
		t.Fatalf("lookup with references: %d %s", r.status, r.body)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	auth, err := api.ParseAuth([]string{"admin:s3cret:rw", "viewer:v:ro"}, []string{"tok-rw:rw", "tok-ro:ro"})
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := start(t, srtest.Options{Auth: auth})
	basic := func(u, p string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	c.expectErr(c.get("/subjects"), 401, 40101)
	c.auth = basic("admin", "wrong")
	c.expectErr(c.get("/subjects"), 401, 40101)
	c.auth = bearer("nope")
	c.expectErr(c.get("/subjects"), 401, 40101)
	c.auth = basic("admin", "s3cret")
	c.register("orders-value", orderV1)
	c.auth = bearer("tok-rw")
	c.register("orders-value", orderV2)
	for _, ro := range []func(*http.Request){basic("viewer", "v"), bearer("tok-ro")} {
		c.auth = ro
		if r := c.get("/subjects"); r.status != 200 {
			t.Fatalf("read-only GET: %d", r.status)
		}
		if r := c.post("/subjects/orders-value", map[string]any{"schema": orderV1}); r.status != 200 {
			t.Fatalf("read-only lookup: %d %s", r.status, r.body)
		}
		if r := c.post("/compatibility/subjects/orders-value/versions/latest", map[string]any{"schema": orderV1}); r.status != 200 {
			t.Fatalf("read-only compatibility check: %d %s", r.status, r.body)
		}
		c.expectErr(c.post("/subjects/orders-value/versions", map[string]any{"schema": orderV1}), 403, 40301)
		c.expectErr(c.del("/subjects/orders-value"), 403, 40301)
		c.expectErr(c.put("/config", map[string]any{"compatibility": "NONE"}), 403, 40301)
	}
}

func TestStoreErrors(t *testing.T) {
	t.Parallel()
	c, kc, _ := start(t, srtest.Options{})
	c.register("orders-value", orderV1)
	// The broker refuses writes: 50001.
	kc.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, tp := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = tp.Topic
			for _, p := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = 87 // INVALID_RECORD: not retriable
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	c.expectErr(c.post("/subjects/orders-value/versions", map[string]any{"schema": orderV2}), 500, 50001)
	// Reads keep working from the applied state.
	if r := c.get("/schemas/ids/1"); r.status != 200 {
		t.Fatalf("read while writes fail: %d", r.status)
	}
}

func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	c, kc, _ := start(t, srtest.Options{Timeout: time.Second})
	c.register("orders-value", orderV1)
	// The broker never answers produce requests: the write times out, 50002.
	kc.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		return nil, nil, true // swallow: no response
	})
	r := c.post("/subjects/orders-value/versions", map[string]any{"schema": orderV2})
	c.expectErr(r, 500, 50002)
}

// TestConfluentClientRequestShapes sends the bodies and parameters that
// Confluent's Java and Python clients send (explicit AVRO type, empty
// references, null metadata and rule set, fetchMaxId, normalize=false).
func TestConfluentClientRequestShapes(t *testing.T) {
	t.Parallel()
	c, _, _ := start(t, srtest.Options{})
	body := `{"schemaType":"AVRO","references":[],"metadata":null,"ruleSet":null,"schema":"{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"com.acme\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"}]}"}`
	r := c.do(http.MethodPost, "/subjects/orders-value/versions?normalize=false", body, "application/vnd.schemaregistry.v1+json")
	if r.status != http.StatusOK {
		t.Fatalf("Java-style registration: %d %s", r.status, r.body)
	}
	r = c.do(http.MethodPost, "/subjects/orders-value?normalize=false&deleted=false", body, "application/vnd.schemaregistry+json")
	if r.status != http.StatusOK {
		t.Fatalf("Java-style lookup: %d %s", r.status, r.body)
	}
	if r := c.get("/schemas/ids/1?fetchMaxId=false&subject=orders-value"); r.status != http.StatusOK {
		t.Fatalf("Java-style fetch by id: %d %s", r.status, r.body)
	}
	if r := c.get("/config/orders-value?defaultToGlobal=true"); r.status != http.StatusOK {
		t.Fatalf("Java-style config: %d %s", r.status, r.body)
	}
}
