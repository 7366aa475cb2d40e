// Package grpcapi serves sluice.ingest.v1.IngestService: Produce (batch)
// and ProduceStream (bidirectional, answers in request order).
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/auth"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
)

// Server implements IngestService.
type Server struct {
	ingestv1.UnimplementedIngestServiceServer
	eng   *gateway.Engine
	keys  *auth.Keys
	chunk int
	log   *slog.Logger
}

// New builds the service.
func New(eng *gateway.Engine, keys *auth.Keys, streamChunk int, log *slog.Logger) *Server {
	return &Server{eng: eng, keys: keys, chunk: streamChunk, log: log}
}

// Register adds the service to gs.
// The generated service, with Produce decoding into a pooledRequest so the
// request's bytes can be recycled once its records are settled.
func (s *Server) Register(gs *grpc.Server) {
	desc := ingestv1.IngestService_ServiceDesc
	desc.Methods = slices.Clone(desc.Methods)
	for i := range desc.Methods {
		if desc.Methods[i].MethodName == "Produce" {
			desc.Methods[i].Handler = produceHandler
		}
	}
	gs.RegisterService(&desc, s)
}

// pooledRequest is a ProduceRequest whose records may alias buf, a pooled
// copy of the received message (see Codec).
type pooledRequest struct {
	req ingestv1.ProduceRequest
	buf mem.Buffer // nil when nothing aliases pooled memory
}

func produceHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	s := srv.(*Server)
	// Authenticate before the message is received: an unauthenticated
	// caller costs no buffer.
	sess, aerr := s.authenticate(ctx)
	if aerr != nil {
		return nil, s.refuse(aerr)
	}
	in := &pooledRequest{}
	if err := dec(in); err != nil {
		return nil, err
	}
	call := func(ctx context.Context, req any) (any, error) {
		if r := req.(*ingestv1.ProduceRequest); r != &in.req {
			// An interceptor replaced the request: in's bytes are unused.
			in.release()
			return s.Produce(ctx, r)
		}
		return s.produce(ctx, &in.req, in.release, sess)
	}
	if interceptor == nil {
		return call(ctx, &in.req)
	}
	return interceptor(ctx, &in.req, &grpc.UnaryServerInfo{Server: srv, FullMethod: ingestv1.IngestService_Produce_FullMethodName}, call)
}

func (p *pooledRequest) release() {
	if p.buf != nil {
		p.buf.Free()
		p.buf = nil
	}
}

// statusOf maps a request-level error to a gRPC status whose ErrorInfo
// carries the gateway's numeric code (reason) for programs.
func statusOf(e *gateway.Error) error {
	c := codes.Unavailable
	switch e.Kind {
	case gateway.KindInvalidRecord, gateway.KindRecordTooLarge, gateway.KindBadRequest, gateway.KindInvalidSchema:
		c = codes.InvalidArgument
	case gateway.KindUnknownTopic, gateway.KindUnknownPartition, gateway.KindNoSchema:
		c = codes.NotFound
	case gateway.KindRequestTooLarge, gateway.KindBusy, gateway.KindRateLimited:
		c = codes.ResourceExhausted
	case gateway.KindUnauthorized:
		c = codes.Unauthenticated
	case gateway.KindForbidden:
		c = codes.PermissionDenied
	}
	st := status.New(c, e.Message)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: strconv.Itoa(e.Kind.Code()), Domain: "sluice.ingest.v1"}); err == nil {
		st = d
	}
	return st.Err()
}

// refuse counts a call refused before it reached the engine and returns
// its status.
func (s *Server) refuse(e *gateway.Error) error {
	s.eng.Metrics().Rejected.WithLabelValues(gateway.RejectReason(e.Kind)).Inc()
	return statusOf(e)
}

// authenticate checks the call's "authorization" metadata (exactly one
// value); nil session when authentication is off.
func (s *Server) authenticate(ctx context.Context) (*auth.Session, *gateway.Error) {
	if s.keys == nil {
		return nil, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("authorization")
	if len(v) > 1 {
		return nil, gateway.Errorf(gateway.KindUnauthorized, "%d authorization metadata values: send exactly one", len(v))
	}
	header := ""
	if len(v) == 1 {
		header = v[0]
	}
	sess, err := s.keys.Session(header)
	if err != nil {
		return nil, gateway.Errorf(gateway.KindUnauthorized, "%v", err)
	}
	return sess, nil
}

// permit checks topic for key (nil: authentication off): 400 for an
// invalid name, 404 for a topic not configured, 403 for one the key may
// not use, in that order as over HTTP.
func (s *Server) permit(key *auth.Key, topic string) *gateway.Error {
	if err := s.eng.TopicError(topic); err != nil {
		return err
	}
	if key != nil && !key.AllowsTopic(topic) {
		return gateway.Errorf(gateway.KindForbidden, "API key %s may not produce to topic %s", key.ID, topic)
	}
	return nil
}

// sessionKey is the session's current key (nil session: auth off).
func sessionKey(sess *auth.Session) (*auth.Key, *gateway.Error) {
	if sess == nil {
		return nil, nil
	}
	key, err := sess.Key()
	if err != nil {
		return nil, gateway.Errorf(gateway.KindUnauthorized, "%v", err)
	}
	return key, nil
}

// checkRequest refuses request fields that do not parse instead of
// falling back to defaults (an unknown format once meant JSON, a negative
// schema id the latest schema).
func checkRequest(format ingestv1.ValueFormat, schemaID, schemaVersion int32) *gateway.Error {
	if _, ok := ingestv1.ValueFormat_name[int32(format)]; !ok {
		return gateway.Errorf(gateway.KindBadRequest, "format: unknown value format %d", format)
	}
	if schemaID < 0 {
		return gateway.Errorf(gateway.KindBadRequest, "schema_id: want a positive schema id, got %d", schemaID)
	}
	if schemaVersion < -1 {
		return gateway.Errorf(gateway.KindBadRequest, "schema_version: want a positive version or -1 (latest), got %d", schemaVersion)
	}
	return nil
}

func version(v int32) int {
	if v < 0 {
		return 0 // -1: the latest
	}
	return int(v)
}

func format(f ingestv1.ValueFormat) gateway.Format {
	switch f {
	case ingestv1.ValueFormat_VALUE_FORMAT_AVRO_JSON:
		return gateway.FormatAvroJSON
	case ingestv1.ValueFormat_VALUE_FORMAT_AVRO_BINARY:
		return gateway.FormatAvroBinary
	}
	return gateway.FormatJSON
}

func toRecord(r *ingestv1.Record) gateway.Record {
	rec := gateway.Record{Key: r.GetKey(), Value: r.GetValue(), Partition: -1}
	if r.GetKeyJson() != "" {
		rec.KeyJSON = []byte(r.GetKeyJson())
	}
	if r.Timestamp != nil {
		if err := r.Timestamp.CheckValid(); err != nil {
			rec.Invalid = &gateway.Error{Kind: gateway.KindInvalidRecord, Field: "timestamp", Message: fmt.Sprintf("timestamp: %v", err)}
		}
		rec.Time = r.Timestamp.AsTime()
	}
	if r.Partition != nil {
		rec.Partition = r.GetPartition()
		if rec.Partition < 0 {
			rec.Invalid = &gateway.Error{Kind: gateway.KindInvalidRecord, Field: "partition", Message: fmt.Sprintf("partition: must be a non-negative integer, got %d", rec.Partition)}
		}
	}
	if len(r.Headers) > 0 {
		keys := make([]string, 0, len(r.Headers))
		for k := range r.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			rec.Headers = append(rec.Headers, kafkago.Header{Key: k, Value: r.Headers[k]})
		}
	}
	return rec
}

func toResult(r gateway.Result, async bool) *ingestv1.RecordResult {
	out := &ingestv1.RecordResult{}
	fillResult(out, &timestamppb.Timestamp{}, &r, async)
	return out
}

// fillResult sets o from r; ts becomes o's timestamp when it has one.
func fillResult(o *ingestv1.RecordResult, ts *timestamppb.Timestamp, r *gateway.Result, async bool) {
	o.SchemaId, o.DeadLettered = int32(r.SchemaID), r.DeadLettered
	if r.Err != nil {
		o.Error = &ingestv1.Error{Code: int32(r.Err.Kind.Code()), Message: r.Err.Message, Field: r.Err.Field}
	}
	if (r.Err == nil || r.DeadLettered) && !async {
		o.Partition, o.Offset = r.Partition, r.Offset
		ts.Seconds, ts.Nanos = r.Time.Unix(), int32(r.Time.Nanosecond())
		o.Timestamp = ts
	}
}

// Produce validates and produces a batch; one result per record, in order.
func (s *Server) Produce(ctx context.Context, req *ingestv1.ProduceRequest) (*ingestv1.ProduceResponse, error) {
	sess, aerr := s.authenticate(ctx)
	if aerr != nil {
		return nil, s.refuse(aerr)
	}
	return s.produce(ctx, req, nil, sess)
}

// produce is Produce for an authenticated session; release (if set) is
// called once nothing refers to the request's bytes any more, and never
// while Kafka may still be reading them (async batches, timed-out writes).
func (s *Server) produce(ctx context.Context, req *ingestv1.ProduceRequest, release func(), sess *auth.Session) (*ingestv1.ProduceResponse, error) {
	settled := true
	defer func() {
		if settled && release != nil {
			release()
		}
	}()
	key, aerr := sessionKey(sess)
	if aerr == nil {
		aerr = s.permit(key, req.GetTopic())
	}
	if aerr == nil {
		aerr = checkRequest(req.GetFormat(), req.GetSchemaId(), req.GetSchemaVersion())
	}
	if aerr != nil {
		return nil, s.refuse(aerr)
	}
	if key != nil && !key.Allow(len(req.GetRecords())) {
		return nil, statusOf(gateway.Errorf(gateway.KindRateLimited, "API key %s is over its limit of %g records/s; retry later", key.ID, key.RateLimit()))
	}
	// The request's bytes, and as much again for encoding them.
	n := requestBytes(req)
	hold, herr := s.eng.Reserve(2 * n)
	if herr != nil {
		return nil, s.refuse(herr)
	}
	f := format(req.GetFormat())
	b := &gateway.Batch{
		Topic:     req.GetTopic(),
		Value:     gateway.SchemaRef{ID: int(req.GetSchemaId()), Version: version(req.GetSchemaVersion())},
		Format:    f,
		KeyFormat: f,
		Async:     req.GetAsync(),
		Hold:      hold,
		ArenaPaid: n,
		Records:   getRecords(len(req.GetRecords())),
	}
	for i, r := range req.GetRecords() {
		b.Records[i] = toRecord(r)
	}
	results, err := s.eng.Produce(ctx, b)
	settled = b.Settled
	// Produce keeps no reference to the Record array (messages point at
	// the bytes), so it is reused at once.
	putRecords(b.Records)
	if err != nil {
		return nil, statusOf(gateway.AsError(err))
	}
	out := &ingestv1.ProduceResponse{Results: make([]*ingestv1.RecordResult, len(results))}
	// One allocation for all results and one for their timestamps.
	slab := make([]ingestv1.RecordResult, len(results))
	stamps := make([]timestamppb.Timestamp, len(results))
	for i := range results {
		fillResult(&slab[i], &stamps[i], &results[i], b.Async)
		out.Results[i] = &slab[i]
	}
	return out, nil
}

// requestBytes is what a request holds of the in-flight budget: its
// records' bytes (proto.Size would walk the whole message again).
func requestBytes(req *ingestv1.ProduceRequest) int64 {
	n := int64(len(req.GetTopic())) + 16
	for _, r := range req.GetRecords() {
		n += int64(len(r.GetKey())+len(r.GetKeyJson())+len(r.GetValue())) + 16
		for k, v := range r.GetHeaders() {
			n += int64(len(k) + len(v))
		}
	}
	return n
}

// maxStreamTopics bounds the per-stream cache of topic permissions: a
// stream may name any number of topics, the cache stays small.
const maxStreamTopics = 64

// ProduceStream answers every request once, in the order received; records
// that arrive together are produced together. The caller is authenticated
// before anything is allocated for the stream, and again whenever the
// keys file is reloaded: a revoked key's stream ends with Unauthenticated
// (records answered before stay answered).
func (s *Server) ProduceStream(stream grpc.BidiStreamingServer[ingestv1.ProduceStreamRequest, ingestv1.ProduceStreamResponse]) error {
	sess, aerr := s.authenticate(stream.Context())
	if aerr != nil {
		return s.refuse(aerr)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	items := make(chan gateway.StreamItem, s.chunk)
	recvErr := make(chan error, 1)
	go func() {
		defer close(items)
		// Topic permissions of the current key; names are validated
		// before they are stored.
		permitted := map[string]*gateway.Error{}
		var lastKey *auth.Key
		for {
			req, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					recvErr <- err
				}
				return
			}
			key, kerr := sessionKey(sess)
			if kerr != nil {
				recvErr <- s.refuse(kerr)
				return
			}
			if key != lastKey {
				clear(permitted)
				lastKey = key
			}
			topic := req.GetTopic()
			perr, seen := permitted[topic]
			if !seen {
				perr = s.permit(key, topic)
				if gateway.ValidTopicName(topic) {
					if len(permitted) >= maxStreamTopics {
						clear(permitted)
					}
					permitted[topic] = perr
				}
			}
			if perr == nil {
				perr = checkRequest(req.GetFormat(), req.GetSchemaId(), req.GetSchemaVersion())
			}
			if key != nil {
				_ = key.Wait(ctx, 1)
			}
			f := format(req.GetFormat())
			it := gateway.StreamItem{
				Group: gateway.Group{Topic: topic, Value: gateway.SchemaRef{ID: int(req.GetSchemaId()), Version: version(req.GetSchemaVersion())}, Format: f, KeyFormat: f},
				Size:  proto.Size(req),
				Tag:   req.GetSequence(),
				Pre:   perr,
			}
			if req.GetRecord() == nil && perr == nil {
				it.Pre = gateway.Errorf(gateway.KindBadRequest, "request %d has no record", req.GetSequence())
			} else if perr == nil {
				it.Record = toRecord(req.GetRecord())
			}
			if it.Pre != nil {
				it.Group = gateway.Group{} // a refused topic is not kept with the item
			} else {
				// The message is in memory (bounded by
				// GATEWAY_MAX_REQUEST_BYTES): it waits for budget before it
				// is queued, so a stream's queue counts against it.
				h, herr := s.eng.ReserveWait(ctx, int64(it.Size))
				if herr != nil {
					it.Pre, it.Record, it.Group = herr, gateway.Record{}, gateway.Group{}
				}
				it.Hold = h
			}
			select {
			case items <- it:
			case <-ctx.Done():
				return
			}
		}
	}()
	err := s.eng.RunStream(ctx, items, s.chunk, func(it *gateway.StreamItem, res gateway.Result) error {
		return stream.Send(&ingestv1.ProduceStreamResponse{Sequence: it.Tag.(uint64), Result: toResult(res, false)})
	})
	if err != nil {
		cancel()
		if errors.Is(err, gateway.ErrStopping) {
			return status.Error(codes.Unavailable, err.Error())
		}
		return err
	}
	select {
	case err := <-recvErr:
		if status.Code(err) == codes.Canceled || ctx.Err() != nil {
			return nil
		}
		return err
	default:
	}
	return nil
}

// Timeout returns a unary interceptor bounding each call.
func Timeout(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return h(ctx, req)
	}
}

// recordsPool recycles the per-request []gateway.Record: at 1000 records a
// request it was a fifth of what the gRPC path allocated.
var recordsPool sync.Pool // *[]gateway.Record

func getRecords(n int) []gateway.Record {
	if p, ok := recordsPool.Get().(*[]gateway.Record); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]gateway.Record, n)
}

func putRecords(r []gateway.Record) {
	if cap(r) > 100_000 {
		return
	}
	clear(r[:cap(r)])
	r = r[:0]
	recordsPool.Put(&r)
}
