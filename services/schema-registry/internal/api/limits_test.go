package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	registryv1 "github.com/sluicehq/sluice/pkg/gen/sluice/registry/v1"
	"github.com/sluicehq/sluice/services/schema-registry/internal/compat"
	"github.com/sluicehq/sluice/services/schema-registry/internal/registry"
	"github.com/sluicehq/sluice/services/schema-registry/internal/srtest"
)

// sharedChain is issue 13's probe: named records T0..Tdepth, each using
// the next one twice; it expands to 3*2^depth-1 types and nests depth+1
// records deep, in a text of about 90 bytes per level.
func sharedChain(depth int, extra string) string {
	var b strings.Builder
	b.WriteString(`{"type":"record","name":"T0","namespace":"probe","fields":[`)
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, `{"name":"a","type":{"type":"record","name":"T%d","fields":[`, i)
	}
	b.WriteString(`{"name":"x","type":"int"}`)
	for i := depth; i >= 1; i-- {
		fmt.Fprintf(&b, `]}},{"name":"b","type":"T%d"}`, i)
	}
	b.WriteString(extra + `]}`)
	return b.String()
}

// nestedArrays is a record holding n-1 nested arrays: depth n.
func nestedArrays(n int) string {
	return `{"type":"record","name":"Deep","fields":[{"name":"d","type":` + strings.Repeat(`{"type":"array","items":`, n-1) + `"int"` + strings.Repeat(`}`, n-1) + `}]}`
}

func typesMessage(types int64) string {
	return fmt.Sprintf("Invalid schema: schema expands to %d types (every use of a named type counted), over the limit of 100000 (SCHEMA_REGISTRY_MAX_SCHEMA_TYPES)", types)
}

// expectRefused asserts 422, error_code 42201 and the message.
func (c *client) expectRefused(r result, message string) {
	c.t.Helper()
	c.expectErr(r, http.StatusUnprocessableEntity, 42201)
	var e struct {
		Message string `json:"message"`
	}
	r.json(c.t, &e)
	if e.Message != message {
		c.t.Fatalf("message\n %q\nwant\n %q", e.Message, message)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if label == "" || (l.GetName() == label && l.GetValue() == value) {
					return m.GetCounter().GetValue()
				}
			}
			if label == "" {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}

// TestHostileSchemasRefused: issue 13's probe (and deeper) is refused on
// every path that accepts a schema, with the limit, its setting and the
// schema's value named, quickly; schemas just under the limits register.
func TestHostileSchemasRefused(t *testing.T) {
	t.Parallel()
	c, _, in := start(t, srtest.Options{})
	c.register("probe-value", `{"type":"record","name":"T0","namespace":"probe","fields":[{"name":"x","type":"int"}]}`)

	for _, depth := range []int{22, 30, 60} {
		probe := sharedChain(depth, "")
		want := typesMessage(3<<depth - 1)
		start := time.Now()
		c.expectRefused(c.post("/subjects/probe-value/versions", map[string]any{"schema": probe}), want)
		t.Logf("depth %d (%d bytes): register refused in %v", depth, len(probe), time.Since(start))
		c.expectRefused(c.post("/compatibility/subjects/probe-value/versions/latest", map[string]any{"schema": probe}), want)
		c.expectRefused(c.post("/compatibility/subjects/probe-value/versions", map[string]any{"schema": probe}), want)
		// A lookup does linear work and applies no limit: not found.
		c.expectErr(c.post("/subjects/probe-value", map[string]any{"schema": probe}), http.StatusNotFound, 40403)
	}
	c.expectRefused(c.post("/subjects/deep-value/versions", map[string]any{"schema": nestedArrays(65)}),
		"Invalid schema: schema nests 65 levels deep (records, arrays, maps and unions, following named types), over the limit of 64 (SCHEMA_REGISTRY_MAX_SCHEMA_DEPTH)")
	if got := counterValue(t, in.Metrics, "sluice_schema_registry_schemas_refused_total", "limit", "expanded_types"); got != 9 {
		t.Fatalf("expanded_types refusals counted %v, want 9", got)
	}
	if got := counterValue(t, in.Metrics, "sluice_schema_registry_schemas_refused_total", "limit", "depth"); got != 1 {
		t.Fatalf("depth refusals counted %v, want 1", got)
	}

	// Just under the limits: 98,303 types, and 64 levels.
	c.register("under-value", sharedChain(15, ""))
	c.register("deep-value", nestedArrays(64))
	// ... and a compatible next version of the 98,303-type schema is
	// checked (a linear check) and registered.
	c.register("under-value", sharedChain(15, `,{"name":"n","type":"int","default":0}`))

	// IMPORT mode applies the limits too.
	c.put("/mode/import-value?force=true", map[string]any{"mode": "IMPORT"})
	c.expectRefused(c.post("/subjects/import-value/versions", map[string]any{"schema": sharedChain(22, ""), "id": 500, "version": 1}), typesMessage(3<<22-1))

	// gRPC: InvalidArgument carrying 42201 and the same message.
	conn, err := grpc.NewClient(in.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	cl := registryv1.NewRegistryServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cl.Register(ctx, &registryv1.RegisterRequest{Subject: "probe-value", Schema: sharedChain(22, "")})
	expectGRPC(t, err, codes.InvalidArgument, 42201, typesMessage(3<<22-1))
	_, err = cl.CheckCompatibility(ctx, &registryv1.CheckCompatibilityRequest{Subject: "probe-value", Version: -1, Schema: sharedChain(22, "")})
	expectGRPC(t, err, codes.InvalidArgument, 42201, typesMessage(3<<22-1))
}

func expectGRPC(t *testing.T, err error, code codes.Code, confluent int, message string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code || st.Message() != message {
		t.Fatalf("gRPC error %v %q, want %v %q", st.Code(), st.Message(), code, message)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == strconv.Itoa(confluent) {
			return
		}
	}
	t.Fatalf("gRPC error without ErrorInfo reason %d: %v", confluent, st.Details())
}

// TestReferencesOverLimitRefused: a schema is measured resolved through
// its references. A chain of subjects, each a record using the previous
// subject's record twice, has tiny texts; the 17th expands past the limit.
func TestReferencesOverLimitRefused(t *testing.T) {
	t.Parallel()
	c, _, _ := start(t, srtest.Options{})
	c.register("lib0", `{"type":"record","name":"L0","namespace":"lib","fields":[{"name":"x","type":"int"}]}`)
	for k := 1; k <= 16; k++ {
		body := map[string]any{
			"schema":     fmt.Sprintf(`{"type":"record","name":"L%d","namespace":"lib","fields":[{"name":"a","type":"lib.L%d"},{"name":"b","type":"lib.L%d"}]}`, k, k-1, k-1),
			"references": []map[string]any{{"name": fmt.Sprintf("lib.L%d", k-1), "subject": fmt.Sprintf("lib%d", k-1), "version": 1}},
		}
		r := c.post(fmt.Sprintf("/subjects/lib%d/versions", k), body)
		if k <= 15 { // L15 expands to 98,303 types
			if r.status != http.StatusOK {
				t.Fatalf("lib%d: %d %s", k, r.status, r.body)
			}
			continue
		}
		c.expectRefused(r, typesMessage(3<<16-1))
		c.expectRefused(c.post("/compatibility/subjects/lib16/versions", body), typesMessage(3<<16-1))
	}
	// A schema using two references that are each under the limit but
	// together over it.
	two := map[string]any{
		"schema": `{"type":"record","name":"Both","fields":[{"name":"a","type":"lib.L15"},{"name":"b","type":"lib.L14"}]}`,
		"references": []map[string]any{
			{"name": "lib.L15", "subject": "lib15", "version": 1},
			{"name": "lib.L14", "subject": "lib14", "version": 1},
		},
	}
	c.expectRefused(c.post("/subjects/both-value/versions", two), typesMessage(1+(3<<15-1)+(3<<14-1)))
}

// TestImportIDRange: IMPORT mode takes only ids that fit the wire
// format's 4-byte schema id.
func TestImportIDRange(t *testing.T) {
	t.Parallel()
	c, _, _ := start(t, srtest.Options{})
	c.put("/mode?force=true", map[string]any{"mode": "IMPORT"})
	cases := []struct {
		name, id string
	}{
		{"zero", "0"},
		{"negative", "-1"},
		{"2^31", "2147483648"},
		{"past int64", "99999999999999999999"},
		{"fraction", "1.5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &client{t: t, base: c.base}
			r := c.post("/subjects/imp-value/versions", `{"schema":"\"string\"","id":`+tc.id+`}`)
			c.expectErr(r, http.StatusUnprocessableEntity, 42205)
			var e struct {
				Message string `json:"message"`
			}
			r.json(t, &e)
			if want := "Schema id " + tc.id + " is outside the range 1..2147483647: ids must fit the 4-byte schema id of the wire format"; e.Message != want {
				t.Fatalf("message %q, want %q", e.Message, want)
			}
		})
	}
	c.expectErr(c.post("/subjects/imp-value/versions", `{"schema":"\"string\"","id":7,"version":2147483648}`), http.StatusUnprocessableEntity, 42202)
	r := c.post("/subjects/imp-value/versions", `{"schema":"\"string\"","id":2147483647}`)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"id":2147483647`) {
		t.Fatalf("largest id: %d %s", r.status, r.body)
	}
	if r := c.get("/schemas/ids/2147483647"); r.status != http.StatusOK {
		t.Fatalf("largest id by id: %d %s", r.status, r.body)
	}
}

// TestCompatibilityDeadline: a compatibility check stops at the request's
// deadline and answers 50002 naming the check.
func TestCompatibilityDeadline(t *testing.T) {
	t.Parallel()
	c, _, in := start(t, srtest.Options{RequestTimeout: time.Nanosecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := in.Registry.Register(ctx, "slow-value", registry.SchemaInput{Schema: sharedChain(12, "")}); err != nil {
		t.Fatal(err)
	}
	r := c.post("/compatibility/subjects/slow-value/versions", map[string]any{"schema": sharedChain(12, `,{"name":"n","type":"int","default":0}`)})
	c.expectErr(r, http.StatusInternalServerError, 50002)
	if !strings.Contains(string(r.body), "the compatibility check against subject slow-value did not finish before the request's deadline") {
		t.Fatalf("answer does not name the check: %s", r.body)
	}
	if got := counterValue(t, in.Metrics, "sluice_schema_registry_compat_check_timeouts_total", "", ""); got != 1 {
		t.Fatalf("timeouts counted %v, want 1", got)
	}
}

// gateChecker holds the first check whose reader has a field named
// "slow_marker" until released: an expensive check, made observable.
type gateChecker struct {
	compat.AvroChecker
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *gateChecker) Check(ctx context.Context, reader, writer compat.Schema) ([]compat.Incompatibility, error) {
	for i := range reader.NumFields() {
		if reader.Field(i).Name() == "slow_marker" {
			g.once.Do(func() {
				close(g.entered)
				select {
				case <-g.release:
				case <-ctx.Done():
				}
			})
		}
	}
	return g.AvroChecker.Check(ctx, reader, writer)
}

// TestCheckDoesNotBlockOthers: while one registration's compatibility
// check runs, reads and registrations (to other subjects and to the same
// one) go through; when the check ends, the subject has changed, so the
// registration is checked again against the new version and refused.
func TestCheckDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	gate := &gateChecker{entered: make(chan struct{}), release: make(chan struct{})}
	c, _, _ := start(t, srtest.Options{Checker: gate})
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(gate.release) }) }
	t.Cleanup(release)
	rec := func(name, fields string) string {
		return `{"type":"record","name":"` + name + `","fields":[{"name":"a","type":"int"}` + fields + `]}`
	}
	c.register("slow-value", rec("Slow", ""))
	c.register("fast-value", rec("Fast", ""))

	slow := make(chan result, 1)
	go func() {
		slow <- c.post("/subjects/slow-value/versions", map[string]any{"schema": rec("Slow", `,{"name":"slow_marker","type":"int","default":0},{"name":"clash","type":"int","default":0}`)})
	}()
	select {
	case <-gate.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow registration never reached its compatibility check")
	}
	// The check is running. Everything else must answer promptly.
	quick := &http.Client{Timeout: 5 * time.Second}
	c2 := &client{t: t, base: c.base}
	for _, req := range []struct{ method, path, body string }{
		{http.MethodGet, "/subjects", ""},
		{http.MethodGet, "/schemas/ids/1", ""},
		{http.MethodPost, "/subjects/fast-value/versions", `{"schema":` + strconv.Quote(rec("Fast", `,{"name":"b","type":"int","default":0}`)) + `}`},
		{http.MethodPost, "/subjects/new-value/versions", `{"schema":` + strconv.Quote(rec("New", "")) + `}`},
		// The same subject: a version the slow candidate cannot read.
		{http.MethodPost, "/subjects/slow-value/versions", `{"schema":` + strconv.Quote(rec("Slow", `,{"name":"clash","type":"string","default":""}`)) + `}`},
	} {
		hr, err := http.NewRequest(req.method, c2.base+req.path, strings.NewReader(req.body))
		if err != nil {
			t.Fatal(err)
		}
		if req.body != "" {
			hr.Header.Set("Content-Type", "application/json")
		}
		resp, err := quick.Do(hr)
		if err != nil {
			t.Fatalf("%s %s while a check runs: %v (blocked behind it?)", req.method, req.path, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s while a check runs: %d", req.method, req.path, resp.StatusCode)
		}
	}
	release()
	select {
	case r := <-slow:
		// Checked again against the version registered meanwhile.
		c.expectErr(r, http.StatusConflict, 409)
		if !strings.Contains(string(r.body), "reader type: int not compatible with writer type: string") {
			t.Fatalf("refused for another reason: %s", r.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the slow registration did not finish after its check was released")
	}
	var versions []int
	c.get("/subjects/slow-value/versions").json(t, &versions)
	if len(versions) != 2 {
		t.Fatalf("slow-value versions %v, want [1 2]", versions)
	}
}

// TestConcurrentRegistrationsToOneSubject: registrations racing on one
// subject are checked outside the write lock, and each one that finds the
// subject changed under the lock is checked again; none gives up while the
// others make progress.
func TestConcurrentRegistrationsToOneSubject(t *testing.T) {
	t.Parallel()
	c, _, _ := start(t, srtest.Options{})
	c.register("busy-value", `{"type":"record","name":"Busy","fields":[{"name":"a","type":"int"}]}`)
	const n = 100
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Each adds its own optional field: compatible with any version.
			schema := fmt.Sprintf(`{"type":"record","name":"Busy","fields":[{"name":"a","type":"int"},{"name":"f%d","type":["null","int"],"default":null}]}`, i)
			results[i] = c.post("/subjects/busy-value/versions", map[string]any{"schema": schema})
		}(i)
	}
	wg.Wait()
	for i, r := range results {
		if r.status != http.StatusOK {
			t.Fatalf("registration %d: %d %s", i, r.status, r.body)
		}
	}
	var versions []int
	c.get("/subjects/busy-value/versions").json(t, &versions)
	if len(versions) != n+1 {
		t.Fatalf("%d versions, want %d", len(versions), n+1)
	}
}

// TestExplodingDefaultsBounded: field defaults of nested shared types
// (T_i's fields default to {}) make goavro expand 2^depth values when it
// compiles the schema. A lookup reaches the parser without the schema
// limits, so a read-only caller could hang the registry with one request;
// it must answer at once, as a registration must.
func TestExplodingDefaultsBounded(t *testing.T) {
	t.Parallel()
	c, _, _ := start(t, srtest.Options{})
	c.register("dflt-value", `{"type":"record","name":"T0","fields":[{"name":"x","type":"int"}]}`)
	// sharedChain's nested records, each field defaulting to an empty
	// record (filled in from the inner defaults), innermost int default 0.
	var b strings.Builder
	const depth = 40
	b.WriteString(`{"type":"record","name":"T0","fields":[`)
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, `{"name":"a","default":{},"type":{"type":"record","name":"T%d","fields":[`, i)
	}
	b.WriteString(`{"name":"x","type":"int","default":0}`)
	for i := depth; i >= 1; i-- {
		fmt.Fprintf(&b, `]}},{"name":"b","default":{},"type":"T%d"}`, i)
	}
	b.WriteString(`]}`)
	schema := b.String()
	for _, path := range []string{"/subjects/dflt-value", "/subjects/dflt-value/versions", "/compatibility/subjects/dflt-value/versions/latest"} {
		done := make(chan result, 1)
		go func() { done <- c.post(path, map[string]any{"schema": schema}) }()
		select {
		case r := <-done:
			if r.status < 400 || r.status >= 500 {
				t.Fatalf("POST %s: %d %s, want a 4xx refusal", path, r.status, r.body)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("POST %s with exploding defaults did not answer in 20 s", path)
		}
	}
}
