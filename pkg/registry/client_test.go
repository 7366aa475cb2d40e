package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeRegistry answers the few Confluent paths the client uses and counts hits.
type fakeRegistry struct {
	hits    atomic.Int64
	mu      sync.Mutex
	latest  int
	release chan struct{}
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	if f.release != nil {
		<-f.release
	}
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	switch {
	case r.URL.Path == "/schemas/ids/7":
		_, _ = w.Write([]byte(`{"schema":"\"string\""}`))
	case r.URL.Path == "/subjects/orders-value/versions/latest":
		f.mu.Lock()
		v := f.latest
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(Schema{Subject: "orders-value", Version: v, ID: 10 + v, Schema: `"long"`})
	case r.URL.Path == "/subjects/orders-value/versions" && r.Method == http.MethodPost:
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"error_code":40101,"message":"Unauthorized"}`))
			return
		}
		_, _ = w.Write([]byte(`{"id":42}`))
	default:
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`{"error_code":40403,"message":"Schema not found"}`))
	}
}

func newClient(t *testing.T, f http.Handler, opts ...Option) *Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return New(Config{URL: srv.URL, Timeout: 5 * time.Second, LatestTTL: time.Minute, MaxCachedIDs: 10, BearerToken: "tok"}, opts...)
}

func TestSchemaByIDCachedAndSingleflight(t *testing.T) {
	t.Parallel()
	f := &fakeRegistry{release: make(chan struct{})}
	c := newClient(t, f)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.SchemaByID(ctx, 7)
			if err != nil || s.Schema != `"string"` || s.ID != 7 {
				t.Errorf("SchemaByID = %+v, %v", s, err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the callers pile up behind one request
	close(f.release)
	wg.Wait()
	if _, err := c.SchemaByID(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if n := f.hits.Load(); n != 1 {
		t.Fatalf("registry hit %d times, want 1", n)
	}
}

func TestErrorsCarryConfluentCode(t *testing.T) {
	t.Parallel()
	c := newClient(t, &fakeRegistry{})
	_, err := c.SchemaByID(context.Background(), 99)
	if !IsNotFound(err) || Code(err) != CodeSchemaNotFound || !strings.Contains(err.Error(), "schema id 99") {
		t.Fatalf("err = %v (code %d)", err, Code(err))
	}
}

func TestLatestServedStaleThenRefreshed(t *testing.T) {
	t.Parallel()
	f := &fakeRegistry{latest: 1}
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	c := newClient(t, f, WithClock(func() time.Time { return time.Unix(0, now.Load()) }))
	ctx := context.Background()
	s, err := c.Latest(ctx, "orders-value")
	if err != nil || s.Version != 1 {
		t.Fatalf("latest = %+v, %v", s, err)
	}
	f.mu.Lock()
	f.latest = 2
	f.mu.Unlock()
	if s, _ := c.Latest(ctx, "orders-value"); s.Version != 1 {
		t.Fatalf("within TTL got version %d, want cached 1", s.Version)
	}
	now.Add(int64(2 * time.Minute))
	if s, _ := c.Latest(ctx, "orders-value"); s.Version != 1 {
		t.Fatalf("stale read got version %d, want stale 1 while refreshing", s.Version)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, _ := c.Latest(ctx, "orders-value")
		if s.Version == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("background refresh never landed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if id, _ := c.SchemaByID(ctx, 12); id == nil {
		t.Fatal("latest did not populate the id cache")
	}
}

func TestRegisterSendsAuth(t *testing.T) {
	t.Parallel()
	c := newClient(t, &fakeRegistry{})
	id, err := c.Register(context.Background(), "orders-value", "AVRO", `"long"`, nil)
	if err != nil || id != 42 {
		t.Fatalf("register = %d, %v", id, err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad url", Config{URL: "localhost:8081", Timeout: time.Second, MaxCachedIDs: 1}, "REGISTRY_URL"},
		{"both auths", Config{URL: "http://x", Timeout: time.Second, MaxCachedIDs: 1, BearerToken: "t", Username: "u"}, "REGISTRY_BEARER_TOKEN"},
		{"zero timeout", Config{URL: "http://x", MaxCachedIDs: 1}, "REGISTRY_TIMEOUT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %s", err, tc.want)
			}
		})
	}
}
