package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/services/schema-registry/internal/api"
	"github.com/sluicehq/sluice/services/schema-registry/internal/compat"
	"github.com/sluicehq/sluice/services/schema-registry/internal/registry"
	"github.com/sluicehq/sluice/services/schema-registry/internal/store"
)

// memLog is an in-memory log: writes apply at once, in order.
type memLog struct {
	mu    sync.Mutex
	next  int64
	state *store.State
}

func (m *memLog) State() *store.State        { return m.state }
func (m *memLog) Sync(context.Context) error { return nil }
func (m *memLog) Write(_ context.Context, key, value []byte) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	off := m.next
	m.next++
	m.state.Apply(off, key, value)
	return off, nil
}

// FuzzRESTBodies sends arbitrary bodies to every endpoint that parses
// one: the answer must be a JSON error or success, never a panic or a 5xx.
func FuzzRESTBodies(f *testing.F) {
	for _, s := range []string{
		`{"schema":"\"int\""}`,
		`{"schema":"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}"}`,
		`{"schema":"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"R\",\"default\":{}}]}"}`,
		`{"schema":"\"int\"","references":[{"name":"x","subject":"s","version":1}]}`,
		`{"schema":"\"int\"","id":5,"version":2}`,
		`{"schema":"\"int\"","id":99999999999999999999,"version":2147483648}`, `{"schema":"\"int\"","id":-1.5}`,
		`{"compatibility":"FULL"}`, `{"mode":"READONLY"}`, `{}`, `[]`, `null`, `{"schema":1}`, ``,
	} {
		f.Add(s)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, body string) {
		reg := registry.New(&memLog{state: store.NewState(log)}, compat.AvroChecker{}, registry.Options{}, log)
		h := api.New(reg, api.Options{}, log, nil, nil)
		reg.Register(context.Background(), "s", registry.SchemaInput{Schema: `"int"`})
		for _, ep := range []struct{ method, path string }{
			{http.MethodPost, "/subjects/s/versions"},
			{http.MethodPost, "/subjects/s"},
			{http.MethodPost, "/compatibility/subjects/s/versions/latest"},
			{http.MethodPut, "/config/s"},
			{http.MethodPut, "/mode/s"},
		} {
			req := httptest.NewRequest(ep.method, ep.path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %s with %q: %d %s", ep.method, ep.path, body, rec.Code, rec.Body)
			}
			if !strings.HasPrefix(strings.TrimSpace(rec.Body.String()), "{") && !strings.HasPrefix(strings.TrimSpace(rec.Body.String()), "[") {
				t.Fatalf("%s %s: non-JSON answer %q", ep.method, ep.path, rec.Body)
			}
		}
	})
}
