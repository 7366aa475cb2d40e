package registry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	registryv1 "github.com/sluicehq/sluice/pkg/gen/sluice/registry/v1"
)

// fakeGRPC serves ids and registration over gRPC, and leaves the "latest"
// lookups unimplemented so the client must fall back to REST.
type fakeGRPC struct {
	registryv1.UnimplementedRegistryServiceServer
	calls    atomic.Int64
	lastAuth atomic.Value
}

func (f *fakeGRPC) GetSchemaByID(ctx context.Context, req *registryv1.GetSchemaByIDRequest) (*registryv1.GetSchemaByIDResponse, error) {
	f.calls.Add(1)
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("authorization")) > 0 {
		f.lastAuth.Store(md.Get("authorization")[0])
	}
	if req.GetId() != 7 {
		st, _ := status.New(codes.NotFound, "Schema not found").WithDetails(&errdetails.ErrorInfo{Reason: "40403", Domain: "test"})
		return nil, st.Err()
	}
	return &registryv1.GetSchemaByIDResponse{Schema: &registryv1.Schema{Id: 7, SchemaType: "AVRO", Schema: `"string"`}}, nil
}

func (f *fakeGRPC) Register(_ context.Context, req *registryv1.RegisterRequest) (*registryv1.RegisterResponse, error) {
	f.calls.Add(1)
	if strings.Contains(req.GetSchema(), "bad") {
		st, _ := status.New(codes.FailedPrecondition, "incompatible").WithDetails(&errdetails.ErrorInfo{Reason: "409", Domain: "test"})
		return nil, st.Err()
	}
	return &registryv1.RegisterResponse{Id: 42, Version: 1}, nil
}

func startFakeGRPC(t *testing.T) (*fakeGRPC, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	f := &fakeGRPC{}
	registryv1.RegisterRegistryServiceServer(gs, f)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return f, ln.Addr().String()
}

func TestGRPCFirstWithRESTFallback(t *testing.T) {
	t.Parallel()
	g, addr := startFakeGRPC(t)
	rest := &fakeRegistry{latest: 1}
	srv := httptest.NewServer(rest)
	t.Cleanup(srv.Close)
	c := New(Config{URL: srv.URL, GRPCAddr: addr, BearerToken: "tok", Timeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	s, err := c.SchemaByID(ctx, 7)
	if err != nil || s.Schema != `"string"` || s.SchemaType() != "AVRO" {
		t.Fatalf("SchemaByID over gRPC = %+v, %v", s, err)
	}
	if g.calls.Load() != 1 || rest.hits.Load() != 0 {
		t.Fatalf("gRPC calls %d, REST hits %d: want the id served by gRPC", g.calls.Load(), rest.hits.Load())
	}
	if got, _ := g.lastAuth.Load().(string); got != "Bearer tok" {
		t.Fatalf("authorization metadata = %q", got)
	}
	// A gRPC NOT_FOUND is final (no REST retry) and keeps the Confluent code.
	_, err = c.SchemaByID(ctx, 8)
	if !IsNotFound(err) || Code(err) != CodeSchemaNotFound {
		t.Fatalf("missing id over gRPC: %v (code %d)", err, Code(err))
	}
	if rest.hits.Load() != 0 {
		t.Fatal("a gRPC NOT_FOUND fell back to REST")
	}
	// Unimplemented over gRPC: served by REST.
	l, err := c.Latest(ctx, "orders-value")
	if err != nil || l.Version != 1 {
		t.Fatalf("Latest via REST fallback = %+v, %v", l, err)
	}
	if rest.hits.Load() != 1 {
		t.Fatalf("REST hits = %d, want 1", rest.hits.Load())
	}
	id, err := c.Register(ctx, "x-value", "", `"int"`, nil)
	if err != nil || id != 42 {
		t.Fatalf("Register over gRPC = %d, %v", id, err)
	}
	_, err = c.Register(ctx, "x-value", "", `"bad"`, nil)
	if Code(err) != CodeIncompatible {
		t.Fatalf("incompatible over gRPC: %v", err)
	}
	var re *Error
	if !asError(err, &re) || re.Status != http.StatusConflict {
		t.Fatalf("incompatible status: %v", err)
	}
}

func TestGRPCDownFallsBackToREST(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens: Unavailable
	rest := &fakeRegistry{}
	srv := httptest.NewServer(rest)
	t.Cleanup(srv.Close)
	c := New(Config{URL: srv.URL, GRPCAddr: dead, Timeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.SchemaByID(ctx, 7)
	if err != nil || s.Schema != `"string"` || rest.hits.Load() != 1 {
		t.Fatalf("SchemaByID with gRPC down = %+v, %v (REST hits %d)", s, err, rest.hits.Load())
	}
}

func TestGRPCAddrValidated(t *testing.T) {
	t.Parallel()
	cfg := Config{URL: "http://127.0.0.1:8081", Timeout: time.Second, MaxCachedIDs: 1, GRPCAddr: "nonsense"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "REGISTRY_GRPC_ADDR") {
		t.Fatalf("Validate = %v", err)
	}
}

func asError(err error, target **Error) bool { return errors.As(err, target) }
