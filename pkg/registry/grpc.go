package registry

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	registryv1 "github.com/sluicehq/sluice/pkg/gen/sluice/registry/v1"
)

// grpcTransport sends lookups and registrations over sluice.registry.v1;
// REST stays the fallback for registries that do not speak it (Confluent).
type grpcTransport struct {
	client registryv1.RegistryServiceClient
	auth   string // authorization metadata, or ""
}

// WithGRPC makes the client use conn (a connection to Sluice's registry
// gRPC API) first, falling back to REST when the call fails with
// Unavailable or Unimplemented. It replaces a connection New dialled from
// REGISTRY_GRPC_ADDR.
func WithGRPC(conn grpc.ClientConnInterface) Option {
	return func(c *Client) {
		c.rpc = &grpcTransport{client: registryv1.NewRegistryServiceClient(conn), auth: c.authHeader()}
	}
}

func validGRPCAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return fmt.Errorf("want host:port, got %q", addr)
	}
	return nil
}

func (c *Client) authHeader() string {
	switch {
	case c.cfg.BearerToken != "":
		return "Bearer " + c.cfg.BearerToken
	case c.cfg.Username != "":
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.cfg.Username+":"+c.cfg.Password))
	}
	return ""
}

// dialGRPC sets up the gRPC transport from REGISTRY_GRPC_ADDR. Dialling is
// lazy (no I/O here); a target gRPC cannot parse leaves the client on REST.
func (c *Client) dialGRPC() {
	conn, err := grpc.NewClient(c.cfg.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return
	}
	c.rpc = &grpcTransport{client: registryv1.NewRegistryServiceClient(conn), auth: c.authHeader()}
	c.rpcConn = conn
}

// Close releases the gRPC connection New dialled, if any.
func (c *Client) Close() error {
	if c.rpcConn != nil {
		return c.rpcConn.Close()
	}
	return nil
}

func (t *grpcTransport) ctx(ctx context.Context) context.Context {
	if t.auth == "" {
		return ctx
	}
	return metadataWithAuth(ctx, t.auth)
}

// fallback reports whether a gRPC failure should be retried over REST.
func fallback(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Unimplemented:
		return true
	}
	return false
}

var httpStatusOf = map[codes.Code]int{
	codes.NotFound:           http.StatusNotFound,
	codes.InvalidArgument:    http.StatusUnprocessableEntity,
	codes.FailedPrecondition: http.StatusUnprocessableEntity,
	codes.Unauthenticated:    http.StatusUnauthorized,
	codes.PermissionDenied:   http.StatusForbidden,
	codes.DeadlineExceeded:   http.StatusInternalServerError,
}

// fromStatus turns a gRPC error into the *Error REST callers branch on,
// with the Confluent error code the server put in its ErrorInfo.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	re := &Error{Status: http.StatusInternalServerError, Message: st.Message()}
	if s, ok := httpStatusOf[st.Code()]; ok {
		re.Status = s
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if n, err := strconv.Atoi(info.GetReason()); err == nil {
				re.Code = n
			}
		}
	}
	if re.Code == CodeIncompatible {
		re.Status = http.StatusConflict
	}
	return re
}

func schemaFromProto(p *registryv1.Schema) Schema {
	s := Schema{ID: int(p.GetId()), Subject: p.GetSubject(), Version: int(p.GetVersion()), Type: p.GetSchemaType(), Schema: p.GetSchema()}
	if s.Type == "AVRO" {
		s.Type = ""
	}
	for _, r := range p.GetReferences() {
		s.References = append(s.References, Reference{Name: r.GetName(), Subject: r.GetSubject(), Version: int(r.GetVersion())})
	}
	return s
}

func (c *Client) getByID(ctx context.Context, id int, out *Schema) error {
	if c.rpc != nil {
		resp, err := c.rpc.client.GetSchemaByID(c.rpc.ctx(ctx), &registryv1.GetSchemaByIDRequest{Id: int32(id)})
		if err == nil {
			*out = schemaFromProto(resp.GetSchema())
			return nil
		}
		if !fallback(err) {
			return fromStatus(err)
		}
	}
	return c.do(ctx, http.MethodGet, "/schemas/ids/"+strconv.Itoa(id), nil, out)
}

func (c *Client) getLatest(ctx context.Context, subject string, out *Schema) error {
	if c.rpc != nil {
		resp, err := c.rpc.client.GetLatestSchema(c.rpc.ctx(ctx), &registryv1.GetLatestSchemaRequest{Subject: subject})
		if err == nil {
			*out = schemaFromProto(resp.GetSchema())
			return nil
		}
		if !fallback(err) {
			return fromStatus(err)
		}
	}
	return c.do(ctx, http.MethodGet, "/subjects/"+url.PathEscape(subject)+"/versions/latest", nil, out)
}

func (c *Client) getVersion(ctx context.Context, subject string, version int, out *Schema) error {
	if c.rpc != nil {
		resp, err := c.rpc.client.GetSchemaByVersion(c.rpc.ctx(ctx), &registryv1.GetSchemaByVersionRequest{Subject: subject, Version: int32(version)})
		if err == nil {
			*out = schemaFromProto(resp.GetSchema())
			return nil
		}
		if !fallback(err) {
			return fromStatus(err)
		}
	}
	return c.do(ctx, http.MethodGet, "/subjects/"+url.PathEscape(subject)+"/versions/"+strconv.Itoa(version), nil, out)
}

func (c *Client) getVersionsByID(ctx context.Context, id int) ([]SubjectVersion, error) {
	if c.rpc != nil {
		resp, err := c.rpc.client.ListVersionsByID(c.rpc.ctx(ctx), &registryv1.ListVersionsByIDRequest{Id: int32(id)})
		if err == nil {
			out := make([]SubjectVersion, 0, len(resp.GetVersions()))
			for _, v := range resp.GetVersions() {
				out = append(out, SubjectVersion{Subject: v.GetSubject(), Version: int(v.GetVersion())})
			}
			return out, nil
		}
		if !fallback(err) {
			return nil, fromStatus(err)
		}
	}
	var out []SubjectVersion
	if err := c.do(ctx, http.MethodGet, "/schemas/ids/"+strconv.Itoa(id)+"/versions", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) register(ctx context.Context, subject, schemaType, schema string, refs []Reference, body map[string]any, id *int) error {
	if c.rpc != nil {
		req := &registryv1.RegisterRequest{Subject: subject, SchemaType: schemaType, Schema: schema}
		for _, r := range refs {
			req.References = append(req.References, &registryv1.SchemaReference{Name: r.Name, Subject: r.Subject, Version: int32(r.Version)})
		}
		resp, err := c.rpc.client.Register(c.rpc.ctx(ctx), req)
		if err == nil {
			*id = int(resp.GetId())
			return nil
		}
		if !fallback(err) {
			return fromStatus(err)
		}
	}
	var out struct {
		ID int `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, "/subjects/"+url.PathEscape(subject)+"/versions", body, &out); err != nil {
		return err
	}
	*id = out.ID
	return nil
}

func metadataWithAuth(ctx context.Context, auth string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", auth)
}
