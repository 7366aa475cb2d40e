// Package grpcapi serves sluice.registry.v1.RegistryService, the gRPC
// face of the registry used by the gateway and the sinks.
package grpcapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	registryv1 "github.com/sluicehq/sluice/pkg/gen/sluice/registry/v1"
	"github.com/sluicehq/sluice/services/schema-registry/internal/api"
	"github.com/sluicehq/sluice/services/schema-registry/internal/registry"
)

// ErrorDomain is the errdetails.ErrorInfo domain; Reason carries the
// Confluent error code.
const ErrorDomain = "schema-registry.sluice.dev"

// Server implements RegistryServiceServer.
type Server struct {
	registryv1.UnimplementedRegistryServiceServer
	reg *registry.Registry
}

// New returns the gRPC service.
func New(reg *registry.Registry) *Server { return &Server{reg: reg} }

// NewGRPCServer builds a grpc.Server with the service, optional auth and
// a latency histogram.
func NewGRPCServer(reg *registry.Registry, auth *api.Auth, metrics prometheus.Registerer) *grpc.Server {
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_schema_registry_grpc_request_duration_seconds",
		Help:    "gRPC request latency by method and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"method", "code"})
	if metrics != nil {
		metrics.MustRegister(lat)
	}
	interceptor := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		var resp any
		var err error
		if auth != nil {
			err = authorize(ctx, auth, info.FullMethod)
		}
		if err == nil {
			resp, err = handler(ctx, req)
		}
		lat.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
		return resp, err
	}
	gs := grpc.NewServer(grpc.UnaryInterceptor(interceptor), grpc.MaxRecvMsgSize(4<<20))
	registryv1.RegisterRegistryServiceServer(gs, New(reg))
	return gs
}

func authorize(ctx context.Context, auth *api.Auth, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	var h string
	if v := md.Get("authorization"); len(v) > 0 {
		h = v[0]
	}
	role := auth.RoleOf(h)
	if role == 0 {
		return status.Error(codes.Unauthenticated, "missing or invalid credentials in the authorization metadata")
	}
	if role == api.RoleRead && method == registryv1.RegistryService_Register_FullMethodName {
		return status.Error(codes.PermissionDenied, "these credentials are read-only")
	}
	return nil
}

// toStatus maps a registry error to a gRPC status carrying the Confluent
// code in an ErrorInfo.
func toStatus(err error) error {
	var re *registry.Error
	if !errors.As(err, &re) {
		return status.Error(codes.Internal, err.Error())
	}
	c := codes.Internal
	switch {
	case re.Status == http.StatusNotFound:
		c = codes.NotFound
	case re.Code == registry.CodeIncompatible:
		c = codes.FailedPrecondition
	case re.Code == registry.CodeOperationNotPermitted || re.Code == registry.CodeReferenceExists:
		c = codes.FailedPrecondition
	case re.Status == http.StatusUnprocessableEntity || re.Status == http.StatusBadRequest:
		c = codes.InvalidArgument
	case re.Code == registry.CodeOperationTimeout:
		c = codes.DeadlineExceeded
	case re.Status >= 500:
		c = codes.Unavailable
	}
	st := status.New(c, re.Message)
	if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: strconv.Itoa(re.Code), Domain: ErrorDomain, Metadata: map[string]string{"error_code": strconv.Itoa(re.Code)}}); derr == nil {
		st = d
	}
	return st.Err()
}

func toProto(v registry.Registered) *registryv1.Schema {
	out := &registryv1.Schema{Id: int32(v.ID), Subject: v.Subject, Version: int32(v.Version), SchemaType: v.SchemaType, Schema: v.Schema}
	for _, r := range v.References {
		out.References = append(out.References, &registryv1.SchemaReference{Name: r.Name, Subject: r.Subject, Version: int32(r.Version)})
	}
	return out
}

func fromProtoRefs(refs []*registryv1.SchemaReference) []registry.Reference {
	out := make([]registry.Reference, 0, len(refs))
	for _, r := range refs {
		out = append(out, registry.Reference{Name: r.GetName(), Subject: r.GetSubject(), Version: int(r.GetVersion())})
	}
	return out
}

// GetSchemaByID implements RegistryServiceServer.
func (s *Server) GetSchemaByID(_ context.Context, req *registryv1.GetSchemaByIDRequest) (*registryv1.GetSchemaByIDResponse, error) {
	sc, ok := s.reg.State().SchemaByID(int(req.GetId()))
	if !ok {
		return nil, toStatus(registry.ErrSchemaNotFound(strconv.Itoa(int(req.GetId()))))
	}
	return &registryv1.GetSchemaByIDResponse{Schema: toProto(registry.Registered{ID: sc.ID, SchemaType: sc.Type, Schema: sc.Schema, References: sc.References})}, nil
}

// GetLatestSchema implements RegistryServiceServer.
func (s *Server) GetLatestSchema(_ context.Context, req *registryv1.GetLatestSchemaRequest) (*registryv1.GetLatestSchemaResponse, error) {
	v, err := s.reg.GetVersion(req.GetSubject(), "latest", false)
	if err != nil {
		return nil, toStatus(err)
	}
	return &registryv1.GetLatestSchemaResponse{Schema: toProto(v)}, nil
}

// GetSchemaByVersion implements RegistryServiceServer.
func (s *Server) GetSchemaByVersion(_ context.Context, req *registryv1.GetSchemaByVersionRequest) (*registryv1.GetSchemaByVersionResponse, error) {
	v, err := s.reg.GetVersion(req.GetSubject(), strconv.Itoa(int(req.GetVersion())), false)
	if err != nil {
		return nil, toStatus(err)
	}
	return &registryv1.GetSchemaByVersionResponse{Schema: toProto(v)}, nil
}

// Register implements RegistryServiceServer.
func (s *Server) Register(ctx context.Context, req *registryv1.RegisterRequest) (*registryv1.RegisterResponse, error) {
	v, err := s.reg.Register(ctx, req.GetSubject(), registry.SchemaInput{
		Schema: req.GetSchema(), SchemaType: req.GetSchemaType(), References: fromProtoRefs(req.GetReferences()), Normalize: req.GetNormalize(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &registryv1.RegisterResponse{Id: int32(v.ID), Version: int32(v.Version)}, nil
}

// CheckCompatibility implements RegistryServiceServer.
func (s *Server) CheckCompatibility(ctx context.Context, req *registryv1.CheckCompatibilityRequest) (*registryv1.CheckCompatibilityResponse, error) {
	version := ""
	if req.GetVersion() != 0 {
		version = strconv.Itoa(int(req.GetVersion()))
		if req.GetVersion() == -1 {
			version = "latest"
		}
	}
	ok, msgs, err := s.reg.CheckCompatibility(ctx, req.GetSubject(), version, registry.SchemaInput{
		Schema: req.GetSchema(), SchemaType: req.GetSchemaType(), References: fromProtoRefs(req.GetReferences()),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &registryv1.CheckCompatibilityResponse{IsCompatible: ok, Messages: msgs}, nil
}

// ListVersionsByID implements RegistryServiceServer: the live subject
// versions registered with an id, as GET /schemas/ids/{id}/versions.
func (s *Server) ListVersionsByID(_ context.Context, req *registryv1.ListVersionsByIDRequest) (*registryv1.ListVersionsByIDResponse, error) {
	id := int(req.GetId())
	if _, ok := s.reg.State().SchemaByID(id); !ok {
		return nil, toStatus(registry.ErrSchemaNotFound(strconv.Itoa(id)))
	}
	uses := s.reg.State().UsesOf(id, false)
	out := &registryv1.ListVersionsByIDResponse{Versions: make([]*registryv1.SubjectVersion, len(uses))}
	for i, u := range uses {
		out.Versions[i] = &registryv1.SubjectVersion{Subject: u.Subject, Version: int32(u.Version)}
	}
	return out, nil
}
