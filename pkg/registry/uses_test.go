package registry

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/sluicehq/sluice/pkg/gen/sluice/registry/v1"
)

// usesRegistry answers GET /schemas/ids/{id}/versions from a mutable table
// and counts the calls.
type usesRegistry struct {
	hits atomic.Int64
	mu   sync.Mutex
	uses map[string][]SubjectVersion // path id -> versions
}

func (f *usesRegistry) set(id string, vs ...SubjectVersion) {
	f.mu.Lock()
	f.uses[id] = vs
	f.mu.Unlock()
}

func (f *usesRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, vs := range f.uses {
		if r.URL.Path == "/schemas/ids/"+id+"/versions" {
			_ = json.NewEncoder(w).Encode(vs)
			return
		}
	}
	w.WriteHeader(404)
	_, _ = w.Write([]byte(`{"error_code":40403,"message":"Schema not found"}`))
}

func TestIDInSubjectCachesYesForeverAndNoBriefly(t *testing.T) {
	t.Parallel()
	f := &usesRegistry{uses: map[string][]SubjectVersion{}}
	f.set("7", SubjectVersion{"orders-value", 1}, SubjectVersion{"copy-value", 3})
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := New(Config{URL: srv.URL, Timeout: 5 * time.Second, MaxCachedIDs: 10, NegativeTTL: 5 * time.Second},
		WithClock(func() time.Time { return time.Unix(0, now.Load()) }))
	ctx := context.Background()

	steps := []struct {
		name     string
		id       int
		subject  string
		advance  time.Duration
		change   func()
		want     bool
		wantHits int64
	}{
		{name: "yes asks the registry", id: 7, subject: "orders-value", want: true, wantHits: 1},
		{name: "yes is cached", id: 7, subject: "orders-value", want: true, wantHits: 1},
		{name: "another subject of the same id is known", id: 7, subject: "copy-value", want: true, wantHits: 1},
		{name: "no within the negative TTL is cached", id: 7, subject: "payments-value", want: false, wantHits: 1},
		{name: "the subject gains the id", id: 7, subject: "payments-value",
			change: func() { f.set("7", SubjectVersion{"payments-value", 2}) }, want: false, wantHits: 1},
		{name: "after the negative TTL the registry is asked again", id: 7, subject: "payments-value", advance: 6 * time.Second, want: true, wantHits: 2},
		{name: "earlier yes survives the id leaving a subject", id: 7, subject: "orders-value", advance: time.Hour, want: true, wantHits: 2},
	}
	for _, s := range steps {
		now.Add(int64(s.advance))
		if s.change != nil {
			s.change()
		}
		got, err := c.IDInSubject(ctx, s.id, s.subject)
		if err != nil || got != s.want {
			t.Fatalf("%s: IDInSubject(%d, %s) = %v, %v; want %v", s.name, s.id, s.subject, got, err, s.want)
		}
		if h := f.hits.Load(); h != s.wantHits {
			t.Fatalf("%s: registry hit %d times, want %d", s.name, h, s.wantHits)
		}
	}
	if _, err := c.IDInSubject(ctx, 99, "orders-value"); !IsNotFound(err) || Code(err) != CodeSchemaNotFound {
		t.Fatalf("unknown id: %v (code %d), want a 404 40403", err, Code(err))
	}
}

func TestIDInSubjectBounded(t *testing.T) {
	t.Parallel()
	f := &usesRegistry{uses: map[string][]SubjectVersion{}}
	for _, id := range []string{"1", "2", "3", "4"} {
		f.set(id, SubjectVersion{"s-value", 1})
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := New(Config{URL: srv.URL, Timeout: 5 * time.Second, MaxCachedIDs: 2, NegativeTTL: time.Minute})
	for _, id := range []int{1, 2, 3, 4} {
		if ok, err := c.IDInSubject(context.Background(), id, "s-value"); !ok || err != nil {
			t.Fatalf("id %d: %v, %v", id, ok, err)
		}
	}
	c.mu.RLock()
	n := len(c.uses)
	c.mu.RUnlock()
	if n > 2 {
		t.Fatalf("uses cache holds %d ids, bound is 2", n)
	}
}

// usesGRPC implements ListVersionsByID.
type usesGRPC struct {
	registryv1.UnimplementedRegistryServiceServer
	calls atomic.Int64
}

func (g *usesGRPC) ListVersionsByID(_ context.Context, req *registryv1.ListVersionsByIDRequest) (*registryv1.ListVersionsByIDResponse, error) {
	g.calls.Add(1)
	if req.GetId() != 5 {
		st, _ := status.New(codes.NotFound, "Schema not found").WithDetails(&errdetails.ErrorInfo{Reason: "40403", Domain: "test"})
		return nil, st.Err()
	}
	return &registryv1.ListVersionsByIDResponse{Versions: []*registryv1.SubjectVersion{{Subject: "orders-value", Version: 4}}}, nil
}

func TestVersionsByIDOverGRPCAndRESTFallback(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rest := &usesRegistry{uses: map[string][]SubjectVersion{"5": {{"rest-value", 9}}}}
	srv := httptest.NewServer(rest)
	t.Cleanup(srv.Close)

	// A registry that implements the RPC answers over gRPC.
	g := &usesGRPC{}
	_, addr := serveGRPC(t, func(s *grpc.Server) { registryv1.RegisterRegistryServiceServer(s, g) })
	c := New(Config{URL: srv.URL, GRPCAddr: addr, Timeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	vs, err := c.VersionsByID(ctx, 5)
	if err != nil || len(vs) != 1 || vs[0] != (SubjectVersion{"orders-value", 4}) || g.calls.Load() != 1 || rest.hits.Load() != 0 {
		t.Fatalf("over gRPC: %v, %v (gRPC calls %d, REST hits %d)", vs, err, g.calls.Load(), rest.hits.Load())
	}
	if _, err := c.VersionsByID(ctx, 6); !IsNotFound(err) || Code(err) != CodeSchemaNotFound || rest.hits.Load() != 0 {
		t.Fatalf("unknown id over gRPC: %v (code %d), REST hits %d", err, Code(err), rest.hits.Load())
	}

	// One that does not (Unimplemented) is asked over REST.
	_, addr2 := startFakeGRPC(t)
	c2 := New(Config{URL: srv.URL, GRPCAddr: addr2, Timeout: 5 * time.Second})
	t.Cleanup(func() { _ = c2.Close() })
	vs, err = c2.VersionsByID(ctx, 5)
	if err != nil || len(vs) != 1 || vs[0] != (SubjectVersion{"rest-value", 9}) || rest.hits.Load() != 1 {
		t.Fatalf("REST fallback: %v, %v (REST hits %d)", vs, err, rest.hits.Load())
	}
}

func serveGRPC(t *testing.T, register func(*grpc.Server)) (*grpc.Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	register(gs)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return gs, ln.Addr().String()
}
