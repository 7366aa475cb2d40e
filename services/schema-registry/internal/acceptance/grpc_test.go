package acceptance_test

import (
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	registryv1 "github.com/sluicehq/sluice/pkg/gen/sluice/registry/v1"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/services/schema-registry/internal/api"
	"github.com/sluicehq/sluice/services/schema-registry/internal/srtest"
)

// TestPkgRegistryClientOverGRPC: the shared client every service uses
// talks to the registry over gRPC and keeps Confluent's error codes.
func TestPkgRegistryClientOverGRPC(t *testing.T) {
	t.Parallel()
	kc := kafkatest.Start(t)
	in := srtest.Start(t, kc.Config(), srtest.Options{})
	c := registry.New(registry.Config{URL: "http://127.0.0.1:1", GRPCAddr: in.GRPCAddr, Timeout: 10 * time.Second}) // REST unreachable on purpose
	t.Cleanup(func() { _ = c.Close() })
	ctx := kafkatest.Context(t, 30*time.Second)
	v1 := avroRecord("Event", "a")
	id, err := c.Register(ctx, "events-value", "", v1, nil)
	if err != nil || id != 1 {
		t.Fatalf("Register = %d, %v", id, err)
	}
	s, err := c.SchemaByID(ctx, id)
	if err != nil || s.Schema != v1 {
		t.Fatalf("SchemaByID = %+v, %v", s, err)
	}
	l, err := c.Latest(ctx, "events-value")
	if err != nil || l.ID != id || l.Version != 1 || l.Subject != "events-value" {
		t.Fatalf("Latest = %+v, %v", l, err)
	}
	v, err := c.ByVersion(ctx, "events-value", 1)
	if err != nil || v.ID != id {
		t.Fatalf("ByVersion = %+v, %v", v, err)
	}
	// REST is unreachable: ListVersionsByID answers over gRPC.
	if _, err := c.Register(ctx, "other-value", "", v1, nil); err != nil {
		t.Fatal(err)
	}
	uses, err := c.VersionsByID(ctx, id)
	if err != nil || len(uses) != 2 || uses[0] != (registry.SubjectVersion{Subject: "events-value", Version: 1}) || uses[1] != (registry.SubjectVersion{Subject: "other-value", Version: 1}) {
		t.Fatalf("VersionsByID = %+v, %v", uses, err)
	}
	if in, err := c.IDInSubject(ctx, id, "third-value"); err != nil || in {
		t.Fatalf("IDInSubject(third-value) = %v, %v", in, err)
	}
	if _, err := c.VersionsByID(ctx, 99); !registry.IsNotFound(err) {
		t.Fatalf("VersionsByID(missing) = %v, want not found", err)
	}
	if _, err := c.SchemaByID(ctx, 99); registry.Code(err) != registry.CodeSchemaNotFound || !registry.IsNotFound(err) {
		t.Fatalf("missing id: %v", err)
	}
	if _, err := c.Latest(ctx, "nope"); registry.Code(err) != 40401 {
		t.Fatalf("missing subject: %v", err)
	}
	if _, err := c.Register(ctx, "events-value", "", `{"type":"record","name":"Event","namespace":"com.acme","fields":[{"name":"b","type":"int"}]}`, nil); registry.Code(err) != registry.CodeIncompatible {
		t.Fatalf("incompatible registration: %v", err)
	}
	if _, err := c.Register(ctx, "events-value", "", `{"type":"nope"}`, nil); registry.Code(err) != registry.CodeInvalidSchema {
		t.Fatalf("invalid schema: %v", err)
	}
}

func TestGRPCServiceDirect(t *testing.T) {
	t.Parallel()
	kc := kafkatest.Start(t)
	auth, _ := api.ParseAuth(nil, []string{"rw-token:rw", "ro-token:ro"})
	in := srtest.Start(t, kc.Config(), srtest.Options{Auth: auth})
	conn, err := grpc.NewClient(in.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	cl := registryv1.NewRegistryServiceClient(conn)
	ctx := kafkatest.Context(t, 30*time.Second)
	if _, err := cl.GetSchemaByID(ctx, &registryv1.GetSchemaByIDRequest{Id: 1}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no credentials: %v", err)
	}
	ro := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer ro-token")
	rw := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer rw-token")
	v1 := avroRecord("Event", "a")
	if _, err := cl.Register(ro, &registryv1.RegisterRequest{Subject: "e-value", Schema: v1}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("read-only register: %v", err)
	}
	reg, err := cl.Register(rw, &registryv1.RegisterRequest{Subject: "e-value", Schema: v1})
	if err != nil || reg.GetId() != 1 || reg.GetVersion() != 1 {
		t.Fatalf("Register = %v, %v", reg, err)
	}
	byID, err := cl.GetSchemaByID(ro, &registryv1.GetSchemaByIDRequest{Id: 1})
	if err != nil || byID.GetSchema().GetSchema() != v1 || byID.GetSchema().GetSchemaType() != "AVRO" {
		t.Fatalf("GetSchemaByID = %v, %v", byID, err)
	}
	if _, err := cl.GetSchemaByVersion(ro, &registryv1.GetSchemaByVersionRequest{Subject: "e-value", Version: 2}); status.Code(err) != codes.NotFound {
		t.Fatalf("missing version: %v", err)
	}
	cc, err := cl.CheckCompatibility(ro, &registryv1.CheckCompatibilityRequest{Subject: "e-value", Schema: `{"type":"record","name":"Event","namespace":"com.acme","fields":[{"name":"b","type":"int"}]}`})
	if err != nil || cc.GetIsCompatible() || len(cc.GetMessages()) == 0 {
		t.Fatalf("CheckCompatibility = %v, %v", cc, err)
	}
	cc, err = cl.CheckCompatibility(ro, &registryv1.CheckCompatibilityRequest{Subject: "e-value", Version: -1, Schema: avroRecord("Event", "a", "b")})
	if err != nil || !cc.GetIsCompatible() {
		t.Fatalf("CheckCompatibility latest = %v, %v", cc, err)
	}
	// The gRPC latency histogram is exported.
	mfs, err := in.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "sluice_schema_registry_grpc_request_duration_seconds"
	}
	if !found {
		t.Fatal("gRPC latency histogram missing")
	}
}
